"""Independent check of our llm_compressor (compressed-tensors) output (issue 19), outside CI.

For qwen3-student (an f32 copy, so our `fake` output holds exactly the f32 weights our `eval` uses)
and each scheme W4G128 sym / asym, NVFP4, MXFP4, MXFP8, FP8, FP8_BLOCK, one run of ours writes
--format llm_compressor,fake (iters 0, seed 42). Then:
  1. compressed-tensors (the PyPI package) decompresses every quantized linear of the llm_compressor
     folder with its own compressor for the layer's format (BaseCompressor registry .decompress,
     the call ModelCompressor.decompress_model makes per module), and the result is compared with
     the fake folder's weight:
       native  - as compressed-tensors computes it (in the scale's dtype: f16 for pack-quantized,
                 bf16 for the FP4 formats), against our f32 weight rounded to that dtype: bitwise;
       f32     - the same decompression with the stored scales upcast to f32 first (exact), against
                 our f32 weight: bitwise (count of differing elements and max |diff|);
  2. our `eval` on the llm_compressor folder and on the fake folder: the perplexities must be equal
     (same weights, same arithmetic);
  3. transformers (its compressed-tensors integration, CPU) loads the llm_compressor folder; its
     logits are compared with transformers' logits of the fake folder. A failure prints the error.

  VENV=/work/venv-eco; $VENV/bin/python bench/ecosystem/check_llm_compressor.py [case ...]
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ecolib  # noqa: E402

CASES = {
    "w4g128_sym": ["--scheme", "W4A16"],
    "w4g128_asym": ["--scheme", "W4A16", "--asym"],
    "nvfp4": ["--scheme", "NVFP4"],
    "mxfp4": ["--scheme", "MXFP4"],
    "mxfp8": ["--scheme", "MXFP8"],
    "fp8": ["--scheme", "FP8"],
    "fp8_block": ["--scheme", "FP8_BLOCK"],
}
OUT = ecolib.OUT / "llm_compressor"
EVAL_WINDOWS = 16


def f32_model() -> Path:
    """qwen3-student with every tensor in f32 (the bf16 values, exactly), config and tokenizer alongside."""
    import torch
    from safetensors.torch import load_file, save_file
    dst = OUT / "qwen3-student-f32"
    if (dst / "model.safetensors").exists():
        return dst
    src = ecolib.model_dir("qwen3-student")
    dst.mkdir(parents=True, exist_ok=True)
    sd = {k: v.to(torch.float32).contiguous() for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(sd, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for f in src.iterdir():
        if f.name == "config.json":
            cfg = json.loads(f.read_text())
            cfg["torch_dtype"] = "float32"
            (dst / "config.json").write_text(json.dumps(cfg, indent=2))
        elif f.suffix != ".safetensors":
            shutil.copy(f, dst / f.name)
    return dst


def quantize(model: Path, tag: str, args: list[str]) -> Path:
    out = OUT / tag
    ecolib.run([ecolib.BIN, "quantize", "--model", model, "--output_dir", out, "--overwrite", "--iters", "0",
                "--seed", "42", "--format", "llm_compressor,fake", *args],
               env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    return out


def load_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file
    sd = {}
    for f in sorted(folder.glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd


def ct_schemes(qc: dict, names: list[str]):
    """name -> (QuantizationScheme with .format set) by compressed-tensors' own target matching."""
    import torch
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils.match import match_targets, match_name
    cfg = QuantizationConfig.model_validate(qc)
    target_to_scheme = {}
    for g in cfg.config_groups.values():
        for t in g.targets:
            target_to_scheme[t] = g
    lin = torch.nn.Linear(1, 1)
    out = {}
    for n in names:
        if any(match_name(n, ig) for ig in (cfg.ignore or [])):
            continue
        m = match_targets(n, lin, list(target_to_scheme))
        if not m:
            continue
        s = target_to_scheme[m[0]].model_copy(deep=True)
        if s.format is None:
            s.format = cfg.format
        out[n] = s
    return out


