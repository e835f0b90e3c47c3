#!/usr/bin/env bash
# Benchmarks of `vouch serve` (release build), recorded in BENCHMARKS.md.
#
#   cargo build --release -p vouch && cargo build --release -p vouch-provider --examples
#   apt-get install -y wrk docker-registry
#   bench/serve.sh [cached|uncached|memory|startup|all]    (default: all)
#
# Environment: DURATION (wrk duration, default 10s), CONNS (wrk connections, default 8),
# UNCACHED (images verified uncached, default 100), ROUNDS (uncached rounds, default 3), FILL (verdicts cached for the memory
# figure, default 100000). Traffic goes to 127.0.0.1 only; every load run is bounded.
#
# * cached:   1-key and 1,000-key /verify batches answered from the cache (1,000 distinct
#             keys: 100 signed images under 10 tag spellings each, `repo:vJ@digest`; pushing
#             to Distribution takes ~0.4 s per signed image), with wrk, beside
#             a floor (examples/floor_server.rs: same TLS, same hyper builder, canned answer
#             of the same bytes), run alternately in the same session;
# * uncached: one key per request, each a different signed image, beside a floor making the
#             same registry round trips with a plain HTTP client plus one signature
#             verification (examples/uncached.rs), and vouch's engine in process (the same
#             verification without the HTTPS hop, the cache and the answer);
# * memory:   VmRSS idle, then with FILL failure verdicts cached (absent digests in the local
#             registry, cached for 60 min);
# * startup:  process start until /readyz answers 200 (bench/startup.py), certificates
#             already generated, median of 5.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REL=$ROOT/target/release
EX=$REL/examples
WHAT=${1:-all}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
UNCACHED=${UNCACHED:-100}
ROUNDS=${ROUNDS:-3}
FILL=${FILL:-100000}
WORK=$(mktemp -d /tmp/vouch-bench.XXXXXX)
PIDS=()

