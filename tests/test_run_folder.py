"""One run per output folder: another run is refused, the same run resumes or is left alone,
--overwrite starts afresh, and after success only train.keep_checkpoints checkpoints remain."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from test_train_topic import tiny_config_overrides

from xinwen.training.cli import main
from xinwen.training.run_folder import MANIFEST, config_differences, data_fingerprint


TOPIC_YAML = Path(__file__).resolve().parent.parent / "configs" / "topic.yaml"


def _train(encoder, train, dev, out, *extra, flags=()):
    """`xinwen train configs/topic.yaml` on the tiny encoder: one epoch, no lexical expert."""
    overrides = tiny_config_overrides(encoder, train, dev, out, "train.epochs=1", "lexical.weight=0",
                                      "train.keep_checkpoints=0", *extra)
    return main(["train", str(TOPIC_YAML), *overrides, "--no-eval", *flags])


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_config_differences_name_the_keys_and_skip_the_ones_that_do_not_shape_weights():
    saved = {"train": {"seed": 13, "output_dir": "a", "keep_checkpoints": 2, "report_to": "none"}, "threshold": 0.0}
    now = {"train": {"seed": 14, "output_dir": "b", "keep_checkpoints": 0, "report_to": "csv"}, "threshold": 0.0}
    assert config_differences(saved, now) == ["train.seed: 13 -> 14"]
    assert config_differences(saved, saved) == []


def test_a_run_saved_before_a_key_existed_reads_as_the_old_behaviour():
    saved = {"model": {"freeze_embeddings": True}, "data": {"train": "a.jsonl"}}
    old_behaviour = {"model": {"freeze_embeddings": True, "decoder_input_dropout": None},
                     "data": {"train": "a.jsonl", "extra_train": []}}
    assert config_differences(saved, old_behaviour) == []  # resumable as it was run
    new_default = {"model": {"freeze_embeddings": True, "decoder_input_dropout": 0.1}, "data": saved["data"]}
    assert config_differences(saved, new_default) == [
        "model.decoder_input_dropout: None -> 0.1 (the run predates the key; to resume it, set "
        "model.decoder_input_dropout=null)"]
    assert config_differences({"model": {}}, {"model": {"unknown_new": 1}}) == ["model.unknown_new: '(absent)' -> 1"]


def test_data_fingerprint_sees_any_change_of_the_records():
    records = [{"id": 1, "title": "海关", "label": "trade"}]
    assert data_fingerprint(records, []) == data_fingerprint([dict(records[0])], [])
    assert data_fingerprint(records, []) != data_fingerprint([{**records[0], "label": "other"}], [])
    assert data_fingerprint(records, []) != data_fingerprint([], records)  # train vs dev


def test_another_run_is_refused_the_same_run_is_kept_overwrite_starts_afresh(tiny_encoder_dir, topic_files,
                                                                              tmp_path, caplog):
    train, dev = topic_files
    out = tmp_path / "run"
    assert _train(tiny_encoder_dir, train, dev, out) == 0
    assert not (out / "checkpoints").exists()  # keep_checkpoints=0: only the model remains
    assert (out / "README.md").is_file() and json.loads((out / MANIFEST).read_text())["finished"]
    weights, config = _sha(out / "model.safetensors"), (out / "config.yaml").read_text()

    caplog.clear()
    assert _train(tiny_encoder_dir, train, dev, out, "train.seed=14") == 2
    assert str(out) in caplog.text and "train.seed: 13 -> 14" in caplog.text and "--overwrite" in caplog.text
    assert _sha(out / "model.safetensors") == weights and (out / "config.yaml").read_text() == config

    caplog.clear()
    dev.write_text(dev.read_text(encoding="utf-8").replace("海关", "海港", 1), encoding="utf-8")
    assert _train(tiny_encoder_dir, train, dev, out) == 2
    assert "data fingerprint" in caplog.text and "train.seed" not in caplog.text

    (out / "notes.txt").write_text("mine")
    (out / "eval").mkdir()
    assert _train(tiny_encoder_dir, train, dev, out, "train.seed=14", flags=["--overwrite"]) == 0
    assert "seed: 14" in (out / "config.yaml").read_text() and _sha(out / "model.safetensors") != weights
    assert (out / "notes.txt").read_text() == "mine" and not (out / "eval").exists()

    caplog.clear()
    caplog.set_level(logging.INFO)
    weights = _sha(out / "model.safetensors")
    assert _train(tiny_encoder_dir, train, dev, out, "train.seed=14") == 0  # the same run: nothing to do
    assert "nothing to train" in caplog.text and _sha(out / "model.safetensors") == weights


def test_keep_checkpoints_after_success(tiny_encoder_dir, topic_files, tmp_path):
    train, dev = topic_files
    out = tmp_path / "run"
    assert _train(tiny_encoder_dir, train, dev, out, "train.keep_checkpoints=1", "train.checkpoint_every=2") == 0
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000008"]  # the newest; no best/


def test_a_model_folder_without_a_run_record_is_refused(tiny_classifier_dir, tiny_encoder_dir, topic_files,
                                                        tmp_path, caplog):
    import shutil

    train, dev = topic_files
    out = tmp_path / "someone_elses_model"
    shutil.copytree(tiny_classifier_dir, out)
    assert _train(tiny_encoder_dir, train, dev, out) == 2
    assert MANIFEST in caplog.text and "--overwrite" in caplog.text
