"""Resume is exact: a run killed (SIGKILL) after its first mid-epoch checkpoint and started again
ends with a model.safetensors byte-identical to an uninterrupted run's, for both tasks."""
from __future__ import annotations

import json
import logging
import signal

import pytest
import torch

from test_headline_train import CONFIG as HEADLINE_CONFIG
from test_headline_train import headline_files, headline_overrides
from test_train_topic import tiny_config_overrides
from training_runs import run_training_child


@pytest.fixture(autouse=True)
def one_thread():
    """The child process trains on one thread; the same float reduction order here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_here(config_path, overrides):
    from xinwen.training.config.sections import load_config
    from xinwen.training.headline.train import train_headline
    from xinwen.training.topic.train import train_topic

    cfg = load_config(config_path, overrides)
    (train_topic if cfg.task == "topic" else train_headline)(cfg)


def _kill_resume_and_compare(tmp_path, config_path, overrides_for, caplog):
    _train_here(config_path, overrides_for(tmp_path / "full"))

    # Only the killed run needs a process of its own (imports cost more than the tiny training).
    killed = run_training_child(config_path, overrides_for(tmp_path / "resumed"), kill_mid_epoch=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    states = [json.loads(p.read_text()) for p in (tmp_path / "resumed" / "checkpoints").glob("step-*/loop_state.json")]
    assert len(states) == 1 and states[0]["step_in_epoch"] > 0  # killed mid-epoch, one checkpoint
    assert not (tmp_path / "resumed" / "model.safetensors").exists()

    with caplog.at_level(logging.INFO, logger="xinwen.training.loop"):
        _train_here(config_path, overrides_for(tmp_path / "resumed"))
    assert "resumed from" in caplog.text
    a = (tmp_path / "full" / "model.safetensors").read_bytes()
    b = (tmp_path / "resumed" / "model.safetensors").read_bytes()
    assert a == b
    # The curves too: dev scores, and training loss and learning rate per logging step.
    saved = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("full", "resumed")]
    assert saved[0]["history"] == saved[1]["history"]
    assert saved[0]["training_log"] == saved[1]["training_log"]


def test_topic_resume_after_kill_is_byte_identical(tiny_encoder_dir, topic_files, tmp_path, caplog):
    train, dev = topic_files
    # Frozen bottom layer (dropout off there), gradient accumulation, a mid-epoch checkpoint.
    extra = ("train.epochs=2", "train.checkpoint_every=3", "train.grad_accum=2", "model.freeze_layers=1",
             "model.freeze_embeddings=true", "lexical.weight=0")
    _kill_resume_and_compare(tmp_path, None,
                             lambda out: tiny_config_overrides(tiny_encoder_dir, train, dev, out, *extra), caplog)


def test_headline_resume_after_kill_is_byte_identical(tiny_encoder_dir, tmp_path, caplog):
    train, dev, _ = headline_files(tmp_path)
    # One frozen encoder layer: cached states below, a trainable layer with dropout above.
    extra = {"model.freeze_encoder_layers": 1, "train.checkpoint_every": 4}
    _kill_resume_and_compare(tmp_path, str(HEADLINE_CONFIG),
                             lambda out: headline_overrides(tmp_path, tiny_encoder_dir, train, dev, out, **extra), caplog)
