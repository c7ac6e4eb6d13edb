#!/usr/bin/env python3
"""Gemma3 / Phi3 GGUF export against llama.cpp (outside CI): our `autoround eval` of each GGUF we
write vs llama.cpp's own `llama-perplexity` on the very same tokens.

For tiny-gemma3 and tiny-phi3 (generated in f32 and in bf16), plus a tiny-phi3 without a sliding
window (see below), export F16 / Q8_0 / Q4_K_M GGUFs with `autoround quantize --iters 0
--disable_opt_rtn --format gguf:<mix>`, then per file:

  * tokens: `llama-tokenize` of the text with the GGUF's own tokenizer (what llama-perplexity
    evaluates), checked equal to `autoround tokenize --add_special_tokens`;
  * windows: llama-perplexity's chunks of n_ctx tokens, the first token of each replaced by BOS
    when the vocabulary adds one (as llama-perplexity does); written as token-id JSON for our eval;
  * ours: `autoround eval --model FILE.gguf --dataset ids.json --seqlen n_ctx --dump_logits`, scored
    as llama-perplexity scores a chunk (only the second half: predictions from position n_ctx/2
    on); our usual all-positions perplexity of the same windows is printed too, and the max / mean
    |difference| of every scored log-probability (whole vocabulary) against llama-perplexity's
    --kl-divergence-base file (stored to ~1e-4 there);
  * theirs: `llama-perplexity -m FILE.gguf -f text -c n_ctx -b n_ctx` with an f32 KV cache (its
    default f16 cache alone moves the numbers by ~1e-3 relative): its running perplexity after the
    same number of chunks. Weight repacking is off (-nr; LLAMA_REPACK=1 turns it on): on this
    AMX machine the GGML_NATIVE build's repacked quantized kernels die with SIGILL (F16 runs
    either way), whatever file, llama-quantize's own included.

Windows matter at n_ctx 128: tiny-gemma3 has sliding_window 16 on layers 0, 1, 3 and tiny-phi3 48 on
every layer. llama.cpp runs phi3 WITHOUT its window today (llama_model_phi3::load_arch_hparams:
"Phi SWA is currently disabled"), while transformers, and so our eval, apply it; the phi3 rows
are therefore also run at n_ctx 48 (the window then never cuts) and on a window-free tiny-phi3,
where both must agree, and the 128-token rows with the window show the size of llama.cpp's gap.

  /work/venv-eco/bin/python bench/ecosystem/gguf_arch_oracle.py [--ctx 128] [--chunks 16]
  env: AUTOROUND_BIN (build/autoround), LLAMA_BIN_DIR (/work/llama.cpp/build/bin),
       ECO_OUT (build/ecosystem), ORACLE_TEXT (../shared/fixtures/text/wikitext2-test.txt, else the
       tool's built-in text repeated)
Then the mixes' tensor types: our q4_k_m / q8_0 / q4_0 / q3_k_m / q5_k_m / q2_k files against
`llama-quantize` run on our F16 file (256-wide gemma3 / phi3 variants with 8 layers, so k-quants
need no fallback, and the tiny models themselves).

Prints one row per file and writes ECO_OUT/gguf_arch/gguf_arch_{oracle,types}.json; exits 1 when a
perplexity row that must agree differs by more than 1 %, or a tensor type differs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("AUTOROUND_BIN", REPO / "build" / "autoround"))
LLAMA = Path(os.environ.get("LLAMA_BIN_DIR", "/work/llama.cpp/build/bin"))
OUT = Path(os.environ.get("ECO_OUT", REPO / "build" / "ecosystem")) / "gguf_arch"
THREADS = os.environ.get("OMP_NUM_THREADS", "2")
MIXES = ["f16", "q8_0", "q4_k_m"]
TOLERANCE = 0.01


def run(cmd, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                           f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p


def text_file() -> Path:
    src = os.environ.get("ORACLE_TEXT")
    cands = [Path(src)] if src else [REPO.parent / "shared" / "fixtures" / "text" / "wikitext2-test.txt",
                                     Path("/work/shared/fixtures/text/wikitext2-test.txt")]
    for c in cands:
        if c.is_file():
            # Enough for 16+ windows of 128 tokens of a 1024-token byte-level vocabulary.
            out = OUT / "text.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(c.read_text(encoding="utf-8")[:40000], encoding="utf-8")
            return out
    raise SystemExit(f"no text: set ORACLE_TEXT (looked for {cands})")


def generate(name: str, preset: str, dtype: str, no_window: bool = False) -> Path:
    d = OUT / "models" / name
    if (d / "config.json").exists():
        return d
    args = ["--preset", preset]
    if no_window:
        base = OUT / "models" / (name + "-base")
        run([BIN, "generate", "--preset", preset, "--dtype", dtype, "--seed", 3, "--output_dir", base, "--overwrite"])
        cfg = json.loads((base / "config.json").read_text())
        cfg["sliding_window"] = None
        (OUT / "models").mkdir(parents=True, exist_ok=True)
        cfg_path = OUT / "models" / (name + ".config.json")
        cfg_path.write_text(json.dumps(cfg, indent=2))
        args = ["--config", cfg_path]
    run([BIN, "generate", *args, "--dtype", dtype, "--seed", 3, "--output_dir", d, "--overwrite"])
    return d


def generate_patched(name: str, preset: str, patch: dict) -> Path:
    d = OUT / "models" / name
    if (d / "config.json").exists():
        return d
    base = OUT / "models" / (name + "-base")
    run([BIN, "generate", "--preset", preset, "--dtype", "f16", "--seed", 3, "--output_dir", base, "--overwrite"])
    cfg = {**json.loads((base / "config.json").read_text()), **patch}
    cfg_path = OUT / "models" / (name + ".config.json")
    cfg_path.write_text(json.dumps(cfg, indent=2))
    run([BIN, "generate", "--config", cfg_path, "--dtype", "f16", "--seed", 3, "--output_dir", d, "--overwrite"])
    return d


def count(types: dict[str, str]) -> dict[str, int]:
    r: dict[str, int] = {}
    for t in types.values():
        r[t] = r.get(t, 0) + 1
    return r


def export(model: Path, name: str, mix: str) -> Path:
    out = OUT / "gguf" / f"{name}-{mix}"
    files = list(out.glob("*.gguf")) if out.exists() else []
    if not files:
        p = run([BIN, "quantize", "--model", model, "--iters", 0, "--disable_opt_rtn", "--format", f"gguf:{mix}",
                 "--output_dir", out, "--overwrite"], env={**os.environ, "OMP_NUM_THREADS": THREADS})
        warn = [l for l in (p.stdout + p.stderr).splitlines() if "warn" in l.lower()]
        for w in warn:
            print(f"  [export {name} {mix}] {w}")
        files = list(out.glob("*.gguf"))
    assert len(files) == 1, files
    return files[0]


def llama_ids(gguf: Path, text: Path, bos: bool) -> list[int]:
    cmd = [LLAMA / "llama-tokenize", "-m", gguf, "-f", text, "--ids", "--log-disable", "--no-parse-special"]
    if not bos:
        cmd.append("--no-bos")
    p = run(cmd)
    line = [l for l in p.stdout.splitlines() if l.startswith("[")][-1]
    return json.loads(line)


def our_ids(model: Path, text: Path) -> list[int]:
    return json.loads(run([BIN, "tokenize", "--model", model, "--text", text, "--add_special_tokens"]).stdout)


def windows(ids: list[int], n_ctx: int, n_chunks: int, bos: int | None) -> np.ndarray:
    """llama-perplexity's chunks: consecutive n_ctx tokens, the first set to BOS when it adds one."""
    n = min(len(ids) // n_ctx, n_chunks)
    w = np.array(ids[: n * n_ctx], dtype=np.int64).reshape(n, n_ctx)
    if bos is not None:
        w[:, 0] = bos
    return w


def second_half_ppl(logits: np.ndarray, wins: np.ndarray) -> float:
    """llama-perplexity's score of a chunk: predictions from position n_ctx/2 to n_ctx-2."""
    n_ctx = wins.shape[1]
    first = n_ctx // 2
    lg = logits[:, first:n_ctx - 1, :].astype(np.float64)
    m = lg.max(axis=-1, keepdims=True)
    ls = lg - m - np.log(np.exp(lg - m).sum(axis=-1, keepdims=True))
    tgt = wins[:, first + 1:]
    nll = -np.take_along_axis(ls, tgt[..., None], axis=-1)[..., 0]
    return float(math.exp(nll.mean()))


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ours(gguf: Path, wins: np.ndarray, tag: str):
    ids_file = OUT / "ids" / f"{tag}.json"
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text(json.dumps(wins.tolist()))
    dump = OUT / "logits" / f"{tag}.npy"
    dump.parent.mkdir(parents=True, exist_ok=True)
    p = run([BIN, "eval", "--model", gguf, "--dataset", ids_file, "--seqlen", wins.shape[1], "--dump_logits", dump],
            env={**os.environ, "OMP_NUM_THREADS": THREADS})
    full = float(re.search(r"perplexity: ([0-9.]+)", p.stdout).group(1))
    logits = np.load(dump)
    first = wins.shape[1] // 2
    return second_half_ppl(logits, wins), full, log_softmax(logits[:, first:wins.shape[1] - 1, :])


def theirs(gguf: Path, text: Path, n_ctx: int, n_chunks: int):
    """llama-perplexity's running perplexity after n_chunks chunks ("[n]value"), its tokens and its
    log-probabilities of the scored positions (--kl-divergence-base file: per position two f32,
    scale and the smallest log-prob, then one u16 per vocabulary entry, log-prob = min + scale * q,
    entries more than 16 below the top stored as 0). It is asked for two chunks more and the value
    read from the log: llama.cpp's logger thread is not flushed at exit (common/log.cpp), so the last
    lines, "Final estimate" included, are sometimes lost."""
    log = OUT / "logs" / f"{gguf.stem}-{n_ctx}.perplexity.log"
    base = OUT / "logs" / f"{gguf.stem}-{n_ctx}.logprobs.bin"
    log.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        log.unlink(missing_ok=True)
        run([LLAMA / "llama-perplexity", "-m", gguf, "-f", text, "-c", n_ctx, "-b", n_ctx, "--chunks", n_chunks + 2,
             "-ctk", "f32", "-ctv", "f32", "-fa", "off", "-t", THREADS, "--no-warmup", "--log-file", log,
             "--kl-divergence-base", base, *(["-nr"] if os.environ.get("LLAMA_REPACK", "0") != "1" else [])])
        m = re.search(rf"\[{n_chunks}\]([0-9.]+),", log.read_text())
        if m:
            break
    else:
        raise RuntimeError(f"no '[{n_chunks}]' running perplexity in {log}")
    raw = base.read_bytes()
    assert raw[:8] == b"_logits_"
    ctx, n_vocab, n_chunk = np.frombuffer(raw, dtype=np.int32, count=3, offset=8)
    assert ctx == n_ctx and n_chunk >= n_chunks
    off = 20
    toks = np.frombuffer(raw, dtype=np.int32, count=n_chunk * n_ctx, offset=off).reshape(n_chunk, n_ctx)
    off += 4 * n_chunk * n_ctx
    nv = 2 * ((n_vocab + 1) // 2) + 4
    n_pos = n_ctx - 1 - n_ctx // 2
    q = np.frombuffer(raw, dtype=np.uint16, count=n_chunks * n_pos * nv, offset=off).reshape(n_chunks, n_pos, nv)
    head = q[..., :4].copy().view(np.float32)  # (scale, min log-prob) per position
    vals = q[..., 4:4 + n_vocab].astype(np.float64)
    logprobs = head[..., 1:2].astype(np.float64) + head[..., 0:1].astype(np.float64) * vals
    logprobs[vals == 0] = np.nan  # at or below the 16-nat floor: not stored
    return float(m.group(1)), toks[:n_chunks].astype(np.int64), logprobs


def tensor_types(gguf: Path) -> dict[str, str]:
    from gguf import GGUFReader
    return {t.name: t.tensor_type.name for t in GGUFReader(str(gguf)).tensors}


def llama_quantize_types(f16: Path, mix: str) -> dict[str, str]:
    """llama-quantize's own choice of types for our F16 file (its mix rules, applied by llama.cpp)."""
    out = OUT / "llama-quantize" / f"{f16.stem}-{mix}.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        run([LLAMA / "llama-quantize", f16, out, mix.upper(), THREADS])
    return tensor_types(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--chunks", type=int, default=16)
    a = ap.parse_args()
    for tool in (BIN, LLAMA / "llama-perplexity", LLAMA / "llama-tokenize", LLAMA / "llama-quantize"):
        if not Path(tool).exists():
            print(f"gguf_arch_oracle: skipped: {tool} not found")
            return 0
    text = text_file()
    # (model name, preset, dtype, no window, contexts; whether llama.cpp must agree at that context)
    # The phi3 folders are not named "...phi3...": llama.cpp's vocabulary loader sets attributes of
    # "</s>", "<unk>", "<s>" for any model whose general.name contains "phi3" or "phi-3" and fails
    # ("unordered_map::at") on a vocabulary without them, as our synthetic byte-level one is.
    models = [("tiny-gemma3-f32", "tiny-gemma3", "f32", False, [(a.ctx, True)]),
              ("tiny-gemma3-bf16", "tiny-gemma3", "bf16", False, [(a.ctx, True)]),
              ("tinyphi-f32", "tiny-phi3", "f32", False, [(a.ctx, False), (48, True)]),
              ("tinyphi-bf16", "tiny-phi3", "bf16", False, [(a.ctx, False), (48, True)]),
              ("tinyphi-nowindow-f32", "tiny-phi3", "f32", True, [(a.ctx, True)])]
    rows, bad = [], 0
    print(f"{'file':34} {'n_ctx':>5} {'chunks':>6} {'ours':>10} {'llama.cpp':>10} {'diff %':>8} "
          f"{'ours(all)':>10} {'max|dlp|':>9} {'mean|dlp|':>9}  must agree")
    for name, preset, dtype, no_window, ctxs in models:
        model = generate(name, preset, dtype, no_window)
        for mix in MIXES:
            gguf = export(model, name, mix)
            with_bos, without = llama_ids(gguf, text, True), llama_ids(gguf, text, False)
            bos = with_bos[0] if len(with_bos) == len(without) + 1 else None
            mine = our_ids(model, text)
            if mine != with_bos:
                print(f"  {name}: our tokenizer and the GGUF's differ ({len(mine)} vs {len(with_bos)} ids); "
                      "using the GGUF's (what llama-perplexity sees)")
            for n_ctx, must in ctxs:
                wins = windows(with_bos, n_ctx, a.chunks, bos)
                assert len(with_bos) >= (a.chunks + 2) * n_ctx, "text too short for the chunks asked"
                o, o_all, o_lp = ours(gguf, wins, f"{name}-{mix}-{n_ctx}")
                t, t_toks, t_lp = theirs(gguf, text, n_ctx, wins.shape[0])
                if bos is None:
                    assert (t_toks == wins).all(), "llama-perplexity evaluated other tokens"
                d = 100 * (o / t - 1)
                lp = np.abs(o_lp - t_lp)
                lp_max, lp_mean = float(np.nanmax(lp)), float(np.nanmean(lp))
                fail = must and abs(d) > 100 * TOLERANCE
                bad += fail
                print(f"{gguf.name:34} {n_ctx:>5} {wins.shape[0]:>6} {o:>10.4f} {t:>10.4f} {d:>+8.3f} {o_all:>10.4f} "
                      f"{lp_max:>9.2e} {lp_mean:>9.2e}  "
                      f"{'yes' if must else 'no (llama.cpp drops phi3 window)'}{'  FAIL' if fail else ''}", flush=True)
                rows.append(dict(file=gguf.name, model=name, mix=mix, n_ctx=n_ctx, chunks=int(wins.shape[0]),
                                 ours=o, llama_perplexity=t, diff_pct=d, ours_all_positions=o_all,
                                 logprob_max_abs_diff=lp_max, logprob_mean_abs_diff=lp_mean, must_agree=must))
    # Mix types: ours vs llama-quantize run on our F16 file, per tensor. The tiny models' 128-wide
    # rows take k-quant fallbacks (Q5_0, Q8_0); 256-wide variants exercise the k-quant rules.
    type_rows = []
    wide = [("gemma3-w256", "tiny-gemma3", {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8,
                                            "layer_types": ["sliding_attention"] * 5 + ["full_attention"] +
                                                           ["sliding_attention"] * 2}),
            ("tinyphi-w256", "tiny-phi3", {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8})]
    for name, preset, patch in wide:
        model = generate_patched(name, preset, patch)
        f16 = export(model, name, "f16")
        for mix in ["q4_k_m", "q8_0", "q4_0", "q3_k_m", "q5_k_m", "q2_k"]:
            mine, ref = tensor_types(export(model, name, mix)), llama_quantize_types(f16, mix)
            diff = sorted(k for k in ref if mine.get(k) != ref[k])
            summary = ", ".join(f"{k}: {n}" for k, n in sorted(count(mine).items()))
            print(f"types {name:14} {mix:7} {'same as llama-quantize' if not diff else 'DIFFER: ' + str(diff[:6])}"
                  f" ({summary})")
            bad += bool(diff)
            type_rows.append(dict(model=name, mix=mix, same=not diff, differ=diff, ours=mine, llama_quantize=ref))
    for name in ["tiny-gemma3-f32", "tinyphi-f32"]:
        f16 = OUT / "gguf" / f"{name}-f16"
        f16 = next(f16.glob("*.gguf"))
        for mix in ["q4_k_m", "q8_0"]:
            mine = tensor_types(next((OUT / "gguf" / f"{name}-{mix}").glob("*.gguf")))
            ref = llama_quantize_types(f16, mix)
            diff = sorted(k for k in ref if mine.get(k) != ref[k])
            print(f"types {name:14} {mix:7} {'same as llama-quantize' if not diff else 'DIFFER: ' + str(diff[:6])}"
                  f" ({', '.join(f'{k}: {n}' for k, n in sorted(count(mine).items()))})")
            bad += bool(diff)
            type_rows.append(dict(model=name, mix=mix, same=not diff, differ=diff, ours=mine, llama_quantize=ref))
    (OUT / "gguf_arch_types.json").write_text(json.dumps(type_rows, indent=1))
    (OUT / "gguf_arch_oracle.json").write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} rows, {bad} over {100 * TOLERANCE:.0f} %; results in {OUT / 'gguf_arch_oracle.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
