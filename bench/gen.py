#!/usr/bin/env python3
"""Request bodies for the benchmarks.

gen.py first KEYS N OUT          first N keys of KEYS as one ProviderRequest
gen.py missing REGISTRY N OUT    N keys naming absent digests in REGISTRY/bench/missing
"""
import json, os, sys

def request(keys):
    return json.dumps({"apiVersion": "externaldata.gatekeeper.sh/v1beta1",
                       "kind": "ProviderRequest", "request": {"keys": keys}})

mode, src, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "first":
    keys = open(src).read().split()[:n]
    assert len(keys) == n, f"{src} has only {len(keys)} keys"
else:
    keys = [f"{src}/bench/missing@sha256:{os.urandom(32).hex()}" for _ in range(n)]
open(out, "w").write(request(keys))
