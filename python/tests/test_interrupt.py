"""Ctrl-C during quantize_and_save: KeyboardInterrupt within seconds, the half-written output gone,
the checkpoint kept; resume=True then finishes with the bytes of an uninterrupted CLI run."""

import signal
import subprocess
import sys
import time

import pytest

import autoround_cpp as ar
from conftest import run_cli, tree_bytes

# Long enough per block (SignRound steps) that the signal lands inside the run.
SETTINGS = dict(group_size=32, iters=20, nsamples=8, seqlen=64, batch_size=4, seed=5)
CLI_FLAGS = ["--group_size", 32, "--iters", 20, "--nsamples", 8, "--seqlen", 64, "--batch_size", 4, "--seed", 5]

CHILD = """
import sys
import autoround_cpp as ar
model, data, out, work, settings = sys.argv[1:6]
def progress(block, n_blocks):
    print(f"block {block.layer} done", flush=True)
ar.AutoRound(model, dataset=data, work_dir=work, progress=progress, verbose=False,
             **eval(settings)).quantize_and_save(out)
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def model8(tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny8"
    run_cli("generate", "--preset", "tiny", "--num_layers", 8, "--output_dir", out, "--seed", 11)
    return out


def test_sigint_raises_keyboard_interrupt_and_resume_finishes(model8, calib_text, tmp_path):
    data, out, work = calib_text[0], tmp_path / "out", tmp_path / "work"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model8), str(data), str(out), str(work),
                              repr(SETTINGS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline()
        assert first.strip() == "block 0 done", first + child.stderr.read()
        child.send_signal(signal.SIGINT)
        sent = time.monotonic()
        stdout, stderr = child.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
    assert "finished" not in stdout
    assert child.returncode != 0
    assert "KeyboardInterrupt: interrupted by SIGINT" in stderr, stderr
    assert waited < 5, f"{waited:.1f} s from SIGINT to exit"
    assert (work / "checkpoint.json").is_file()
    assert not out.exists()

    report = ar.AutoRound(model8, dataset=str(data), work_dir=work, resume=True, progress=False, verbose=False,
                          **SETTINGS).quantize_and_save(out)
    assert report.resumed_blocks >= 1
    assert [b.resumed for b in report.blocks[:report.resumed_blocks]] == [True] * report.resumed_blocks
    assert not work.exists()  # removed once the output is complete

    run_cli("quantize", "--model", model8, "--dataset", data, "--output_dir", tmp_path / "cli", *CLI_FLAGS)
    assert tree_bytes(out) == tree_bytes(tmp_path / "cli")
