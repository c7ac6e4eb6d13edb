"""Errors from the library arrive as autoround_cpp.Error with its message: the file and the problem."""

import shutil

import pytest

import autoround_cpp as ar


def test_missing_model_folder_names_the_file(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ar.Error, match=str(missing)):
        ar.AutoRound(missing, iters=0, progress=False).quantize_and_save(tmp_path / "out")


def test_corrupt_config_names_config_json(tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "config.json").write_text("{ not json")
    with pytest.raises(ar.Error, match="config.json"):
        ar.AutoRound(model, iters=0, progress=False).quantize_and_save(tmp_path / "out")


def test_option_checks_come_from_the_library(tiny_model, tmp_path):
    with pytest.raises(ar.Error, match="--bits 5: supported are 2, 3, 4, 8"):
        ar.AutoRound(tiny_model, bits=5, iters=0, progress=False).quantize_and_save(tmp_path / "out")
    with pytest.raises(ar.Error, match="needs calibration data"):
        ar.AutoRound(tiny_model, iters=10, progress=False).quantize_and_save(tmp_path / "out")
    with pytest.raises(ar.Error, match="--recipe: 'fastest' is not one of"):
        ar.AutoRound(tiny_model, recipe="fastest")


def test_python_side_argument_errors(tiny_model):
    with pytest.raises(ValueError, match="scheme 'INT4'"):
        ar.AutoRound(tiny_model, scheme="INT4")
    with pytest.raises(TypeError, match="dataset"):
        ar.AutoRound(tiny_model, dataset=[1.5, 2.5])
    with pytest.raises(ValueError, match="dataset: the list is empty"):
        ar.AutoRound(tiny_model, dataset=[])


def test_evaluate_names_a_missing_dataset_file(tiny_model, tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(ar.Error, match=str(missing)):
        ar.evaluate(tiny_model, missing, seqlen=64)


def test_token_id_outside_the_vocabulary(tiny_model):
    with pytest.raises(ar.Error, match="token id 100000 .* outside the model's vocabulary"):
        ar.evaluate(tiny_model, [[1, 2, 100000, 4]], seqlen=4)
