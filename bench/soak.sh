#!/usr/bin/env bash
# Soak benchmark of `vouch serve` (release build), recorded in BENCHMARKS.md. Not run in CI.
#
#   cargo build --release -p vouch && cargo build --release -p vouch-provider --example bench_env
#   apt-get install -y docker-registry
#   bench/soak.sh
#
# Environment: SOAK_SECONDS (default 1800: 30 minutes), SOAK_RATE (requests per second,
# default 20), SOAK_IMAGES (signed images pushed, default 100).
#
# A fixed rate of mixed requests (cached 1- and 20-key batches, a cache miss verified against
# the registry, 5 absent digests) with the configuration rewritten every 60 s (bench/soak.py),
# while vouch's VmRSS, open descriptors and threads are sampled every 10 s. "Flat" means the
# last third of the run holds no more than the first third. Traffic goes to 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REL=${SOAK_BUILD:-$ROOT/target/release}
SECONDS_TOTAL=${SOAK_SECONDS:-1800}
RATE=${SOAK_RATE:-20}
IMAGES=${SOAK_IMAGES:-100}
WORK=$(mktemp -d /tmp/vouch-soak.XXXXXX)
PIDS=()

for bin in "$REL/vouch" "$REL/examples/bench_env"; do
  [[ -x $bin ]] || { echo "missing $bin; build: cargo build --release -p vouch && cargo build --release -p vouch-provider --example bench_env" >&2; exit 1; }
done

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores; soak ${SECONDS_TOTAL}s at ${RATE} req/s; pushing $IMAGES signed images"
"$REL/examples/bench_env" "$WORK/env" "$IMAGES" >"$WORK/env.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 3600); do grep -q '^ready' "$WORK/env.log" && break; sleep 0.25; done
grep -q '^ready' "$WORK/env.log" || { cat "$WORK/env.log" >&2; exit 1; }

VOUCH_LOG=warn "$REL/vouch" serve --config "$WORK/env/config.yaml" --cert-dir "$WORK/tls" \
  --listen 127.0.0.1:7443 --health-listen 127.0.0.1:7099 --metrics-listen 127.0.0.1:7888 \
  2>>"$WORK/vouch.log" &
VOUCH_PID=$!
PIDS+=("$VOUCH_PID")
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:7099/readyz && break; sleep 0.1; done

python3 "$ROOT/bench/soak.py" https://localhost:7443/ratify/gatekeeper/v1/verify \
  "$WORK/tls/ca.crt" "$WORK/env/keys.txt" "$(cat "$WORK/env/registry")" \
  "$WORK/env/config.yaml" "$VOUCH_PID" "$SECONDS_TOTAL" "$RATE" "$WORK/samples.csv"
kill -0 "$VOUCH_PID" || { echo "vouch exited during the soak" >&2; tail -20 "$WORK/vouch.log" >&2; exit 1; }
curl -s http://127.0.0.1:7888/metrics | grep -E '^vouch_config_(reloads_total|generation)' || true
cp "$WORK/samples.csv" "${SOAK_SAMPLES:-/tmp/vouch-soak-samples.csv}"
echo "samples: ${SOAK_SAMPLES:-/tmp/vouch-soak-samples.csv}"
