#!/usr/bin/env python3
"""Seeds for fuzz_ckpt from converted checkpoints: a few tensors of model.layers.1 (q_a_proj and
its norm, the router, routed expert 0 with its scales / zeros / global scales), in one safetensors file, prefixed by the checkpoint's config.json and hf_quant_config.json (the
harness's input: CONFIG NUL HF_QUANT_CONFIG NUL SAFETENSORS).

usage: mk_ckpt_seeds.py OUTDIR NAME=CHECKPOINT_DIR ...   (fuzz/corpus/ckpt was made from the oracle
v3-bf16 / v3-fp8 converted with deepcast convert --to w4a16|gptq|awq|nvfp4|mxfp4 and variants)"""
import glob, json, os, re, struct, sys

KEEP = re.compile(r"model\.layers\.1\.(self_attn\.q_a_|mlp\.gate\.|mlp\.experts\.0\.)")


def tensors(d):
    for p in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        with open(p, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            h = json.loads(f.read(n))
            base = 8 + n
            for k, v in h.items():
                if k != "__metadata__" and KEEP.match(k):
                    a, b = v["data_offsets"]
                    f.seek(base + a)
                    yield k, v["dtype"], v["shape"], f.read(b - a)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for arg in sys.argv[2:]:
        name, d = arg.split("=", 1)
        header, blobs, off = {}, [], 0
        for k, dt, shape, data in sorted(tensors(d)):
            header[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
            blobs.append(data)
            off += len(data)
        hj = json.dumps(header, separators=(",", ":")).encode()
        hj += b" " * (-len(hj) % 8)
        cfg = open(os.path.join(d, "config.json"), "rb").read()
        hq = os.path.join(d, "hf_quant_config.json")
        hq = open(hq, "rb").read() if os.path.exists(hq) else b""
        with open(os.path.join(out, name + ".seed"), "wb") as f:
            f.write(cfg + b"\0" + hq + b"\0" + struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


main()
