"""The editor's checks (faithful numbers and names, echo, unbalanced marks, dangling endings) and
how the tiny_generator uses them: candidate ranking, length limit, top-k candidates with scores."""
from __future__ import annotations

import pytest
import torch
from tiny_seq2seq import headline_records

from xinwen.inference.headline.candidates import fit_to_length, rank_candidates, with_lead_fallback
from xinwen.inference.headline.quality import check_headline, numbers, quality_rates

BODY = ("法院查明，该男子因抢劫案服刑17年，出狱后获赔110万美元。iPhone 15 的销量增长3.5%。"
        "寿光蔬菜出口前三季度同比增长18%，“菜篮子”工程成效明显。全年投资126万亿元，工期3个月，"
        "投资1100万元，12,500人参加。")


@pytest.mark.parametrize("headline, problems", [
    ("男子抢劫案长获110万美金获刑17万", ["not in the body: 110万美金", "not in the body: 17万"]),
    ("男子服刑217年", ["not in the body: 217年"]),        # a digit added in front
    ("男子服刑1年", ["not in the body: 1年"]),            # "1年" is not a part of "17年"
    ("寿光寿光市寿光出口大增长", ["echo: 寿光"]),
    ("“老爸爸”回来了", ["not in the body: “老爸爸”"]),   # a quotation the body never had
    ("ipad销量增长", ["not in the body: ipad"]),
    ("寿光蔬菜出口增长的", ["ends mid-phrase"]),
    ("寿光“菜篮子工程", ["unbalanced quote or bracket"]),
    ("寿光蔬菜出口》增长18%", ["unbalanced quote or bracket"]),
    ("全年投资126万", ["not in the body: 126万"]),        # 万 is not 万亿
    ("工期3个", ["not in the body: 3个"]),               # 个 is not 个月
    ("12人参加", ["not in the body: 12人"]),             # 12 is not 12,500
    ("中美两国将", ["ends mid-phrase"]),
])
def test_each_failure_is_named(headline, problems):
    assert check_headline(headline, BODY).problems() == problems


@pytest.mark.parametrize("headline", [
    "男子服刑17年后获赔110万美元",
    "IPHONE15销量增长3.5%",             # case and spacing of a Latin name are not facts
    "寿光蔬菜出口同比增长18%",
    "“菜篮子”工程成效明显",
    "１７年冤狱获赔110万美元",            # full-width digits are the same number
    "出口增长1111……",                   # digit and punctuation runs are not echoes (1111 is not in the body)
    "投资1100万建厂",                    # a unit the body has may be dropped, not changed
    "中美关系趋向缓和",                  # 缓和, 参与, 反对 ... end in 和/与/对 and still end a phrase
    "钢铁是怎样炼成的",
    "寿光菜农告别“菜篮子”烦恼",
])
def test_faithful_fluent_headlines_pass(headline):
    check = check_headline(headline, BODY)
    assert check.fluent
    assert check.faithful == ("1111" not in headline)


def test_latin_words_neither_echo_nor_open_a_quote():
    check = check_headline("Mississippi州McDonald’s门店", "Mississippi州McDonald’s门店开业")
    assert check.ok, check.problems()


def test_numbers_keep_magnitude_and_unit():
    assert numbers("前三季度增长18%，投资2.5亿元，共1-9月，3名工人") == ["18%", "2.5亿元", "1", "9月", "3名"]


def test_rates_over_a_set():
    rates = quality_rates(["男子服刑17年", "寿光寿光", "男子服刑19年", "出口增长的"], [BODY] * 4)
    assert rates == {"faithful": 0.75, "echo": 0.25, "unbalanced": 0.0, "cut_off": 0.25}


def test_ranking_puts_faithful_fluent_first_then_score():
    ranked = rank_candidates(["男子服刑19年", "寿光寿光出口", "男子服刑17年", "男子服刑17年后获赔"],
                             [-0.1, -0.2, -0.5, -0.4], BODY)
    assert [c.text for c in ranked] == ["男子服刑17年后获赔", "男子服刑17年", "寿光寿光出口", "男子服刑19年"]
    plain = rank_candidates(["男子服刑19年", "男子服刑17年"], [-0.1, -0.5], BODY, rerank=False)
    assert [c.text for c in plain] == ["男子服刑19年", "男子服刑17年"]


def test_length_limit_comes_first_and_cuts_only_when_nothing_fits():
    ranked = rank_candidates(["男子服刑17年后获赔110万美元", "男子获赔110万美元"], [-0.1, -0.9], BODY, max_chars=10)
    assert ranked[0].text == "男子获赔110万美元" and ranked[1].over_length
    cut = rank_candidates(["寿光蔬菜出口，前三季度同比增长18%"], [-0.1], BODY, max_chars=12)
    assert cut[0].text == "寿光蔬菜出口" and not cut[0].over_length
    assert fit_to_length("寿光蔬菜出口前三季度同比增长", 8) == "寿光蔬菜出口前三"


