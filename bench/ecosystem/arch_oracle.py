"""Architecture oracle (issue 16): our forward against transformers' own implementation.

For every tiny preset of `autoround generate` (random weights, float32), and for variants that
switch on what the presets leave off (Gemma3's attention and final-logit soft-capping), this
writes the HF folder, runs `autoround eval --dump_logits` on fixed random token windows, runs
transformers (eager attention, float32, CPU) on the same windows, and prints the largest
|difference of log-softmax| per model. Acceptance: <= 1e-3 on >= 2 windows of >= 64 tokens.

Run from the repo root with a venv that has torch and transformers (outside CI):
    /work/venv-eco/bin/python bench/ecosystem/arch_oracle.py [--seqlen 96] [--windows 3] [preset ...]

--write-reference writes tests/data/arch_reference_logits.json instead: transformers' log-softmax
for tiny-gemma3 and tiny-phi3 at a few positions (every 4th vocabulary entry), which
tests/model/arch_reference_test.cpp compares with our forward in CI, where transformers is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("AUTOROUND_BIN", REPO / "build" / "autoround"))

# (name, preset, config.json overrides)
CASES = [
    ("tiny (llama)", "tiny", {}),
    ("tiny-qwen2", "tiny-qwen2", {}),
    ("tiny-qwen3", "tiny-qwen3", {}),
    ("tiny-gemma3", "tiny-gemma3", {}),
    # transformers' Gemma3 ignores attn_logit_softcapping (and so do we, with a warning).
    ("tiny-gemma3 + attention soft-cap (ignored)", "tiny-gemma3", {"attn_logit_softcapping": 8.0}),
    ("tiny-gemma3 query_pre_attn_scalar 24", "tiny-gemma3", {"query_pre_attn_scalar": 24}),
    ("tiny-gemma3 + final-logit soft-cap", "tiny-gemma3", {"final_logit_softcapping": 3.0}),
    ("tiny-gemma3 rope_parameters (transformers 5 layout)", "tiny-gemma3", "rope_parameters"),
    ("tiny-phi3", "tiny-phi3", {}),
    ("tiny-qwen3-moe", "tiny-qwen3-moe", {}),
    ("tiny-qwen3-moe norm_topk_prob false, sparse step 2", "tiny-qwen3-moe",
     {"norm_topk_prob": False, "decoder_sparse_step": 2, "mlp_only_layers": []}),
    ("tiny-mixtral", "tiny-mixtral", {}),
]


def run(cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def rewrite_rope_parameters(cfg: dict) -> dict:
    """The same Gemma3 RoPE in transformers 5's nested rope_parameters form."""
    full = {"rope_type": "default", "rope_theta": cfg.pop("rope_theta")}
    if cfg.get("rope_scaling"):
        full.update(cfg["rope_scaling"])
    cfg.pop("rope_scaling", None)
    cfg["rope_parameters"] = {"full_attention": full,
                              "sliding_attention": {"rope_type": "default", "rope_theta": cfg.pop("rope_local_base_freq")}}
    return cfg


def ours(model: Path, ids: list[list[int]], seqlen: int, work: Path) -> np.ndarray:
    ids_file = work / "ids.json"
    ids_file.write_text(json.dumps(ids))
    out = work / "logits.npy"
    run([BIN, "eval", "--model", model, "--dataset", ids_file, "--seqlen", seqlen, "--dump_logits", out,
         "--precision", "f32"])
    return np.load(out)


def theirs(model: Path, ids: list[list[int]]) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    with torch.no_grad():
        return m(torch.tensor(ids)).logits.float().numpy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


REFERENCE_PRESETS = ["tiny-gemma3", "tiny-phi3", "tiny-qwen3-moe", "tiny-mixtral"]
REF_SEQLEN, REF_POSITIONS, REF_VOCAB_STEP, REF_SEED = 64, [5, 20, 40, 63], 4, 7


def write_reference() -> int:
    """transformers' log-softmax of fixed windows, for the CI test (generated model: preset, f32,
    seed REF_SEED; our generator writes the same bytes on every machine and thread count)."""
    out = {"source": "transformers (eager, float32) via bench/ecosystem/arch_oracle.py --write-reference",
           "seqlen": REF_SEQLEN, "positions": REF_POSITIONS, "vocab_step": REF_VOCAB_STEP, "seed": REF_SEED,
           "models": []}
    for preset in REFERENCE_PRESETS:
        with tempfile.TemporaryDirectory() as td:
            model = Path(td) / "model"
            run([BIN, "generate", "--preset", preset, "--dtype", "f32", "--output_dir", model, "--seed", REF_SEED])
            vocab = json.loads((model / "config.json").read_text())["vocab_size"]
            # Deterministic ids with no RNG library in the loop: a multiplicative hash.
            ids = [[(w * 7919 + t * 104729 + 13) % vocab for t in range(REF_SEQLEN)] for w in range(2)]
            ls = log_softmax(theirs(model, ids))
            rows = [[round(float(v), 6) for v in ls[w, p, ::REF_VOCAB_STEP]] for w in range(2) for p in REF_POSITIONS]
            out["models"].append({"preset": preset, "ids": ids, "log_softmax": rows})
    dst = REPO / "tests" / "data" / "arch_reference_logits.json"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dst} ({dst.stat().st_size} bytes)")
    return 0


def main() -> int:
    if "--write-reference" in sys.argv:
        return write_reference()
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqlen", type=int, default=96)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("names", nargs="*", help="run only cases whose name starts with one of these")
    a = ap.parse_args()
    rng = np.random.default_rng(16)
    worst = 0.0
    failed = []
    for name, preset, override in CASES:
        if a.names and not any(name.startswith(n) for n in a.names):
            continue
        with tempfile.TemporaryDirectory() as td:
            work = Path(td)
            model = work / "model"
            run([BIN, "generate", "--preset", preset, "--dtype", "f32", "--output_dir", model, "--seed", "7"])
            cfg = json.loads((model / "config.json").read_text())
            if override == "rope_parameters":
                cfg = rewrite_rope_parameters(cfg)
            else:
                cfg.update(override)
            # Regenerated from the changed config, so that the tensors follow it (e.g. which layers
            # have experts); then the config as changed, since generate rewrites some fields.
            (work / "cfg.json").write_text(json.dumps(cfg, indent=2))
            run([BIN, "generate", "--config", work / "cfg.json", "--dtype", "f32", "--output_dir", model, "--seed", "7",
                 "--overwrite"])
            (model / "config.json").write_text(json.dumps(cfg, indent=2))
            ids = rng.integers(0, cfg["vocab_size"], size=(a.windows, a.seqlen)).tolist()
            lo, lt = log_softmax(ours(model, ids, a.seqlen, work)), log_softmax(theirs(model, ids))
            d = float(np.abs(lo - lt).max())
            worst = max(worst, d)
            ok = d <= a.tol
            if not ok:
                failed.append(name)
            print(f"{name:55s} {a.windows} x {a.seqlen} tokens: max |d log-softmax| = {d:.2e}  "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"worst {worst:.2e}; {'all within' if not failed else 'FAILED: ' + ', '.join(failed)} {a.tol:g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
