"""The sentence pairs of the few-shot recipe's contrastive step (SetFit's sampling)."""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple


class Pair(NamedTuple):
    first: int
    second: int
    target: float  # cosine the pair should reach: 1 = same label, 0 = different labels


def sentence_pairs(labels: Sequence[int], rounds: int, max_pairs: int, rng: random.Random) -> list[Pair]:
    """Per round, every example once with a random same-label partner and once with a random
    other-label partner; the first ``max_pairs`` of the shuffled rounds.

    Rounds are shuffled as a whole before they are cut, so a cap keeps every example's pairs in
    even proportion instead of the first rounds only. A label with one example gets no positive
    pair; with one label there is no negative pair."""
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    pairs: list[Pair] = []
    for _ in range(rounds):
        for i, label in enumerate(labels):
            same = [j for j in by_label[label] if j != i]
            if same:
                pairs.append(Pair(i, rng.choice(same), 1.0))
            other = rng.choice([k for k in by_label if k != label]) if len(by_label) > 1 else None
            if other is not None:
                pairs.append(Pair(i, rng.choice(by_label[other]), 0.0))
    rng.shuffle(pairs)
    return pairs[:max_pairs]
