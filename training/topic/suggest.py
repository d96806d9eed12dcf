"""What to label next: the unlabelled articles a topic model is least sure of, spread over
different content, written as a CSV with an empty label column to fill in.

Uncertainty alone picks near-copies (the same ambiguous wire story fifty times); diversity alone
picks articles the model already gets right. So: keep the ``pool_factor * n`` articles with the
smallest margin between the model's two most probable labels, then choose ``n`` of them greedily,
each time the one whose uncertainty times distance (cosine, character n-grams) to everything
already chosen is largest (a weighted k-centre step, as in core-set active learning).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from xinwen.inference.records.readers import Fields, InputRecord, RecordReader
from xinwen.inference.text import ArticleText

logger = logging.getLogger(__name__)

COLUMNS = ("id", "title", "body", "label", "secondary", "model_label", "model_probability", "margin", "line")
DIVERSITY_CHARS = 600  # the opening of the article: what its subject is about, not its boilerplate


@dataclass(frozen=True)
class Suggestion:
    record: InputRecord
    model_label: str
    model_probability: float
    margin: float  # top-1 minus top-2 probability: small = unsure


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (1 for a single-label model)."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def diverse_pick(texts: Sequence[str], uncertainty: np.ndarray, n: int, pool_factor: int = 4) -> list[int]:
    """Indices of ``n`` texts: from the ``pool_factor * n`` most uncertain, greedily the one that
    maximises uncertainty x cosine distance to those already picked (most uncertain first)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = min(n, len(texts))
    if n == 0:
        return []
    pool = np.argsort(-uncertainty, kind="stable")[:max(n, pool_factor * n)]
    vectors = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True).fit_transform(
        [texts[i][:DIVERSITY_CHARS] for i in pool])  # rows are L2-normalised
    weight = uncertainty[pool] + 1e-6  # a sure article can still be picked for its difference
    chosen = [0]
    distance = 1.0 - (vectors @ vectors[0].T).toarray().ravel()
    while len(chosen) < n:
        score = weight * np.clip(distance, 0.0, None)
        score[chosen] = -1.0
        best = int(np.argmax(score))
        chosen.append(best)
        distance = np.minimum(distance, 1.0 - (vectors @ vectors[best].T).toarray().ravel())
    return [int(pool[k]) for k in chosen]


def read_unlabelled(path: str | Path, fields: Fields) -> list[InputRecord]:
    """The usable records of ``path``; unusable ones are counted and logged, never silently kept."""
    reader = RecordReader(path, fields)
    records, rejected = [], 0
    for raw in reader:
        parsed = reader.parse(raw)
        if isinstance(parsed, InputRecord):
            records.append(parsed)
        else:
            rejected += 1
            logger.warning("%s line %d skipped: %s", path, parsed.line, parsed.reason)
    logger.info("%d articles read from %s (%d skipped)", len(records), path, rejected)
    return records


def suggest(classifier, records: Sequence[InputRecord], n: int, batch_size: int = 32,
            pool_factor: int = 4) -> list[Suggestion]:
    """The ``n`` records to label next, most informative first."""
    articles = [r.article for r in records]
    probs = classifier.probabilities(articles, batch_size=batch_size).float().cpu().numpy()
    margin = margins(probs)
    picked = diverse_pick([_text(a) for a in articles], 1.0 - margin, n, pool_factor)
    best = probs.argmax(axis=1)
    return [Suggestion(records[i], classifier.labels[best[i]], float(probs[i, best[i]]), float(margin[i]))
            for i in picked]


def _text(article: ArticleText) -> str:
    return "\n".join(part for part in (article.title, article.body) if part)


def write_suggestions(path: Path, suggestions: Sequence[Suggestion], id_column: str | None) -> None:
    """The CSV to fill in: ``label`` (and optionally ``secondary``) empty, the model's guess beside;
    title and body as the input gave them, so the filled rows can join a training file."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for s in suggestions:
            record_id = s.record.passthrough.get(id_column, "") if id_column else ""
            writer.writerow([record_id, s.record.original["title"], s.record.original["body"], "", "",
                             s.model_label, f"{s.model_probability:.4f}", f"{s.margin:.4f}", s.record.line])
