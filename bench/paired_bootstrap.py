"""The paired bootstrap the topic benches use to put an interval on a macro-F1 margin."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score


def macro_f1_margin_interval(gold: Sequence[str], first: Sequence[str], second: Sequence[str],
                             labels: Sequence[str], resamples: int, rng: np.random.Generator,
                             level: float = 0.95) -> tuple[float, float]:
    """Interval of macro-F1(first) - macro-F1(second): the articles are resampled with replacement,
    both systems' predictions together, ``resamples`` times. It covers the sampling of articles,
    not the spread between training runs."""
    gold, first, second = np.asarray(gold), np.asarray(first), np.asarray(second)

    def f1(idx: np.ndarray, pred: np.ndarray) -> float:
        return f1_score(gold[idx], pred[idx], labels=list(labels), average="macro", zero_division=0)

    diffs = [f1(idx, first) - f1(idx, second)
             for idx in (rng.integers(0, len(gold), len(gold)) for _ in range(resamples))]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))
