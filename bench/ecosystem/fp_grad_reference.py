"""Reference forward and gradients of AutoRound's floating-point quantizers (issue 19), for
tests/quant/fp_fake_quant_grad_test.cpp. An oracle run outside CI:

    /work/venv-eco/bin/python bench/ecosystem/fp_grad_reference.py tests/quant/data/fp_grad_reference.safetensors

needs torch, safetensors and auto-round (0.16.1 was used). The inputs are not stored: both sides make
them from the same integer hash with the same f32 operations (see make_inputs and the C++ test), so
the file holds only what AutoRound computes: wq = qdq(w; v, max_scale) and, for
loss = sum(wq * dw), the gradients dv (out, in) and dms (the max_scale layout).
"""
import sys

import numpy as np
import torch
from safetensors.numpy import save_file

from auto_round.data_type.fp8 import quant_block_fp_sym, quant_fp8_sym
from auto_round.data_type.mxfp import quant_mx
from auto_round.data_type.nvfp import calculate_gparam, nv_fp4

# name: (out, in, group) ; group (128, 128) for the block format, -1 per channel
CASES = {
    "mxfp4": (12, 80, 32),
    "mxfp8": (12, 80, 32),
    "nvfp4": (12, 56, 16),
    # NVFP4 under a global scale shared with a fused sibling whose amax is 3x this tensor's
    # (AutoRound's update_fused_layer_global_scales; our quantize_fp global_amax)
    "nvfp4_fused": (12, 56, 16),
    "fp8": (12, 80, -1),
    "fp8_block": (136, 144, 128),
}
ROW_EXP = [-2, -1, 0, 1, 2, -24]  # per-row powers of two: varied block exponents, FP8's scale floor


def hashed(n, salt, mod):
    i = np.arange(n, dtype=np.uint64) + np.uint64(1)
    h = (i * np.uint64(2654435761) + np.uint64(salt * 97531)) % np.uint64(1 << 32)
    return (h % np.uint64(mod)).astype(np.int64)


def make_inputs(out, inn, n_scales):
    n = out * inn
    w = (hashed(n, 1, 2001) - 1000).astype(np.float32) / np.float32(1000) * np.float32(0.05)
    w = w.reshape(out, inn)
    for o in range(out):
        w[o] *= np.float32(2.0 ** ROW_EXP[o % len(ROW_EXP)])
    w[1, :32] = 0  # an all-zero block
    v = ((hashed(n, 2, 2001) - 1000).astype(np.float32) / np.float32(2000)).reshape(out, inn)
    ms = (hashed(n_scales, 3, 501).astype(np.float32) / np.float32(1000)) + np.float32(0.5)
    dw = ((hashed(n, 4, 2001) - 1000).astype(np.float32) / np.float32(1000)).reshape(out, inn)
    return w, v, ms, dw


def ceil_div(a, b):
    return (a + b - 1) // b


def run(name, out, inn, group):
    if name == "fp8_block":
        tm, tn = ceil_div(out, 128), ceil_div(inn, 128)
        n_scales = tm * tn
    elif group == -1:
        n_scales = out
    else:
        n_scales = out * ceil_div(inn, group)
    w, v, ms, dw = make_inputs(out, inn, n_scales)
    wt, dwt = torch.from_numpy(w), torch.from_numpy(dw)
    ms_t = torch.from_numpy(ms.copy()).requires_grad_(True)
    if name == "fp8_block":
        pm, pn = tm * 128 - out, tn * 128 - inn
        vp = torch.nn.functional.pad(torch.from_numpy(v), (0, pn, 0, pm))
        vp = vp.view(tm, 128, tn, 128).permute(0, 2, 1, 3).contiguous().requires_grad_(True)
        wq, _, _ = quant_block_fp_sym(wt, max_scale=ms_t.view(tm, tn), group_size=(128, 128), v=vp)
    elif name == "fp8":
        vp = torch.from_numpy(v.copy()).requires_grad_(True)
        wq, _, _ = quant_fp8_sym(wt, max_scale=ms_t, group_size=-1, v=vp)
    else:
        ng = ceil_div(inn, group)
        vp = torch.nn.functional.pad(torch.from_numpy(v), (0, ng * group - inn)).reshape(-1, group)
        vp = vp.contiguous().requires_grad_(True)
        if name == "nvfp4":
            wq, _, _ = nv_fp4(wt, bits=4, group_size=16, v=vp, max_scale=ms_t)
        elif name == "nvfp4_fused":
            shared_amax = float(np.float32(np.abs(w).max()) * np.float32(3))
            gs = calculate_gparam(shared_amax, 16)
            wq, _, _ = nv_fp4(wt, bits=4, group_size=16, v=vp, max_scale=ms_t, global_scale=gs)
        else:
            bits = 4 if name == "mxfp4" else 8
            wq, _, _ = quant_mx(wt, bits=bits, group_size=32, v=vp, max_scale=ms_t, data_type="mx_fp%d" % bits)
    (wq * dwt).sum().backward()
    g = vp.grad
    if name == "fp8_block":
        g = g.permute(0, 2, 1, 3).reshape(tm * 128, tn * 128)[:out, :inn]
    elif name != "fp8":
        g = g.reshape(out, -1)[:, :inn]
    return {
        name + ".wq": wq.detach().numpy().astype(np.float32).copy(),
        name + ".dv": g.detach().numpy().astype(np.float32).copy(),
        name + ".dms": ms_t.grad.detach().numpy().astype(np.float32).reshape(-1).copy(),
    }


def main():
    tensors = {}
    for name, (out, inn, group) in CASES.items():
        tensors.update(run(name, out, inn, group))
    save_file(tensors, sys.argv[1], metadata={"generator": "bench/ecosystem/fp_grad_reference.py",
                                               "auto_round": __import__("auto_round").__version__,
                                               "torch": torch.__version__})
    for k in sorted(tensors):
        print(k, tensors[k].shape, float(np.abs(tensors[k]).sum()))


if __name__ == "__main__":
    main()
