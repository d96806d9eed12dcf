"""Character-level ROUGE: hand-checked values, agreement with rouge_score, offline evaluate.load."""
from __future__ import annotations

import random

import pytest

from xinwen.inference.metrics.char_rouge import TOKENIZATION, CharTokenizer, char_rouge, char_tokens, pair_scores


def test_identical_strings_score_100_and_disjoint_score_0():
    assert pair_scores("海关发布前三季度数据", "海关发布前三季度数据") == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert pair_scores("铁路运输", "火灾救援") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_known_partial_overlap():
    # pred 6 chars, ref 8 chars, 6 shared unigrams; bigrams 4 of 5 / 4 of 7; LCS 6.
    s = pair_scores("海关发布数据", "海关总署发布数据")
    assert s["rouge1"] == pytest.approx(100 * 2 * 1.0 * 0.75 / 1.75)
    assert s["rouge2"] == pytest.approx(100 * 2 * 0.8 * (4 / 7) / (0.8 + 4 / 7))
    assert s["rougeL"] == pytest.approx(s["rouge1"])
    # Order matters for L, not for 1: swapped halves keep all unigrams, half the LCS, and the
    # bigrams 发布 and 数据 (2 of 3; 据发 / 布数 are lost).
    r = pair_scores("数据发布", "发布数据")
    assert r["rouge1"] == 100.0 and r["rougeL"] == pytest.approx(50.0) and r["rouge2"] == pytest.approx(200 / 3)


def test_every_chinese_character_is_a_token_and_punctuation_and_spaces_are_not():
    assert char_tokens("海关 总署，发布：GDP 6.5%") == list("海关总署发布gdp65")
    assert pair_scores("海 关，发布!", "海关发布") == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    assert pair_scores("", "海关发布")["rougeL"] == 0.0


def test_clipped_counts_do_not_reward_repetition():
    assert pair_scores("海海海海", "海关")["rouge1"] == pytest.approx(100 * 2 * 0.25 * 0.5 / 0.75)


def test_matches_rouge_score_with_a_character_tokenizer():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CharTokenizer())
    rng = random.Random(0)
    alphabet = "海关贸易出口铁路事故安全政策产业,。 1a"
    for _ in range(200):
        pred = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15)))
        ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 15)))
        ours, theirs = pair_scores(pred, ref), scorer.score(ref, pred)
        for key in ("rouge1", "rouge2", "rougeL"):
            assert ours[key] == pytest.approx(100 * theirs[key].fmeasure), (pred, ref, key)


def test_rouge_score_default_tokenizer_would_score_chinese_as_zero():
    # Why the project ships its own tokenization: the default drops every CJK character.
    from rouge_score import rouge_scorer

    assert rouge_scorer.RougeScorer(["rouge1"]).score("海关发布数据", "海关发布数据")["rouge1"].fmeasure == 0.0


def test_corpus_scores_are_means_of_pair_scores_and_name_the_tokenization():
    out = char_rouge(["海关发布数据", "铁路"], ["海关总署发布数据", "铁路"])
    assert out["rougeL"] == pytest.approx((pair_scores("海关发布数据", "海关总署发布数据")["rougeL"] + 100) / 2)
    assert out["tokenization"] == TOKENIZATION and "character-level" in TOKENIZATION
    with pytest.raises(ValueError, match="one reference per prediction"):
        char_rouge(["a"], [])


def test_loads_offline_through_evaluate_by_file_path():
    from xinwen.training.headline.evaluate import load_char_rouge

    metric = load_char_rouge()
    out = metric.compute(predictions=["海关发布数据"], references=["海关总署发布数据"])
    assert out["rouge1"] == pytest.approx(pair_scores("海关发布数据", "海关总署发布数据")["rouge1"])
    per_pair = metric.compute(predictions=["海关", "铁路"], references=["海关", "火灾"], use_aggregator=False)
    assert per_pair["rougeL"] == [100.0, 0.0]
