"""`xinwen train fewshot`: a topic classifier from a few examples per label, or from label
descriptions alone.

setup -> train -> finalize, as the full recipe (training/topic/train.py), with other steps inside:

* setup: the examples (``data.examples_per_label`` drawn with ``train.seed`` when set) and the
  label descriptions, each an extra example of its label; the encoder with its bottom
  ``model.freeze_layers`` frozen and their output cached.
* train: the shared loop (training/loop.py) runs the contrastive task (contrastive.py) for
  ``fewshot.steps`` steps of label-balanced batches (batches.py).
* finalize: the head - a logistic regression on the mean-pooled embeddings, C cross-validated
  on the examples, or description prototypes when there is no example at all (head.py) - goes
  into the model's ``classifier`` layer; the folder is an ordinary topic folder whose
  config.json asks for mean pooling (inference/encoders/pooling.py).

There is no dev split to choose anything on. A dev file, when given, is only reported.
"""
from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from xinwen.inference.batching import pad_states
from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.encoders.pooling import POOLING_KEY, mean_pooled
from xinwen.inference.settings import TOPIC_LABELS, ClassifierSettings
from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.topic.first_stage import remove_first_stage
from xinwen.inference.topic.lexical import remove_lexical
from xinwen.training.config.sections import TopicConfig
from xinwen.training.data.files import DataError, load_labelled
from xinwen.training.data.topic import load_records
from xinwen.training.encoder_cache import EncoderCache
from xinwen.training.loop import run_training
from xinwen.training.model_card import write_model_card
from xinwen.training.run_folder import RunFolder, data_fingerprint
from xinwen.training.topic.fewshot.contrastive import ContrastiveTask
from xinwen.training.topic.fewshot.head import cross_validated_c, logistic_head, prototype_head
from xinwen.training.topic.encoder_setup import freeze_bottom, training_windows
from xinwen.training.topic.metrics import classification_report
from xinwen.training.topic.train import TopicTrainingResult

logger = logging.getLogger(__name__)


def fewshot_examples(cfg: TopicConfig) -> tuple[list[dict], list[dict]]:
    """(training examples, dev records or []) for the recipe; descriptions are added later."""
    d = cfg.data
    if not d.labels:  # data.labels: [] = the labels of the file (and of the descriptions)
        d.labels = labels_of_file(cfg)
    train = load_records(d.train, "train", cfg) if d.train else []
    if d.examples_per_label:
        train = draw_per_label(train, d.examples_per_label, cfg.train.seed)
    dev_spec = d.dev or (d.train if d.train and d.train.startswith("builtin:") else None)
    dev = load_records(dev_spec, "dev", cfg) if dev_spec else []
    logger.info("few-shot examples: %d %s%s", len(train), dict(Counter(r["label"] for r in train)),
                f"; dev (reported only): {len(dev)}" if dev else "")
    return train, dev


def labels_of_file(cfg: TopicConfig) -> list[str]:
    """The distinct labels of data.train in first-seen order, then described labels it lacks;
    data.fallback_label must be one of them."""
    d = cfg.data
    if d.train.startswith("builtin:"):
        return list(TOPIC_LABELS)
    records = load_labelled(d.train, d.title_column, d.body_column, d.label_column, d.id_column, None)
    labels = list(dict.fromkeys([r["label"] for r in records] + list(d.label_descriptions)))
    if len(labels) < 2:
        raise DataError(f"data.train {d.train}: expected >= 2 labels in column {d.label_column!r}, found {labels}")
    if d.fallback_label not in labels:
        raise DataError(f"data.fallback_label: expected one of the labels of {d.train} {labels}, got "
                        f"{d.fallback_label!r}; set data.fallback_label=LABEL (the answer below the threshold)")
    logger.info("labels from %s: %s", d.train, labels)
    return labels


