"""evaluate() gives the perplexity `autoround eval` prints (6 decimals) for the same model and data:
an HF folder, a GGUF file, token-id lists, and the stories260K fixture when present."""

import json
import re

import autoround_cpp as ar
from conftest import fixture_path, run_cli


def cli_perplexity(*args):
    out = run_cli("eval", *args).stdout
    m = re.search(r"^perplexity: (\S+)$", out, re.M)
    assert m, out
    return m.group(1)


def test_hf_folder_builtin_text(tiny_model):
    assert f"{ar.evaluate(tiny_model, 'builtin', seqlen=64):.6f}" == \
        cli_perplexity("--model", tiny_model, "--dataset", "builtin", "--seqlen", 64)


def test_token_id_lists_match_the_same_ids_in_a_file(tiny_model, tmp_path):
    ids = [[(5 * i + 11 * j) % 256 + 1 for j in range(70 + 9 * i)] for i in range(3)]
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(ids))
    assert f"{ar.evaluate(tiny_model, ids, seqlen=32):.6f}" == \
        cli_perplexity("--model", tiny_model, "--dataset", path, "--seqlen", 32)


def test_gguf_file(tiny_qwen3, tmp_path):
    run_cli("quantize", "--model", tiny_qwen3, "--iters", 0, "--format", "gguf:q8_0", "--output_dir", tmp_path / "g")
    gguf = next((tmp_path / "g").glob("*.gguf"))
    assert f"{ar.evaluate(gguf, 'builtin', seqlen=64):.6f}" == \
        cli_perplexity("--model", gguf, "--dataset", "builtin", "--seqlen", 64)


def test_stories260k_fixture():
    model = fixture_path("models/stories260K/hf")
    text = fixture_path("models/stories260K/derived-data/stories260K_samples_seed1234.txt")
    assert f"{ar.evaluate(model, text, seqlen=128, limit=8):.6f}" == \
        cli_perplexity("--model", model, "--dataset", text, "--seqlen", 128, "--limit", 8)
