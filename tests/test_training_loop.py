"""The shared loop: frozen modules stay in eval mode, the one batch sampler, early stopping that
survives a resume, training curves in metrics and trackers, bars never in a log file."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from xinwen.training.config.sections import TrainSection

TOPIC_YAML = Path(__file__).resolve().parent.parent / "configs" / "topic.yaml"
from xinwen.training.loop import LOG_EVERY_STEPS, LengthBucketSampler, Task, run_training


class ToyModel(torch.nn.Module):
    """A frozen feature extractor with dropout under a trainable head (the shape of both tasks)."""

    def __init__(self):
        super().__init__()
        self.frozen = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        self.frozen.requires_grad_(False)
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(4, 2))

    def forward(self, x):
        return self.head(self.frozen(x))

    def save_pretrained(self, folder, safe_serialization=True):
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))


def _toy_run(tmp_path, scores=None, **train):
    """run_training on 40 random items; returns (run, modes seen in compute_loss, evaluate calls)."""
    settings = {"output_dir": str(tmp_path / "toy"), "epochs": 2, "batch_size": 2, "lr": 0.01, "head_lr": 0.01,
                "checkpoint_every": 0, "mixed_precision": "no", "early_stopping_patience": 5, **train}
    cfg = TrainSection(**settings)
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    modes, evaluations = [], []

    def setup(accelerator, resuming):
        model = ToyModel()

        def compute_loss(m, batch):
            modes.append((m.frozen.training, m.frozen[1].training, m.head.training, m.head[0].training))
            return torch.nn.functional.cross_entropy(m(batch["x"]), batch["y"])

        def evaluate(m):
            evaluations.append(m.training)
            m.train()  # a careless evaluation: the loop must restore frozen eval mode itself
            return {"score": scores[len(evaluations) - 1] if scores else float(len(evaluations))}

        sampler = LengthBucketSampler([1] * 40, cfg.batch_size, 8, cfg.seed)
        return Task(model, [{"params": list(model.head.parameters())}], sampler,
                    lambda idx: {"x": x[idx], "y": y[idx]}, compute_loss, evaluate)

    return run_training(cfg, setup), modes, evaluations


def test_frozen_modules_stay_in_eval_mode_through_training(tmp_path):
    _, modes, evaluations = _toy_run(tmp_path)
    assert len(modes) == 40 and evaluations == [False, False]  # evaluate runs in eval mode
    assert set(modes) == {(False, False, True, True)}  # frozen part (and its dropout) eval; head trains


def test_frozen_layers_of_a_real_topic_run_stay_in_eval_mode(tiny_encoder_dir, topic_files, tmp_path, monkeypatch):
    from test_train_topic import tiny_config

    from xinwen.training.topic import train as topic_module

    build, modes = topic_module.TopicSetup.build, []

    def recording_build(self, accelerator, resuming):
        task = build(self, accelerator, resuming)
        loss = task.compute_loss

        def compute_loss(m, batch):
            layers = m.bert.encoder.layer
            modes.append((m.bert.embeddings.training, layers[0].training, layers[1].training))
            return loss(m, batch)

        task.compute_loss = compute_loss
        return task

    monkeypatch.setattr(topic_module.TopicSetup, "build", recording_build)
    train, dev = topic_files
    topic_module.train_topic(tiny_config(tiny_encoder_dir, train, dev, tmp_path / "run", "train.epochs=2",
                                         "model.freeze_layers=1", "model.freeze_embeddings=true", "lexical.weight=0"))
    assert len(modes) == 16 and set(modes) == {(False, False, True)}


def test_the_sampler_covers_every_item_once_in_similar_length_batches_fixed_by_seed_and_epoch():
    lengths = [random.Random(i).randint(1, 50) for i in range(100)]
    sampler = LengthBucketSampler(lengths, batch_size=4, window=20, seed=3)
    first = list(sampler)
    assert sorted(i for batch in first for i in batch) == list(range(100))
    within = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first]
    assert sum(within) / len(within) < 10  # sorted inside windows: little padding
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first == list(LengthBucketSampler(lengths, 4, 20, seed=3))


def test_an_early_stopped_run_does_not_train_on_when_started_again(tmp_path):
    run, modes, _ = _toy_run(tmp_path, scores=[0.5, 0.4, 0.3], epochs=3, early_stopping_patience=1)
    assert run.state.stopped and run.state.epoch == 2 and run.state.best_epoch == 1
    again, modes_again, evaluations = _toy_run(tmp_path, scores=[0.5, 0.4, 0.3], epochs=3, early_stopping_patience=1)
    assert modes_again == [] and evaluations == [] and again.state.epoch == 2


def test_training_curves_in_the_history_and_the_csv_tracker(tmp_path):
    run, _, _ = _toy_run(tmp_path, report_to="csv")
    log = run.state.training_log
    assert [e["step"] for e in log] == list(range(LOG_EVERY_STEPS, 41, LOG_EVERY_STEPS))
    assert all(e["train_loss"] > 0 and e["lr"] >= 0 for e in log)
    assert all(e["train_loss"] > 0 and "lr" in e and "score" in e for e in run.state.history)
    with (tmp_path / "toy" / "logs" / "training_log.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = {r["name"] for r in rows}
    assert {"train/loss", "train/lr", "dev/score"} <= names
    assert [int(r["step"]) for r in rows if r["name"] == "dev/score"] == [20, 40]


def test_tensorboard_tracker_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    _toy_run(tmp_path, report_to="tensorboard", epochs=1)
    assert list((tmp_path / "toy" / "logs").rglob("events.out.tfevents.*"))


def test_training_output_for_a_log_file_has_no_bars_or_escape_codes(tiny_encoder_dir, topic_files, tmp_path, capfd):
    from test_train_topic import tiny_config_overrides

    from xinwen.training.cli import main

    train, dev = topic_files
    overrides = tiny_config_overrides(tiny_encoder_dir, train, dev, tmp_path / "run", "train.epochs=2",
                                      "lexical.weight=0", "train.head_init=linear_probe")
    assert main(["train", str(TOPIC_YAML), *overrides, "--no-eval"]) == 0
    err = capfd.readouterr().err  # stderr is not a terminal here, as when redirected to a file
    assert "\x1b[" not in err and "\r" not in err
