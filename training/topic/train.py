"""`xinwen train` for the topic task: fine-tune an encoder, calibrate, save a pipeline-ready folder.

setup -> train -> finalize: ``TopicSetup.build`` supplies the model, batches, loss and dev
evaluation to the shared loop (training/loop.py), which trains; ``finalize_topic`` calibrates the
best epoch's weights, fits the lexical expert and writes the folder.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.settings import ClassifierSettings
from xinwen.inference.text import ArticleText, as_article, classifier_text
from xinwen.inference.topic.classifier import NewsClassifier, pad_batch
from xinwen.inference.topic.first_stage import remove_first_stage
from xinwen.inference.topic.lexical import remove_lexical
from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.training.config.sections import TopicConfig
from xinwen.training.data.topic import DESCRIPTION_ID, load_topic_splits
from xinwen.training.loop import LengthBucketSampler, Task, TrainingRun, run_training
from xinwen.training.model_card import write_model_card
from xinwen.training.run_folder import RunFolder, data_fingerprint
from xinwen.training.topic.encoder_setup import classifier_from_encoder, freeze_bottom, training_windows
from xinwen.training.topic.head_init import linear_probe_init
from xinwen.training.topic.lexical_fit import fit_lexical_expert, same_fit_as_baseline
from xinwen.training.topic.metrics import classification_report, expected_calibration_error, fit_temperature
from xinwen.training.vocab_pruning import prune_vocabulary

logger = logging.getLogger(__name__)

HEAD_NAMES = ("classifier", "pooler", "score")


@dataclass
class TopicTrainingResult:
    """What ``train_topic`` hands its caller (``xinwen train`` passes the last two to the eval)."""

    output_dir: Path
    metrics: dict  # what metrics.json holds (empty on the other processes of a multi-process run)
    # The best epoch's encoder probabilities on dev at T = 1, when this process computed them
    # (None after a resume past that epoch, or when the folder already held this run).
    dev_probabilities: torch.Tensor | None = None
    # The lexical expert's n-gram model when it is the same fit as the eval's TF-IDF baseline.
    fitted_baseline: NgramModel | None = None


@dataclass
class TopicData:
    """The records of one run, read once; setup and finalize both use them."""

    train_records: list[dict]
    dev_records: list[dict]
    labels: list[str]
    train_articles: list[ArticleText] = field(init=False)
    dev_articles: list[ArticleText] = field(init=False)

    def __post_init__(self):
        self.train_articles = [as_article(r, i) for i, r in enumerate(self.train_records)]
        self.dev_articles = [as_article(r, i) for i, r in enumerate(self.dev_records)]

    @property
    def label2id(self) -> dict[str, int]:
        return {lab: i for i, lab in enumerate(self.labels)}

    @property
    def gold_dev(self) -> list[str]:
        return [r["label"] for r in self.dev_records]


def train_topic(cfg: TopicConfig, overwrite: bool = False) -> TopicTrainingResult:
    """Train ``cfg`` into ``cfg.train.output_dir``: refuse a folder holding another run (unless
    ``overwrite``), resume this run's newest checkpoint, or return at once when it is finished."""
    t0 = time.time()
    check_model_source(cfg.model.name_or_path)  # a wrong path fails before the folder is claimed
    data = TopicData(*load_topic_splits(cfg), list(cfg.data.labels))
    folder = RunFolder.claim(cfg, data_fingerprint(data.train_records, data.dev_records), overwrite)
    if folder.finished:
        logger.info("%s already holds this run, finished; nothing to train (--overwrite retrains it)", folder.path)
        return TopicTrainingResult(folder.path, json.loads((folder.path / "metrics.json").read_text()))
    setup = TopicSetup(cfg, data)
    run = run_training(cfg.train, setup.build, run_name="topic")
    if not run.accelerator.is_main_process:  # one writer: the main process finalizes, the others are done
        return TopicTrainingResult(folder.path, {})
    files_before = folder.listing()
    result = finalize_topic(cfg, data, setup, run, t0)
    folder.finish(cfg.train.keep_checkpoints, files_before)
    return result


