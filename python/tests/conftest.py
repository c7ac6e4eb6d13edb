"""Shared pieces of the binding tests: the CLI to compare against, tiny generated models, the
shared fixtures (skipped with the path looked for when absent, as the C++ tests do)."""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli_path():
    return Path(os.environ.get("AR_CLI", REPO / "build" / "autoround"))


def run_cli(*args, check=True):
    """Runs the C++ `autoround` with string arguments; returns the CompletedProcess."""
    exe = cli_path()
    if not exe.exists():
        pytest.skip(f"the C++ CLI is not built at {exe} (set AR_CLI)")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, check=check)


def fixture_path(rel):
    root = Path(os.environ.get("AR_FIXTURES", REPO.parent / "shared" / "fixtures"))
    p = root / rel
    if not p.exists():
        pytest.skip(f"fixture not found: {p} (set AR_FIXTURES to the shared fixtures folder)")
    return p


def tree_bytes(root):
    """{relative path: sha256} of every file under root (or of root itself when it is a file)."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)) if p != root else p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 4-block Llama-shaped random model with its byte-level tokenizer (generate --preset tiny)."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    run_cli("generate", "--preset", "tiny", "--output_dir", out, "--seed", 7)
    return out


@pytest.fixture(scope="session")
def calib_text(tmp_path_factory):
    """Calibration text: documents separated by blank lines, as a text dataset file holds them."""
    docs = [f"Document {i}: the quick brown fox {i} jumps over the lazy dog, again and again. " * 3
            for i in range(24)]
    path = tmp_path_factory.mktemp("data") / "calib.txt"
    path.write_text("\n\n".join(docs))
    return path, docs


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory):
    """A 4-block Qwen3-shaped random model whose linears all divide into GGUF blocks of 32."""
    out = tmp_path_factory.mktemp("models") / "tiny-qwen3"
    run_cli("generate", "--preset", "tiny-qwen3", "--output_dir", out, "--seed", 9)
    return out
