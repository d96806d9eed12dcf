"""The few-shot classifier's linear head, on L2-normalised mean-pooled embeddings.

Labels with examples get a logistic regression (its C cross-validated on the examples when the
config leaves ``fewshot.head_c`` null: there is no dev split at this size). A config with no
examples at all gets prototypes: each label's row is its description's embedding over a
temperature, so the logit is the cosine between article and description (zero-shot).
"""
from __future__ import annotations

import logging

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from xinwen.training.topic.softmax_regression import softmax_weights

logger = logging.getLogger(__name__)

# Inverse L2 strengths tried by cross-validation. Normalised 384-d embeddings sit close together,
# so useful values are large next to scikit-learn's default of 1.
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
DEFAULT_C = 10.0  # when too few examples per label for even 2 folds


def cross_validated_c(features: np.ndarray, target: np.ndarray, folds: int = 3) -> tuple[float, float | None]:
    """The C of ``C_GRID`` with the best mean macro-F1 over stratified folds of the examples, and
    that F1. Labels with a single row (say, known from a description alone) cannot be split and
    sit out of the folds; with fewer than two labels left, ``DEFAULT_C`` and None."""
    rows, folds = foldable_rows(target, folds)
    if folds < 2:
        logger.info("head C=%g: too few examples per label for cross-validation", DEFAULT_C)
        return DEFAULT_C, None
    scores = _fold_scores(features[rows], target[rows], folds)
    best = max(C_GRID, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    logger.info("head C by %d-fold cross-validation on the examples: %s -> C=%g", folds,
                {c: round(s, 3) for c, s in scores.items()}, best)
    return best, scores[best]


def foldable_rows(target: np.ndarray, folds: int) -> tuple[np.ndarray, int]:
    """The rows that stratified folds can use (labels with at least 2 rows: a label known from its
    description alone has 1) and how many folds they allow (below 2: none)."""
    kinds, counts = np.unique(target, return_counts=True)
    enough = counts >= 2
    if enough.sum() < 2:
        return np.zeros(0, dtype=int), 0
    if not enough.all():
        logger.info("labels %s have one example each: they sit out of the cross-validation",
                    kinds[~enough].tolist())
    return np.flatnonzero(np.isin(target, kinds[enough])), min(folds, int(counts[enough].min()))


def balanced_regression(c: float) -> LogisticRegression:
    """The class-balanced logistic regression every cross-validation fold fits (head and n-gram weight)."""
    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)


def _fold_scores(features: np.ndarray, target: np.ndarray, folds: int) -> dict[float, float]:
    """Mean held-out macro-F1 of each C over the same stratified folds."""
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(features, target))
    scores = {}
    for c in C_GRID:
        fold_f1 = []
        for fit_rows, held_rows in splits:
            model = balanced_regression(c).fit(features[fit_rows], target[fit_rows])
            fold_f1.append(f1_score(target[held_rows], model.predict(features[held_rows]), average="macro"))
        scores[c] = float(np.mean(fold_f1))
    return scores


def logistic_head(features: np.ndarray, target: np.ndarray, n_labels: int, c: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a class-balanced softmax regression; a label with no row stays unlikely."""
    return softmax_weights(features, target, n_labels, c, class_weight="balanced", absent_bias=-30.0)


def prototype_head(descriptions: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) that give cosine(article, description) / temperature per label."""
    return (descriptions / temperature).astype(np.float32), np.zeros(len(descriptions), dtype=np.float32)
