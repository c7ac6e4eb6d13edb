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


def hf_logits_weights_only(path, wins):
    """transformers + auto-round's own FP modules with their activation quantization switched off
    (qdq_input = identity): AutoRound's runtime dequantization of the weights, nothing else."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(int(__import__("os").environ.get("ECO_TORCH_THREADS", "2")))
    m = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, device_map="cpu")
    n = 0
    for mod in m.modules():
        if hasattr(mod, "qdq_input"):
            mod.qdq_input = lambda x: x
            n += 1
    assert n > 0, "no auto-round FP module found"
    ecolib.LAST_LOAD["linear"] = f"{type(next(x for x in m.modules() if hasattr(x, 'qdq_input'))).__name__} x{n}, qdq_input off"
    m.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(wins), 8):
            outs.append(m(input_ids=torch.from_numpy(wins[i:i + 8])).logits.float().numpy())
    return np.concatenate(outs)


E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def torch_dequant_logits(path, wins):
    """An independent dequantizer in torch (its own float8_e4m3fn decode, the E2M1 table, 2^(e-127)):
    every auto_round FP linear of `path` dequantized into the original model, run by transformers."""
    import numpy as np
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(int(__import__("os").environ.get("ECO_TORCH_THREADS", "2")))
    m = AutoModelForCausalLM.from_pretrained(str(ecolib.model_dir(QWEN)), dtype=torch.float32)
    tensors = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                tensors[k] = st.get_tensor(k)
    lut = torch.tensor(E2M1)
    n = 0
    for name, mod in m.named_modules():
        if not isinstance(mod, torch.nn.Linear) or not name.startswith("model.layers."):
            continue
        out_f, in_f = mod.weight.shape
        g = lambda s: tensors.get(f"{name}.{s}")  # noqa: E731
        if g("weight_packed") is not None:
            p = g("weight_packed").to(torch.int64)
            codes = torch.stack([p & 15, p >> 4], dim=-1).reshape(out_f, in_f)
            vals = lut[codes]
            if g("weight_global_scale") is not None:  # NVFP4
                sc = g("weight_scale").to(torch.float32) / g("weight_global_scale").to(torch.float32)
                w = vals * sc.repeat_interleave(16, dim=1)
            else:  # MXFP4
                w = vals * torch.exp2(g("weight_scale").to(torch.float32) - 127).repeat_interleave(32, dim=1)
        elif g("weight_scale_inv") is not None:  # FP8_BLOCK
            s = g("weight_scale_inv").to(torch.float32).repeat_interleave(128, 0).repeat_interleave(128, 1)
            w = g("weight").to(torch.float32) * s[:out_f, :in_f]
        elif g("weight_scale") is not None and g("weight_scale").dtype == torch.uint8:  # MXFP8
            w = g("weight").to(torch.float32) * torch.exp2(g("weight_scale").to(torch.float32) - 127).repeat_interleave(32, 1)
        elif g("weight_scale") is not None:  # FP8 per channel
            w = g("weight").to(torch.float32) * g("weight_scale").to(torch.float32).reshape(out_f, 1)
        else:
            continue
        mod.weight.data.copy_(w)
        n += 1
    assert n > 0
    ecolib.LAST_LOAD["linear"] = f"torch dequant of {n} linears into the original model"
    m.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(wins), 8):
            outs.append(m(input_ids=torch.from_numpy(wins[i:i + 8])).logits.float().numpy())
    return np.concatenate(outs)


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


@pytest.mark.parametrize("tag", ["mxfp4", "nvfp4"])
def test_our_eval_reads_autoround_fp_checkpoint_weights_only(tag):
    """AutoRound's MXFP4 / NVFP4 checkpoints (act_bits 4) in its own runtime with the activation
    quantization off: the weights alone, which our eval must match."""
    need("torch", "transformers", "auto_round")
    _skip_without_fixture()
    path = autoround_fp_checkpoint(tag)
    _checked(QWEN, path, lambda w: hf_logits_weights_only(path, w), fmt="auto_round FP (written by AutoRound)",
             setting=tag, runtime="transformers+auto-round, activation qdq off", logit_tol=1e-3, ppl_tol=1e-3)


@pytest.mark.parametrize("tag", list(NATIVE_FP))
def test_our_eval_reads_autoround_fp_checkpoint_torch_dequant(tag):
    need("torch", "transformers", "safetensors")
    _skip_without_fixture()
    path = autoround_fp_checkpoint(tag)
    _checked(QWEN, path, lambda w: torch_dequant_logits(path, w), fmt="auto_round FP (written by AutoRound)",
             setting=tag, runtime="torch dequant + transformers", logit_tol=1e-3, ppl_tol=1e-3)


@pytest.mark.parametrize("scheme", OURS_FP)
def test_our_auto_round_fp_by_torch_dequant(scheme):
    need("torch", "transformers", "safetensors")
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{scheme.lower()}-auto_round", ["--scheme", scheme, "--iters", "0",
                                                                   "--format", "auto_round"])
    _checked(QWEN, path, lambda w: torch_dequant_logits(path, w), fmt="auto_round FP", setting=scheme,
             runtime="torch dequant + transformers", logit_tol=1e-3, ppl_tol=1e-3)


@pytest.mark.parametrize("scheme", ["MXFP4", "MXFP8"])
def test_our_auto_round_fp_in_transformers_weights_only(scheme):
    need("torch", "transformers", "auto_round")
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{scheme.lower()}-auto_round", ["--scheme", scheme, "--iters", "0",
                                                                   "--format", "auto_round"])
    _checked(QWEN, path, lambda w: hf_logits_weights_only(path, w), fmt="auto_round FP", setting=scheme,
             runtime="transformers+auto-round, activation qdq off", logit_tol=1e-3, ppl_tol=1e-3)


# The fake format stores the dequantized weights in the model's dtype (qwen3-student: bf16). MX
# values (E2M1 / E4M3 times a power of two) are bf16 numbers, so the two folders hold the same
# weights; NVFP4's and FP8's are not, and the fake folder holds them rounded to bf16.
FAKE_EXACT = {"MXFP4", "MXFP8"}


@pytest.mark.parametrize("scheme", OURS_FP)
def test_our_auto_round_fp_equals_our_fake(scheme):
    """Our eval of the packed folder and of the fake folder of the same run: the same weights, so
    the same logits (bit for bit) where the fake folder's dtype holds them exactly."""
    _skip_without_fixture()
    path = ecolib.quantize(QWEN, f"{scheme.lower()}-ar+fake", ["--scheme", scheme, "--iters", "0",
                                                                "--format", "auto_round,fake"])
    ids = ecolib.eval_ids_file(QWEN)
    p1, l1 = ecolib.our_eval(path / "auto_round", ids, ecolib.SEQLEN, 8)
    p2, l2 = ecolib.our_eval(path / "fake", ids, ecolib.SEQLEN, 8)
    same = bool((l1 == l2).all()) if scheme in FAKE_EXACT else bool(abs(p2 / p1 - 1) < 1e-4)
    ecolib.record(model=QWEN, format="auto_round FP vs fake", setting=scheme, runtime="ours", our_ppl=p1,
                  their_ppl=p2, ppl_rel=p2 / p1 - 1, max_dlogsoftmax=float(abs(l1 - l2).max()), passed=same)
    assert same
