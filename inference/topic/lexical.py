"""The lexical expert: a character n-gram model whose probabilities are multiplied into the encoder's.

The encoder reads a window of ``text.max_length`` tokens (head + tail by default); a topic that
first appears in the middle of a long feature is invisible to it, and rare topics (``trade``: 36
corpus items) leave a fine-tuned head with few examples of their vocabulary. A character
TF-IDF + logistic regression reads the whole article and learns exactly those keywords. The two
err differently, so a product of experts (Hinton 2002) keeps what each is sure of:

    p(y | x) = softmax((log p_encoder(y | x) + weight * log p_ngram(y | x)) / temperature)

The n-gram model is fitted with balanced class weights, so its probabilities carry a flat prior
and the product keeps the encoder's corpus prior once. ``temperature`` is fitted on dev after the
product (the encoder's own temperature is applied before it). Measured in docs/benchmarks.md
("Fifth session"). ``transformers.pipeline`` does not know about this file and gives the
encoder's answer alone; ``NewsClassifier.probabilities`` applies the product (so ``predict``,
``xinwen eval`` and ``xinwen score`` do).

Stored beside the model as ``lexical.json`` (weight, temperature, fit report, vocabulary) and
``lexical.safetensors`` (idf, weights): no pickles.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.inference.text import ArticleText

LEXICAL_JSON = "lexical.json"
LEXICAL_TENSORS = "lexical.safetensors"


@dataclass
class LexicalSettings:
    weight: float = 0.5
    temperature: float = 1.0
    # How the n-gram model was fitted and what the product gave on dev.
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"lexical weight: expected a finite number >= 0, got {self.weight}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"lexical temperature: expected > 0, got {self.temperature}")


class LexicalExpert:
    def __init__(self, settings: LexicalSettings, ngrams: NgramModel):
        self.settings = settings
        self.ngrams = ngrams

    @property
    def labels(self) -> list[str]:
        return self.ngrams.labels

    def probabilities(self, articles: Sequence[ArticleText], model_labels: Sequence[str]) -> torch.Tensor:
        """The n-gram model's probabilities over the whole article text, in ``model_labels`` order."""
        return self.ngrams.article_probabilities(articles, model_labels)

    def logits(self, encoder_probs: torch.Tensor, lexical_probs: torch.Tensor) -> torch.Tensor:
        """log p_encoder + weight * log p_ngram (before the temperature and the softmax)."""
        return encoder_probs.clamp_min(1e-9).log() + self.settings.weight * lexical_probs.clamp_min(1e-9).log()

    def combine(self, encoder_probs: torch.Tensor, lexical_probs: torch.Tensor,
                temperature: float | None = None) -> torch.Tensor:
        """The product of experts (module docstring); ``temperature`` defaults to the fitted one."""
        t = self.settings.temperature if temperature is None else temperature
        return torch.softmax(self.logits(encoder_probs, lexical_probs) / t, dim=-1)

    # -- files -----------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.ngrams.save(folder / LEXICAL_JSON, folder / LEXICAL_TENSORS,
                         {"weight": self.settings.weight, "temperature": self.settings.temperature,
                          "report": self.settings.report})

    @classmethod
    def load(cls, folder: str | Path) -> "LexicalExpert | None":
        """The lexical expert saved in ``folder``, or ``None`` when it has none."""
        fix = f"refit it with `xinwen lexical {folder}`"
        loaded = NgramModel.load(Path(folder, LEXICAL_JSON), Path(folder, LEXICAL_TENSORS), fix=fix)
        return None if loaded is None else cls._from_saved(*loaded, where=Path(folder, LEXICAL_JSON), fix=fix)

    @classmethod
    def _from_saved(cls, ngrams: NgramModel, meta: dict[str, Any], where: Path, fix: str) -> "LexicalExpert":
        try:
            settings = LexicalSettings(**{k: meta[k] for k in ("weight", "temperature", "report") if k in meta})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}; fix: {fix}") from None
        return cls(settings, ngrams)


def remove_lexical(folder: str | Path) -> None:
    for name in (LEXICAL_JSON, LEXICAL_TENSORS):
        Path(folder, name).unlink(missing_ok=True)
