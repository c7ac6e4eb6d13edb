"""Quantizes a model with the Python AutoRound (CPU) on token-id calibration data and saves it.
Used by test_reverse.py (our eval reads AutoRound's own checkpoint) and bench/vs_autoround.sh.

  python run_autoround.py --model DIR --calib IDS.json --out DIR --bits 4 --group_size 128 --sym \
      --iters 20 --nsamples 16 --seqlen 128 --batch_size 8 --seed 42 [--format auto_round,fake]

The calibration samples are the first `nsamples` lists of the ids file, each cut to `seqlen` tokens,
handed to AutoRound as a list of [1, seqlen] tensors (no tokenizer, no shuffling of ours)."""
import argparse
import json
import os
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group_size", type=int, default=128)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--sym", dest="sym", action="store_true", default=True)
    g.add_argument("--asym", dest="sym", action="store_false")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--nsamples", type=int, default=128)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--format", default="auto_round")
    ap.add_argument("--torch_compile", action="store_true",
                    help="let AutoRound use torch.compile (its CPU default; inductor compiles C++ at the first "
                         "block, minutes on a loaded 2-core machine)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("ECO_TORCH_THREADS", "2")))
    a = ap.parse_args()

    import torch
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    ids = json.load(open(a.calib))
    samples = [torch.tensor([s[:a.seqlen]], dtype=torch.long) for s in ids[:a.nsamples]]
    assert len(samples) == a.nsamples and all(s.shape[1] == a.seqlen for s in samples)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(a.model)
    ar = AutoRound(model, tok, bits=a.bits, group_size=a.group_size, sym=a.sym, iters=a.iters,
                   nsamples=a.nsamples, seqlen=a.seqlen, batch_size=a.batch_size, seed=a.seed,
                   dataset=samples, device_map="cpu", enable_torch_compile=a.torch_compile)
    ar.quantize_and_save(a.out, format=a.format)
    print(json.dumps({"seconds": time.time() - t0, "out": a.out}))


if __name__ == "__main__":
    main()