class TopicSetup:
    """Builds the topic task for the loop and keeps what finalize needs (tokenizer, the prior
    shift, the dev probabilities of each epoch evaluated in this process)."""

    def __init__(self, cfg: TopicConfig, data: TopicData):
        self.cfg, self.data = cfg, data
        self.settings = ClassifierSettings(text=cfg.text, fallback_label=cfg.data.fallback_label,
                                           threshold=cfg.threshold)
        self.dev_probabilities: list[torch.Tensor] = []

    def build(self, accelerator, resuming: bool) -> Task:
        """Model, batches, loss and evaluation; called by the loop after it seeded."""
        cfg, data = self.cfg, self.data
        model, self.tokenizer = self._load_model()
        encoded = training_windows(self.tokenizer, self.data.train_articles, cfg.text)
        y = [data.label2id[r["label"]] for r in data.train_records]
        # Written by the user or the project, never undersampled: extra articles and label descriptions.
        always = [str(r.get("id", "")).startswith(("extra-", DESCRIPTION_ID)) for r in data.train_records]
        items = EpochItems(y, data.label2id[cfg.data.fallback_label], cfg.data.fallback_per_epoch, cfg.train.seed, always)
        sampler = LengthBucketSampler([len(ids) for ids in encoded], cfg.train.batch_size,
                                      cfg.train.batch_size * 32, cfg.train.seed, select=items.select)
        first_epoch = items.indices(0)
        expected = Counter(y[i] for i in first_epoch)
        weights = _class_weights([k for k, c in expected.items() for _ in range(c)], len(data.labels),
                                 cfg.train.class_weighting)
        self.adjust = cfg.train.prior_correction * _prior_shift(y, always, expected, weights, len(data.labels))
        logger.info("logit adjustment for the corpus prior: %s",
                    {lab: round(float(a), 2) for lab, a in zip(data.labels, self.adjust)})
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.train.label_smoothing)
        pad_id = self.tokenizer.pad_token_id or 0
        if cfg.train.head_init == "linear_probe" and not resuming:  # a resumed run loads its trained head
            model.to(accelerator.device)  # the probe's forward pass on the GPU when there is one
            linear_probe_init(model, encoded, y, first_epoch, weights, pad_id, batch_size=cfg.train.eval_batch_size)
        loss_fn.to(accelerator.device)

        def collate(idx: list[int]) -> dict:
            batch = pad_batch([encoded[i] for i in idx], pad_id)
            batch["labels"] = torch.tensor([y[i] for i in idx])
            return batch

        def compute_loss(m, batch: dict) -> torch.Tensor:
            target = batch.pop("labels")
            return loss_fn(m(**batch).logits.float(), target)

        return Task(model, _parameter_groups(model, cfg), sampler, collate, compute_loss, self.evaluate)

    def _load_model(self):
        """The encoder with a new classification head, vocabulary pruned, bottom layers frozen."""
        cfg = self.cfg
        model, tokenizer = classifier_from_encoder(cfg, self.data.labels)
        if cfg.model.prune_vocab:
            texts = [classifier_text(a, cfg.text.prefix) for a in self.data.train_articles]
            model, tokenizer = prune_vocabulary(model, tokenizer, texts)
        tokenizer.model_max_length = cfg.text.max_length
        freeze_bottom(model, cfg.model.freeze_layers, cfg.model.freeze_embeddings)
        return model, tokenizer

    def evaluate(self, model) -> dict:
        """Dev macro-F1 under the decision rule that will be saved (T = 1, prior shift added)."""
        clf = NewsClassifier(model, self.tokenizer, self.settings, next(model.parameters()).device)
        probs = clf.probabilities(self.data.dev_articles, batch_size=self.cfg.train.eval_batch_size)
        probs = torch.softmax(probs.clamp_min(1e-9).log() + self.adjust, dim=-1)
        self.dev_probabilities.append(probs)
        labels = self.data.labels
        rep = classification_report(self.data.gold_dev, [labels[i] for i in probs.argmax(-1).tolist()], labels)
        return {"score": rep["macro_f1"], "macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"]}

    def best_epoch_probabilities(self, run: TrainingRun) -> torch.Tensor | None:
        """The best epoch's dev probabilities when this process evaluated that epoch."""
        first_epoch_here = run.state.epoch - len(self.dev_probabilities) + 1
        index = run.state.best_epoch - first_epoch_here
        return self.dev_probabilities[index] if 0 <= index < len(self.dev_probabilities) else None


class EpochItems:
    """Each epoch's training items: all topic items (and all ``always`` items) + a fresh sample of
    the fallback class, shuffled. Deterministic in (seed, epoch) so a resumed run replays exactly
    the same batches."""

    def __init__(self, labels: list[int], fallback: int, per_epoch: int, seed: int, always: list[bool]):
        self.labels, self.fallback, self.per_epoch, self.seed, self.always = labels, fallback, per_epoch, seed, always

    def indices(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1000 + epoch)
        rest = [i for i, y in enumerate(self.labels) if y != self.fallback or self.always[i]]
        pool = [i for i, y in enumerate(self.labels) if y == self.fallback and not self.always[i]]
        if self.per_epoch and len(pool) > self.per_epoch:
            pool = rng.sample(pool, self.per_epoch)
        chosen = rest + pool
        rng.shuffle(chosen)
        return chosen

    def select(self, epoch: int) -> tuple[list[int], random.Random]:
        """For LengthBucketSampler: the items, and a generator of their own for the batch order."""
        return self.indices(epoch), random.Random(self.seed * 1000 + epoch + 1)


