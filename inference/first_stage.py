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
``first_stage.safetensors`` (idf, weights): no pickles.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .settings import RECHECK_MARGIN
from .text import ArticleText, classifier_text

STAGE_JSON = "first_stage.json"
STAGE_TENSORS = "first_stage.safetensors"


@dataclass
class FirstStageSettings:
    labels: list[str]
    ngram_range: tuple[int, int] = (1, 3)
    # An article is answered here when the top probability is >= accept (> 1 disables the stage).
    accept: float = 1.01
    # How ``accept`` was chosen and what it gave on the held-out articles.
    report: dict[str, Any] = field(default_factory=dict)


class FirstStage:
    def __init__(self, settings: FirstStageSettings, vocabulary: list[str], idf: np.ndarray,
                 weights: np.ndarray, bias: np.ndarray):
        from sklearn.feature_extraction.text import TfidfVectorizer

        if weights.shape != (len(settings.labels), len(vocabulary)) or idf.shape != (len(vocabulary),):
            raise ValueError(f"first stage: weights {weights.shape} / idf {idf.shape} do not match "
                             f"{len(settings.labels)} labels x {len(vocabulary)} n-grams")
        self.settings = settings
        self.vocabulary = vocabulary
        self.weights, self.bias = weights.astype(np.float32), bias.astype(np.float32)
        # The vectorizer is rebuilt from plain arrays (fixed vocabulary + idf), never unpickled.
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=tuple(settings.ngram_range),
                                          sublinear_tf=True, dtype=np.float32,
                                          vocabulary={g: i for i, g in enumerate(vocabulary)})
        self.vectorizer.idf_ = idf.astype(np.float32)

    @property
    def labels(self) -> list[str]:
        return self.settings.labels

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.vectorizer.transform(list(texts)) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def answer(self, articles: Sequence[ArticleText], model_labels: Sequence[str],
               threshold: float = 0.0, margin: float = RECHECK_MARGIN) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities in ``model_labels`` order, accepted mask), one row per article.

        With a confidence threshold (below it the answer is the fallback label), a top
        probability within ``margin`` of the threshold is left to the classifier as well."""
        probs = self.probabilities([classifier_text(a) for a in articles])
        order = [self.labels.index(label) for label in model_labels]
        probs = torch.from_numpy(np.ascontiguousarray(probs[:, order]))
        top = probs.max(dim=1).values if len(probs) else torch.zeros(0)
        accepted = top >= self.settings.accept
        if threshold > 0:
            accepted &= (top - threshold).abs() >= margin
        return probs, accepted

    # -- files -----------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        meta = {**asdict(self.settings), "vocabulary": self.vocabulary}
        tmp_json, tmp_tensors = folder / (STAGE_JSON + ".tmp"), folder / (STAGE_TENSORS + ".tmp")
        tmp_json.write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
        save_file({"idf": self.vectorizer.idf_.astype(np.float32), "weights": self.weights, "bias": self.bias},
                  str(tmp_tensors))
        tmp_tensors.replace(folder / STAGE_TENSORS)
        tmp_json.replace(folder / STAGE_JSON)  # last: the json's presence means the pair is complete

    @classmethod
    def load(cls, folder: str | Path) -> "FirstStage | None":
        """The first stage saved in ``folder``, or ``None`` when it has none."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / STAGE_JSON).is_file():
            return None
        meta = json.loads((folder / STAGE_JSON).read_text(encoding="utf-8"))
        vocabulary = meta.pop("vocabulary")
        meta["ngram_range"] = tuple(meta["ngram_range"])
        tensors = load_file(str(folder / STAGE_TENSORS))
        return cls(FirstStageSettings(**meta), vocabulary, tensors["idf"], tensors["weights"], tensors["bias"])


def remove_first_stage(folder: str | Path) -> None:
    for name in (STAGE_JSON, STAGE_TENSORS):
        Path(folder, name).unlink(missing_ok=True)
