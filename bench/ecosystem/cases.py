"""The outputs the oracles check: one quantize run per (model, scheme) writing the three HF formats,
and the GGUF mixes.  Small tuning (the point is loading correctness, not quality)."""
from __future__ import annotations

TUNE = ["--iters", "20", "--nsamples", "16", "--seqlen", "128", "--batch_size", "8", "--seed", "42"]

SCHEMES = {
    "w4g128sym": ["--bits", "4", "--group_size", "128", "--sym"],
    "w4g32sym": ["--bits", "4", "--group_size", "32", "--sym"],
    "w4g32asym": ["--bits", "4", "--group_size", "32", "--asym"],
    "w2g64asym": ["--bits", "2", "--group_size", "64", "--asym"],
}

MODELS = ["qwen3-student", "stories260K"]
# stories260K (hidden 64, intermediate 172) has no linear a G128 packed format can store: our tool
# refuses that run ("no layer ... would be quantized"), so it gets W4G32 sym instead.
MODEL_SCHEMES = {"qwen3-student": ["w4g128sym", "w4g32asym", "w2g64asym"],
                 "stories260K": ["w4g32sym", "w4g32asym", "w2g64asym"]}
HF_CASES = [(m, t) for m in MODELS for t in MODEL_SCHEMES[m]]
HF_FORMATS = ["auto_round", "auto_gptq", "fake"]

# GGUF mixes: f32 is the noise floor of each runtime (no quantization at all); q2_k_s needs data.
GGUF = {
    "f32": ["--iters", "0"],
    "q8_0": ["--iters", "0"],
    "q4_k_m": ["--iters", "0"],
    "q2_k_s": ["--iters", "0", "--nsamples", "16", "--seqlen", "128"],
}
# stories260K: only f32 -- its ffn_down rows (172) are not a multiple of 32, so q8_0 is refused (as
# llama-quantize has no fallback for Q8_0) and the k-quant mixes would fall back on most tensors.
GGUF_CASES = [("qwen3-student", m) for m in GGUF] + [("stories260K", "f32")]
# stories260K (hidden 64, intermediate 172) has no linear a G128 packed format can store: our tool
# refuses that run ("no layer ... would be quantized"), so it gets W4G32 sym instead.
MODEL_SCHEMES = {"qwen3-student": ["w4g128sym", "w4g32asym", "w2g64asym"],
                 "stories260K": ["w4g32sym", "w4g32asym", "w2g64asym"]}
HF_CASES = [(m, t) for m in MODELS for t in MODEL_SCHEMES[m]]
