"""NewsAnalyzer: topic, calibrated confidence and a headline for each article, in one call.

>>> analyzer = NewsAnalyzer.from_pretrained("runs/topic", headline_dir="runs/headline")  # doctest: +SKIP
>>> analyzer.analyze({"title": "", "body": "海关总署今天发布前三季度进出口数据……"})           # doctest: +SKIP
{'label': 'trade', 'score': 0.93, 'scores': {'trade': 0.93, ...}, 'headline': '前三季度我国进出口同比增长'}

``xinwen score`` runs this same object over files, so the Python API and the batch job cannot
disagree. Both models run batched: the classifier in length-sorted, token-budgeted batches
(``NewsClassifier.model_probabilities``), the generator through ``HeadlineGenerator.generate`` on
a list (it sorts by length itself).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import torch

from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.text import Article, ArticleText, as_article


class Analysis(TypedDict):
    label: str
    score: float
    scores: dict[str, float]
    headline: str | None  # None without a headline model


@torch.inference_mode()
def batched_probabilities(classifier: NewsClassifier, articles: Sequence[ArticleText], batch_size: int = 32,
                          max_batch_tokens: int | None = None) -> torch.Tensor:
    """Calibrated probabilities, one row per article: softmax(logits / T), chunks averaged, times
    the folder's lexical expert when it has one (``NewsClassifier.route``).

    ``NewsClassifier.probabilities`` with a chosen token budget per batch (``xinwen score
    --max-batch-tokens``)."""
    return classifier.route(articles, lambda part: classifier.model_probabilities(part, batch_size,
                                                                                 max_batch_tokens))


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
        from xinwen.inference.topic.backends import load_classifier

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
        single = isinstance(articles, (str, Mapping)) or not isinstance(articles, Sequence)
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
        probs = batched_probabilities(self.classifier, articles, batch_size, max_batch_tokens)
        # _to_prediction applies top_k and the fallback threshold exactly as NewsClassifier.predict.
        predictions = [self.classifier._to_prediction(row, top_k, threshold) for row in probs]
        headlines: list[str | None] = [None] * len(articles)
        if self.generator is not None:
            # One call for the whole list: the generator sorts by length and batches itself.
            headlines = list(self.generator.generate(list(originals), batch_size=headline_batch_size))
        return [Analysis(label=p.label, score=p.score, scores=p.scores, headline=h)
                for p, h in zip(predictions, headlines)]
