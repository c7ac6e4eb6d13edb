#!/usr/bin/env python3
"""Qwen3-MoE / Mixtral GGUF export against llama.cpp (outside CI), with gguf_arch_oracle.py's
machinery (same token windows, same scoring, same llama-perplexity flags, -nr): our `autoround
eval` of each MoE GGUF we write vs `llama-perplexity` on the very same tokens.

Models (generated in f32 and bf16): tiny-mixtral (llama architecture with 4 experts, top 2) and
tiny-qwen3-moe with every layer sparse (`mlp_only_layers: []`; llama.cpp's qwen3moe has no dense
layers, so the preset's dense layer 1 makes a file llama.cpp refuses, see below); exported by
`quantize --iters 0 --disable_opt_rtn --format gguf:{f16,q8_0,q4_k_m}`, plus one SignRound run
(`--iters 20 --dataset builtin`, tuned under q4_k_m) per model family.

Then the mixes' tensor types (q4_k_m, q8_0, q4_0, q3_k_m, q5_k_m, q2_k) against `llama-quantize`
run on our F16 file, on the tiny models and on 256-wide 8-layer variants (no k-quant fallbacks);
the preset tiny-qwen3-moe itself (dense layer 1): our eval of its F16 file vs its HF folder, and
whether llama.cpp loads it; and llama.cpp-converted files (convert_hf_to_gguf.py --outtype f32,
pre-tokenizer hash patched to gpt-2 for the synthetic tokenizer) read by our eval vs the HF folder.

  /work/venv-eco/bin/python bench/ecosystem/gguf_moe_oracle.py [--ctx 128] [--chunks 16]
Writes ECO_OUT/gguf_moe/gguf_moe_{oracle,types}.json; exits 1 when a row differs by more than 1 %
or a tensor type differs.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_arch_oracle as g  # noqa: E402

g.OUT = Path(os.environ.get("ECO_OUT", g.REPO / "build" / "ecosystem")) / "gguf_moe"
OUT = g.OUT
ALL_MOE = {"mlp_only_layers": []}


def generate(name: str, preset: str, dtype: str, patch: dict | None = None) -> Path:
    d = OUT / "models" / name
    if (d / "config.json").exists():
        return d
    args = ["--preset", preset]
    if patch:
        base = OUT / "models" / (name + "-base")
        g.run([g.BIN, "generate", "--preset", preset, "--dtype", dtype, "--seed", 3, "--output_dir", base, "--overwrite"])
        cfg = {**json.loads((base / "config.json").read_text()), **patch}
        cfg_path = OUT / "models" / (name + ".config.json")
        cfg_path.write_text(json.dumps(cfg, indent=2))
        args = ["--config", cfg_path]
    g.run([g.BIN, "generate", *args, "--dtype", dtype, "--seed", 3, "--output_dir", d, "--overwrite"])
    return d


def export_tuned(model: Path, name: str, mix: str, iters: int) -> Path:
    out = OUT / "gguf" / f"{name}-{mix}-sr{iters}"
    files = list(out.glob("*.gguf")) if out.exists() else []
    if not files:
        g.run([g.BIN, "quantize", "--model", model, "--iters", iters, "--dataset", "builtin", "--nsamples", 16,
               "--seqlen", 128, "--format", f"gguf:{mix}", "--output_dir", out, "--overwrite"],
              env={**os.environ, "OMP_NUM_THREADS": g.THREADS})
        files = list(out.glob("*.gguf"))
    assert len(files) == 1, files
    return files[0]


def our_eval_all(model: Path, wins: np.ndarray, tag: str) -> float:
    ids_file = OUT / "ids" / f"{tag}.json"
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text(json.dumps(wins.tolist()))
    p = g.run([g.BIN, "eval", "--model", model, "--dataset", ids_file, "--seqlen", wins.shape[1]],
              env={**os.environ, "OMP_NUM_THREADS": g.THREADS})
    return float(re.search(r"perplexity: ([0-9.]+)", p.stdout).group(1))


CONVERT = r'''
import importlib.machinery, sys, types
# LlamaModel imports sentencepiece, absent from this venv; the synthetic tokenizer never needs it.
try:
    import sentencepiece  # noqa: F401
except ImportError:
    sp = types.ModuleType("sentencepiece")
    sp.SentencePieceProcessor = object
    sp.__spec__ = importlib.machinery.ModuleSpec("sentencepiece", None)
    sys.modules["sentencepiece"] = sp
sys.path.insert(0, "/work/llama.cpp")
sys.path.insert(0, "/work/llama.cpp/gguf-py")
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[1:]]
import runpy
runpy.run_path("/work/llama.cpp/convert_hf_to_gguf.py", run_name="__main__")
'''


def llama_convert(model: Path, name: str) -> Path | None:
    out = OUT / "converted" / f"{name}-f32.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run([sys.executable, "-c", CONVERT, str(model), "--outtype", "f32", "--outfile", str(out)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(f"  convert_hf_to_gguf failed for {name}: {p.stderr.strip().splitlines()[-1:]}")
        return None
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--sr-iters", type=int, default=20)
    a = ap.parse_args()
    for tool in (g.BIN, g.LLAMA / "llama-perplexity", g.LLAMA / "llama-tokenize", g.LLAMA / "llama-quantize"):
        if not Path(tool).exists():
            print(f"gguf_moe_oracle: skipped: {tool} not found")
            return 0
    text = g.text_file()
    models = [("tiny-mixtral-f32", "tiny-mixtral", "f32", None),
              ("tiny-mixtral-bf16", "tiny-mixtral", "bf16", None),
              ("qwen3moe-all-f32", "tiny-qwen3-moe", "f32", ALL_MOE),
              ("qwen3moe-all-bf16", "tiny-qwen3-moe", "bf16", ALL_MOE)]
    rows, bad = [], 0
    n_ctx = a.ctx
    print(f"{'file':40} {'n_ctx':>5} {'chunks':>6} {'ours':>10} {'llama.cpp':>10} {'diff %':>8} "
          f"{'ours(all)':>10} {'max|dlp|':>9} {'mean|dlp|':>9}")
    for name, preset, dtype, patch in models:
        model = generate(name, preset, dtype, patch)
        files = [(mix, g.export(model, name, mix)) for mix in g.MIXES]
        if dtype == "f32":
            files.append((f"q4_k_m SignRound {a.sr_iters}", export_tuned(model, name, "q4_k_m", a.sr_iters)))
        for mix, gguf in files:
            with_bos, without = g.llama_ids(gguf, text, True), g.llama_ids(gguf, text, False)
            bos = with_bos[0] if len(with_bos) == len(without) + 1 else None
            mine = g.our_ids(model, text)
            if mine != with_bos:
                print(f"  {name}: our tokenizer and the GGUF's differ; using the GGUF's")
            wins = g.windows(with_bos, n_ctx, a.chunks, bos)
            tag = f"{name}-{gguf.parent.name}-{n_ctx}"
            o, o_all, o_lp = g.ours(gguf, wins, tag)
            t, t_toks, t_lp = g.theirs(gguf, text, n_ctx, wins.shape[0])
            if bos is None:
                assert (t_toks == wins).all(), "llama-perplexity evaluated other tokens"
            d = 100 * (o / t - 1)
            lp = np.abs(o_lp - t_lp)
            lp_max, lp_mean = float(np.nanmax(lp)), float(np.nanmean(lp))
            fail = abs(d) > 100 * g.TOLERANCE
            bad += fail
            label = gguf.name if "SignRound" not in mix else f"{gguf.name} ({mix})"
            print(f"{label:40} {n_ctx:>5} {wins.shape[0]:>6} {o:>10.4f} {t:>10.4f} {d:>+8.3f} {o_all:>10.4f} "
                  f"{lp_max:>9.2e} {lp_mean:>9.2e}{'  FAIL' if fail else ''}", flush=True)
            rows.append(dict(file=label, model=name, mix=mix, n_ctx=n_ctx, chunks=int(wins.shape[0]), ours=o,
                             llama_perplexity=t, diff_pct=d, ours_all_positions=o_all, logprob_max_abs_diff=lp_max,
                             logprob_mean_abs_diff=lp_mean))

    # Mix types against llama-quantize on our F16 files.
    type_rows = []
    wide = [("mixtral-w256", "tiny-mixtral", {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8}),
            ("mixtral8-w256", "tiny-mixtral", {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8,
                                               "num_local_experts": 8}),
            ("qwen3moe-w256", "tiny-qwen3-moe", {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8,
                                                 "moe_intermediate_size": 256, "mlp_only_layers": []})]
    for name, preset, patch in wide:
        model = generate(name, preset, "f16", patch)
        f16 = g.export(model, name, "f16")
        for mix in ["q4_k_m", "q8_0", "q4_0", "q3_k_m", "q5_k_m", "q2_k"]:
            mine, ref = g.tensor_types(g.export(model, name, mix)), g.llama_quantize_types(f16, mix)
            diff = sorted(k for k in ref if mine.get(k) != ref[k]) + sorted(k for k in mine if k not in ref)
            summary = ", ".join(f"{k}: {n}" for k, n in sorted(g.count(mine).items()))
            print(f"types {name:16} {mix:7} {'same as llama-quantize' if not diff else 'DIFFER: ' + str(diff[:6])}"
                  f" ({summary})")
            bad += bool(diff)
            type_rows.append(dict(model=name, mix=mix, same=not diff, differ=diff, ours=mine, llama_quantize=ref))
    for name in ["tiny-mixtral-f32", "qwen3moe-all-f32"]:
        f16 = next((OUT / "gguf" / f"{name}-f16").glob("*.gguf"))
        for mix in ["q4_k_m", "q8_0"]:
            mine = g.tensor_types(next((OUT / "gguf" / f"{name}-{mix}").glob("*.gguf")))
            ref = g.llama_quantize_types(f16, mix)
            diff = sorted(k for k in ref if mine.get(k) != ref[k])
            print(f"types {name:16} {mix:7} {'same as llama-quantize' if not diff else 'DIFFER: ' + str(diff[:6])}"
                  f" ({', '.join(f'{k}: {n}' for k, n in sorted(g.count(mine).items()))})")
            bad += bool(diff)
            type_rows.append(dict(model=name, mix=mix, same=not diff, differ=diff, ours=mine, llama_quantize=ref))

    # The preset with its dense layer: ours only (llama.cpp's qwen3moe wants experts everywhere).
    extra = []
    model = generate("tiny-qwen3-moe-f32", "tiny-qwen3-moe", "f32")
    gguf = g.export(model, "tiny-qwen3-moe-f32", "f16")
    ids = g.our_ids(model, text)
    wins = g.windows(ids, n_ctx, a.chunks, None)
    folder, ours_f16 = our_eval_all(model, wins, "dense-folder"), our_eval_all(gguf, wins, "dense-f16")
    p = subprocess.run([str(g.LLAMA / "llama-perplexity"), "-m", str(gguf), "-f", str(text), "-c", str(n_ctx),
                        "--chunks", "1", "-nr", "--no-warmup"], capture_output=True, text=True)
    refused = p.returncode != 0
    why = next((l for l in (p.stdout + p.stderr).splitlines() if "not found" in l or "missing tensor" in l), "")
    print(f"tiny-qwen3-moe (dense layer 1): HF folder {folder:.6f}, our F16 file {ours_f16:.6f} "
          f"({100 * (ours_f16 / folder - 1):+.4f} %); llama.cpp {'refuses it: ' + why.strip() if refused else 'loads it'}")
    extra.append(dict(model="tiny-qwen3-moe-f32", folder=folder, ours_f16=ours_f16, llama_refuses=refused, why=why))
    bad += abs(ours_f16 / folder - 1) > g.TOLERANCE

    # llama.cpp-converted F32 files read by our eval.
    for name in ["tiny-mixtral-f32", "qwen3moe-all-f32"]:
        model = OUT / "models" / name
        conv = llama_convert(model, name)
        if conv is None:
            continue
        ids = g.our_ids(model, text)
        wins = g.windows(ids, n_ctx, a.chunks, None)
        f, c = our_eval_all(model, wins, f"{name}-folder"), our_eval_all(conv, wins, f"{name}-converted")
        print(f"{name}: llama.cpp-converted F32 file, our eval {c:.6f} vs HF folder {f:.6f} ({100 * (c / f - 1):+.5f} %)")
        extra.append(dict(model=name, converted=c, folder=f))
        bad += abs(c / f - 1) > g.TOLERANCE
    (OUT / "gguf_moe_types.json").write_text(json.dumps(type_rows, indent=1))
    (OUT / "gguf_moe_oracle.json").write_text(json.dumps(dict(rows=rows, extra=extra), indent=1))
    print(f"{len(rows)} rows, {bad} failures; results in {OUT / 'gguf_moe_oracle.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
