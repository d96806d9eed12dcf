"""One run per output folder: refuse to mix runs, resume the same run, clean up after success.

A run folder holds ``training_run.json`` (the data fingerprint, whether the run finished, and the
files it wrote) beside ``config.yaml`` (the resolved config). Training into a folder that holds
another run - a different config or different data - is refused with what differs and the fix;
the same run resumes from its newest checkpoint, or is left as it is when it already finished;
``--overwrite`` deletes the previous run's files (only files this project writes) and starts
afresh. Without this a retrain with another seed exited 0 having changed nothing but config.yaml.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from xinwen.training.config.loading import ConfigError, save_yaml, to_dict
from xinwen.training.model_card import CARD_FILE

logger = logging.getLogger(__name__)

MANIFEST = "training_run.json"
CONFIG_FILE = "config.yaml"
# Keys that change where or how a run is saved and reported, never its weights: a run may resume
# with other values.
NOT_COMPARED = {"train.output_dir", "train.resume", "train.keep_checkpoints", "train.checkpoint_every",
                "train.report_to"}
# What training, `xinwen eval`, `xinwen lexical` and `xinwen first-stage` write into a run folder
# whatever the model type; save_pretrained's files are recorded in the manifest when written.
PROJECT_FILES = (MANIFEST, CONFIG_FILE, "metrics.json", "model.safetensors", "config.json", "xinwen.json",
                 "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "lexical.json", "lexical.safetensors", "first_stage.json", "first_stage.safetensors")
PROJECT_FOLDERS = ("checkpoints", "eval", "logs")
SHOWN_DIFFERENCES = 8


def data_fingerprint(*splits: list[dict]) -> str:
    """sha256 over the records of each split, in order (any change of text, label or order shows)."""
    digest = hashlib.sha256()
    for records in splits:
        digest.update(b"\x00split\x00")
        for record in records:
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
            digest.update(b"\n")
    return digest.hexdigest()


def flat_config(data: dict, prefix: str = "") -> dict:
    """{"train": {"seed": 13}} -> {"train.seed": 13}."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# Keys added after a release, with the value that does what runs saved before them did: a run
# folder without the key is read as having that value (else no older run could be resumed).
ADDED_LATER = {"model.decoder_input_dropout": None, "data.extra_train": [], "generation.max_chars": 0,
               "generation.rerank": False, "generation.block_echo": False, "generation.lead_fallback": False}


def config_differences(saved: dict, current: dict) -> list[str]:
    """``key: saved -> current`` for every compared key whose value differs."""
    old, new = flat_config(saved), flat_config(current)
    keys = sorted((old.keys() | new.keys()) - NOT_COMPARED)
    missing = "(absent)"
    differences = []
    for k in keys:
        before, now = old.get(k, ADDED_LATER.get(k, missing)), new.get(k, missing)
        if before != now:
            later = f" (the run predates the key; to resume it, set {k}={_yaml_value(before)})" \
                if k not in old and k in ADDED_LATER else ""
            differences.append(f"{k}: {before!r} -> {now!r}{later}")
    return differences