def test_the_first_sentence_replaces_candidates_that_all_bend_a_fact():
    ranked = rank_candidates(["男子服刑19年", "男子服刑18年"], [-0.1, -0.2], BODY)
    chosen = with_lead_fallback(ranked, BODY, 0, 12)
    assert chosen[0].origin == "lead" and chosen[0].text == "法院查明,该男子因抢劫案" and chosen[0].score == float("-inf")
    assert [c.text for c in chosen[1:]] == ["男子服刑19年", "男子服刑18年"]
    faithful = rank_candidates(["男子服刑19年", "男子服刑17年"], [-0.1, -0.2], BODY)
    assert with_lead_fallback(faithful, BODY, 0, 12) == faithful


def test_no_fallback_to_a_first_sentence_that_is_unfaithful_itself():
    body = "记者5日获悉，12,500人参加。"
    ranked = rank_candidates(["500人参加"], [-0.1], body)
    assert with_lead_fallback(ranked, body, 0, 10) == ranked  # "记者5日获悉,12" would cut 12,500


def test_same_text_from_two_token_paths_is_one_candidate():
    ranked = rank_candidates(["男子服刑17年", "男子服刑17年"], [-0.9, -0.3], BODY)
    assert len(ranked) == 1 and ranked[0].score == -0.3


@pytest.fixture(scope="module")
def bodies():
    return [r["body"][:60] for r in headline_records(4)]


def test_candidates_come_with_scores_best_first(tiny_generator, bodies):
    found = tiny_generator.generate(bodies, candidates=3, num_beams=4, rerank=False)
    assert len(found) == len(bodies)
    for cands in found:
        assert 1 <= len(cands) <= 3
        scores = [c.score for c in cands]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    # Without reranking the first candidate is the decoder's own best headline.
    assert [c[0].text for c in found] == tiny_generator.generate(bodies, num_beams=4, rerank=False)


def test_greedy_gives_one_scored_candidate(tiny_generator, bodies):
    (only,) = tiny_generator.generate(bodies[0], candidates=5, num_beams=1)
    assert only.text == tiny_generator.generate(bodies[0], num_beams=1, rerank=False) and only.score <= 0


def test_reranked_choice_is_one_of_the_beams_candidates(tiny_generator, bodies):
    for body, chosen in zip(bodies, tiny_generator.generate(bodies, num_beams=4)):
        assert chosen in [c.text for c in tiny_generator.generate(body, candidates=4, num_beams=4, rerank=False)]


@pytest.mark.parametrize("limit", [3, 6])
def test_max_chars_per_call_and_from_the_folder(tiny_generator, bodies, limit):
    assert all(len(h) <= limit for h in tiny_generator.generate(bodies, max_chars=limit))
    tiny_generator.settings.max_chars = limit
    try:
        assert all(len(h) <= limit for h in tiny_generator.generate(bodies))
        assert any(len(h) > limit for h in tiny_generator.generate(bodies, max_chars=0, min_new_tokens=8, max_new_tokens=8))
    finally:
        tiny_generator.settings.max_chars = 0


def test_a_finished_rows_padding_is_not_scored():
    from xinwen.inference.headline.generator import mean_until_end

    steps = torch.tensor([[-1.0, -3.0, -0.5, -0.5], [-2.0, -2.0, -2.0, float("-inf")]])
    written = torch.tensor([[5, 2, 0, 0], [6, 7, 8, 0]])  # 2 = end token, 0 = pad after it
    assert mean_until_end(steps, written, eos_id=2).tolist() == [-2.0, -2.0]


def test_greedy_scores_do_not_depend_on_the_batch(tiny_generator, bodies):
    alone = [tiny_generator.generate(b, candidates=1, num_beams=1)[0].score for b in bodies]
    batched = [c[0].score for c in tiny_generator.generate(bodies, candidates=1, num_beams=1, batch_size=4)]
    assert batched == pytest.approx(alone, abs=1e-5)


def test_a_limit_at_min_new_tokens_still_lets_headlines_end(tiny_generator, bodies):
    found = tiny_generator.generate(bodies, max_chars=4, min_new_tokens=4, candidates=4, num_beams=4)
    assert all(len(c.text) <= 4 for cands in found for c in cands[:1])


@pytest.mark.parametrize("kwargs, key", [({"max_chars": -1}, "max_chars"), ({"max_chars": "10"}, "max_chars"),
                                         ({"candidates": 1.5}, "candidates"), ({"rerank": "false"}, "rerank"),
                                         ({"batch_size": "2"}, "batch_size")])
def test_bad_options_name_themselves(tiny_generator, bodies, kwargs, key):
    with pytest.raises(ValueError, match=key):
        tiny_generator.generate(bodies[0], **kwargs)