def decompress(sd: dict, name: str, scheme, upcast: bool):
    """compressed-tensors' decompression of one module (its registered compressor for the format)."""
    import torch
    from compressed_tensors.compressors import BaseCompressor
    comp = BaseCompressor.get_value_from_registry(str(getattr(scheme.format, "value", scheme.format)))
    local = {k[len(name) + 1:]: v.clone() for k, v in sd.items() if k.startswith(name + ".")}
    local.pop("bias", None)
    if upcast:
        fmt = str(getattr(scheme.format, "value", scheme.format))
        if fmt in ("nvfp4-pack-quantized", "mxfp4-pack-quantized"):
            # unpack_fp4_from_uint8 defaults to bf16; decompress the same way in f32.
            from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
            from compressed_tensors.quantization.lifecycle.forward import dequantize
            packed = local["weight_packed"]
            x = unpack_fp4_from_uint8(packed, packed.shape[0], packed.shape[1] * 2, dtype=torch.float32)
            scale = comp._decompress_scale(local["weight_scale"], torch.float32)
            return dequantize(x_q=x, scale=scale, args=scheme.weights, global_scale=local.get("weight_global_scale"),
                              dtype=torch.float32)
        if local["weight_scale"].is_floating_point():
            local["weight_scale"] = local["weight_scale"].to(torch.float32)
        if fmt == "mxfp8-quantized":
            w = comp.decompress(local, scheme)["weight"]
            return w.to(torch.float32)
    return comp.decompress(local, scheme)["weight"]


def compare_weights(tag: str, out: Path) -> dict:
    import torch
    ct_dir, fake_dir = out / "llm_compressor", out / "fake"
    qc = json.loads((ct_dir / "config.json").read_text())["quantization_config"]
    sd_ct, sd_fake = load_tensors(ct_dir), load_tensors(fake_dir)
    linears = sorted({k.rsplit(".", 1)[0] for k in sd_fake if k.endswith(".weight") and ".layers." in k
                      and sd_fake[k].ndim == 2})
    schemes = ct_schemes(qc, linears)
    r = {"case": tag, "format": qc["format"], "layers": len(schemes), "kept": len(linears) - len(schemes),
         "elements": 0, "native_dtype": None, "native_mismatch": 0, "f32_mismatch": 0, "f32_max_abs_diff": 0.0,
         "reader_mismatch": 0}
    for n, s in schemes.items():
        ours = sd_fake[n + ".weight"]
        assert ours.dtype == torch.float32, ours.dtype
        nat = decompress(sd_ct, n, s, upcast=False)
        r["native_dtype"] = str(nat.dtype).replace("torch.", "")
        r["elements"] += ours.numel()
        r["native_mismatch"] += int((nat.view(torch.int16 if nat.element_size() == 2 else torch.int32) !=
                                     ours.to(nat.dtype).view(torch.int16 if nat.element_size() == 2 else torch.int32)
                                     ).sum())
        f32 = decompress(sd_ct, n, s, upcast=True)
        assert f32.dtype == torch.float32 and f32.shape == ours.shape, (f32.dtype, f32.shape, ours.shape)
        r["f32_mismatch"] += int((f32.view(torch.int32) != ours.view(torch.int32)).sum())
        r["f32_max_abs_diff"] = max(r["f32_max_abs_diff"], float((f32 - ours).abs().max()))
        if str(getattr(s.format, "value", s.format)) == "nvfp4-pack-quantized":
            # Our eval reads NVFP4 compressed-tensors folders with compressed-tensors' arithmetic,
            # e2m1 * (scale / global_scale) in f32 (model/compressed_tensors_linear.cpp; its unit test
            # checks that formula), while the fake folder holds AutoRound's 1 / (1 / (scale / gs)).
            # So the reader's weights are compared here: that formula over the stored tensors.
            r["reader_mismatch"] += int((f32.view(torch.int32) != nvfp4_reader_weights(sd_ct, n).view(torch.int32)).sum())
    return r


