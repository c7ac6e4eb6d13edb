"""Helpers for the ecosystem oracles: run our CLI, run the independent runtimes on the same token
windows, compare.  Nothing here imports torch/transformers/llama_cpp at module import time, so
pytest can skip cleanly when they are absent."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("AUTOROUND_BIN", REPO / "build" / "autoround"))
FIXTURES = Path(os.environ.get("AR_FIXTURES", REPO.parent / "shared" / "fixtures"))
if not FIXTURES.exists() and Path("/work/shared/fixtures").exists():
    FIXTURES = Path("/work/shared/fixtures")
OUT = Path(os.environ.get("ECO_OUT", REPO / "build" / "ecosystem"))
RESULTS = Path(os.environ.get("ECO_RESULTS", OUT / "results.jsonl"))

QWEN = FIXTURES / "models" / "qwen3-student"
STORIES = FIXTURES / "models" / "stories260K"

SEQLEN = 256
N_WINDOWS = 32  # windows compared logit by logit (and scored for perplexity)


def log(*a):
    print("[eco]", *a, flush=True)


def run(cmd, **kw):
    log(" ".join(str(c) for c in cmd))
    t0 = time.time()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                           f"stdout:\n{p.stdout[-4000:]}\nstderr:\n{p.stderr[-4000:]}")
    log(f"  ok in {time.time() - t0:.1f} s")
    return p


# ---------------------------------------------------------------- models and data

def model_dir(name: str) -> Path:
    return {"qwen3-student": QWEN / "hf", "stories260K": STORIES / "hf"}[name]


def calib_file(name: str) -> Path:
    return {"qwen3-student": QWEN / "derived-data" / "calib_256x256.ids.json",
            "stories260K": STORIES / "derived-data" / "stories260K_samples_seed1234.ids.json"}[name]


def eval_ids_file(name: str) -> Path:
    """Token-id JSON (list of lists) of held-out text, never used for calibration."""
    if name == "qwen3-student":
        return QWEN / "derived-data" / "heldout_400x256.ids.json"
    # stories260K: the TinyStories sample tokenized by our tokenizer (ids with BOS), one document.
    out = OUT / "data" / "stories260K_tinystories.ids.json"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        p = run([BIN, "tokenize", "--model", STORIES / "hf", "--text", FIXTURES / "text" / "tinystories-sample.txt",
                 "--add_special_tokens"])
        ids = json.loads(p.stdout)
        out.write_text(json.dumps([ids]))
    return out


def windows_of(ids_file: Path, seqlen: int, limit: int) -> np.ndarray:
    """The windows our `eval` cuts (SPEC §5): each sequence in non-overlapping windows, remainder dropped."""
    data = json.loads(Path(ids_file).read_text())
    docs = [data] if data and isinstance(data[0], int) else data
    wins = []
    for d in docs:
        for s in range(0, len(d) - seqlen + 1, seqlen):
            wins.append(d[s:s + seqlen])
    return np.array(wins[:limit], dtype=np.int64)


# ---------------------------------------------------------------- our tool

def quantize(model: str, tag: str, args: list[str]) -> Path:
    """Our `quantize` into OUT/<model>/<tag>; reused when the same command already ran."""
    out = OUT / model / tag
    cmd = [BIN, "quantize", "--model", model_dir(model), "--output_dir", out, "--overwrite", *args]
    stamp = out.parent / (tag + ".cmd")
    key = " ".join(map(str, cmd[1:]))  # delete OUT to redo the outputs with another binary
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    run(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    stamp.write_text(key)
    return out


def our_eval(model_path: Path, ids_file: Path, seqlen: int, limit: int, tokenizer: Path | None = None):
    """(perplexity, logits[n_win, seqlen, V]) from `autoround eval --dump_logits`."""
    dump = OUT / "logits" / (re.sub(r"[^A-Za-z0-9_.-]", "_", str(model_path.relative_to(OUT) if
                                                                        str(model_path).startswith(str(OUT)) else model_path)) + ".npy")
    dump.parent.mkdir(parents=True, exist_ok=True)
    cmd = [BIN, "eval", "--model", model_path, "--dataset", ids_file, "--seqlen", seqlen, "--limit", limit,
           "--dump_logits", dump]
    if tokenizer is not None:
        cmd += ["--tokenizer", tokenizer]
    p = run(cmd)
    ppl = float(re.search(r"perplexity: ([0-9.]+)", p.stdout).group(1))
    return ppl, np.load(dump)


# ---------------------------------------------------------------- comparisons

def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ppl_from_logits(logits: np.ndarray, wins: np.ndarray) -> float:
    """SPEC §5: every position with a predecessor in its window is scored."""
    ls = log_softmax(logits[:, :-1, :])
    tgt = wins[:, 1:]
    nll = -np.take_along_axis(ls, tgt[..., None], axis=-1)[..., 0]
    return float(math.exp(nll.mean()))


def compare(ours_logits: np.ndarray, theirs_logits: np.ndarray, wins: np.ndarray):
    assert ours_logits.shape == theirs_logits.shape, (ours_logits.shape, theirs_logits.shape)
    d = np.abs(log_softmax(ours_logits) - log_softmax(theirs_logits))
    return float(d.max()), float(d.mean()), ppl_from_logits(theirs_logits, wins)


def record(**kw):
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(kw) + "\n")
    log("RESULT", json.dumps(kw))


# ---------------------------------------------------------------- independent runtimes

LAST_LOAD: dict = {}  # what the last hf_logits load built (quantized linear class, dtypes)


def hf_logits(model_path: Path, wins: np.ndarray, **load_kw) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(int(os.environ.get("ECO_TORCH_THREADS", "2")))
    m = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32, **load_kw)
    # auto-round's CPU backend converts the model to float16 on load ("Forced model to torch.float16"):
    # compute in fp32 like our eval, so the comparison measures the weights, not fp16 arithmetic
    # (the stored scales are fp16 already, so the upcast is exact).
    dtypes = {str(p.dtype) for p in m.parameters()} | {str(b.dtype) for b in m.buffers() if b.is_floating_point()}
    if dtypes != {"torch.float32"}:
        log(f"  loaded with float dtypes {sorted(dtypes)}; upcasting to float32")
        m = torch.nn.Module.float(m)  # transformers refuses .float() on quantized models
        # the fp16 pass also rounded RoPE's inv_freq buffers (both copies): compute them again
        for mod in m.modules():
            if hasattr(mod, "inv_freq") and hasattr(mod, "compute_default_rope_parameters"):
                assert getattr(mod, "rope_type", "default") == "default", mod.rope_type
                inv, _ = mod.compute_default_rope_parameters(mod.config)
                mod.inv_freq = inv.to(torch.float32)
                mod.original_inv_freq = inv.to(torch.float32).clone()
    m.eval()
    q = [type(x) for x in m.modules() if hasattr(x, "qweight")]
    LAST_LOAD["linear"] = f"{q[0].__module__}.{q[0].__name__}" if q else "torch.nn.Linear"
    LAST_LOAD["loaded_dtypes"] = sorted(dtypes)
    outs = []
    with torch.no_grad():
        for i in range(0, len(wins), 8):
            ids = torch.from_numpy(wins[i:i + 8])
            outs.append(m(input_ids=ids).logits.float().numpy())
    return np.concatenate(outs)


def hf_gguf_logits(gguf: Path, wins: np.ndarray) -> np.ndarray:
    """transformers' GGUF loader (config and dequantized tensors from the .gguf alone). transformers
    5.x maps no `<arch>.attention.key_length` to head_dim for qwen3 (its table has only
    rope.dimension_count -> None), so Qwen3Config's default head_dim 128 is used and every attention
    tensor mismatches for a model whose head_dim is not 128; take head_dim from the file's own key."""
    from gguf import GGUFReader
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    r = GGUFReader(str(gguf))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    f = r.fields.get(f"{arch}.attention.key_length")
    if f is not None and getattr(cfg, "head_dim", None) not in (None, int(f.parts[-1][0])):
        log(f"  transformers' GGUF config has head_dim {cfg.head_dim}; the file says {int(f.parts[-1][0])}: patched")
        LAST_LOAD["config_patch"] = f"head_dim {cfg.head_dim} -> {int(f.parts[-1][0])}"
        cfg.head_dim = int(f.parts[-1][0])
    return hf_logits(gguf.parent, wins, gguf_file=gguf.name, config=cfg)


def llama_cpp_logits(gguf: Path, wins: np.ndarray) -> np.ndarray:
    from llama_cpp import Llama
    n = wins.shape[1]
    # KV cache in f32 (GGML_TYPE_F32 = 0): llama.cpp's default f16 cache alone moved the f32 file's
    # log-softmax by up to 0.011 (qwen3-student) / 0.081 (stories260K, head_dim 8).
    llm = Llama(model_path=str(gguf), n_ctx=n, n_batch=n, n_ubatch=n, logits_all=True, verbose=False,
                n_threads=int(os.environ.get("ECO_TORCH_THREADS", "2")), type_k=0, type_v=0)
    outs = []
    for w in wins:
        llm.reset()
        llm.eval(w.tolist())
        outs.append(np.array(llm.scores[:n], dtype=np.float32))
    return np.stack(outs)
