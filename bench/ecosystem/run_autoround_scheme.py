"""Quantizes qwen3-student (or any HF folder) with the Python AutoRound by scheme name (MXFP4, NVFP4,
FP8_BLOCK, W4A16, ...) and saves it in one format: the oracle for our auto_round FP and auto_awq
layouts (issue 19) and the checkpoints our `eval` must read back.

  python run_autoround_scheme.py --model DIR --calib IDS.json --out DIR --scheme MXFP4 \
      [--act_bits 16] [--group_size -1] [--asym] [--iters 0] [--format auto_round] [--disable_opt_rtn]

--act_bits 16 turns a preset's activation quantization off (weight-only), as our quantizer does;
--scheme FP8 is AutoRound's FPW8A16 with group_size -1 (E4M3 weights, one scale per output channel)."""
import argparse
import json
import os
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--scheme", required=True)
    ap.add_argument("--act_bits", type=int)
    ap.add_argument("--group_size", type=int)
    ap.add_argument("--asym", action="store_true")
    ap.add_argument("--iters", type=int, default=0)
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--format", default="auto_round")
    ap.add_argument("--disable_opt_rtn", action="store_true")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("ECO_TORCH_THREADS", "2")))
    a = ap.parse_args()

    import torch
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    ids = json.load(open(a.calib))
    samples = [torch.tensor([s[:a.seqlen]], dtype=torch.long) for s in ids[:a.nsamples]]
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(a.model)
    kw = {}
    scheme = a.scheme
    if scheme.upper() == "FP8":
        scheme, kw["group_size"] = "FPW8A16", -1
    if a.act_bits is not None:
        kw["act_bits"] = a.act_bits
    if a.group_size is not None:
        kw["group_size"] = a.group_size
    if a.asym:
        kw["sym"] = False
    if a.disable_opt_rtn:
        kw["disable_opt_rtn"] = True
    ar = AutoRound(model, tok, scheme=scheme, iters=a.iters, nsamples=a.nsamples, seqlen=a.seqlen,
                   dataset=samples, device_map="cpu", enable_torch_compile=False, **kw)
    ar.quantize_and_save(a.out, format=a.format)
    print(json.dumps({"seconds": time.time() - t0, "out": a.out}))


if __name__ == "__main__":
    main()
