"""Batching for every model input in xinwen: pad token-id lists, group inputs of similar length.

The classifier, the headline generator and training (``training/`` imports these; inference
never imports training) all batch the same way, so padding and ordering are defined once here.

>>> pad_batch([[5, 6, 7], [8]], pad_id=0)["input_ids"].tolist()
[[5, 6, 7], [8, 0, 0]]
>>> length_batches([3, 1, 2, 9], batch_size=2)
[[1, 2], [0, 3]]
>>> length_batches([4, 4, 4, 16], batch_size=1, max_batch_tokens=16)
[[0, 1, 2], [3]]
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` (right-padded with ``pad_id``) and ``attention_mask`` for token-id lists."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def pad_states(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 [rows, longest, hidden] zero-padded, attention mask) for per-item hidden states
    of shape [length, hidden] (e.g. cached encoder outputs)."""
    width = max(len(s) for s in states)
    hidden = torch.zeros((len(states), width, states[0].shape[-1]), dtype=torch.float32)
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for row, state in enumerate(states):
        hidden[row, : len(state)] = state.float()
        mask[row, : len(state)] = 1
    return hidden, mask


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches of similar length, shortest first (ties in input order), so
    padding is small.

    Without ``max_batch_tokens``: ``batch_size`` indices per batch. With it, a batch holds at
    most ``max_batch_tokens`` padded tokens and ``8 * batch_size`` rows: full-length inputs come
    ``batch_size`` at a time, short ones in proportionally larger batches, so every batch costs
    about the same and none is mostly padding. An input longer than the budget gets a batch of
    its own."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda k: (lengths[k], k))
    if max_batch_tokens is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        width = lengths[k]  # ascending order: the newest item is the widest in its batch
        if current and ((len(current) + 1) * width > max_batch_tokens or len(current) >= 8 * batch_size):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches
