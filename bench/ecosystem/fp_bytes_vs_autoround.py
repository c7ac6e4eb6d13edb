"""Byte comparison of our auto_round FP files with the ones AutoRound itself writes for the same RTN
quantization (iters 0) of qwen3-student: every block tensor (packed codes, block scales, global
scales) must be byte-identical; the 16-bit tensors we copy (norms) equal in value. An oracle run outside CI (needs torch, transformers, auto-round):

    /work/venv-eco/bin/python bench/ecosystem/fp_bytes_vs_autoround.py [BUILD_DIR] [OUT_DIR] [SCHEMES...]

defaults: build, /tmp/fp_bytes, all of MXFP4 MXFP8 NVFP4 FP8 FP8_BLOCK. AutoRound's input_global_scale
tensors (its presets' activation quantization; ours are weight-only) are not compared.
"""
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
FIX = Path(os.environ.get("AR_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def raw(t):
    return t.contiguous().view(-1).view(torch.uint8)


def main():
    build = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/fp_bytes")
    schemes = sys.argv[3:] or ["MXFP4", "MXFP8", "NVFP4", "FP8", "FP8_BLOCK"]
    model = FIX / "models" / "qwen3-student" / "hf"
    ids = json.loads((FIX / "models" / "qwen3-student" / "derived-data" / "calib_256x256.ids.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    calib = out / "calib.ids.json"
    calib.write_text(json.dumps([s[:128] for s in ids[:16]]))
    failed = 0
    for scheme in schemes:
        ar_dir, our_dir = out / f"autoround-{scheme}", out / f"ours-{scheme}"
        if not glob.glob(str(ar_dir / "*" / "config.json")):
            subprocess.run([sys.executable, str(ROOT / "bench" / "ecosystem" / "run_autoround_scheme.py"),
                            "--model", str(model), "--calib", str(calib), "--out", str(ar_dir), "--scheme", scheme,
                            "--iters", "0", "--disable_opt_rtn", "--nsamples", "16", "--seqlen", "128",
                            "--format", "auto_round"], check=True, capture_output=True)
        subprocess.run(["rm", "-rf", str(our_dir)], check=True)
        subprocess.run([str(build / "autoround"), "quantize", "--model", str(model), "--scheme", scheme, "--iters",
                        "0", "--format", "auto_round", "--output_dir", str(our_dir)], check=True, capture_output=True)
        a = load_file(glob.glob(str(ar_dir / "*" / "*.safetensors"))[0])
        b = load_file(str(our_dir / "model.safetensors"))
        keys = sorted(k for k in a if ".layers." in k and "input_global_scale" not in k)
        bad = []
        by_value = 0
        for k in keys:
            if k not in b or a[k].shape != b[k].shape:
                bad.append(f"{k}: missing or another shape")
            elif a[k].dtype != b[k].dtype and a[k].is_floating_point() and b[k].is_floating_point():
                # A 16-bit tensor we copy (a norm) that AutoRound wrote in the dtype it loaded the
                # model in (f32 here): compared by value.
                by_value += 1
                if not torch.equal(a[k].float(), b[k].float()):
                    bad.append(f"{k}: values differ ({a[k].dtype} vs {b[k].dtype})")
            elif a[k].dtype != b[k].dtype:
                bad.append(f"{k}: {a[k].dtype} vs {b[k].dtype}")
            elif (n := int((raw(a[k]) != raw(b[k])).sum())):
                bad.append(f"{k}: {n} bytes differ")
        extra = sorted(k for k in b if ".layers." in k and k not in a)
        print(f"{scheme:9s} {len(keys)} tensors compared ({by_value} copied ones by value), {len(bad)} differ" +
              (f"; only in ours: {extra[:3]}" if extra else ""))
        for line in bad[:5]:
            print("   ", line)
        failed += bool(bad or extra)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
