"""The contrastive step of the few-shot recipe, as a task of the shared training loop.

Pairs of examples (pairs.py) pull the mean-pooled embeddings of same-label articles together and
push other labels apart: the loss is the squared gap between the pair's cosine and its target
(1 or 0), as in SetFit. Only the top encoder layers train; the frozen bottom runs once per
example (training/encoder_cache.py), since every example appears in about 40 pairs.
"""
from __future__ import annotations

import torch

from xinwen.inference.batching import pad_states
from xinwen.inference.encoders.pooling import mean_pooled
from xinwen.training.encoder_cache import EncoderCache
from xinwen.training.loop import LengthBucketSampler, Task
from xinwen.training.topic.fewshot.pairs import Pair

# Pairs whose loss the per-epoch "evaluation" reports (there is no dev split to score).
PAIRS_SCORED = 256


class PairTask:
    """Batches of pairs over cached states; the loss; the pair loss as the epoch's score."""

    def __init__(self, cache: EncoderCache, states: list[torch.Tensor], pairs: list[Pair]):
        self.cache, self.states, self.pairs = cache, states, pairs

    def build(self, model, lr: float, batch_size: int, seed: int) -> Task:
        trainable = [p for p in model.parameters() if p.requires_grad]
        lengths = [max(len(self.states[p.first]), len(self.states[p.second])) for p in self.pairs]
        sampler = LengthBucketSampler(lengths, batch_size, batch_size * 16, seed)
        return Task(model, [{"params": trainable, "lr": lr}], sampler, self.collate, self.loss, self.evaluate)

    def collate(self, idx: list[int]) -> dict:
        """The distinct examples of the pairs (each run through the top layers once) and, per
        pair, the rows of its two examples and its target."""
        pairs = [self.pairs[i] for i in idx]
        examples = sorted({p.first for p in pairs} | {p.second for p in pairs})
        row = {example: r for r, example in enumerate(examples)}
        hidden, mask = pad_states([self.states[e] for e in examples])
        return {"hidden": hidden, "attention_mask": mask,
                "first": torch.tensor([row[p.first] for p in pairs]),
                "second": torch.tensor([row[p.second] for p in pairs]),
                "target": torch.tensor([p.target for p in pairs])}

    def loss(self, model, batch: dict) -> torch.Tensor:
        top = self.cache.encode(model, batch["hidden"], batch["attention_mask"]).last_hidden_state
        embeddings = mean_pooled(top.float(), batch["attention_mask"])
        cosine = (embeddings[batch["first"]] * embeddings[batch["second"]]).sum(-1)
        return (cosine - batch["target"]).pow(2).mean()

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        device = next(model.parameters()).device
        batch = self.collate(list(range(min(PAIRS_SCORED, len(self.pairs)))))
        loss = float(self.loss(model, {k: v.to(device) for k, v in batch.items()}))
        return {"score": -loss, "pair_loss": loss}
