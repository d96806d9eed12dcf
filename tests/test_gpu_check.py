"""bench/gpu_check.sh --smoke runs every step of the GPU check on CPU at tiny sizes (tiny models)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_headline_train import headline_files, headline_overrides
from test_train_topic import tiny_config_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_smoke_runs_every_step_on_cpu(tiny_encoder_dir, topic_files, tmp_path):
    train, dev = topic_files
    topic = [o for o in tiny_config_overrides(tiny_encoder_dir, train, dev, tmp_path / "unused", "train.epochs=1")
             if not o.startswith("train.output_dir=")]
    (tmp_path / "headline").mkdir()
    h_train, h_dev, _ = headline_files(tmp_path / "headline")  # its own folder: same file names as topic's
    headline = [o for o in headline_overrides(tmp_path, tiny_encoder_dir, h_train, h_dev, tmp_path / "unused")
                if not o.startswith(("train.output_dir=", "train.epochs="))]
    work = tmp_path / "work"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke", "--workdir", str(work),
                           "--topic-set", *topic, "--headline-set", *headline],
                          capture_output=True, text=True, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((work / "gpu_check.json").read_text())
    assert report["mode"] == "smoke" and report["device"] == "cpu"
    assert report["train_topic"]["mixed_precision"] == "no" and report["train_topic"]["dev"]
    assert report["score_device"]["records"] == 300
    # Smoke runs the "device" steps on the CPU too, so agreement must be complete.
    agreement = report["score_agreement"]
    assert agreement["articles"] == 60 and agreement["label_agreement"] == 1.0
    assert agreement["max_probability_diff"] <= 1e-5
    assert report["headlines"]["articles"] == 16 and report["headlines"]["cpu_exact_match"] == "8/8"
    assert f"total {report['total_seconds']:.0f} s" in done.stdout and "labels agree 100.00%" in done.stdout


def test_gpu_check_without_a_gpu_says_use_smoke(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--workdir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "--smoke" in done.stderr
