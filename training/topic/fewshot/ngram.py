"""The n-gram expert for the few-shot recipe: a character TF-IDF + LR on the same examples,
multiplied into the head's probabilities (inference/topic/lexical.py), its weight chosen by
cross-validation on the examples (there is no dev split to calibrate on).

Why: on our labels TF-IDF + LR overtakes the contrastive encoder somewhere between 64 and 128
examples per label (docs/benchmarks.md, "Few-shot"), and the full recipe's product of the two is
its best model. The weight grid includes 0, so at sizes where the n-gram model only adds noise
the folds can turn it off.

The folds reuse the embeddings of the trained encoder, which saw every example during the
contrastive step: the encoder looks better on the held-out folds than it is on new articles,
so the chosen weight errs towards the encoder.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from xinwen.inference.text import as_article
from xinwen.inference.topic.lexical import LexicalExpert, LexicalSettings
from xinwen.training.topic.fewshot.head import balanced_regression, foldable_rows
from xinwen.training.topic.lexical_fit import fit_tfidf

logger = logging.getLogger(__name__)

WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0)


def ngram_expert(records: Sequence[dict], labels: list[str], weight: float, report: dict) -> LexicalExpert:
    """TF-IDF + LR on ``records``, multiplied in at ``weight`` (temperature 1: the head's
    probabilities come from a regression, not from a fine-tuned softmax to calibrate)."""
    return LexicalExpert(LexicalSettings(weight=weight, temperature=1.0, report=report), fit_tfidf(records, labels))


def cross_validated_weight(features: np.ndarray, records: Sequence[dict], target: np.ndarray, labels: list[str],
                           c: float, folds: int = 3) -> tuple[float, dict[float, float]]:
    """The weight of ``WEIGHT_GRID`` whose product of head and n-gram model has the best mean
    held-out macro-F1 (ties: the smaller weight), and every weight's score. Labels with a single
    row sit out of the folds; with too few rows the weight is 0."""
    rows, folds = foldable_rows(target, folds)
    if folds < 2:
        logger.info("n-gram expert off: too few examples per label to choose its weight")
        return 0.0, {}
    totals = {w: [] for w in WEIGHT_GRID}
    for fit_rows, held_rows in StratifiedKFold(folds, shuffle=True, random_state=0).split(rows, target[rows]):
        fit_rows, held_rows = rows[fit_rows], rows[held_rows]
        head_log, ngram_log = _fold_log_probabilities(features, records, target, labels, c, fit_rows, held_rows)
        for w in WEIGHT_GRID:
            predicted = (head_log + w * ngram_log).argmax(1)
            totals[w].append(f1_score(target[held_rows], predicted, average="macro"))
    scores = {w: float(np.mean(v)) for w, v in totals.items()}
    best = max(WEIGHT_GRID, key=lambda w: (scores[w], -w))
    logger.info("n-gram weight by %d-fold cross-validation on the examples: %s -> %g", folds,
                {w: round(s, 3) for w, s in scores.items()}, best)
    return best, scores


def _fold_log_probabilities(features, records, target, labels, c, fit_rows, held_rows):
    """Log-probabilities of the held-out rows, over all labels, from a head and an n-gram model
    fitted on the other rows."""
    head = balanced_regression(c).fit(features[fit_rows], target[fit_rows])
    head_log = np.full((len(held_rows), len(labels)), np.log(1e-9))
    head_log[:, head.classes_] = np.log(np.clip(head.predict_proba(features[held_rows]), 1e-9, None))
    fitted = [records[i] for i in fit_rows]
    known = [label for label in labels if any(r["label"] == label for r in fitted)]
    ngram = fit_tfidf(fitted, known)
    held = [as_article(records[i], int(i)) for i in held_rows]
    ngram_log = np.full((len(held_rows), len(labels)), np.log(1e-9))
    ngram_log[:, [labels.index(k) for k in known]] = np.log(
        np.clip(ngram.article_probabilities(held, known).numpy(), 1e-9, None))
    return head_log, ngram_log
