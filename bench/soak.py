#!/usr/bin/env python3
"""Soak load for `vouch serve` (bench/soak.sh; figures in BENCHMARKS.md).

soak.py URL CA KEYS REGISTRY CONFIG PID SECONDS RATE OUT_CSV

Sends RATE requests per second to URL (HTTPS, trusting CA) for SECONDS, on 4 keep-alive
connections, cycling through a mix:

* cached:   a 1-key and a 20-key batch of the first signed images (hits after their first
            verification);
* uncached: one signed image under a new tag spelling (`repo:sN@digest`), a cache miss each
            time, verified against the registry;
* failing:  5 keys naming absent digests in REGISTRY (registry 404, failed verdicts);

and every 60 s rewrites CONFIG with a new comment, so vouch reloads its configuration (a new
generation: what was cached is verified again). Every 10 s it samples PID's VmRSS, open
file descriptors and threads into OUT_CSV. Traffic goes to 127.0.0.1 only; the loop is
bounded by SECONDS and stops by itself. Prints a summary: requests, non-200 answers,
latency percentiles, and RSS and descriptors in the first and last thirds of the run.
"""
import http.client, json, os, ssl, sys, threading, time, urllib.parse

url, ca, keys_file, registry, config, pid, seconds, rate, out = sys.argv[1:10]
seconds, rate, pid = int(seconds), float(rate), int(pid)
parsed = urllib.parse.urlparse(url)
keys = open(keys_file).read().split()
context = ssl.create_default_context(cafile=ca)
stop_at = time.monotonic() + seconds
lock = threading.Lock()
stats = {"sent": 0, "bad": 0, "errors": 0, "latencies": [], "kinds": {}}
counter = [0]


def body(kind, n):
    if kind == "cached1":
        ks = keys[:1]
    elif kind == "cached20":
        ks = keys[:20]
    elif kind == "uncached":
        repo, digest = keys[n % len(keys)].rsplit("@", 1)
        ks = [f"{repo}:s{n}@{digest}"]
    else:
        ks = [f"{registry}/soak/missing@sha256:{os.urandom(32).hex()}" for _ in range(5)]
    return json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                       "kind": "ProviderRequest", "request": {"keys": ks}}).encode()


MIX = ["cached1", "cached20", "uncached", "failing", "cached1", "cached20"]


def worker(index, workers):
    conn = None
    interval = workers / rate
    next_at = time.monotonic() + index * interval / workers
    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if next_at > now:
            time.sleep(next_at - now)
        next_at += interval
        with lock:
            counter[0] += 1
            n = counter[0]
        kind = MIX[n % len(MIX)]
        payload = body(kind, n)
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, context=context, timeout=10)
            conn.request("POST", parsed.path, payload, {"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except Exception:
            ok = None
            conn = None
        elapsed = (time.monotonic() - started) * 1000
        with lock:
            stats["sent"] += 1
            stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
            if ok is None:
                stats["errors"] += 1
            elif not ok:
                stats["bad"] += 1
            stats["latencies"].append(elapsed)


def sampler():
    with open(out, "w") as f:
        f.write("seconds,rss_kib,fds,threads\n")
        start = time.monotonic()
        reload_at = start + 60
        reloads = 0
        while time.monotonic() < stop_at:
            status = open(f"/proc/{pid}/status").read()
            rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
            threads = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("Threads:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            f.write(f"{int(time.monotonic() - start)},{rss},{fds},{threads}\n")
            f.flush()
            if time.monotonic() >= reload_at:
                reloads += 1
                text = open(config).read().split("\n# soak reload")[0]
                with open(config + ".tmp", "w") as c:
                    c.write(f"{text}\n# soak reload {reloads}\n")
                os.replace(config + ".tmp", config)
                reload_at += 60
            time.sleep(min(10, max(0, stop_at - time.monotonic())))
        stats["reloads"] = reloads


workers = 4
threads = [threading.Thread(target=worker, args=(i, workers)) for i in range(workers)]
sample = threading.Thread(target=sampler)
for t in threads + [sample]:
    t.start()
for t in threads + [sample]:
    t.join()

rows = [list(map(int, l.split(","))) for l in open(out).read().splitlines()[1:]]
third = max(1, len(rows) // 3)
first, last = rows[:third], rows[-third:]
lat = sorted(stats["latencies"])
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0
print(f"requests {stats['sent']} ({stats['kinds']}), non-200 {stats['bad']}, connection errors {stats['errors']}, reloads {stats.get('reloads', 0)}")
print(f"latency ms: p50 {pct(0.5):.1f} p99 {pct(0.99):.1f} max {lat[-1] if lat else 0:.1f}")
print(f"RSS MiB: first third max {max(r[1] for r in first) / 1024:.1f}, last third max {max(r[1] for r in last) / 1024:.1f}, overall max {max(r[1] for r in rows) / 1024:.1f}")
print(f"open fds: first third max {max(r[2] for r in first)}, last third max {max(r[2] for r in last)}; threads: {rows[0][3]} -> {rows[-1][3]}")
