#!/usr/bin/env python3
"""Calibration token ids for the oracle's random-weight models (deepcast convert --gptq, imatrix):
N ids drawn uniformly from [0, VOCAB) by a fixed LCG (the same list on every machine and Python
version), written as a JSON list. usage: calib_tokens.py N VOCAB SEED OUT"""
import json
import sys

n, vocab, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
x, ids = seed, []
for _ in range(n):
    x = (x * 1103515245 + 12345) % 2**31
    ids.append((x >> 8) % vocab)
with open(out, "w") as f:
    json.dump(ids, f)
