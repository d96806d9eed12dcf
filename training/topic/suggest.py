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
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from xinwen.inference.records.readers import Fields, InputRecord, RecordReader
from xinwen.inference.text import ArticleText

logger = logging.getLogger(__name__)

COLUMNS = ("id", "title", "body", "label", "model_label", "top_probability", "margin", "line")
DIVERSITY_CHARS = 600  # the opening of the article: what its subject is about, not its boilerplate


@dataclass(frozen=True)
class Suggestion:
    record: InputRecord
    model_label: str  # what the model answers for it (`predict`: the fallback label when unsure)
    top_probability: float
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


def read_unlabelled(reader: RecordReader) -> list[InputRecord]:
    """The usable records; the others are skipped (a dump of raw articles has some) and counted
    by kind in one warning, with the first line of each kind."""
    records: list[InputRecord] = []
    skipped: Counter = Counter()
    first_line: dict[str, int] = {}
    for raw in reader:
        parsed = reader.parse(raw)
        if isinstance(parsed, InputRecord):
            records.append(parsed)
        else:
            skipped[parsed.kind] += 1
            first_line.setdefault(parsed.kind, parsed.line)
    if skipped:
        logger.warning("%s: skipped %d record(s) that cannot be scored: %s", reader.path, sum(skipped.values()),
                       ", ".join(f"{kind} {n} (first at line {first_line[kind]})" for kind, n in skipped.items()))
    logger.info("%d articles read from %s", len(records), reader.path)
    return records


def suggest(classifier, records: Sequence[InputRecord], n: int, batch_size: int = 32,
            pool_factor: int = 4) -> list[Suggestion]:
    """The ``n`` records to label next, most informative first."""
    articles = [r.article for r in records]
    probs = classifier.probabilities(articles, batch_size=batch_size).float().cpu()
    margin = margins(probs.numpy())
    picked = diverse_pick([_text(a) for a in articles], 1.0 - margin, n, pool_factor)
    return [Suggestion(records[i], classifier.decide(probs[i]).label, float(probs[i].max()), float(margin[i]))
            for i in picked]


def _text(article: ArticleText) -> str:
    return "\n".join(part for part in (article.title, article.body) if part)


def write_suggestions(path: Path, suggestions: Sequence[Suggestion], id_column: str | None, source: Path) -> None:
    """The CSV to fill in, written whole or not at all: ``label`` empty, the model's answer beside;
    title and body as the input gave them, so the filled rows can join a training file. A record
    without an id is named ``SOURCE:LINE``."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for s in suggestions:
            record_id = s.record.passthrough.get(id_column) if id_column else None
            writer.writerow([f"{source.name}:{s.record.line}" if record_id in (None, "") else record_id,
                             s.record.original["title"], s.record.original["body"], "",
                             s.model_label, f"{s.top_probability:.4f}", f"{s.margin:.4f}", s.record.line])
    os.replace(partial, path)