def _yaml_value(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@dataclass
class RunFolder:
    """The output folder of one run, claimed by ``claim``."""

    path: Path
    finished: bool  # it already holds this very run, complete: nothing to train

    @classmethod
    def claim(cls, cfg, fingerprint: str, overwrite: bool = False) -> "RunFolder":
        """Check ``cfg.train.output_dir`` before any model loads, clear it when asked, and record
        this run in it. Raises ConfigError (exit 2) when it holds another run."""
        path = Path(cfg.train.output_dir)
        if overwrite:
            remove_run_files(path)
        elif _holds_a_run(path):
            manifest = _read_manifest(path)
            _refuse_another_run(path, manifest, to_dict(cfg), fingerprint)
            if manifest.get("finished"):
                return cls(path, finished=True)
            if not cfg.train.resume:  # the same run, asked not to resume: start it afresh
                remove_run_files(path)
        else:
            _refuse_replacing_user_files(path)
        _make_folder(path)
        # The manifest first: another process of the same launch that finds config.yaml then also
        # finds the manifest, and does not take the folder for the user's files.
        _write_manifest(path, {"data_fingerprint": fingerprint, "finished": False, "files": []})
        save_yaml(cfg, path / CONFIG_FILE)
        return cls(path, finished=False)

    def finish(self, keep_checkpoints: int, files_before: set[str]) -> None:
        """Mark the run finished, record the files it wrote, then drop what resuming needed:
        ``checkpoints/best`` always, the step checkpoints beyond the newest ``keep_checkpoints``
        (0 = the whole checkpoints folder). Marked first: a kill in between leaves a finished run."""
        manifest = _read_manifest(self.path)
        written = sorted({p.name for p in self.path.iterdir()} - files_before)
        manifest.update(finished=True, files=sorted(set(manifest.get("files", [])) | set(written)))
        _write_manifest(self.path, manifest)
        checkpoints = self.path / "checkpoints"
        if keep_checkpoints <= 0:
            shutil.rmtree(checkpoints, ignore_errors=True)
            return
        shutil.rmtree(checkpoints / "best", ignore_errors=True)
        for old in sorted(checkpoints.glob("step-*"))[:-keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def listing(self) -> set[str]:
        return {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()


def _refuse_replacing_user_files(path: Path) -> None:
    """A folder no xinwen run wrote (no manifest) whose files training would replace - the user's
    README.md (the model card takes that name), a config.json - is refused, not silently overwritten."""
    if not path.is_dir() or (path / MANIFEST).is_file():
        return
    taken = sorted(name for name in {*PROJECT_FILES, CARD_FILE} if (path / name).exists())
    if taken:
        raise ConfigError([f"{path} holds files training would replace: {taken}, and no run of xinwen "
                           f"(no {MANIFEST}); set train.output_dir to another folder, or train with "
                           "--overwrite to replace them"], "train.output_dir")


def _make_folder(path: Path) -> None:
    """Create the run folder, or raise ConfigError naming train.output_dir when a file is in the
    way or the folder cannot be created (else a raw FileExistsError/PermissionError escapes)."""
    if path.exists() and not path.is_dir():
        raise ConfigError([f"{path} is a file, expected a folder for the run (the file is left as it is); "
                           f"set train.output_dir to a folder path"], "train.output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError([f"cannot create the folder {path}: {err.strerror or err}; "
                           f"set train.output_dir to a folder you can write"], "train.output_dir") from err


def remove_run_files(path: Path) -> None:
    """Delete the files and folders this project writes into a run folder, nothing else."""
    if not path.is_dir():
        return
    recorded = _read_manifest(path).get("files", []) if (path / MANIFEST).is_file() else []
    for name in {*PROJECT_FILES, *recorded}:
        target = path / name
        if target.is_file() or target.is_symlink():
            target.unlink()
        elif target.is_dir() and name in recorded:
            shutil.rmtree(target)
    for name in PROJECT_FOLDERS:
        shutil.rmtree(path / name, ignore_errors=True)
    logger.info("--overwrite: removed the previous run's files from %s", path)


def _holds_a_run(path: Path) -> bool:
    """True when the folder holds weights training would overwrite: a model, the best weights or
    a complete checkpoint. A run that failed before its first checkpoint leaves nothing to keep."""
    checkpoints = path / "checkpoints"
    return ((path / "model.safetensors").is_file() or (checkpoints / "best").is_dir()
            or any(checkpoints.glob("step-*/loop_state.json")))


def _read_manifest(path: Path) -> dict:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(path: Path, manifest: dict) -> None:
    partial = path / f"{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    partial.replace(path / MANIFEST)


def _refuse_another_run(path: Path, manifest: dict, config: dict, fingerprint: str) -> None:
    """Raise ConfigError naming what differs between the folder's run and this one, if anything."""
    fix = "train with --overwrite to replace it, or set train.output_dir to another folder"
    if not manifest or not (path / CONFIG_FILE).is_file():
        raise ConfigError([f"{path} holds a model or run this version of xinwen did not record (no {MANIFEST}); "
                           f"{fix}"], "train.output_dir")
    saved = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    problems = config_differences(saved, config)
    if len(problems) > SHOWN_DIFFERENCES:
        problems = problems[:SHOWN_DIFFERENCES] + [f"... and {len(problems) - SHOWN_DIFFERENCES} more"]
    if manifest.get("data_fingerprint") != fingerprint:
        problems.append("the training/dev records differ from the ones the folder's run was trained on "
                        "(data fingerprint)")
    if problems:
        raise ConfigError([f"{path} holds another run; what differs from this one:", *problems, fix],
                          "train.output_dir")
