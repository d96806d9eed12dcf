"""A character n-gram TF-IDF + softmax regression, stored as JSON + safetensors (never pickled).

Two parts of a model folder use one: the first stage (first_stage.py), which answers the articles
it is sure of, and the lexical expert (lexical.py), whose probabilities are multiplied into the
encoder's. Both are rebuilt here from plain arrays: a fixed vocabulary, its idf and the weights.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinwen.inference.text import ArticleText, classifier_text


class NgramModel:
    def __init__(self, labels: Sequence[str], vocabulary: list[str], idf: np.ndarray, weights: np.ndarray,
                 bias: np.ndarray, ngram_range: tuple[int, int] = (1, 3)):
        from sklearn.feature_extraction.text import TfidfVectorizer

        if weights.shape != (len(labels), len(vocabulary)) or idf.shape != (len(vocabulary),):
            raise ValueError(f"n-gram model: weights {weights.shape} / idf {idf.shape} do not match "
                             f"{len(labels)} labels x {len(vocabulary)} n-grams")
        self.labels = list(labels)
        self.vocabulary = vocabulary
        self.ngram_range = tuple(ngram_range)
        self.weights, self.bias = weights.astype(np.float32), bias.astype(np.float32)
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=True,
                                          dtype=np.float32, vocabulary={g: i for i, g in enumerate(vocabulary)})
        self.vectorizer.idf_ = idf.astype(np.float32)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), len(labels)] softmax probabilities, in ``self.labels`` order."""
        logits = self.vectorizer.transform(list(texts)) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def article_probabilities(self, articles: Sequence[ArticleText], model_labels: Sequence[str]) -> torch.Tensor:
        """Probabilities for whole articles (title + body), columns in ``model_labels`` order."""
        if not articles:
            return torch.zeros((0, len(model_labels)), dtype=torch.float32)
        order = [self.labels.index(label) for label in model_labels]
        probs = self.probabilities([classifier_text(a) for a in articles])
        return torch.from_numpy(np.ascontiguousarray(probs[:, order], dtype=np.float32))

    def save(self, json_path: Path, tensors_path: Path, meta: dict[str, Any]) -> None:
        """``meta`` (settings, report) + vocabulary to ``json_path``, arrays to ``tensors_path``.

        The JSON is written last: its presence means the pair is complete."""
        from safetensors.numpy import save_file

        tmp_json, tmp_tensors = json_path.with_name(json_path.name + ".tmp"), tensors_path.with_name(
            tensors_path.name + ".tmp")
        body = {**meta, "labels": self.labels, "ngram_range": list(self.ngram_range), "vocabulary": self.vocabulary}
        tmp_json.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
        save_file({"idf": self.vectorizer.idf_.astype(np.float32), "weights": self.weights, "bias": self.bias},
                  str(tmp_tensors))
        tmp_tensors.replace(tensors_path)
        tmp_json.replace(json_path)

    @classmethod
    def load(cls, json_path: Path, tensors_path: Path, fix: str = "refit it"
             ) -> tuple["NgramModel", dict[str, Any]] | None:
        """(model, the rest of the JSON) or ``None`` when ``json_path`` does not exist. A broken
        pair raises ValueError naming the file and ``fix``."""
        from safetensors.numpy import load_file

        if not json_path.is_file():
            return None
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
            vocabulary, labels = meta.pop("vocabulary"), meta.pop("labels")
            ngram_range = tuple(meta.pop("ngram_range"))
            tensors = load_file(str(tensors_path))
            model = cls(labels, vocabulary, tensors["idf"], tensors["weights"], tensors["bias"], ngram_range)
        except (OSError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{json_path} / {tensors_path.name}: unreadable n-gram model ({type(err).__name__}: "
                             f"{err}); fix: {fix}") from None
        return model, meta
