"""e. The reverse direction: a checkpoint that the Python AutoRound writes (auto_round format,
qwen3-student, CPU, small iters) is read by our `eval` with the logits and perplexity that
transformers (with auto-round's own inference backend) gives for it."""
from __future__ import annotations

import importlib.util
import sys

import pytest

pytest.importorskip("numpy", reason="numpy is not installed in this Python")

import cases  # noqa: E402
import ecolib  # noqa: E402
from test_ecosystem import check_against, need  # noqa: E402

NATIVE = {  # AutoRound's arguments per setting (its own sym/asym conventions)
    "w4g128sym": ["--bits", "4", "--group_size", "128", "--sym"],
    "w4g32asym": ["--bits", "4", "--group_size", "32", "--asym"],
    "w2g64asym": ["--bits", "2", "--group_size", "64", "--asym"],
}


# AutoRound packs W4 asymmetric auto_round files "auto_round:auto_awq"; transformers runs them with
# gptqmodel's AwqTorchLinear, which dequantizes the weight in float16 (it asserts an fp16/bf16
# weight), so its logits carry fp16 weight rounding (measured max |Δ log-softmax| 0.0086, mean
# 8e-4) while the perplexity still agrees to 1e-6. A misread layout moves the perplexity by far more.
LOGIT_TOL = {"w4g32asym": 0.02}


def autoround_checkpoint(tag: str):
    """AutoRound saves into a subfolder of --out named after the model and scheme (hf-w4g128)."""
    out = ecolib.OUT / "autoround-native" / f"qwen3-student-{tag}"
    found = sorted(out.glob("*/config.json"))
    if found:
        return found[0].parent
    ecolib.run([sys.executable, ecolib.REPO / "bench" / "ecosystem" / "run_autoround.py",
                "--model", ecolib.model_dir("qwen3-student"), "--calib", ecolib.calib_file("qwen3-student"),
                "--out", out, *NATIVE[tag], "--iters", "20", "--nsamples", "16", "--seqlen", "128",
                "--batch_size", "8", "--seed", "42", "--format", "auto_round"])
    found = sorted(out.glob("*/config.json"))
    assert len(found) == 1, f"AutoRound wrote {found} under {out}"
    return found[0].parent


@pytest.mark.parametrize("tag", list(NATIVE))
def test_our_eval_reads_autoround_checkpoint(tag):
    need("torch", "transformers", "auto_round")
    if not ecolib.QWEN.exists():
        pytest.skip(f"fixture {ecolib.QWEN} not found")
    path = autoround_checkpoint(tag)
    check_against("qwen3-student", path, lambda w: ecolib.hf_logits(path, w, device_map="cpu"),
                  fmt="auto_round (written by AutoRound)", setting=tag, runtime="transformers+auto-round",
                  logit_tol=LOGIT_TOL.get(tag, 1e-3))
