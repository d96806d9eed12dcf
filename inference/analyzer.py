"""NewsAnalyzer: topic, calibrated confidence and a headline for each article, in one call.

>>> analyzer = NewsAnalyzer.from_pretrained("runs/topic", headline_dir="runs/headline")  # doctest: +SKIP
>>> analyzer.analyze({"title": "", "body": "海关总署今天发布前三季度进出口数据……"})           # doctest: +SKIP
{'label': 'trade', 'score': 0.93, 'scores': {'trade': 0.93, ...}, 'headline': '前三季度我国进出口同比增长'}

``xinwen score`` runs this same object over files, so the Python API and the batch job cannot
disagree. Both models run batched: the classifier through ``NewsClassifier.predict`` (its
probabilities in length-sorted, token-budgeted batches), the generator through
``HeadlineGenerator.generate`` on a list (it sorts by length itself). A title-only article gets a
label and no headline (it has one already).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import torch

from xinwen.inference.text import Article, ArticleText, as_article, is_one_article
from xinwen.inference.topic.backends import load_classifier
from xinwen.inference.topic.classifier import NewsClassifier


class Analysis(TypedDict):
    label: str
    score: float
    scores: dict[str, float]
    headline: str | None  # None without a headline model


def batched_probabilities(classifier: NewsClassifier, articles: Sequence[ArticleText], batch_size: int = 32,
                          max_batch_tokens: int | None = None) -> torch.Tensor:
    """Deprecated: ``classifier.probabilities(articles, batch_size, max_batch_tokens=...)``."""
    warnings.warn("batched_probabilities is deprecated; use NewsClassifier.probabilities(articles, batch_size, "
                  "max_batch_tokens=...)", DeprecationWarning, stacklevel=2)
    return classifier.probabilities(articles, batch_size, max_batch_tokens=max_batch_tokens)


class NewsAnalyzer:
    """A topic classifier and, optionally, a headline generator behind one ``analyze`` call."""

    def __init__(self, classifier: NewsClassifier, generator: Any = None):
        self.classifier = classifier
        self.generator = generator

    @classmethod
    def from_pretrained(cls, classifier_dir: str | Path, headline_dir: str | Path | None = None,
                        device: str | None = None, backend: str = "auto",
                        first_stage: bool = True) -> "NewsAnalyzer":
        """``backend``: ``torch``, ``int8``, ``onnx`` or ``onnx-int8`` (``auto``: what ``xinwen
        export`` recorded in the folder, else ``torch``)."""
        classifier = load_classifier(classifier_dir, backend=backend, device=device, first_stage=first_stage)
        generator = None
        if headline_dir is not None:
            from xinwen.inference.headline.generator import HeadlineGenerator

            generator = HeadlineGenerator.from_pretrained(headline_dir, device=device)
        return cls(classifier, generator)

    def analyze(self, articles: Article | Sequence[Article], top_k: int | None = None,
                threshold: float | None = None, batch_size: int = 32,
                headline_batch_size: int = 16) -> Analysis | list[Analysis]:
        """One article (a ``str`` body, or a mapping with ``title`` and ``body``) in, one
        ``Analysis`` out; a list in, a list out; ``[]`` for ``[]``.

        Below ``threshold`` (default: the one saved with the classifier) the label is ``other``."""
        single = is_one_article(articles) or not isinstance(articles, Sequence)
        items = [articles] if single else list(articles)
        prepared = [as_article(item, None if single else i) for i, item in enumerate(items)]
        results = self.analyze_prepared(prepared, items, top_k=top_k,
                                        threshold=threshold, batch_size=batch_size,
                                        headline_batch_size=headline_batch_size)
        return results[0] if single else results

    def analyze_prepared(self, articles: Sequence[ArticleText], originals: Sequence[Article],
                         top_k: int | None = None, threshold: float | None = None, batch_size: int = 32,
                         max_batch_tokens: int | None = None, headline_batch_size: int = 16) -> list[Analysis]:
        """The batch path used by ``xinwen score``: the cleaned articles for the classifier, and
        the same articles as given for the generator (it prepares its own source text)."""
        if not articles:
            return []
        predictions = self.classifier.predict(list(articles), top_k=top_k, threshold=threshold,
                                              batch_size=batch_size, max_batch_tokens=max_batch_tokens)
        headlines: list[str | None] = [None] * len(articles)
        with_body = [i for i, article in enumerate(articles) if article.body]
        if self.generator is not None and with_body:
            # One call for the whole list: the generator sorts by length and batches itself.
            written = self.generator.generate([originals[i] for i in with_body], batch_size=headline_batch_size)
            for i, headline in zip(with_body, written):
                headlines[i] = headline
        return [Analysis(label=p.label, score=p.score, scores=p.scores, headline=h)
                for p, h in zip(predictions, headlines)]
