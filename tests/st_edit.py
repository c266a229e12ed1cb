#!/usr/bin/env python3
"""Edits a safetensors checkpoint directory in place, for building broken inputs in tests.
usage: st_edit.py DIR drop NAME | rename OLD NEW | reshape NAME D0xD1 | dtype NAME DTYPE
The shard holding the tensor is rewritten; the index (if any) follows."""
import json, os, struct, sys

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()

def write(path, header, data):
    meta = header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    out, blob, off = {}, bytearray(), 0
    if meta is not None:
        out["__metadata__"] = meta
    for k in names:
        b, e = header[k]["data_offsets"]
        chunk = data[b:e]
        out[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"], "data_offsets": [off, off + len(chunk)]}
        blob += chunk
        off += len(chunk)
    h = json.dumps(out, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + bytes(blob))

def main():
    d, op, name = sys.argv[1], sys.argv[2], sys.argv[3]
    ipath = os.path.join(d, "model.safetensors.index.json")
    index = json.load(open(ipath)) if os.path.exists(ipath) else None
    shards = [f for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    for s in shards:
        p = os.path.join(d, s)
        h, data = read(p)
        if name not in h:
            continue
        if op == "drop":
            del h[name]
            if index: del index["weight_map"][name]
        elif op == "rename":
            h[sys.argv[4]] = h.pop(name)
            if index: index["weight_map"][sys.argv[4]] = index["weight_map"].pop(name)
        elif op == "reshape":
            h[name]["shape"] = [int(x) for x in sys.argv[4].split("x")]
        elif op == "dtype":
            h[name]["dtype"] = sys.argv[4]
        write(p, h, data)
        if index:
            json.dump(index, open(ipath, "w"), indent=2)
        return 0
    print(f"st_edit: no tensor {name} in {d}", file=sys.stderr)
    return 1

sys.exit(main())