def nvfp4_reader_weights(sd: dict, name: str):
    """What model/compressed_tensors_linear.cpp computes for an NVFP4 layer, in the same f32 operations:
    codes low nibble first, w = e2m1 * (f32(e4m3 scale) / global_scale)."""
    import torch
    packed = sd[name + ".weight_packed"]
    codes = torch.stack([packed & 15, packed >> 4], dim=-1).reshape(packed.shape[0], -1).long()
    table = torch.tensor([0, .5, 1, 1.5, 2, 3, 4, 6, -0.0, -.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float32)
    step = sd[name + ".weight_scale"].to(torch.float32) / sd[name + ".weight_global_scale"].to(torch.float32)
    return table[codes] * step.repeat_interleave(16, dim=1)


def hf_ct_logits(folder: Path, wins: np.ndarray, r: dict) -> np.ndarray:
    """transformers loads the folder (its compressed-tensors quantizer), decompresses it (what its
    first forward would do), and runs it in f32: the decompressed weights come in the dtype
    compressed-tensors computes them in (f16 / bf16 for some formats; exact in f32)."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(int(os.environ.get("ECO_TORCH_THREADS", "2")))
    m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    m.hf_quantizer.compressor.decompress_model(m)
    dtypes = sorted({str(p.dtype).replace("torch.", "") for p in m.parameters()})
    r["transformers_decompressed_dtypes"] = dtypes
    m = torch.nn.Module.float(m)
    m.eval()

    def logits():
        outs = []
        with torch.no_grad():
            for i in range(0, len(wins), 8):
                outs.append(m(input_ids=torch.from_numpy(wins[i:i + 8])).logits.float().numpy())
        return np.concatenate(outs)

    declared = logits()  # with the activation quantization the config declares (MXFP*, FP8_BLOCK)
    for mod in m.modules():  # weights only: compressed-tensors' switch for its forward QDQ
        if hasattr(mod, "quantization_scheme"):
            mod.quantization_enabled = False
    return declared, logits()


def eval_and_load(tag: str, out: Path, r: dict) -> dict:
    ids = ecolib.eval_ids_file("qwen3-student")
    wins = ecolib.windows_of(ids, ecolib.SEQLEN, EVAL_WINDOWS)
    ppl_ct, logits_ct = ecolib.our_eval(out / "llm_compressor", ids, ecolib.SEQLEN, EVAL_WINDOWS)
    ppl_fake, logits_fake = ecolib.our_eval(out / "fake", ids, ecolib.SEQLEN, EVAL_WINDOWS)
    r["eval_ppl_llm_compressor"], r["eval_ppl_fake"] = ppl_ct, ppl_fake
    r["eval_logits_identical"] = bool(np.array_equal(logits_ct, logits_fake))
    try:
        hf_declared, hf_ct = hf_ct_logits(out / "llm_compressor", wins, r)
        hf_fake = ecolib.hf_logits(out / "fake", wins)
        d_max, _, ppl = ecolib.compare(hf_fake, hf_ct, wins)
        d_decl, _, ppl_decl = ecolib.compare(hf_fake, hf_declared, wins)
        r["transformers"] = (f"loads; weights only: max |dlogsoftmax| vs fake {d_max:.2e}, ppl {ppl:.4f}"
                             + ("" if d_decl == d_max else
                                f"; with its declared activation quantization: ppl {ppl_decl:.4f}"))
        d_ours, _, _ = ecolib.compare(logits_ct, hf_ct, wins)
        r["transformers_vs_our_eval"] = d_ours
    except Exception as e:  # report, do not hide
        r["transformers"] = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        traceback.print_exc()
    return r


def main(argv: list[str]) -> int:
    import compressed_tensors
    ecolib.log(f"compressed-tensors {compressed_tensors.__version__}; {ecolib.BIN}")
    model = f32_model()
    rows, ok = [], True
    for tag in (argv or list(CASES)):
        out = quantize(model, tag, CASES[tag])
        r = compare_weights(tag, out)
        r = eval_and_load(tag, out, r)
        if r["format"] == "nvfp4-pack-quantized":
            # The fake folder is AutoRound's arithmetic, one f32 ulp away at times (see
            # nvfp4_reader_weights): the reader's weights must match, eval within 1e-5.
            good = (r["reader_mismatch"] == 0 and
                    abs(r["eval_ppl_llm_compressor"] - r["eval_ppl_fake"]) <= 1e-5 * r["eval_ppl_fake"])
        else:
            good = (r["native_mismatch"] == 0 and r["f32_mismatch"] == 0 and
                    r["eval_ppl_llm_compressor"] == r["eval_ppl_fake"] and r["eval_logits_identical"])
        r["ok"] = good
        ok &= good
        # Own results file: report.py's table has the logit-comparison columns only.
        OUT.mkdir(parents=True, exist_ok=True)
        with open(OUT / "results.jsonl", "a") as f:
            f.write(json.dumps(r) + "\n")
        ecolib.log("RESULT", json.dumps(r))
        rows.append(r)
    print()
    print(f"{'case':12} {'format':22} {'layers':>6} {'kept':>4} {'elements':>9} {'native':>8} {'nat.diff':>8} "
          f"{'f32.diff':>8} {'f32 max|d|':>10} {'rdr.diff':>8} {'ppl llmc':>9} {'ppl fake':>9}  transformers")
    for r in rows:
        print(f"{r['case']:12} {r['format']:22} {r['layers']:6d} {r['kept']:4d} {r['elements']:9d} "
              f"{r['native_dtype']:>8} {r['native_mismatch']:8d} {r['f32_mismatch']:8d} {r['f32_max_abs_diff']:10.3g} "
              f"{r['reader_mismatch'] if r['format'] == 'nvfp4-pack-quantized' else '-':>8} "
              f"{r['eval_ppl_llm_compressor']:9.4f} {r['eval_ppl_fake']:9.4f}  {r['transformers']}")
    print("all equal" if ok else "MISMATCH (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
