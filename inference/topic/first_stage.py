"""A cheap first stage in front of the classifier: answers only for the articles it is sure of.

Most news in a dump is plainly off-topic (sport, entertainment, ...), and a character n-gram
model reads that in ~3.5 ms per article, where the transformer spends ~0.1 s of CPU (both
measured on the speed bench's 957 test-split articles). The first
stage is distilled from the classifier itself (``xinwen first-stage DIR``: it learns the
classifier's labels, not the gold ones) and accepts an article only when its top probability
reaches ``accept``, a level chosen on held-out articles so that accepted answers agree with the
classifier at a target rate (99% by default). Every other article goes to the classifier as
before, so the first stage can only change labels where it was measured to agree.

Stored beside the model as ``first_stage.json`` (settings, vocabulary, fit report) and
``first_stage.safetensors`` (idf, weights) through ``ngram_model.NgramModel``: no pickles.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinwen.inference.topic.ngram_model import NgramModel
from xinwen.inference.settings import RECHECK_MARGIN
from xinwen.inference.text import ArticleText

STAGE_JSON = "first_stage.json"
STAGE_TENSORS = "first_stage.safetensors"


@dataclass
class FirstStageSettings:
    # The labels and n-gram range are the n-gram model's own (FirstStage.labels).
    # An article is answered here when the top probability is >= accept (> 1 disables the stage).
    accept: float = 1.01
    # How ``accept`` was chosen and what it gave on the held-out articles.
    report: dict[str, Any] = field(default_factory=dict)


class FirstStage:
    def __init__(self, settings: FirstStageSettings, ngrams: NgramModel):
        self.settings = settings
        self.ngrams = ngrams

    @property
    def labels(self) -> list[str]:
        return self.ngrams.labels

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.ngrams.probabilities(texts)

    def answer(self, articles: Sequence[ArticleText], model_labels: Sequence[str],
               threshold: float = 0.0, margin: float = RECHECK_MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities in ``model_labels`` order, accepted mask), one row per article.

        With a confidence threshold (below it the answer is the fallback label), a top
        probability within ``margin`` of the threshold is left to the classifier as well."""
        probs = self.ngrams.article_probabilities(articles, model_labels)
        top = probs.max(dim=1).values if len(probs) else torch.zeros(0)
        accepted = top >= self.settings.accept
        if threshold > 0:
            accepted &= (top - threshold).abs() >= margin
        return probs, accepted

    # -- files -----------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.ngrams.save(folder / STAGE_JSON, folder / STAGE_TENSORS,
                         {"accept": self.settings.accept, "report": self.settings.report})

    @classmethod
    def load(cls, folder: str | Path) -> "FirstStage | None":
        """The first stage saved in ``folder``, or ``None`` when it has none."""
        loaded = NgramModel.load(Path(folder, STAGE_JSON), Path(folder, STAGE_TENSORS),
                                 fix=f"refit it with `xinwen first-stage {folder}` (or --remove it)")
        if loaded is None:
            return None
        ngrams, meta = loaded
        known = {k: meta[k] for k in ("accept", "report") if k in meta}
        return cls(FirstStageSettings(**known), ngrams)


def remove_first_stage(folder: str | Path) -> bool:
    """Delete the folder's first stage; False when it had none (nothing was removed)."""
    removed = False
    for name in (STAGE_JSON, STAGE_TENSORS):
        if Path(folder, name).is_file():
            Path(folder, name).unlink()
            removed = True
    return removed
