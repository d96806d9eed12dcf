"""`xinwen train fewshot`: a topic classifier from a few examples per label, or from label
descriptions alone.

setup -> train -> finalize, as the full recipe (training/topic/train.py), with other steps inside:

* setup: the examples and descriptions (training/data/fewshot.py; each description is one more
  example of its label); the encoder with its bottom ``model.freeze_layers`` frozen and their
  output cached once per example.
* train: the shared loop (training/loop.py) runs the contrastive task (contrastive.py) for
  ``fewshot.steps`` steps of label-balanced batches (batches.py).
* finalize: the head - a logistic regression on the mean-pooled embeddings, C cross-validated
  on the examples, or description prototypes when there is no example at all (head.py) - goes
  into the model's ``classifier`` layer; optionally (``fewshot.ngram_weight``) an n-gram expert
  on the same examples is saved beside it (ngram.py); the folder is an ordinary topic folder
  whose config.json asks for mean pooling (inference/encoders/pooling.py).

There is no dev split to choose anything on. A dev split, when the config names one, is only
reported.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from xinwen.inference.batching import pad_states
from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.encoders.pooling import POOLING_KEY, mean_pooled
from xinwen.inference.settings import ClassifierSettings
from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.training.config.loading import ConfigError
from xinwen.training.config.sections import TopicConfig
from xinwen.training.data.fewshot import FewshotData, fewshot_data
from xinwen.training.data.files import DataError
from xinwen.training.encoder_cache import EncoderCache
from xinwen.training.loop import run_training
from xinwen.training.model_card import write_model_card
from xinwen.training.run_folder import RunFolder, data_fingerprint
from xinwen.training.topic.encoder_setup import classifier_from_encoder, freeze_bottom, training_windows
from xinwen.training.topic.fewshot.contrastive import ContrastiveTask
from xinwen.training.topic.fewshot.head import cross_validated_c, logistic_head, prototype_head
from xinwen.training.topic.fewshot.ngram import cross_validated_weight, ngram_expert
from xinwen.training.topic.metrics import classification_report
from xinwen.training.topic.train import TopicTrainingResult, save_topic_folder

logger = logging.getLogger(__name__)


def train_fewshot(cfg: TopicConfig, overwrite: bool = False) -> TopicTrainingResult:
    """Train ``cfg`` (recipe: fewshot) into ``cfg.train.output_dir``: refuse a folder holding
    another run (unless ``overwrite``), or return at once when it already holds this one."""
    t0 = time.time()
    check_single_process()
    data = fewshot_data(cfg)  # a wrong file fails before the encoder is loaded (minutes, once, on a fresh machine)
    missing = missing_labels(data)
    if missing:
        raise DataError(missing)
    if data.examples:  # a wrong layer count fails before the folder is claimed; zero-shot trains nothing
        check_layers_left_to_train(cfg)
    cfg.data.labels = data.labels  # the saved config.yaml names the labels it was trained with
    folder = RunFolder.claim(cfg, data_fingerprint(data.examples + data.descriptions, data.dev), overwrite)
    if folder.finished:
        logger.info("%s already holds this run, finished; nothing to train (--overwrite retrains it)", folder.path)
        return TopicTrainingResult(folder.path, json.loads((folder.path / "metrics.json").read_text()))
    learner = FewshotLearner(cfg, data)
    learner.train()
    files_before = folder.listing()
    metrics = learner.finalize(t0)
    folder.finish(cfg.train.keep_checkpoints, files_before)
    return TopicTrainingResult(folder.path, metrics)


def missing_labels(data: FewshotData) -> str | None:
    seen = {r["label"] for r in data.examples + data.descriptions}
    missing = [label for label in data.labels if label not in seen]
    if not missing:
        return None
    return (f"labels {missing} have neither a training example in data.train nor a description; add "
            f"examples, or describe them in data.label_descriptions (e.g. data.label_descriptions."
            f"{missing[0]}=\"...\")")


class FewshotLearner:
    """The encoder, the cached states of the examples, and the steps that turn them into a folder."""

    def __init__(self, cfg: TopicConfig, data: FewshotData):
        self.cfg, self.data, self.labels = cfg, data, list(data.labels)
        self.records = data.examples + data.descriptions
        self.target = np.array([self.labels.index(r["label"]) for r in self.records])
        self.settings = ClassifierSettings(text=cfg.text, fallback_label=cfg.data.fallback_label,
                                           threshold=cfg.threshold)
        self.features, self.head_c, self.lexical = None, None, None  # set by fit_head and fit_ngram

    def train(self):
        """Load the encoder, cache the examples' frozen states, run the contrastive step on the
        shared loop; returns the loop's run (None when there is no step: no example, or
        fewshot.steps=0)."""
        cfg = self.cfg
        self.model, self.tokenizer = load_encoder(cfg, self.labels)
        self.cache = EncoderCache.build(self.model, cfg.model)
        if self.cache is None:
            raise ConfigError([f"model.name_or_path: recipe: fewshot needs a BERT-style encoder (embeddings + "
                               f"encoder.layer), got {type(self.model.base_model).__name__}"], "config")
        ids = training_windows(self.tokenizer, [as_article(r, i) for i, r in enumerate(self.records)], cfg.text)
        self.states = self.cache.precompute(ids, self.tokenizer.pad_token_id or 0, cfg.train.eval_batch_size,
                                            "examples")
        steps = cfg.fewshot.steps if self.data.examples else 0
        if not steps:
            logger.info("no contrastive step (%s): the head reads the encoder as it is",
                        "no examples" if not self.data.examples else "fewshot.steps=0")
            return None
        logger.info("contrastive step: %d steps over %d examples", steps, len(self.records))
        task = ContrastiveTask(self.cache, self.states, self.target.tolist(), steps, cfg.train.batch_size,
                               cfg.train.seed)
        model = self.model
        run = run_training(cfg.train, lambda accelerator, resuming: task.build(model, cfg.fewshot.lr),
                           run_name="fewshot")
        self.model = type(model).from_pretrained(run.best_dir).eval()
        return run

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
        features = self.features = self.embed(self.states)
        if self.data.examples:
            c, cv_f1 = ((self.cfg.fewshot.head_c, None) if self.cfg.fewshot.head_c is not None
                        else cross_validated_c(features, self.target))
            weight, bias = logistic_head(features, self.target, len(self.labels), c)
            report = {"head": "logistic_regression", "C": c, "cross_validated_macro_f1": cv_f1}
        else:  # descriptions only, one per label (validated): prototypes in label order
            order = [self.target.tolist().index(k) for k in range(len(self.labels))]
            weight, bias = prototype_head(features[order], self.cfg.fewshot.description_temperature)
            report = {"head": "description_prototypes", "temperature": self.cfg.fewshot.description_temperature}
        with torch.no_grad():
            self.model.classifier.weight.copy_(torch.from_numpy(weight))
            self.model.classifier.bias.copy_(torch.from_numpy(bias))
        self.head_c = report.get("C")
        return report

    def fit_ngram(self) -> dict:
        """The n-gram expert on the examples and descriptions (``self.lexical``, None when off);
        returns what metrics.json records about it. Call after ``fit_head``."""
        weight, scores = self.cfg.fewshot.ngram_weight, {}
        self.lexical = None
        if not self.data.examples or weight == 0:
            return {"ngram_weight": 0.0}
        if weight is None:
            weight, scores = cross_validated_weight(self.features, self.records, self.target, self.labels, self.head_c)
        rounded = {str(w): round(s, 4) for w, s in scores.items()}
        if weight > 0:
            report = {"chosen_by": "cross-validation on the examples" if scores else "fewshot.ngram_weight",
                      "cross_validated_macro_f1": rounded}
            self.lexical = ngram_expert(self.records, self.labels, weight, report)
        return {"ngram_weight": weight, "ngram_weight_scores": rounded}

    def finalize(self, t0: float) -> dict:
        """Head, folder files, metrics.json and the model card."""
        cfg, out = self.cfg, Path(self.cfg.train.output_dir)
        head_report = {**self.fit_head(), **self.fit_ngram()}
        setattr(self.model.config, POOLING_KEY, "mean")
        save_topic_folder(out, self.model, self.tokenizer, self.settings)
        if self.lexical is not None:
            self.lexical.save(out)
        metrics = {"recipe": "fewshot", **head_report, "train_records": len(self.data.examples),
                   "examples_per_label": dict(Counter(r["label"] for r in self.data.examples)),
                   "descriptions": sorted(cfg.data.label_descriptions), "train_seconds": round(time.time() - t0, 1),
                   "parameters": sum(p.numel() for p in self.model.parameters())}
        if self.data.dev:
            metrics["dev"] = self._dev_report(out)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
        write_model_card(out, "topic", cfg, metrics)
        logger.info("saved %s: %d examples, head %s%s (%.0fs)", out, len(self.data.examples), head_report["head"],
                    f", dev macro-F1 {metrics['dev']['macro_f1']:.4f}" if self.data.dev else "", time.time() - t0)
        return metrics

    def _dev_report(self, out: Path) -> dict:
        clf = NewsClassifier.from_pretrained(out, device="cpu")
        articles = [as_article(r, i) for i, r in enumerate(self.data.dev)]
        predicted = [p.label for p in clf.predict(articles, batch_size=self.cfg.train.eval_batch_size)]
        return classification_report([r["label"] for r in self.data.dev], predicted, self.labels)


def check_single_process() -> None:
    """The recipe runs in one process: its contrastive step calls the encoder's top layers
    directly, which a multi-process (DDP) wrapper would neither expose nor synchronise, and its
    minutes of work do not pay for a second process."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1:
        raise ConfigError([f"recipe: fewshot runs in a single process, got {processes} (WORLD_SIZE, from "
                           "accelerate launch or torchrun); run `xinwen train fewshot ...` directly"], "this launch")


