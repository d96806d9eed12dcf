"""Resume is exact on a real configuration: `kill -9` after the first mid-epoch checkpoint, the
same command again, and the final weights are byte-identical to an uninterrupted run's.

    python bench/bench_resume_exact.py topic --work /tmp/resume_topic \
        train.max_train_items=300 train.max_eval_items=100 train.checkpoint_every=5
    python bench/bench_resume_exact.py headline --work /tmp/resume_headline \
        train.max_train_items=300 train.max_eval_items=50 train.checkpoint_every=4 train.epochs=2

Three `xinwen train CONFIG` processes, as a user runs them: one uninterrupted; one killed with
SIGKILL from outside as soon as a mid-epoch checkpoint is complete on disk (its
``loop_state.json`` says ``step_in_epoch > 0``); then that same command again, which resumes.
Prints one JSON line: whether the two ``model.safetensors`` are byte-identical, their sha256,
and the wall time of each run. The suite checks the same on tiny models
(tests/test_training_resume.py); this is the check on the bundled configs' real models.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def train_command(config: str, output_dir: Path, overrides: list[str]) -> list[str]:
    return ["xinwen", "train", config, f"train.output_dir={output_dir}", "--no-eval", *overrides]


def mid_epoch_checkpoint(output_dir: Path) -> Path | None:
    for state in sorted((output_dir / "checkpoints").glob("step-*/loop_state.json")):
        try:
            if json.loads(state.read_text())["step_in_epoch"] > 0:
                return state.parent
        except (json.JSONDecodeError, KeyError, OSError):  # still being written
            continue
    return None


def run(command: list[str], log: Path) -> float:
    start = time.time()
    with log.open("w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.time() - start


def run_and_kill(command: list[str], output_dir: Path, log: Path) -> tuple[float, str]:
    start = time.time()
    with log.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while child.poll() is None:
            found = mid_epoch_checkpoint(output_dir)
            if found is not None:
                child.send_signal(signal.SIGKILL)
                child.wait()
                return time.time() - start, found.name
            time.sleep(0.2)
    raise SystemExit(f"the run ended (exit {child.returncode}) before a mid-epoch checkpoint; lower "
                     "train.checkpoint_every")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="bundled config name or YAML path")
    parser.add_argument("overrides", nargs="*", help="key=value overrides that cut the run down")
    parser.add_argument("--work", required=True, help="an empty or new folder for the three runs")
    args = parser.parse_intermixed_args()  # overrides may follow --work
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    full, resumed = work / "full", work / "resumed"
    seconds = {"uninterrupted": run(train_command(args.config, full, args.overrides), work / "full.log")}
    seconds["until_kill"], checkpoint = run_and_kill(train_command(args.config, resumed, args.overrides), resumed,
                                                     work / "killed.log")
    seconds["resumed"] = run(train_command(args.config, resumed, args.overrides), work / "resumed.log")
    a, b = sha256(full / "model.safetensors"), sha256(resumed / "model.safetensors")
    resumed_log = (work / "resumed.log").read_text(errors="replace")
    print(json.dumps({"config": args.config, "overrides": args.overrides, "killed_after": checkpoint,
                      "resume_logged": "resumed from" in resumed_log, "byte_identical": a == b, "sha256_uninterrupted": a, "sha256_resumed": b,
                      "seconds": {k: round(v, 1) for k, v in seconds.items()}}))
    sys.exit(0 if a == b else 1)


if __name__ == "__main__":
    main()
