"""Chunked reading caps the windows per article: a near-1 MiB record costs seconds, and articles
within the cap read exactly what they read without it."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace

import pytest
import torch
from scoring_helpers import single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.settings import DEFAULT_MAX_CHUNKS, SETTINGS_FILE, ClassifierSettings, TextSettings
from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier, encode_for_classifier, override_text_settings

WORDS = "海关发布进口出口贸易数据铁路物流运输事故安全火灾救援产业政策规划园区企业发展"


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir):
    return NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu")  # chunks of 32 tokens


def test_a_near_1_mib_record_reads_at_most_the_cap_in_seconds(classifier):
    body = (WORDS * 20000)[: 1024 * 1024 // 3]
    assert len(body.encode("utf-8")) > 1_000_000
    article = as_article({"title": "长文", "body": body})
    text = classifier.settings.text
    assert text.max_chunks == DEFAULT_MAX_CHUNKS == 64
    assert len(encode_for_classifier(classifier.tokenizer, [article], text)) == 64
    started = time.perf_counter()
    probs = classifier.probabilities([article])
    # 3.3 s measured on a 2-core machine at load 10 (uncapped: 26,301 windows, 21 s); the bound
    # leaves room for a slower runner while still failing if the cap stops applying.
    assert time.perf_counter() - started < 15.0
    assert probs.shape == (1, len(classifier.labels))


def test_articles_within_the_cap_read_what_they_read_uncapped(classifier):
    articles = [as_article({"title": "产业", "body": "园区招商企业发展规划。" * n}) for n in (1, 5, 40)]
    windows = [len(encode_for_classifier(classifier.tokenizer, [a], classifier.settings.text)) for a in articles]
    assert windows[0] == 1 and 1 < windows[-1] < DEFAULT_MAX_CHUNKS
    capped = classifier.probabilities(articles)
    uncapped = classifier.with_experts()
    uncapped.settings = replace(classifier.settings, text=replace(classifier.settings.text, max_chunks=0))
    assert torch.equal(uncapped.probabilities(articles), capped)


def test_a_folder_saved_with_the_old_default_gets_the_cap_unless_it_reads_chunks(tiny_classifier_dir, tmp_path):
    folder = tmp_path / "clf"
    shutil.copytree(tiny_classifier_dir, folder)
    saved = json.loads((folder / SETTINGS_FILE).read_text())
    for long_text, expected in (("head_tail", DEFAULT_MAX_CHUNKS), ("chunks", 0)):
        saved["text"].update(long_text=long_text, max_chunks=0)
        (folder / SETTINGS_FILE).write_text(json.dumps(saved))
        assert ClassifierSettings.load(folder).text.max_chunks == expected


def test_bad_chunk_settings_name_the_key_or_flag(classifier):
    with pytest.raises(ValueError, match="text.max_chunks: expected an integer >= 0, got -1"):
        TextSettings(max_chunks=-1)
    with pytest.raises(ValueError, match="text.chunk_stride"):
        TextSettings(chunk_stride=-4)
    clf = classifier.with_experts()
    clf.settings = replace(classifier.settings)
    with pytest.raises(ValueError, match="--max-chunks.*text.max_chunks"):
        override_text_settings(clf, max_chunks=-3)
    override_text_settings(clf, long_text="chunks", max_chunks=2)
    assert clf.settings.text.max_chunks == 2 and classifier.settings.text.max_chunks == DEFAULT_MAX_CHUNKS