def check_layers_left_to_train(cfg: TopicConfig) -> None:
    """model.freeze_layers must leave a layer for the contrastive step (read from config.json)."""
    from transformers import AutoConfig

    source = check_model_source(cfg.model.name_or_path)
    layers = getattr(AutoConfig.from_pretrained(source, trust_remote_code=cfg.model.trust_remote_code),
                     "num_hidden_layers", None)
    if cfg.fewshot.steps and layers is not None and cfg.model.freeze_layers >= layers:
        raise ConfigError([f"model.freeze_layers: expected fewer than the encoder's {layers} layers when "
                           f"fewshot.steps > 0 (nothing would train), got {cfg.model.freeze_layers}; or set "
                           "fewshot.steps=0 for a probe on the frozen encoder"], "config")


def load_encoder(cfg: TopicConfig, labels: list[str]):
    """The encoder with a new linear head, bottom layers and embeddings frozen (no vocabulary
    pruning: a few examples would drop pieces that unseen articles need)."""
    model, tokenizer = classifier_from_encoder(cfg, labels)
    if not isinstance(getattr(model, "classifier", None), torch.nn.Linear):
        raise ConfigError([f"model.name_or_path: recipe: fewshot fits a single linear head on mean-pooled states; "
                           f"{type(model).__name__} has {type(getattr(model, 'classifier', None)).__name__} "
                           "(use a BERT-style encoder such as the builtin e5)"], "config")
    tokenizer.model_max_length = cfg.text.max_length
    freeze_bottom(model, cfg.model.freeze_layers, embeddings=True)
    return model, tokenizer

