#!/usr/bin/env python3
"""One SignRound tuning step in plain PyTorch (CPU), timed: the torch half of bench/vs_torch.sh.

A Qwen3-4B-shaped decoder block with random weights whose seven linears are fake-quantized
W4G128 sym every step, forward of a batch, MSE loss against a fixed random target, autograd
backward to v / min_scale / max_scale, signed update. Written from SPEC §2 so that it does the
work AutoRound's tuning loop does for one block, without AutoRound or transformers.

  vs_torch_step.py --batch 1 --seqlen 2048 --iters 3 --threads 2 --dtype f32|bf16
  vs_torch_step.py --flops --batch 1 --seqlen 2048      (FLOPs per step only; needs no torch)

The last line is machine-readable: RESULT step_s=<mean after warm-up> first_s=<warm-up step>
flops=<per step> loss0=<loss of the first step>.
"""
import argparse
import math
import sys
import time

HIDDEN, FFN, HEADS, KV_HEADS, HEAD_DIM = 2560, 9728, 32, 8, 128
BITS, GROUP = 4, 128
RMS_EPS, ROPE_THETA = 1e-6, 1e6

# (in, out) of q, k, v, o, gate, up, down, in block_step_bench's order.
LINEARS = [
    ("q", HIDDEN, HEADS * HEAD_DIM),
    ("k", HIDDEN, KV_HEADS * HEAD_DIM),
    ("v", HIDDEN, KV_HEADS * HEAD_DIM),
    ("o", HEADS * HEAD_DIM, HIDDEN),
    ("gate", HIDDEN, FFN),
    ("up", HIDDEN, FFN),
    ("down", FFN, HIDDEN),
]


def step_flops(batch, seqlen):
    """GEMM FLOPs (2*M*N*K each) of one step, counted the same way for both implementations.

    Forward: every linear. Backward: every linear's weight gradient, and the input gradient of
    o, gate, up and down only: the block input needs no gradient (only the quantization
    tunables do), so neither autograd nor our block_backward computes d(normed input) through
    q, k and v. Attention: causal, so only the T(T+1)/2 query-key pairs at or below the
    diagonal count; QK^T and PV forward, dV, dP, dQ, dK backward. A recomputation of the
    probabilities in the backward (both sides do one) is implementation overhead, not counted.
    """
    t = seqlen
    fwd = sum(2 * t * i * o for _, i, o in LINEARS)
    dw = fwd
    dx = sum(2 * t * i * o for name, i, o in LINEARS if name not in ("q", "k", "v"))
    pairs = t * (t + 1) / 2
    attn_one = 2 * HEADS * HEAD_DIM * pairs  # one (T x T x D)-sized causal product, all heads
    attn = 2 * attn_one + 4 * attn_one
    return batch * (fwd + dw + dx + attn)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--iters", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--flops", action="store_true", help="print the FLOPs of one step and exit")
    a = ap.parse_args()
    if a.flops:
        print(f"{step_flops(a.batch, a.seqlen):.0f}")
        return 0
    import torch  # here so that --flops works without torch

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    step_s, first_s, loss0 = run(torch, a)
    flops = step_flops(a.batch, a.seqlen)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {a.dtype}: "
          f"first step {first_s:.2f} s, then {step_s:.2f} s/step over {a.iters} steps, "
          f"{flops / step_s / 1e9:.1f} GFLOP/s (loss {loss0:.5g})")
    print(f"RESULT step_s={step_s:.4f} first_s={first_s:.4f} flops={flops:.0f} loss0={loss0:.6g}")
    return 0


