#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a Debian/Ubuntu machine, or stops with a
# message that says exactly what is missing and how to get it.
#   docker-registry  Debian's Distribution 2.8 registry: the real registry tests and the demo use
#   skopeo           copies images between registries and OCI layouts (fixtures, debugging)
#   apache2-utils    htpasswd (bcrypt), for the tests of registries with Basic auth
#   cargo-nextest    the test runner (`make test`)
set -euo pipefail

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)

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