for bin in "$REL/vouch" "$EX/bench_env" "$EX/floor_server" "$EX/uncached"; do
  [[ -x $bin ]] || { echo "missing $bin; build: cargo build --release -p vouch && cargo build --release -p vouch-provider --examples" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 1; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

load() { awk '{print $1}' /proc/loadavg; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_for() { # URL: until it answers 2xx, at most 30 s
  for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

# vouch serve on 127.0.0.1:7443 (health 7099, metrics 7888); extra flags appended.
VOUCH_PID=
start_vouch() {
  VOUCH_LOG=${VOUCH_LOG:-info} "$REL/vouch" serve --config "$WORK/env/config.yaml" \
    --cert-dir "$WORK/tls" --listen 127.0.0.1:7443 --health-listen 127.0.0.1:7099 \
    --metrics-listen 127.0.0.1:7888 "$@" 2>>"$WORK/vouch.log" &
  VOUCH_PID=$!
  PIDS+=("$VOUCH_PID")
  wait_for http://127.0.0.1:7099/readyz
}
stop_vouch() { kill "$VOUCH_PID"; wait "$VOUCH_PID" 2>/dev/null || true; }

post() { # BODY_FILE [OUT]
  curl -sS --cacert "$WORK/tls/ca.crt" -H 'content-type: application/json' \
    --data-binary "@$1" -o "${2:-/dev/null}" -w '%{http_code}' \
    https://localhost:7443/ratify/gatekeeper/v1/verify
}

# wrk NAME URL BODY: prints one summary line.
run_wrk() {
  local name=$1 url=$2 body=$3 out
  out=$(BODY=$body wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/bench/post.lua" "$url")
  echo "$out" >>"$WORK/wrk.log"
  awk -v name="$name" -v load="$(load)" '
    /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /^Requests\/sec/ {rps=$2}
    /Non-2xx/ {bad=$NF}
    END {printf "%-28s p50 %-9s p99 %-9s %10s req/s  load %s%s\n", name, p50, p99, rps, load, (bad ? "  NON-2XX " bad : "")}' <<<"$out"
}

total=$UNCACHED
[[ $WHAT == all || $WHAT == cached || $WHAT == uncached ]] && total=$((100 + UNCACHED))
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(load); pushing $total signed images"
"$EX/bench_env" "$WORK/env" "$total" >"$WORK/env.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 3600); do grep -q '^ready' "$WORK/env.log" && break; sleep 0.25; done
grep -q '^ready' "$WORK/env.log" || { cat "$WORK/env.log" >&2; exit 1; }
REGISTRY=$(cat "$WORK/env/registry")

if [[ $WHAT == all || $WHAT == cached ]]; then
  echo "## cached /verify, wrk -t2 -c$CONNS -d$DURATION (floor: examples/floor_server.rs)"
  start_vouch
  for n in 1 1000; do
    python3 "$ROOT/bench/gen.py" first "$WORK/env/keys.txt" "$n" "$WORK/body$n.json"
    # Fill the cache (uncached keys past the deadline finish in the background).
    for _ in $(seq 60); do
      post "$WORK/body$n.json" "$WORK/answer$n.json" >/dev/null
      python3 -c 'import json,sys; items=json.load(open(sys.argv[1]))["response"]["items"]; sys.exit(0 if all(i.get("value",{}).get("isSuccess") for i in items) else 1)' "$WORK/answer$n.json" && break
      sleep 1
    done
    "$EX/floor_server" "127.0.0.1:$((7500 + n % 1000))" "$WORK/tls" "$WORK/answer$n.json" >/dev/null &
    PIDS+=("$!")
  done
  sleep 0.5
  for n in 1 1000; do
    echo "answer: $(stat -c %s "$WORK/answer$n.json") bytes for $n key(s)"
    for round in 1 2; do
      run_wrk "floor $n key(s) #$round" "https://127.0.0.1:$((7500 + n % 1000))/ratify/gatekeeper/v1/verify" "$WORK/body$n.json"
      run_wrk "vouch $n key(s) #$round" https://127.0.0.1:7443/ratify/gatekeeper/v1/verify "$WORK/body$n.json"
    done
  done
  echo "vouch RSS after the cached runs: $(( $(rss_kib "$VOUCH_PID") / 1024 )) MiB"
  stop_vouch
fi

if [[ $WHAT == all || $WHAT == uncached ]]; then
  echo "## uncached /verify, one key per request, sequential ($UNCACHED distinct signed images, $ROUNDS rounds)"
  tail -n "$UNCACHED" "$WORK/env/keys.txt" >"$WORK/uncached.txt"
  # Rounds alternate floor and vouch over the same images; vouch restarts each round, so
  # its cache is empty and every key is verified.
  for round in $(seq "$ROUNDS"); do
    echo "round $round, load $(load)"
    "$EX/uncached" floor "$WORK/env/config.yaml" "$WORK/uncached.txt" "$UNCACHED"
    # vouch's engine in process: the verification without the HTTPS hop and the answer.
    "$EX/uncached" engine "$WORK/env/config.yaml" "$WORK/uncached.txt" "$UNCACHED"
    start_vouch
    "$EX/uncached" vouch https://localhost:7443/ratify/gatekeeper/v1/verify "$WORK/tls/ca.crt" "$WORK/uncached.txt" "$UNCACHED"
    curl -s http://127.0.0.1:7888/metrics | grep '^ratify_registry_request_count' || true
    stop_vouch
  done
fi

if [[ $WHAT == all || $WHAT == memory ]]; then
  echo "## resident memory (VmRSS)"
  start_vouch --cache-failure-ttl 60m --cache-size 512 --timeout 60s
  sleep 1
  echo "idle: $(( $(rss_kib "$VOUCH_PID") / 1024 )) MiB (load $(load))"
  batches=$(( FILL / 1000 ))
  for i in $(seq "$batches"); do
    python3 "$ROOT/bench/gen.py" missing "$REGISTRY" 1000 "$WORK/fill$i.json"
    code=$(post "$WORK/fill$i.json")
    [[ $code == 200 ]] || echo "batch $i: HTTP $code" >&2
  done
  echo "with $FILL failure verdicts cached: $(( $(rss_kib "$VOUCH_PID") / 1024 )) MiB (load $(load))"
  # Every key again: all must be cache hits.
  for i in $(seq "$batches"); do post "$WORK/fill$i.json" >/dev/null; done
  curl -s http://127.0.0.1:7888/metrics | grep '^vouch_cache_requests_total{cache="verdict"' || true
  echo "after re-reading them: $(( $(rss_kib "$VOUCH_PID") / 1024 )) MiB"
  stop_vouch
fi

if [[ $WHAT == all || $WHAT == startup ]]; then
  echo "## start to ready (/readyz 200)"
  [[ -f $WORK/tls/tls.crt ]] || { start_vouch; stop_vouch; }
  times=()
  for _ in 1 2 3 4 5; do
    times+=("$(python3 "$ROOT/bench/startup.py" 127.0.0.1:7099 "$REL/vouch" serve \
      --config "$WORK/env/config.yaml" --cert-dir "$WORK/tls" --listen 127.0.0.1:7443 \
      --health-listen 127.0.0.1:7099 --metrics-listen 127.0.0.1:7888)")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v load="$(load)" '{a[NR]=$1} END {printf "start to ready: median %s ms (min %s, max %s; load %s)\n", a[3], a[1], a[5], load}'
fi