def run(torch, a):
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1)
    # Random weights rounded to bf16, as block_step_bench makes them (a bf16 checkpoint's values),
    # but held in f32: AutoRound on CPU keeps the block f32 and lets autocast cast to bf16.
    def randn(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=g) * std + mean).to(torch.bfloat16).float()

    input_norm, post_norm = randn(HIDDEN, std=0.01, mean=1.0), randn(HIDDEN, std=0.01, mean=1.0)
    q_norm, k_norm = randn(HEAD_DIM, std=0.01, mean=1.0), randn(HEAD_DIM, std=0.01, mean=1.0)
    weights = {name: randn(o, i, std=0.02) for name, i, o in LINEARS}  # nn.Linear layout (out, in)
    # The tunables, as AutoRound makes them: v like the weight (0), one min/max scale per group (1).
    tun = {}
    for name, i, o in LINEARS:
        tun[name] = [torch.zeros(o, i, requires_grad=True),
                     torch.ones(o, i // GROUP, requires_grad=True),
                     torch.ones(o, i // GROUP, requires_grad=True)]
    params = [p for ps in tun.values() for p in ps]

    B, T = a.batch, a.seqlen
    x = torch.randn(B, T, HIDDEN, generator=g)
    target = torch.randn(B, T, HIDDEN, generator=g)

    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos = torch.cat([angles, angles], -1).cos()  # (T, D), broadcast over batch and heads
    sin = torch.cat([angles, angles], -1).sin()

    def rms_norm(h, w):
        dtype = h.dtype
        h32 = h.float()
        h32 = h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + RMS_EPS)
        return w * h32.to(dtype)

    def rope(h):  # h (B, heads, T, D): rotate the two halves of each head
        half = h.shape[-1] // 2
        rotated = torch.cat([-h[..., half:], h[..., :half]], -1)
        return h * cos + rotated * sin

    def round_ste(t):  # round forward, identity backward
        return t + (t.round() - t).detach()

    def fake_quant(w, v, min_scale, max_scale):
        """W4G128 sym "full range" quantize-dequantize, differentiable in v and the scales."""
        out, inp = w.shape
        wg = w.reshape(out, inp // GROUP, GROUP)
        wmin = wg.amin(-1).clamp(max=0)  # constants: the weights are not trained
        wmax = wg.amax(-1).clamp(min=0)
        lo, hi = -wmin * min_scale, wmax * max_scale
        # The larger side lands on code -2^(b-1); which side wins is not differentiated.
        larger_is_hi = (hi >= lo).detach()
        mag = torch.where(larger_is_hi, hi, lo) / 2 ** (BITS - 1)
        mag = mag.clamp(min=1e-5)  # no gradient where floored
        scale = torch.where(larger_is_hi, -mag, mag)
        scale = scale + (scale.half().float() - scale).detach()  # stored in fp16, straight through
        scale = scale.unsqueeze(-1)
        q = round_ste(wg / scale + v.reshape(out, inp // GROUP, GROUP))
        q = q.clamp(-(2 ** (BITS - 1)), 2 ** (BITS - 1) - 1)  # passes gradient only inside the range
        return (scale * q).reshape(out, inp)

    def block(h):
        wq = {name: fake_quant(weights[name], *tun[name]) for name, _, _ in LINEARS}
        xn = rms_norm(h, input_norm)
        q = F.linear(xn, wq["q"]).view(B, T, HEADS, HEAD_DIM)
        k = F.linear(xn, wq["k"]).view(B, T, KV_HEADS, HEAD_DIM)
        v = F.linear(xn, wq["v"]).view(B, T, KV_HEADS, HEAD_DIM)
        q = rope(rms_norm(q, q_norm).transpose(1, 2))
        k = rope(rms_norm(k, k_norm).transpose(1, 2))
        v = v.transpose(1, 2)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        h = h + F.linear(att.transpose(1, 2).reshape(B, T, HEADS * HEAD_DIM), wq["o"])
        hn = rms_norm(h, post_norm)
        mlp = F.silu(F.linear(hn, wq["gate"])) * F.linear(hn, wq["up"])
        return h + F.linear(mlp, wq["down"])

    lr = 1.0 / 200  # AutoRound's default for 200 iterations; the value does not change the cost
    best = {"loss": math.inf, "params": None}

    def step():
        with torch.no_grad():
            for _, min_scale, max_scale in tun.values():  # a projection before use, as AutoRound
                min_scale.clamp_(0, 1)
                max_scale.clamp_(0, 1)
        if a.dtype == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.mse_loss(block(x).float(), target)
        else:
            loss = F.mse_loss(block(x), target)
        loss.backward()
        with torch.no_grad():
            # Keep the parameters of the best loss, as the tuning loop does (ours quantizes them).
            if loss.item() < best["loss"]:
                best["loss"] = loss.item()
                best["params"] = [p.detach().clone() for p in params]
            for p in params:
                p -= lr * p.grad.sign()
                p.grad = None
        return loss.item()

    t0 = time.perf_counter()
    loss0 = step()  # warm-up: allocator, oneDNN/MKL kernels
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    return (time.perf_counter() - t0) / a.iters, first_s, loss0


if __name__ == "__main__":
    sys.exit(main())
