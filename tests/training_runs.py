"""Run a tiny training in a child process, optionally killed with SIGKILL right after its first
mid-epoch checkpoint: what `kill -9` leaves behind, nothing more (no exception handlers run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

CHILD = r'''
import json, logging, os, signal, sys
import torch
torch.set_num_threads(1)  # the same float reduction order in every run
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
config_path, overrides, kill = json.loads(sys.argv[1])
from xinwen.training.config.sections import load_config
cfg = load_config(config_path, overrides)
if kill:
    from xinwen.training.loop import TrainingLoop
    save = TrainingLoop.save_checkpoint
    def save_then_die(self):
        save(self)
        if self.state.step_in_epoch:  # a mid-epoch checkpoint is on disk: die like kill -9
            os.kill(os.getpid(), signal.SIGKILL)
    TrainingLoop.save_checkpoint = save_then_die
if cfg.task == "topic":
    from xinwen.training.topic.train import train_topic as train
else:
    from xinwen.training.headline.train import train_headline as train
train(cfg)
'''


def run_training_child(config_path: str | None, overrides: list[str], kill_mid_epoch: bool = False,
                       timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    arg = json.dumps([config_path, overrides, kill_mid_epoch])
    return subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True, env=env,
                          timeout=timeout)
