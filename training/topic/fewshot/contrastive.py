"""The contrastive step of the few-shot recipe, as a task of the shared training loop.

Each step embeds a label-balanced batch of examples (batches.py) - the mean of the token states,
L2-normalised - and pulls every same-label pair towards cosine 1 and every other pair towards
cosine 0 (the squared gap, SetFit's loss, over all pairs of the batch). Only the top encoder
layers train; the frozen bottom runs once per example (training/encoder_cache.py), since every
example comes back in many steps.
"""
from __future__ import annotations

import random

import torch

from xinwen.inference.batching import pad_states
from xinwen.inference.encoders.pooling import mean_pooled
from xinwen.training.encoder_cache import EncoderCache
from xinwen.training.loop import LengthBucketSampler, Task
from xinwen.training.topic.fewshot.batches import balanced_batches


def pair_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared gap between each pair's cosine and its target (1 same label, 0 otherwise),
    over all ordered pairs of distinct rows of unit-length ``embeddings``."""
    cosine = embeddings @ embeddings.T
    target = (labels[:, None] == labels[None, :]).to(cosine.dtype)
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=cosine.device)
    return (cosine - target)[off_diagonal].pow(2).mean()


class ContrastiveTask:
    """Balanced batches over the cached states of the examples; the pair loss; the loss on a fixed
    batch as the epoch's score (there is no dev split)."""

    def __init__(self, cache: EncoderCache, states: list[torch.Tensor], labels: list[int], steps: int,
                 batch_size: int, seed: int):
        self.cache, self.states, self.labels = cache, states, labels
        self.steps, self.batch_size, self.seed = steps, batch_size, seed
        self.scored_batch = balanced_batches(labels, 1, batch_size, random.Random(seed - 1))[0]

    def build(self, model, lr: float) -> Task:
        trainable = [p for p in model.parameters() if p.requires_grad]
        width = len(self.scored_batch)  # every batch has this many examples
        sampler = LengthBucketSampler([len(s) for s in self.states], width, width, self.seed, select=self.select)
        return Task(model, [{"params": trainable, "lr": lr}], sampler, self.collate, self.loss, self.evaluate)

    def select(self, epoch: int) -> tuple[list[int], random.Random]:
        """The epoch's batches back to back (cut again at the same width), a pure function of the
        seed and the epoch, so a resumed run replays them."""
        rng = random.Random(self.seed * 1000 + epoch)
        batches = balanced_batches(self.labels, self.steps, self.batch_size, rng)
        return [i for batch in batches for i in batch], rng

    def collate(self, idx: list[int]) -> dict:
        hidden, mask = pad_states([self.states[i] for i in idx])
        return {"hidden": hidden, "attention_mask": mask, "labels": torch.tensor([self.labels[i] for i in idx])}

    def loss(self, model, batch: dict) -> torch.Tensor:
        top = self.cache.encode(model, batch["hidden"], batch["attention_mask"]).last_hidden_state
        return pair_loss(mean_pooled(top.float(), batch["attention_mask"]), batch["labels"])

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in self.collate(self.scored_batch).items()}
        loss = float(self.loss(model, batch))
        return {"score": -loss, "pair_loss": loss}
