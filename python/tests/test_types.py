"""What the API returns: the report's fields and types, per-block losses with and without tuning."""

import math
import threading

import pytest

import autoround_cpp as ar


def test_report_of_a_tuned_run(tiny_model, calib_text, tmp_path):
    seen = []
    report = ar.AutoRound(tiny_model, iters=3, nsamples=4, seqlen=32, batch_size=2, group_size=32,
                          dataset=str(calib_text[0]), progress=lambda b, n: seen.append((b.layer, n)),
                          verbose=False).quantize_and_save(tmp_path / "out")
    assert isinstance(report, ar.QuantizeReport)
    assert report.outputs == [str(tmp_path / "out")]
    assert all(isinstance(n, int) and n > 0 for n in report.output_bytes)
    assert isinstance(report.seconds, float) and report.seconds > 0
    assert isinstance(report.peak_rss_bytes, int) and report.peak_rss_bytes > 0
    assert 4 < report.bits_per_weight < 5  # 4-bit codes plus a scale and a zero per 32 weights
    assert report.quantized_layers > 0 and report.resumed_blocks == 0
    assert report.ppl_original is None and report.ppl_quantized is None
    assert [b.layer for b in report.blocks] == [0, 1, 2, 3]
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)]
    for b in report.blocks:
        assert isinstance(b, ar.BlockStats)
        assert isinstance(b.loss_before, float) and isinstance(b.loss_after, float)
        assert 0 <= b.loss_after <= b.loss_before  # the best loss includes the first step's
        assert 0 <= b.best_iter < 3 and not b.resumed
        assert b.peak_rss_bytes >= b.rss_bytes > 0


def test_rtn_run_has_no_losses_and_eval_fills_perplexities(tiny_model, tmp_path):
    report = ar.AutoRound(tiny_model, iters=0, group_size=32, disable_opt_rtn=True, progress=False, verbose=False) \
        .quantize_and_save(tmp_path / "out", eval_dataset="builtin", eval_seqlen=64)
    assert all(b.loss_before is None and b.loss_after is None and b.best_iter is None for b in report.blocks)
    assert math.isfinite(report.ppl_original) and math.isfinite(report.ppl_quantized)


def test_module_surface():
    assert issubclass(ar.Error, RuntimeError)
    assert issubclass(ar.Interrupted, ar.Error)
    assert isinstance(ar.__version__, str) and ar.__version__
    s = ar.parse_scheme("W4A16")
    assert (s.bits, s.group_size, s.sym, s.data_type) == (4, 128, True, ar._core.DataType.Int)
    s = ar.parse_scheme("w2a16g64")
    assert (s.bits, s.group_size, s.sym) == (2, 64, True)
    assert ar.parse_scheme("W2A16G64", bits=4).bits == 4  # explicit values win over an integer preset
    s = ar.parse_scheme("mxfp4")
    assert (s.bits, s.group_size, s.data_type) == (4, 32, ar._core.DataType.MXFP4)
    assert ar.parse_scheme("FP8_BLOCK").data_type == ar._core.DataType.FP8Block
    with pytest.raises(ValueError, match="scheme NVFP4 stores 4-bit weights; bits 8"):
        ar.parse_scheme("NVFP4", bits=8)


def test_default_progress_display_counts_the_blocks(tiny_model, tmp_path, capsys):
    # A tqdm bar when tqdm is installed, plain "[k/n]" lines otherwise: both show "4/4" at the end.
    ar.AutoRound(tiny_model, iters=0, group_size=32, verbose=False).quantize_and_save(tmp_path / "out")
    assert "4/4" in capsys.readouterr().err


def test_long_work_releases_the_gil(tiny_model):
    # While evaluate runs in another thread this one keeps running Python; a call holding the GIL
    # would leave it at most a few turns between the thread's start and end.
    done = []
    worker = threading.Thread(target=lambda: done.append(ar.evaluate(tiny_model, "builtin", seqlen=64)))
    worker.start()
    turns = 0
    while worker.is_alive():
        turns += 1
    worker.join()
    assert done and turns > 1000
