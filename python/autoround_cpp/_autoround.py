"""AutoRound, shaped after the Python AutoRound's class so that a script changes by one import.

Every setting maps onto one field of the library's option table (ar::QuantizeOptions); a setting
left as None keeps the library's default, which is also the CLI's. A scheme string sets bits,
group size, symmetry and data type; bits=/group_size=/sym= given explicitly win over an integer
scheme (a floating-point one fixes them: a different value is a ValueError), and options given
explicitly win over a recipe, as in AutoRound.
"""

import json
import os
import warnings

from . import _core
from ._progress import make_progress
from ._report import from_core
from ._run import run_interruptible

def parse_scheme(scheme, bits=None, group_size=None, sym=None):
    """'W4A16' -> 4-bit, group 128, symmetric; 'W2A16G64' -> 2-bit, group 64; 'MXFP4', 'MXFP8', 'NVFP4',
    'FP8', 'FP8_BLOCK': the floating-point formats. The library's table, so the CLI's --scheme reads the
    same names. bits/group_size/sym, when given, override an integer preset and must agree with a
    floating-point one. Returns a QuantScheme (bits, group_size, sym, data_type)."""
    try:
        return _core.resolve_scheme(scheme, bits, group_size, sym)
    except _core.Error as e:
        raise ValueError(str(e)) from None


def _set_dataset(o, dataset):
    if dataset is None:
        return
    if isinstance(dataset, (str, os.PathLike)):
        o.dataset = os.fspath(dataset)
        return
    items = list(dataset)
    if not items:
        raise ValueError("dataset: the list is empty")
    if all(isinstance(x, str) for x in items):
        o.dataset_texts = items
    elif all(isinstance(x, int) for x in items):
        o.dataset_ids = [items]  # one tokenized document
    elif all(isinstance(x, (list, tuple)) and all(isinstance(t, int) for t in x) for x in items):
        o.dataset_ids = [list(x) for x in items]
    else:
        raise TypeError("dataset: expected a file path, a list of texts, or a list of token-id lists")


def _bytes(value, what):
    if value is None or isinstance(value, int):
        return value or 0
    return _core.parse_bytes(str(value), what)


class AutoRound:
    def __init__(self, model, tokenizer=None, *, scheme="W4A16", bits=None, group_size=None, sym=None,
                 iters=None, nsamples=None, seqlen=None, batch_size=None, gradient_accumulate_steps=None,
                 lr=None, minmax_lr=None, enable_minmax_tuning=None, enable_quanted_input=None, seed=None,
                 dataset=None, layer_config=None, disable_opt_rtn=None, recipe=None, amp=None,
                 max_ram=None, max_disk=None, cache=None, low_cpu_mem_usage=None, work_dir=None,
                 expert_groups=None, resume=False, checkpoint=True, verbose=True, progress=True):
        if not isinstance(model, (str, os.PathLike)):
            raise TypeError("model: pass the HuggingFace model folder (a path); model objects are not read")
        if tokenizer is not None:
            warnings.warn("autoround_cpp reads tokenizer.json from the model folder; the tokenizer argument is ignored")
        o = _core.QuantizeOptions()
        o.model_dir = os.fspath(model)
        o.scheme = parse_scheme(scheme, bits, group_size, sym)
        if recipe is not None:  # a recipe sets only what the caller left unset (named as CLI flags)
            given = {flag for flag, value in (("--iters", iters), ("--nsamples", nsamples), ("--lr", lr),
                                              ("--disable_opt_rtn", disable_opt_rtn)) if value is not None}
            _core.apply_recipe(o, recipe, given)
        t = o.tune
        for name, value in (("iters", iters), ("batch_size", batch_size), ("lr", lr), ("minmax_lr", minmax_lr),
                            ("gradient_accumulate_steps", gradient_accumulate_steps),
                            ("enable_minmax_tuning", enable_minmax_tuning), ("seed", seed)):
            if value is not None:
                setattr(t, name, value)
        for name, value in (("nsamples", nsamples), ("seqlen", seqlen), ("disable_opt_rtn", disable_opt_rtn),
                            ("enable_quanted_input", enable_quanted_input), ("cache", cache),
                            ("low_cpu_mem_usage", low_cpu_mem_usage), ("expert_groups", expert_groups)):
            if value is not None:
                setattr(o, name, value)
        if amp is not None:
            o.amp = _core.Amp.On if amp else _core.Amp.Off
        _set_dataset(o, dataset)
        if layer_config is not None:
            o.layer_config = layer_config if isinstance(layer_config, str) else json.dumps(layer_config)
        o.max_ram = _bytes(max_ram, "max_ram")
        o.max_disk = _bytes(max_disk, "max_disk")
        if work_dir is not None:
            o.work_dir = os.fspath(work_dir)
        o.resume = resume
        o.checkpoint = checkpoint
        self.options = o
        self.verbose = verbose
        self.progress = progress

    def quantize_and_save(self, output_dir="tmp_autoround", format="auto_round", *, overwrite=False,
                          max_shard_size=None, eval_dataset=None, eval_seqlen=None):
        """Quantizes block by block into output_dir (several formats: one subfolder each) and returns
        a QuantizeReport. Ctrl-C raises KeyboardInterrupt at the next safe point and keeps the
        checkpoint: the same call with resume=True continues."""
        o = self.options
        o.output_dir = os.fspath(output_dir)
        o.formats = [f.strip() for f in (format.split(",") if isinstance(format, str) else format) if f.strip()]
        o.overwrite = overwrite
        if max_shard_size is not None:
            o.max_shard_bytes = _bytes(max_shard_size, "max_shard_size")
        if eval_dataset is not None:
            o.eval_dataset = os.fspath(eval_dataset)
        if eval_seqlen is not None:
            o.eval_seqlen = eval_seqlen
        on_block, sink = make_progress(self.progress, self.verbose)
        log = (sink.write if sink else None) if self.verbose else (lambda line: None)
        _core.set_quiet(not self.verbose)
        try:
            report = run_interruptible(_core.run_quantize, o, log, on_block)
        finally:
            _core.set_quiet(False)
            if hasattr(on_block, "close"):
                on_block.close()
        return from_core(report, evaluated=eval_dataset is not None)
