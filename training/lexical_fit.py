"""Fit the lexical expert (inference/lexical.py) after the encoder, and its temperature on dev."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from ..inference.lexical import LexicalExpert, LexicalSettings
from ..inference.ngram_model import NgramModel
from ..inference.text import ArticleText, as_article, classifier_text
from .classification_metrics import fit_temperature
from .config import LexicalSection
from .ngram_fit import fit_ngram_model

logger = logging.getLogger(__name__)

# The character TF-IDF + LR reference that `xinwen eval` reports beside the model.
BASELINE = LexicalSection(weight=1.0)


def fit_tfidf(records: Sequence[dict], labels: Sequence[str], section: LexicalSection = BASELINE) -> NgramModel:
    """Character 1..ngram_max TF-IDF + class-balanced logistic regression on ``records``' title + body."""
    texts = [classifier_text(as_article(r, i)) for i, r in enumerate(records)]
    target = [labels.index(r["label"]) for r in records]
    return fit_ngram_model(texts, target, labels, section.regularisation_c, section.max_features,
                           section.min_df, (1, section.ngram_max), class_weight="balanced")


def same_fit_as_baseline(section: LexicalSection) -> bool:
    """Whether a lexical expert with ``section`` is the very model the eval baseline would fit."""
    return all(getattr(section, k) == getattr(BASELINE, k)
               for k in ("ngram_max", "regularisation_c", "max_features", "min_df"))


def fit_lexical_expert(section: LexicalSection, train_records: Sequence[dict], labels: Sequence[str],
                       dev_articles: Sequence[ArticleText], dev_encoder_probs: torch.Tensor,
                       dev_gold: torch.Tensor) -> LexicalExpert:
    """The n-gram model on the training records, its product temperature fitted on dev.

    ``dev_encoder_probs``: the encoder's calibrated dev probabilities."""
    t0 = time.time()
    logger.info("fitting the lexical expert (character TF-IDF + LR on %d articles; about a minute on 2 cores)",
                len(train_records))
    expert = LexicalExpert(LexicalSettings(weight=section.weight), fit_tfidf(train_records, labels, section))
    lexical_dev = expert.probabilities(dev_articles, labels)
    logits = expert.combine(dev_encoder_probs, lexical_dev, temperature=1.0).clamp_min(1e-9).log()
    expert.settings.temperature = fit_temperature(logits, dev_gold)
    expert.settings.report = {
        "train_records": len(train_records), "ngrams": len(expert.ngrams.vocabulary),
        "ngram_max": section.ngram_max, "regularisation_c": section.regularisation_c,
        "min_df": section.min_df, "class_weight": "balanced", "seconds": round(time.time() - t0, 1),
    }
    logger.info("lexical expert: %d n-grams, weight %.2f, temperature %.2f (%.0fs)", len(expert.ngrams.vocabulary),
                section.weight, expert.settings.temperature, time.time() - t0)
    return expert


def fit_lexical_into(model_dir: str, weight: float | None = None) -> dict:
    """``xinwen lexical DIR``: (re)fit the expert of a trained topic folder from its own config
    (training split, ``lexical`` section; ``weight`` overrides it) and save it there. Weight 0
    removes it. A first stage distilled from the old answers is removed too."""
    from dataclasses import replace
    from pathlib import Path

    from ..inference.classifier import NewsClassifier
    from ..inference.first_stage import STAGE_JSON, remove_first_stage
    from ..inference.lexical import remove_lexical
    from .config import load_config
    from .config_loading import ConfigError
    from .topic_data import load_topic_splits

    folder = Path(model_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError([f"{folder / 'config.yaml'} not found: `xinwen lexical` needs a folder written by "
                           "`xinwen train` (its config names the training data)"], "xinwen lexical")
    cfg = load_config(folder / "config.yaml")
    try:
        section = replace(cfg.lexical, weight=cfg.lexical.weight if weight is None else weight)
    except ValueError as err:
        raise ConfigError([f"--weight: {err}"], "xinwen lexical") from None
    if (folder / STAGE_JSON).is_file():
        logger.warning("removing the first stage of %s: it learnt the old answers (refit: xinwen first-stage)", folder)
        remove_first_stage(folder)
    remove_lexical(folder)
    if section.weight == 0:
        logger.info("removed the lexical expert from %s: it now answers with the encoder alone", folder)
        return {"weight": 0.0}
    train_recs, dev_recs = load_topic_splits(cfg)
    clf = NewsClassifier.from_pretrained(folder, device="cpu", first_stage=False, lexical=False)
    dev_articles = [as_article(r, i) for i, r in enumerate(dev_recs)]
    encoder = clf.model_probabilities(dev_articles)
    gold = torch.tensor([clf.labels.index(r["label"]) for r in dev_recs])
    expert = fit_lexical_expert(section, train_recs, clf.labels, dev_articles, encoder, gold)
    expert.save(folder)
    return {"weight": section.weight, **expert.settings.report, "temperature": expert.settings.temperature}
