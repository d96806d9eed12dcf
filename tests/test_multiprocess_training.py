"""Multi-GPU training goes through `accelerate launch`: the same training contract with two CPU
processes (gloo) completes, the processes share the data, and the saved model loads and predicts.
Written against the public CLI (`python -m xinwen.training.cli train ...`), so it holds whatever the
loop looks like inside."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
from test_train_topic import tiny_config_overrides

from xinwen.inference.topic.classifier import NewsClassifier

BATCH = 4  # tiny_config_overrides' train.batch_size


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tiny_encoder_dir, tmp_path_factory):
    """One two-process training run, shared by the tests below (it takes most of a minute)."""
    from tiny_models import topic_records, write_jsonl

    folder = tmp_path_factory.mktemp("two_process")
    train = write_jsonl(folder / "train.jsonl", topic_records())
    dev = write_jsonl(folder / "dev.jsonl", topic_records(2))
    out = folder / "run"
    # The launcher a multi-GPU machine uses (--multi_gpu: torch.distributed, one process per device).
    # On a machine without GPUs accelerate joins the processes only when ACCELERATE_USE_CPU is set
    # (gloo backend); `--cpu --num_processes 2` alone starts a single process.
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()), "-m", "xinwen.training.cli", "train", "topic",
                *tiny_config_overrides(tiny_encoder_dir, train, dev, out, "train.epochs=3"), "--no-eval"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(launcher, capture_output=True, text=True, env=env, timeout=300, cwd=folder)
    return done, out, len(topic_records())


def test_accelerate_launch_trains_with_two_cpu_processes(launched):
    done, out, n_train = launched
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    # The two processes split each epoch's batches (one process alone takes ceil(30/4) = 8 steps).
    assert metrics["history"][0]["step"] <= math.ceil(math.ceil(n_train / BATCH) / 2) + 1, metrics["history"]
    clf = NewsClassifier.from_pretrained(out, device="cpu")
    assert clf.predict({"title": "海关", "body": "贸易出口进口"}).label in clf.labels
    assert json.loads((out / "training_run.json").read_text())["finished"] is True


def test_only_the_main_process_writes_the_model(launched):
    done, _, _ = launched
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert log.count("xinwen.training.topic.train: saved ") == 1, log[-3000:]
