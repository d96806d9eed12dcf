"""The batches of the few-shot recipe's contrastive step: a few examples of every label per step.

SetFit samples pairs and runs both examples of each pair through the encoder: 3,200 pairs took 742 s
on 2 CPU cores for 16 examples per label, against 108 s here at the same macro-F1 (one draw;
docs/benchmarks.md, "Few-shot"). Here a step takes a label-balanced batch (``batch_size //
labels`` examples of each label, at least 2) and scores *every* pair inside it, so one pass of 16
examples gives 120 pairs: the same kind of signal for about a quarter of the encoder passes.
"""
from __future__ import annotations

import random
from collections.abc import Sequence


def balanced_batches(labels: Sequence[int], steps: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """``steps`` batches; each draws ``max(2, batch_size // number of labels)`` distinct examples
    of every label (all of them when a label has fewer), so each batch holds same-label pairs of
    every label with at least two examples, and other-label pairs of every label."""
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    per_label = max(2, batch_size // max(1, len(by_label)))
    batches = []
    for _ in range(steps):
        batch = []
        for label in sorted(by_label):
            rows = by_label[label]
            batch += rng.sample(rows, min(per_label, len(rows)))
        batches.append(batch)
    return batches
