"""NewsAnalyzer: the Python API answers in kind, agrees with NewsClassifier, batches the generator."""
from __future__ import annotations

import importlib.util

import pytest
from scoring_helpers import single_thread  # noqa: F401  (autouse fixture)
from tiny_models import topic_records

from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.batching import length_batches
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.text import as_article


class FakeGenerator:
    """Stands in for HeadlineGenerator: records its calls; 'generates' the first 6 characters of
    the body (of the title when there is no body, as the real one rewrites a title)."""

    def __init__(self):
        self.calls: list[tuple[list, int]] = []

    def generate(self, items, batch_size=16, **overrides):
        assert isinstance(items, list), "the analyzer must hand the generator a whole batch"
        self.calls.append((list(items), batch_size))
        return [(item if isinstance(item, str) else item.get("body") or item["title"])[:6] for item in items]


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir):
    return NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")


def test_one_in_one_out_list_in_list_out(classifier):
    analyzer = NewsAnalyzer(classifier)
    one = analyzer.analyze("海关进口贸易数据发布")
    assert set(one) == {"label", "score", "scores", "headline"}
    assert one["label"] in classifier.labels and one["headline"] is None
    assert one["scores"][one["label"]] == pytest.approx(one["score"])
    assert sum(one["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    many = analyzer.analyze(["铁路运输", {"title": "火灾事故", "body": "消防救援"}])
    assert isinstance(many, list) and len(many) == 2
    assert analyzer.analyze([]) == []
    assert analyzer.analyze(("铁路",))[0]["label"] in classifier.labels


def test_bad_items_name_their_index(classifier):
    analyzer = NewsAnalyzer(classifier)
    with pytest.raises(TypeError, match="index 1"):
        analyzer.analyze(["铁路运输", 42])
    with pytest.raises(TypeError, match="index 2.*'body'"):
        analyzer.analyze(["铁路", "海关", {"title": "x", "body": 3}])
    with pytest.raises(ValueError, match="index 0 has neither a title nor a body"):
        analyzer.analyze([{"title": "", "body": ""}])
    with pytest.raises(ValueError, match="top_k"):
        analyzer.analyze(["铁路"], top_k=0)


def test_agrees_with_the_classifier_and_applies_top_k_and_threshold(classifier):
    analyzer = NewsAnalyzer(classifier)
    recs = topic_records(2)
    expected = classifier.predict(recs)
    got = analyzer.analyze(recs, batch_size=3)
    assert [g["label"] for g in got] == [e.label for e in expected]
    assert [g["score"] for g in got] == pytest.approx([e.score for e in expected], abs=1e-6)
    top = analyzer.analyze(recs[0], top_k=2)
    assert len(top["scores"]) == 2
    assert analyzer.analyze(recs[0], threshold=0.99)["label"] == "other"


def test_dynamic_batches_respect_the_token_budget_and_match_one_input_at_a_time(classifier):
    lengths = [5, 40, 3, 40, 12, 7, 33, 2, 40, 9]
    batches = length_batches(lengths, batch_size=2, max_batch_tokens=80)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 80 or len(batch) == 1
    assert len(batches[0]) > 2, "short inputs share a batch larger than batch_size"
    articles = [as_article(r) for r in topic_records(3)]
    alone = classifier.probabilities(articles, batch_size=1, max_batch_tokens=1)  # no padding at all
    dynamic = classifier.probabilities(articles, batch_size=2, max_batch_tokens=100)
    assert (alone - dynamic).abs().max() < 1e-5


def test_headlines_come_from_one_batched_generator_call(classifier):
    generator = FakeGenerator()
    analyzer = NewsAnalyzer(classifier, generator)
    items = ["铁路运输发展规划", {"title": "海关", "body": "进口贸易增长很快"}, {"title": "只有标题的文章"}]
    got = analyzer.analyze(items, headline_batch_size=8)
    # A title-only article is classified and gets no headline: it has one already.
    assert [g["headline"] for g in got] == ["铁路运输发展", "进口贸易增长", None]
    assert got[2]["label"] == classifier.predict(items[2]).label
    assert generator.calls == [(items[:2], 8)]
    assert analyzer.analyze("港口物流")["headline"] == "港口物流"


def test_package_exports():
    import xinwen.inference as inference

    assert inference.NewsClassifier is NewsClassifier and inference.NewsAnalyzer is NewsAnalyzer
    if importlib.util.find_spec("xinwen.inference.headline.generator") is None:
        pytest.skip("xinwen.inference.headline.generator (HeadlineGenerator) has not landed yet")
    from xinwen.inference import HeadlineGenerator

    assert callable(HeadlineGenerator.from_pretrained)
