"""Fit the lexical expert (inference/topic/lexical.py) after the encoder, and its temperature on dev."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import torch

from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.topic.lexical import LexicalExpert, LexicalSettings
from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.inference.text import ArticleText, as_article, classifier_text
from xinwen.training.topic.metrics import classification_report, fit_temperature
from xinwen.training.config.sections import LexicalSection
from xinwen.training.topic.ngram_fit import fit_ngram_model

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


def fit_lexical_expert(section: LexicalSection, train_records: Sequence[dict], classifier: NewsClassifier,
                       dev_articles: Sequence[ArticleText], dev_gold: Sequence[str],
                       reuse: torch.Tensor | None = None) -> tuple[LexicalExpert, torch.Tensor]:
    """The n-gram model on the training records, its product temperature fitted on dev; the
    report holds dev macro-F1 with and without it. Also returns the product's dev probabilities.

    ``classifier``: the calibrated encoder (its first stage and expert are not used); ``reuse``:
    its dev probabilities at T = 1 when already computed (``NewsClassifier.probabilities``)."""
    t0 = time.time()
    labels = classifier.labels
    logger.info("fitting the lexical expert (character TF-IDF + LR on %d articles; about a minute on 2 cores)",
                len(train_records))
    expert = LexicalExpert(LexicalSettings(weight=section.weight), fit_tfidf(train_records, labels, section))
    with_expert = classifier.with_experts(lexical=expert)
    parts = with_expert.probabilities(dev_articles, return_parts=True, reuse=reuse)
    gold_idx = torch.tensor([labels.index(g) for g in dev_gold])
    expert.settings.temperature = fit_temperature(parts.product_logits, gold_idx)
    final_dev = with_expert.probabilities(dev_articles, reuse=parts)  # at the fitted temperature

    def dev_f1(probs: torch.Tensor) -> float:
        return classification_report(list(dev_gold), [labels[i] for i in probs.argmax(1).tolist()], labels)["macro_f1"]

    expert.settings.report = {
        "train_records": len(train_records), "ngrams": len(expert.ngrams.vocabulary),
        "ngram_max": section.ngram_max, "regularisation_c": section.regularisation_c,
        "min_df": section.min_df, "class_weight": "balanced", "seconds": round(time.time() - t0, 1),
        "dev_macro_f1_encoder_alone": dev_f1(parts.encoder),
        "dev_macro_f1_with_lexical": dev_f1(final_dev),
    }
    logger.info("lexical expert: %d n-grams, weight %.2f, temperature %.2f; dev macro-F1 %.4f -> %.4f (%.0fs)",
                len(expert.ngrams.vocabulary), section.weight, expert.settings.temperature,
                expert.settings.report["dev_macro_f1_encoder_alone"],
                expert.settings.report["dev_macro_f1_with_lexical"], time.time() - t0)
    return expert, final_dev


def fit_lexical_into(model_dir: str, weight: float | None = None) -> dict:
    """``xinwen lexical DIR``: (re)fit the expert of a trained topic folder from its own config
    (training split, ``lexical`` section; ``weight`` overrides it) and save it there. Weight 0
    removes it. The folder is changed only once the new expert is fitted; a first stage there
    (distilled from the old answers) is then removed too."""
    from dataclasses import replace
    from pathlib import Path

    from xinwen.inference.topic.first_stage import STAGE_JSON, remove_first_stage
    from xinwen.inference.topic.lexical import LEXICAL_JSON, remove_lexical
    from xinwen.training.config.sections import TopicConfig, load_config
    from xinwen.training.config.loading import ConfigError
    from xinwen.training.data.files import check_saved_data
    from xinwen.training.data.topic import load_topic_splits

    folder = Path(model_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError([f"{folder / 'config.yaml'} not found: `xinwen lexical` needs a folder written by "
                           "`xinwen train` (its config names the training data)"], "xinwen lexical")
    cfg = load_config(folder / "config.yaml")
    if not isinstance(cfg, TopicConfig):
        raise ConfigError([f"{folder} holds a {cfg.task} model; `xinwen lexical` applies to topic model folders"],
                          "xinwen lexical")
    try:
        section = replace(cfg.lexical, weight=cfg.lexical.weight if weight is None else weight)
    except ValueError as err:
        raise ConfigError([f"--weight: {err}"], "xinwen lexical") from None
    had_expert = (folder / LEXICAL_JSON).is_file()
    report: dict = {"weight": 0.0}
    expert = None
    if section.weight > 0:
        check_saved_data(folder, {"data.train": cfg.data.train, "data.dev": cfg.data.dev},
                         "run from the directory the model was trained in, or make the paths in config.yaml absolute")
        train_recs, dev_recs = load_topic_splits(cfg)
        clf = NewsClassifier.from_pretrained(folder, device="cpu", first_stage=False, lexical=False)
        dev_articles = [as_article(r, i) for i, r in enumerate(dev_recs)]
        expert, _ = fit_lexical_expert(section, train_recs, clf, dev_articles, [r["label"] for r in dev_recs])
        report = {"weight": section.weight, "temperature": expert.settings.temperature, **expert.settings.report}
    elif not had_expert:
        logger.info("%s has no lexical expert; nothing to remove", folder)
        return report
    if (folder / STAGE_JSON).is_file():
        logger.warning("removing the first stage of %s: it learnt the old answers (refit: xinwen first-stage)", folder)
        remove_first_stage(folder)
    remove_lexical(folder)
    if expert is None:
        logger.info("removed the lexical expert from %s: it now answers with the encoder alone", folder)
    else:
        expert.save(folder)
    if float(json.loads((folder / "xinwen.json").read_text()).get("threshold", 0.0) or 0.0) > 0:
        logger.warning("%s has a confidence threshold; it now applies to the new probabilities: check it with "
                       "`xinwen eval`", folder)
    return report