def draw_per_label(records: list[dict], per_label: int, seed: int) -> list[dict]:
    """At most ``per_label`` records of each label, drawn with ``seed``, in file order."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_label.setdefault(record["label"], []).append(i)
    chosen = sorted(i for rows in by_label.values() for i in (rng.sample(rows, per_label)
                                                               if len(rows) > per_label else rows))
    return [records[i] for i in chosen]


def description_records(cfg: TopicConfig) -> list[dict]:
    return [{"id": f"description:{label}", "title": "", "body": text, "label": label}
            for label, text in cfg.data.label_descriptions.items()]


def train_fewshot(cfg: TopicConfig, overwrite: bool = False):
    """Train ``cfg`` (recipe: fewshot) into ``cfg.train.output_dir``; returns the topic result."""
    t0 = time.time()
    check_model_source(cfg.model.name_or_path)
    examples, dev = fewshot_examples(cfg)
    examples += description_records(cfg)
    problems = missing_labels(cfg, examples)
    if problems:
        raise DataError(problems)
    folder = RunFolder.claim(cfg, data_fingerprint(examples, dev), overwrite)
    if folder.finished:
        logger.info("%s already holds this run, finished; nothing to train (--overwrite retrains it)", folder.path)
        return TopicTrainingResult(folder.path, json.loads((folder.path / "metrics.json").read_text()))
    learner = FewshotLearner(cfg, examples)
    files_before = folder.listing()
    learner.train()
    metrics = learner.finalize(dev, t0)
    folder.finish(cfg.train.keep_checkpoints, files_before)
    return TopicTrainingResult(folder.path, metrics)


def missing_labels(cfg: TopicConfig, examples: list[dict]) -> str | None:
    seen = {r["label"] for r in examples}
    missing = [label for label in cfg.data.labels if label not in seen]
    if not missing:
        return None
    return (f"labels {missing} have neither a training example in data.train nor a description; add "
            f"examples, or describe them in data.label_descriptions (e.g. data.label_descriptions."
            f"{missing[0]}=\"...\")")


class FewshotLearner:
    """The encoder, the cached states of the examples, and the steps that turn them into a folder."""

    def __init__(self, cfg: TopicConfig, examples: list[dict]):
        self.cfg, self.examples = cfg, examples
        self.labels = list(cfg.data.labels)
        self.target = np.array([self.labels.index(r["label"]) for r in examples])
        self.has_examples = any(not str(r["id"]).startswith("description:") for r in examples)
        self.settings = ClassifierSettings(text=cfg.text, fallback_label=cfg.data.fallback_label,
                                           threshold=cfg.threshold)

    def train(self) -> None:
        """The contrastive step on the shared loop (skipped without examples or with 0 steps)."""
        cfg = self.cfg
        model, self.tokenizer = load_encoder(cfg, self.labels)
        self.cache = EncoderCache.build(model, cfg.model)
        if self.cache is None:
            raise ValueError(f"recipe: fewshot needs a BERT-style encoder (embeddings + encoder.layer) for "
                             f"model.name_or_path, got {type(model.base_model).__name__}")
        ids = training_windows(self.tokenizer, [as_article(r, i) for i, r in enumerate(self.examples)], cfg.text)
        pad_id = self.tokenizer.pad_token_id or 0
        self.states = self.cache.precompute(ids, pad_id, cfg.train.eval_batch_size, "examples")
        self.model = model
        steps = cfg.fewshot.steps if self.has_examples else 0
        if not steps:
            logger.info("no contrastive step (%s): the head reads the encoder as it is",
                        "no examples" if not self.has_examples else "fewshot.steps=0")
            return
        logger.info("contrastive step: %d steps over %d examples", steps, len(self.examples))
        task = ContrastiveTask(self.cache, self.states, self.target.tolist(), steps, cfg.train.batch_size,
                               cfg.train.seed)
        run = run_training(cfg.train, lambda accelerator, resuming: task.build(model, cfg.fewshot.lr),
                           run_name="fewshot")
        self.model = type(model).from_pretrained(run.best_dir).eval()

    @torch.no_grad()
    def embed(self, states: list[torch.Tensor], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled, normalised embeddings of cached states through the (trained) top layers."""
        self.model.eval()
        rows = []
        for start in range(0, len(states), batch_size):
            hidden, mask = pad_states(states[start:start + batch_size])
            top = self.cache.encode(self.model, hidden, mask).last_hidden_state
            rows.append(mean_pooled(top.float(), mask).numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.model.config.hidden_size), np.float32)

    def fit_head(self) -> dict:
        """The head into ``model.classifier``; returns what metrics.json records about it."""
        features = self.embed(self.states)
        if self.has_examples:
            c, cv_f1 = ((self.cfg.fewshot.head_c, None) if self.cfg.fewshot.head_c is not None
                        else cross_validated_c(features, self.target))
            weight, bias = logistic_head(features, self.target, len(self.labels), c)
            report = {"head": "logistic_regression", "C": c, "cross_validated_macro_f1": cv_f1}
        else:
            order = [self.target.tolist().index(k) for k in range(len(self.labels))]
            weight, bias = prototype_head(features[order], self.cfg.fewshot.description_temperature)
            report = {"head": "description_prototypes", "temperature": self.cfg.fewshot.description_temperature}
        head = self.model.classifier
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))
        return report

    def finalize(self, dev: list[dict], t0: float) -> dict:
        """Head, folder files, metrics.json and the model card."""
        cfg, out = self.cfg, Path(self.cfg.train.output_dir)
        head_report = self.fit_head()
        setattr(self.model.config, POOLING_KEY, "mean")
        self.model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        self.settings.save(out)
        remove_first_stage(out)
        remove_lexical(out)
        metrics = {"recipe": "fewshot", **head_report, "train_records": len(self.examples),
                   "examples_per_label": dict(Counter(r["label"] for r in self.examples)),
                   "descriptions": sorted(cfg.data.label_descriptions), "train_seconds": round(time.time() - t0, 1),
                   "parameters": sum(p.numel() for p in self.model.parameters())}
        if dev:
            clf = NewsClassifier.from_pretrained(out, device="cpu")
            articles = [as_article(r, i) for i, r in enumerate(dev)]
            predicted = [p.label for p in clf.predict(articles, batch_size=cfg.train.eval_batch_size)]
            metrics["dev"] = classification_report([r["label"] for r in dev], predicted, self.labels)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
        write_model_card(out, "topic", cfg, metrics)
        logger.info("saved %s: %d examples, head %s%s (%.0fs)", out, len(self.examples), head_report["head"],
                    f", dev macro-F1 {metrics['dev']['macro_f1']:.4f}" if dev else "", time.time() - t0)
        return metrics


def load_encoder(cfg: TopicConfig, labels: list[str]):
    """The encoder with a new linear head, bottom layers frozen (no vocabulary pruning here: a few
    examples would drop pieces that unseen articles need)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = check_model_source(cfg.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, trust_remote_code=cfg.model.trust_remote_code)
    tokenizer.model_max_length = cfg.text.max_length
    freeze_bottom(model, cfg.model.freeze_layers, embeddings=True)
    return model, tokenizer
