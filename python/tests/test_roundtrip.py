"""AutoRound.quantize_and_save writes the same bytes as the C++ CLI for the same settings, with the
calibration data given as a file, as a list of texts and as a list of token-id lists."""

import json

import pytest

import autoround_cpp as ar
from conftest import run_cli, tree_bytes

# Tiny and fast: 4 blocks, a few SignRound steps on a few short samples.
SETTINGS = dict(bits=4, group_size=32, sym=False, iters=4, nsamples=8, seqlen=32, batch_size=4, seed=3)
CLI_FLAGS = ["--bits", 4, "--group_size", 32, "--asym", "--iters", 4, "--nsamples", 8, "--seqlen", 32,
             "--batch_size", 4, "--seed", 3]


def cli_quantize(model, dataset, out, *extra):
    run_cli("quantize", "--model", model, "--dataset", dataset, "--output_dir", out, *CLI_FLAGS, *extra)
    return tree_bytes(out)


@pytest.fixture(scope="module")
def cli_text_output(tiny_model, calib_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "text"
    return cli_quantize(tiny_model, calib_text[0], out)


def test_dataset_file_gives_the_cli_bytes(tiny_model, calib_text, cli_text_output, tmp_path):
    out = tmp_path / "py"
    report = ar.AutoRound(tiny_model, dataset=str(calib_text[0]), progress=False, **SETTINGS).quantize_and_save(out)
    assert report.outputs == [str(out)]
    assert tree_bytes(out) == cli_text_output


def test_list_of_texts_gives_the_cli_bytes_of_the_same_documents_in_a_file(tiny_model, calib_text,
                                                                            cli_text_output, tmp_path):
    out = tmp_path / "py"
    ar.AutoRound(tiny_model, dataset=calib_text[1], progress=False, **SETTINGS).quantize_and_save(out)
    assert tree_bytes(out) == cli_text_output


def test_token_id_lists_give_the_cli_bytes_of_the_same_ids_in_a_file(tiny_model, tmp_path):
    ids = [[(7 * i + 13 * j) % 250 + 3 for j in range(40 + i)] for i in range(10)]
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    expected = cli_quantize(tiny_model, ids_file, tmp_path / "cli")
    out = tmp_path / "py"
    ar.AutoRound(tiny_model, dataset=ids, progress=False, **SETTINGS).quantize_and_save(out)
    assert tree_bytes(out) == expected


def test_scheme_recipe_and_formats_map_to_the_cli_flags(tiny_model, calib_text, tmp_path):
    # W2A16G64 = --bits 2 --group_size 64 (sym); recipe "rtn" = iters 0, plain RTN; two formats.
    run_cli("quantize", "--model", tiny_model, "--output_dir", tmp_path / "cli", "--bits", 2, "--group_size", 64,
            "--recipe", "rtn", "--format", "auto_gptq,fake")
    expected = tree_bytes(tmp_path / "cli")
    out = tmp_path / "py"
    report = ar.AutoRound(tiny_model, scheme="W2A16G64", recipe="rtn", progress=False).quantize_and_save(
        out, format="auto_gptq,fake")
    assert sorted(report.outputs) == sorted(str(out / f) for f in ("auto_gptq", "fake"))
    assert tree_bytes(out) == expected


def test_fp_scheme_maps_to_the_cli_scheme_flag(tiny_model, tmp_path):
    # scheme="MXFP4" = --scheme MXFP4 (one table in the library): the same fake output, byte for byte.
    run_cli("quantize", "--model", tiny_model, "--output_dir", tmp_path / "cli", "--scheme", "MXFP4",
            "--iters", 0, "--format", "fake")
    out = tmp_path / "py"
    ar.AutoRound(tiny_model, scheme="MXFP4", iters=0, progress=False).quantize_and_save(out, format="fake")
    assert tree_bytes(out) == tree_bytes(tmp_path / "cli")


def test_expert_groups_map_to_the_cli_flag(tmp_path):
    # A mixture-of-experts model tuned in 2 expert groups: the CLI's bytes, and the report says so.
    model = tmp_path / "moe"
    run_cli("generate", "--preset", "tiny-qwen3-moe", "--output_dir", model, "--seed", 4)
    run_cli("quantize", "--model", model, "--dataset", "builtin", "--output_dir", tmp_path / "cli", *CLI_FLAGS,
            "--expert_groups", 2)
    out = tmp_path / "py"
    report = ar.AutoRound(model, dataset="builtin", expert_groups=2, progress=False, **SETTINGS).quantize_and_save(out)
    assert tree_bytes(out) == tree_bytes(tmp_path / "cli")
    moe_blocks = [b for b in report.blocks if b.expert_groups > 1]
    assert [b.expert_groups for b in moe_blocks] == [2] * len(moe_blocks) and len(moe_blocks) >= 2
