"""The result of AutoRound.quantize_and_save, as plain Python values."""

import math
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class BlockStats:
    layer: int
    loss_before: Optional[float]  # SignRound's first-step loss; None without tuning or when resumed
    loss_after: Optional[float]   # the lowest loss, whose parameters were kept
    best_iter: Optional[int]
    seconds: float
    rss_bytes: int
    peak_rss_bytes: int
    resumed: bool                 # taken from the checkpoint of an interrupted run
    expert_groups: int = 1        # MoE blocks: groups the experts were tuned in


@dataclass
class QuantizeReport:
    outputs: List[str]            # one folder (or .gguf file) per format
    output_bytes: List[int]
    seconds: float
    peak_rss_bytes: int
    bits_per_weight: float        # quantized linears: codes + scales + zeros
    quantized_layers: int
    kept_16bit: List[str]         # layers a packed format could not store
    blocks: List[BlockStats] = field(default_factory=list)
    resumed_blocks: int = 0
    work_dir_peak_bytes: int = 0
    plan: str = ""                # the memory plan as printed
    ppl_original: Optional[float] = None   # with eval_dataset
    ppl_quantized: Optional[float] = None


def _opt(x):
    return None if math.isnan(x) else x


def from_core(r, evaluated):
    blocks = [BlockStats(b.layer, _opt(b.loss_before), _opt(b.loss_after),
                         None if b.best_iter < 0 else b.best_iter, b.seconds, b.rss_bytes,
                         b.peak_rss_bytes, b.resumed, b.expert_groups) for b in r.blocks]
    return QuantizeReport(
        outputs=[str(p) for p in r.outputs], output_bytes=list(r.output_bytes), seconds=r.seconds,
        peak_rss_bytes=r.peak_rss_bytes, bits_per_weight=r.bits_per_weight,
        quantized_layers=r.quantized_layers, kept_16bit=list(r.kept_16bit), blocks=blocks,
        resumed_blocks=r.resumed_blocks, work_dir_peak_bytes=r.work_dir_peak_bytes, plan=r.plan,
        ppl_original=r.ppl_original if evaluated else None,
        ppl_quantized=r.ppl_quantized if evaluated else None)
