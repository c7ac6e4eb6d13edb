"""autoround_cpp: AutoRound (SignRound) quantization on the CPU, streaming one decoder block at a
time, from Python. The API follows the Python AutoRound's:

    from autoround_cpp import AutoRound
    ar = AutoRound("path/to/hf_model", scheme="W4A16", iters=200, dataset="calib.txt")
    report = ar.quantize_and_save("out", format="auto_round")

plus evaluate() (perplexity of a model folder or GGUF file) and quantize_tensor() (RTN of one
matrix). Errors from the library raise autoround_cpp.Error with the library's message.
"""

import os

import numpy as np

from . import _core
from ._autoround import AutoRound, parse_scheme
from ._report import BlockStats, QuantizeReport
from ._run import run_interruptible

Error = _core.Error
Interrupted = _core.Interrupted
__version__ = _core.__version__

__all__ = ["AutoRound", "BlockStats", "Error", "Interrupted", "QuantizeReport", "evaluate", "parse_scheme",
           "quantize_tensor", "__version__"]


def evaluate(model, dataset, seqlen=2048, *, tokenizer=None, precision="f32", limit=0, progress=None):
    """Perplexity (exp of the mean NLL over non-overlapping windows of `seqlen` tokens) of a model
    folder or .gguf file, as `autoround eval` computes it. dataset: a file (text, .jsonl, token-id
    JSON, or "builtin"), a list of texts (joined with blank lines, as a .jsonl file), or a list of
    token-id lists (each windowed on its own). precision: "f32" or "bf16"."""
    prec = {"f32": _core.Precision.F32, "fp32": _core.Precision.F32, "bf16": _core.Precision.BF16}.get(precision)
    if prec is None:
        raise ValueError(f"precision {precision!r}: expected 'f32' or 'bf16'")
    if isinstance(dataset, (str, os.PathLike)):
        data = os.fspath(dataset)
    else:
        data = list(dataset)
        if data and all(isinstance(t, int) for t in data):
            data = [data]
    result = run_interruptible(_core.evaluate, os.fspath(model), data, seqlen,
                               "" if tokenizer is None else os.fspath(tokenizer), prec, limit, progress)
    return result.perplexity


def quantize_tensor(weight, bits=4, group_size=128, sym=True, *, optimized=False, importance=None):
    """RTN of a 2-D weight (out, in) per the library's quantizer (group_size -1: whole rows;
    optimized=True: the optimized-RTN scale search, optionally weighted by per-column importance).
    Returns (qweight, scales, zeros): unsigned integer codes uint8 (out, in), scales float16 and
    zero points uint8 (out, n_groups), so that W' = scales[:, g] * (qweight - zeros[:, g]) for
    column i in group g = i // group_size."""
    w = np.ascontiguousarray(weight, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"weight: expected a 2-D (out, in) array, got shape {w.shape}")
    imp = None if importance is None else np.ascontiguousarray(importance, dtype=np.float32)
    codes, scale_bits, zeros = _core.quantize_tensor(w, bits, group_size, sym, optimized, imp)
    return codes, scale_bits.view(np.float16), zeros
