"""Issue 19's independent checks for the auto_awq format and the auto_round format's floating-point
variants (outside CI; run by check.sh, or alone: VENV/bin/python -m pytest -v bench/ecosystem/test_awq_fp.py).

f. Our auto_awq output of qwen3-student (W4G128 asym and sym) loaded by transformers' AWQ
   integration (gptqmodel's CPU kernel): logits on fixed held-out windows vs our `eval` of the same
   folder, max |Δ log-softmax| <= 1e-3.
g. AutoRound's own auto_round FP checkpoints (MXFP4, NVFP4, FP8; RTN, iters 0) read by our `eval`:
   perplexity vs transformers + auto-round on the same windows. AutoRound's MXFP4 / NVFP4 presets
   quantize activations too (act_bits 4), which its runtime applies and our weight-only eval does
   not: those are also run with act_bits 16 (weight-only), where the two must agree.
h. Our own auto_round FP output loaded by transformers + auto-round.
A load that fails is recorded with its exact error (the test then fails with it)."""
from __future__ import annotations

import json
import sys
import traceback

import pytest

import ecolib  # noqa: E402
from test_ecosystem import check_against, need  # noqa: E402

QWEN = "qwen3-student"


def _skip_without_fixture():
    if not ecolib.QWEN.exists():
        pytest.skip(f"fixture {ecolib.QWEN} not found")


def _record_failure(**kw):
    err = traceback.format_exc().strip().splitlines()
    ecolib.record(**kw, passed=False, error=err[-1][:500])


def _checked(model, path, theirs_fn, **kw):
    try:
        check_against(model, path, theirs_fn, **kw)
    except AssertionError:
        raise
    except Exception:
        _record_failure(model=model, format=kw["fmt"], setting=kw["setting"], runtime=kw["runtime"])
        raise


AWQ = {"w4g128asym": ["--bits", "4", "--group_size", "128", "--asym"],
       "w4g128sym": ["--bits", "4", "--group_size", "128", "--sym"]}


@pytest.mark.parametrize("tag", list(AWQ))
def test_our_auto_awq_in_transformers(tag):
    need("torch", "transformers")
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{tag}-auto_awq", [*AWQ[tag], "--iters", "0", "--format", "auto_awq"])
    _checked(QWEN, path, lambda w: ecolib.hf_logits(path, w, device_map="cpu"), fmt="auto_awq", setting=tag,
             runtime="transformers (AWQ)", logit_tol=1e-3)


# AutoRound's checkpoints: scheme name and extra arguments of run_autoround_scheme.py.
NATIVE_FP = {"mxfp4": ["--scheme", "MXFP4"], "mxfp4-a16": ["--scheme", "MXFP4", "--act_bits", "16"],
             "nvfp4": ["--scheme", "NVFP4"], "nvfp4-a16": ["--scheme", "NVFP4", "--act_bits", "16"],
             "fp8": ["--scheme", "FP8"]}


def autoround_fp_checkpoint(tag):
    out = ecolib.OUT / "autoround-native-fp" / f"{QWEN}-{tag}"
    found = sorted(out.glob("*/config.json"))
    if found:
        return found[0].parent
    ecolib.run([sys.executable, ecolib.REPO / "bench" / "ecosystem" / "run_autoround_scheme.py",
                "--model", ecolib.model_dir(QWEN), "--calib", ecolib.calib_file(QWEN), "--out", out,
                *NATIVE_FP[tag], "--iters", "0", "--disable_opt_rtn", "--nsamples", "16", "--seqlen", "128",
                "--format", "auto_round"])
    found = sorted(out.glob("*/config.json"))
    assert len(found) == 1, f"AutoRound wrote {found} under {out}"
    return found[0].parent


@pytest.mark.parametrize("tag", list(NATIVE_FP))
def test_our_eval_reads_autoround_fp_checkpoint(tag):
    need("torch", "transformers", "auto_round")
    _skip_without_fixture()
    path = autoround_fp_checkpoint(tag)
    qc = json.loads((path / "config.json").read_text())["quantization_config"]
    act = qc.get("act_bits", 16) < 16
    # With activation quantization in the runtime the logits cannot agree with a weight-only eval:
    # only the perplexity is compared, loosely, and the difference is what the table shows.
    _checked(QWEN, path, lambda w: ecolib.hf_logits(path, w, device_map="cpu"),
             fmt="auto_round FP (written by AutoRound)", setting=tag, runtime="transformers+auto-round",
             logit_tol=float("inf") if act else 1e-3, ppl_tol=1.0 if act else 1e-3)


OURS_FP = ["MXFP4", "MXFP8", "NVFP4", "FP8", "FP8_BLOCK"]


@pytest.mark.parametrize("scheme", OURS_FP)
def test_our_auto_round_fp_in_transformers(scheme):
    need("torch", "transformers", "auto_round")
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{scheme.lower()}-auto_round", ["--scheme", scheme, "--iters", "0",
                                                                   "--format", "auto_round"])
    qc = json.loads((path / "config.json").read_text())["quantization_config"]
    act = qc.get("act_bits", 16) < 16
    _checked(QWEN, path, lambda w: ecolib.hf_logits(path, w, device_map="cpu"), fmt="auto_round FP", setting=scheme,
             runtime="transformers+auto-round", logit_tol=float("inf") if act else 1e-3,
             ppl_tol=1.0 if act else 1e-3)


@pytest.mark.parametrize("scheme", OURS_FP)
def test_our_auto_round_fp_equals_our_fake(scheme):
    """Our eval of the packed folder and of the fake folder of the same run: the same weights, so
    the same logits (bit for bit)."""
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{scheme.lower()}-ar+fake", ["--scheme", scheme, "--iters", "0",
                                                                "--format", "auto_round,fake"])
    ids = ecolib.eval_ids_file(QWEN)
    p1, l1 = ecolib.our_eval(path / "auto_round", ids, ecolib.SEQLEN, 8)
    p2, l2 = ecolib.our_eval(path / "fake", ids, ecolib.SEQLEN, 8)
    same = bool((l1 == l2).all())
    ecolib.record(model=QWEN, format="auto_round FP vs fake", setting=scheme, runtime="ours", our_ppl=p1,
                  their_ppl=p2, ppl_rel=p2 / p1 - 1, max_dlogsoftmax=float(abs(l1 - l2).max()), passed=same)
    assert same