def finalize_topic(cfg: TopicConfig, data: TopicData, setup: TopicSetup, run: TrainingRun,
                   t0: float) -> TopicTrainingResult:
    """The best epoch's weights with the prior shift folded in, temperature-calibrated on dev,
    the lexical expert fitted beside them; saved with metrics.json and a model card."""
    from transformers import AutoModelForSequenceClassification

    out = Path(cfg.train.output_dir)
    best = AutoModelForSequenceClassification.from_pretrained(run.best_dir).eval()
    with torch.no_grad():
        _output_layer(best).bias += setup.adjust
    clf = NewsClassifier(best, setup.tokenizer, setup.settings, torch.device("cpu"))
    probs = setup.best_epoch_probabilities(run)
    if probs is None:
        probs = clf.probabilities(data.dev_articles, batch_size=cfg.train.eval_batch_size)
    calibration = _calibrate(probs, data)
    setup.settings.temperature = calibration["temperature"]

    save_topic_folder(out, best, setup.tokenizer, setup.settings)
    dev_report, lexical = calibration["encoder_report"], None
    if cfg.lexical.weight > 0:
        lexical, fused = fit_lexical_expert(cfg.lexical, data.train_records, clf, data.dev_articles,
                                            data.gold_dev, reuse=probs)
        dev_report = classification_report(data.gold_dev, [data.labels[i] for i in fused.argmax(-1).tolist()],
                                           data.labels)
        lexical.save(out)
    metrics = {
        "dev": dev_report, "dev_encoder_alone": calibration["encoder_report"], "best_epoch": run.state.best_epoch,
        "history": run.state.history, "training_log": run.state.training_log,
        "lexical": lexical.settings.report if lexical else None, "temperature": calibration["temperature"],
        "dev_ece_before_calibration": calibration["ece_before"],
        "dev_ece_after_calibration": calibration["ece_after"], "train_records": len(data.train_records),
        "train_seconds": round(time.time() - t0, 1), "vocab_size": best.config.vocab_size,
        "parameters": sum(p.numel() for p in best.parameters()),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    write_model_card(out, "topic", cfg, metrics)
    logger.info("saved %s: dev macro-F1 %.4f (encoder alone %.4f), accuracy %.4f, T=%.2f, ECE %.3f -> %.3f "
                "(%.0fs)", out, dev_report["macro_f1"], calibration["encoder_report"]["macro_f1"],
                dev_report["accuracy"], calibration["temperature"], calibration["ece_before"],
                calibration["ece_after"], time.time() - t0)
    baseline = lexical.ngrams if lexical is not None and same_fit_as_baseline(cfg.lexical) else None
    return TopicTrainingResult(out, metrics, dev_probabilities=probs, fitted_baseline=baseline)


def save_topic_folder(out: Path, model, tokenizer, settings: ClassifierSettings) -> None:
    """Weights (safetensors), tokenizer and settings into ``out``; a first stage or lexical expert
    an earlier model left there no longer applies and is removed (finalize refits the expert)."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    settings.save(out)
    remove_first_stage(out)
    remove_lexical(out)


def _calibrate(probs: torch.Tensor, data: TopicData) -> dict:
    """Temperature fitted on dev, ECE before/after, and the encoder-alone dev report."""
    logits = probs.clamp_min(1e-9).log()
    gold = torch.tensor([data.label2id[g] for g in data.gold_dev])
    temperature = fit_temperature(logits, gold)
    pred = [data.labels[i] for i in logits.argmax(-1).tolist()]
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(torch.softmax(logits, -1).numpy(), gold.numpy()),
        "ece_after": expected_calibration_error(torch.softmax(logits / temperature, -1).numpy(), gold.numpy()),
        "encoder_report": classification_report(data.gold_dev, pred, data.labels),
    }


def _parameter_groups(model, cfg: TopicConfig) -> list[dict]:
    """The pretrained body at train.lr, the new head (and pooler) at train.head_lr."""
    def is_head(name: str) -> bool:
        return name.startswith(HEAD_NAMES) or ".pooler." in name

    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in trainable if not is_head(n)], "lr": cfg.train.lr},
            {"params": [p for n, p in trainable if is_head(n)], "lr": cfg.train.head_lr}]


def _class_weights(labels: list[int], n: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n).astype(np.float64) + 1.0
    w = (1.0 / np.sqrt(counts)) if mode == "sqrt_inverse" else (1.0 / counts)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def _prior_shift(y: list[int], always: list[bool], per_epoch: Counter, weights: torch.Tensor | None,
                 n: int) -> torch.Tensor:
    """log(corpus prior) - log(effective training prior), per class.

    The corpus prior counts the annotated corpus only (the project-written articles are
    deliberately balanced); the training prior is what one epoch shows the loss: sampled counts
    times class weights."""
    corpus = np.bincount([c for c, a in zip(y, always) if not a], minlength=n).astype(np.float64) + 1.0
    seen = np.array([per_epoch.get(k, 0) for k in range(n)], dtype=np.float64) + 1.0
    if weights is not None:
        seen *= weights.numpy()
    return torch.tensor(np.log(corpus / corpus.sum()) - np.log(seen / seen.sum()), dtype=torch.float32)


def _output_layer(model) -> torch.nn.Linear:
    """The final linear layer of a sequence-classification model (holds the class biases)."""
    for name in ("classifier", "score"):
        layer = getattr(model, name, None)
        layer = getattr(layer, "out_proj", layer)
        if isinstance(layer, torch.nn.Linear) and layer.bias is not None:
            return layer
    raise ValueError(f"{type(model).__name__}: no classifier layer with a bias; set train.prior_correction=0")
