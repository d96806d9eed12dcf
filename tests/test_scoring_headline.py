"""xinwen score with a headline model: a 'headline' column, produced by the generator's batched path."""
from __future__ import annotations

import importlib.util

import pytest
from scoring_helpers import articles, jsonl_lines, read_jsonl, score, single_thread  # noqa: F401  (autouse fixture)
from tiny_seq2seq import save_tiny_bart

from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.topic.classifier import NewsClassifier

HAVE_GENERATOR = importlib.util.find_spec("xinwen.inference.headline.generator") is not None


class CountingGenerator:
    def __init__(self):
        self.calls = 0

    def generate(self, items, batch_size=16, **overrides):
        self.calls += 1
        return [f"{item['body'][:4]}!" for item in items]


@pytest.fixture(scope="module")
def tiny_headline_dir(tmp_path_factory):
    return save_tiny_bart(tmp_path_factory.mktemp("tiny_headline"))


def test_score_adds_headlines_from_one_generator_call_per_chunk(tmp_path, tiny_classifier_dir):
    generator = CountingGenerator()
    analyzer = NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"), generator)
    recs = articles(10)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(recs) + ['{"id": "x", "body": ""}']) + "\n", encoding="utf-8")
    score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl", headline="fake-generator", chunk_size=4)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["headline"] for r in rows] == [r["body"][:4] + "!" for r in recs]
    assert list(rows[0]) == ["id", "label", "score", "scores", "headline"]
    assert generator.calls == 3  # chunks of 4, 4, 3 records (the last one's reject is not generated)


@pytest.mark.skipif(not HAVE_GENERATOR, reason="xinwen.inference.headline.generator (HeadlineGenerator) has not landed yet")
def test_score_headlines_equal_the_generators_batched_output(tmp_path, tiny_classifier_dir, tiny_headline_dir):
    from xinwen.inference import HeadlineGenerator

    analyzer = NewsAnalyzer.from_pretrained(tiny_classifier_dir, headline_dir=tiny_headline_dir, device="cpu")
    recs = articles(7)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(recs)) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    score(analyzer, tiny_classifier_dir, path, out, headline=str(tiny_headline_dir), chunk_size=7,
          headline_batch_size=3)
    generator = HeadlineGenerator.from_pretrained(tiny_headline_dir, device="cpu")
    expected = generator.generate([{"title": r["title"], "body": r["body"]} for r in recs], batch_size=3)
    assert [r["headline"] for r in read_jsonl(out)] == expected
    assert all(isinstance(h, str) and h for h in expected)
