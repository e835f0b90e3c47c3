#!/usr/bin/env bash
# Copies seed inputs for each fuzz target from the shared Notation vectors into fuzz/corpus/
# (git-ignored; never commit vector files), and writes seeds for provider_request (request
# bodies) and ratify_config (the AKS guide configuration and variants of it).
# Usage: fuzz/seed.sh [path-to-vectors]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="${1:-$here/../../shared/vectors/notation}"
corpus="$here/corpus"
[ -d "$vectors" ] || { echo "no vectors at $vectors" >&2; exit 1; }
seed() { # target file...
  local target="$1"; shift
  mkdir -p "$corpus/$target"
  for f in "$@"; do
    [ -f "$f" ] && cp "$f" "$corpus/$target/$(printf '%s' "$f" | sha256sum | cut -c1-16)"
  done
  return 0
}

# provider_request: Gatekeeper ProviderRequest bodies (see docs/gatekeeper-protocol in the reference).
mkdir -p "$corpus/provider_request"
body() { printf '%s' "$2" > "$corpus/provider_request/$1.json"; }
body full '{"apiVersion":"externaldata.gatekeeper.sh/v1beta1","kind":"ProviderRequest","request":{"keys":["ghcr.io/x/app:v1","[team-a]registry.test/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}'
body alpha '{"apiVersion":"externaldata.gatekeeper.sh/v1alpha1","request":{"keys":["docker-pullable://nginx"]}}'
body bare '{"request":{"keys":[]}}'
body empty '{}'
body escaped '{"request":{"keys":["a\u0000b","\ud83d\ude00",""],"extra":[1,{"k":null}]}}'

# ratify_config: the AKS guide configuration and variants (namespaced, v1alpha1, a policy).
aks="$here/../../shared/reference/aks-verify-config.yaml"
if [ -f "$aks" ]; then
  mkdir -p "$corpus/ratify_config"
  cp "$aks" "$corpus/ratify_config/aks.yaml"
  sed 's/^kind: Verifier$/kind: NamespacedVerifier/; s/^  name: verifier-notary-inline$/  name: verifier-notary-inline\n  namespace: team-a/' "$aks" \
    > "$corpus/ratify_config/aks-namespaced.yaml"
  sed 's#config.ratify.deislabs.io/v1beta1#config.ratify.deislabs.io/v1alpha1#' "$aks" > "$corpus/ratify_config/aks-v1alpha1.yaml"
  { cat "$aks"; printf '%s\n' '---' 'apiVersion: config.ratify.deislabs.io/v1beta1' 'kind: Policy' \
      'metadata: {name: ratify-policy}' 'spec:' '  type: config-policy' '  parameters:' \
      '    artifactVerificationPolicies: {"application/vnd.cncf.notary.signature": any, default: all}'; } \
    > "$corpus/ratify_config/aks-policy.yaml"
fi

cd "$vectors"
seed jws_envelope notation-go/internal/mock/testdata/*.json notation-go/internal/testdata/jws_signature.sig \
  notation-go/verifier/testdata/timestamp/sigEnv/jws*.sig notation-go/verifier/testdata/timestamp/sigEnv/withoutTimestamp.sig \
  notation-go/verifier/testdata/timestamp/sigEnv/timestampBeforeNotBefore.sig \
  notation-go/_extracted_from_tests/*/*.jws notation-go/_extracted_from_tests/verifier/verifier_test/testSig.jws \
  notation/test/e2e/testdata/signatures/*.jws.sig notation-core-go/signature/jws/testdata/conformance.json
seed cose_envelope notation-go/internal/testdata/cose_signature.sig notation-go/verifier/testdata/timestamp/sigEnv/cose*.sig \
  notation-go/verifier/testdata/timestamp/sigEnv/timestampAfterNotAfter.sig \
  notation-go/_extracted_from_tests/example_localVerify_test/signature.cose notation/test/e2e/testdata/signatures/blob.cose.sig
seed certificate_chain $(find . -name '*.pem' -o -name '*.crt' -o -name '*.cer' -o -name '*.der' | grep -v timestamp_tokens)
seed trust_policy notation/test/e2e/testdata/config/trustpolicies/*.json notation/test/e2e/testdata/blob/trustpolicies/*.json
seed timestamp_token $(find . -name '*.p7s' -o -name '*.tst.der')
seed revocation_response $(find . -name '*.crl')
echo "seeded: $(for t in "$corpus"/*; do printf '%s=%s ' "$(basename "$t")" "$(ls "$t" | wc -l)"; done)"
