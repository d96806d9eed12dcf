"""Where training curves go besides metrics.json: ``train.report_to`` through accelerate's trackers.

``none`` (default): the curves are in ``metrics.json`` (``history`` per epoch, ``training_log``
every few steps) and in the log lines, so a default run adds no files and needs nothing extra.
``csv``: ``logs/training_log.csv`` (step, name, value rows), readable anywhere, no dependency.
``tensorboard``: event files under ``logs/`` (``pip install 'xinwen[tensorboard]'``).
"""
from __future__ import annotations

import csv
import importlib.util
from dataclasses import asdict
from pathlib import Path

from accelerate.tracking import GeneralTracker

from xinwen.training.config.loading import ConfigError

CSV_LOG = "training_log.csv"


class CSVTracker(GeneralTracker):
    """Appends ``step,name,value`` rows: one long table, so new metrics never change its columns."""

    name = "csv"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, logging_dir: str | Path):
        super().__init__()
        self.path = Path(logging_dir) / CSV_LOG

    @property
    def tracker(self) -> Path:
        return self.path

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.is_file():
            self.path.write_text("step,name,value\n", encoding="utf-8")

    def store_init_configuration(self, values: dict) -> None:
        """The resolved config is config.yaml beside the model; nothing to repeat here."""

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        with self.path.open("a", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            for name, value in values.items():
                writer.writerow([step, name, value])


def make_trackers(report_to: str, logging_dir: Path) -> list | None:
    """The ``log_with`` argument of ``Accelerator`` for ``train.report_to``."""
    if report_to == "none":
        return None
    if report_to == "csv":
        return [CSVTracker(logging_dir)]
    if report_to == "tensorboard":
        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(["train.report_to: 'tensorboard' needs the tensorboard package; install it with "
                               "pip install 'xinwen[tensorboard]', or set train.report_to=csv"])
        return ["tensorboard"]
    raise ConfigError([f"train.report_to: expected one of none, csv, tensorboard, got {report_to!r}"])


def tracker_config(train_section) -> dict:
    """The train section's scalar settings, as trackers' hyperparameter tables accept them."""
    return {k: v for k, v in asdict(train_section).items() if isinstance(v, (bool, int, float, str))}
