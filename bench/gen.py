#!/usr/bin/env python3
"""Request bodies for the benchmarks.

gen.py first KEYS N OUT          N distinct keys naming the first images of KEYS: up to 100
                                 images, each under N/100 tag spellings (`repo:vJ@digest`, a
                                 distinct cache entry each, without pushing N images)
gen.py missing REGISTRY N OUT    N keys naming absent digests in REGISTRY/bench/missing
"""
import json, os, sys

def request(keys):
    return json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                       "kind": "ProviderRequest", "request": {"keys": keys}})

mode, src, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "first":
    images = open(src).read().split()[:min(n, 100)]
    assert len(images) == min(n, 100), f"{src} has only {len(images)} keys"
    keys = []
    for i in range(n):
        repo, digest = images[i % len(images)].rsplit("@", 1)
        keys.append(f"{repo}@{digest}" if n <= len(images) else f"{repo}:v{i // len(images)}@{digest}")
    assert len(set(keys)) == n
else:
    keys = [f"{src}/bench/missing@sha256:{os.urandom(32).hex()}" for _ in range(n)]
open(out, "w").write(request(keys))
