"""``xinwen first-stage DIR``: distil a character n-gram first stage from a trained classifier.

The first stage learns the classifier's own answers (its labels on texts it has read), so it needs
no gold labels: any unlabelled articles of the kind the model will score can be used. Its accept
level is chosen on separate held-out articles: the lowest top probability at which the articles
it would answer agree with the classifier at ``agreement`` or better. Articles below it go to
the transformer, so outside the accepted set nothing changes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.topic.first_stage import FirstStage, FirstStageSettings
from xinwen.inference.text import ArticleText, as_article, classifier_text
from xinwen.training.config.sections import TopicConfig, load_config
from xinwen.training.data.files import DataError, check_saved_data
from xinwen.training.topic.ngram_fit import fit_ngram_model
from xinwen.training.data.topic import dev_spec, load_topic_splits
from xinwen.training.topic.evaluate import spec_records

logger = logging.getLogger(__name__)


@dataclass
class FirstStageOptions:
    model_dir: str
    # Articles to learn from and to choose the accept level on: a JSONL/CSV/Parquet file or
    # builtin:inews-topics[@split]. Default: the model's own training and dev splits.
    data: str | None = None
    holdout: str | None = None
    # Accepted answers must agree with the classifier at least this often on the held-out articles.
    agreement: float = 0.99
    # Fewer accepted held-out articles than this cannot show the agreement: the stage stays off.
    min_accepted: int = 50
    regularisation_c: float = 30.0
    max_features: int = 200_000
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not 0.5 < self.agreement < 1.0:
            raise DataError(f"--agreement: expected a rate between 0.5 and 1, got {self.agreement}")
        if self.min_accepted < 1:
            raise DataError(f"--min-accepted: expected >= 1, got {self.min_accepted}")


def choose_accept_level(top: np.ndarray, agree: np.ndarray, agreement: float, min_accepted: int) -> float:
    """The lowest top probability at which the accepted held-out articles (those at or above it,
    at least ``min_accepted`` of them) agree with the classifier at ``agreement`` or better.

    ``top``: the first stage's top probability per article; ``agree``: whether its label equals
    the classifier's. Returns a level above 1 (stage off) when no such level exists."""
    order = np.argsort(-top, kind="stable")
    rate = np.cumsum(agree[order]) / np.arange(1, len(order) + 1)
    good = np.flatnonzero(rate[min_accepted - 1:] >= agreement) + min_accepted - 1
    if len(order) < min_accepted or not len(good):
        return 1.01
    k = int(good[-1])
    level = float(top[order[k]])
    if agree[top >= level].mean() < agreement:  # ties at the level pulled in disagreeing articles
        level = float(np.nextafter(level, 2.0))
    return level


def _teacher(clf: NewsClassifier, articles: list[ArticleText], name: str, batch_size: int) -> torch.Tensor:
    # Slices of 256 articles: a progress bar over a several-minute pass, same numbers as one call.
    parts = []
    for start in tqdm(range(0, len(articles), 256), desc=f"classifier on {name}", unit="x256"):
        parts.append(clf.probabilities(articles[start : start + 256], batch_size))
    return torch.cat(parts) if parts else torch.zeros((0, len(clf.labels)))


def fit_first_stage(opts: FirstStageOptions) -> dict:
    """Fit, choose the accept level, save into ``opts.model_dir``; returns the report."""
    started = time.perf_counter()
    folder = Path(opts.model_dir)
    cfg_path = folder / "config.yaml"
    cfg = load_config(cfg_path) if cfg_path.is_file() else TopicConfig()
    check_saved_data(folder, {"data.train": cfg.data.train if opts.data is None else None,
                              "data.dev": cfg.data.dev if opts.holdout is None else None},
                     "run from the directory the model was trained in, or pass --data / --holdout FILE")
    teacher = NewsClassifier.from_pretrained(folder, device="cpu", first_stage=False)  # a wrong folder fails first
    if opts.data is None and opts.holdout is None:
        fit_records, hold_records = load_topic_splits(cfg)
    else:
        fit_spec, hold_spec = opts.data or cfg.data.train, opts.holdout or dev_spec(cfg)
        if fit_spec is None or hold_spec is None:  # a few-shot folder: no training file, or no dev split
            flag = "--data" if fit_spec is None else "--holdout"
            raise DataError(f"{flag}: the model's config has no {'training' if fit_spec is None else 'dev'} "
                            f"split to default to; pass {flag} FILE (unlabelled articles will do)")
        fit_records = spec_records(fit_spec, "train", cfg, labelled=False)
        hold_records = spec_records(hold_spec, "dev", cfg, labelled=False)
    if not fit_records or not hold_records:
        raise DataError("first stage: the fitting and the held-out articles must both be non-empty")
    labels = list(teacher.labels)
    fit_articles = [as_article(r, i) for i, r in enumerate(fit_records)]
    hold_articles = [as_article(r, i) for i, r in enumerate(hold_records)]
    t0 = time.perf_counter()
    fit_target = _teacher(teacher, fit_articles, "fitting articles", opts.batch_size).argmax(1).numpy()
    hold_target = _teacher(teacher, hold_articles, "held-out articles", opts.batch_size).argmax(1).numpy()
    teacher_seconds = time.perf_counter() - t0

    ngrams = fit_ngram_model([classifier_text(a) for a in fit_articles], fit_target, labels,
                             opts.regularisation_c, opts.max_features)
    stage = FirstStage(FirstStageSettings(), ngrams)

    probs = stage.probabilities([classifier_text(a) for a in hold_articles])
    top, agree = probs.max(axis=1), probs.argmax(axis=1) == hold_target
    accept = choose_accept_level(top, agree, opts.agreement, opts.min_accepted)
    accepted = top >= accept
    report = {
        "fitting_articles": len(fit_articles), "held_out_articles": len(hold_articles),
        "data": opts.data or "the model's training split", "holdout": opts.holdout or "the model's dev split",
        "target_agreement": opts.agreement, "accept": accept,
        "held_out_answered": float(accepted.mean()),
        "held_out_agreement_when_answered": float(agree[accepted].mean()) if accepted.any() else None,
        "held_out_label_agreement_overall": float(1.0 - (accepted & ~agree).mean()),
        "ngrams": len(ngrams.vocabulary), "classifier_seconds": round(teacher_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    stage.settings.accept, stage.settings.report = accept, report
    stage.save(folder)
    if accept > 1:
        logger.warning("first stage: even its %d most confident held-out answers agree with the classifier "
                       "less than %.1f%% of the time; saved switched off (it answers nothing)",
                       opts.min_accepted, 100 * opts.agreement)
    return report
