"""The decoding constraint against echoes: which continuations it forbids, that it forbids them
in the scores, and that generate() uses it (and leaves it out when asked)."""
from __future__ import annotations

import pytest
import torch
from tiny_seq2seq import headline_records

from xinwen.inference.headline.echo_guard import EchoGuard, echo_completions
from xinwen.inference.headline.quality import echoes


@pytest.mark.parametrize("written, forbidden", [
    ("寿光", {"寿光"}),                    # the whole span again
    ("寿光寿", {"光", "光寿", "寿光寿"}),     # completing a span already begun again
    ("出口大增", {"大增", "口大增", "出口大增"}),
])
def test_continuations_that_would_echo(written, forbidden):
    assert echo_completions(written) == forbidden
    for w in forbidden:
        assert echoes(written + w)  # each one really would echo


@pytest.mark.parametrize("written", ["哈", "ab", "12", ""])
def test_one_character_twice_latin_and_digits_stay_allowed(written):
    assert echo_completions(written) == set()


def test_forbidden_pieces_get_no_probability(tiny_generator):
    tok = tiny_generator.tokenizer
    guard = EchoGuard(tok)
    ids = tok.convert_tokens_to_ids
    written = torch.tensor([[tok.cls_token_id or 0, ids("贸"), ids("易"), ids("贸")],
                            [tok.cls_token_id or 0, ids("海"), ids("关"), ids("出")]])
    scores = guard(written, torch.zeros(2, len(tok)))
    assert scores[0, ids("易")] == float("-inf")          # 贸易贸 + 易 = 贸易贸易
    assert torch.isfinite(scores[0]).sum() == len(tok) - 1
    assert torch.isfinite(scores[1]).all()                # 海关出: nothing to echo yet


def test_a_longer_piece_that_starts_with_the_echo_is_forbidden_too():
    class Pieces:  # a vocabulary where 成都 and 成都市 are single pieces
        all_special_ids = [0]
        vocab = ["<s>", "成都", "成都市", "市", "今年"]

        def __len__(self):
            return len(self.vocab)

        def convert_ids_to_tokens(self, ids):
            return [self.vocab[i] for i in ids]

    scores = EchoGuard(Pieces())(torch.tensor([[0, 1]]), torch.zeros(1, 5))
    assert scores[0].tolist() == [0.0, float("-inf"), float("-inf"), 0.0, 0.0]


def test_generate_decodes_through_the_guard_unless_told_not_to(tiny_generator, monkeypatch):
    calls = []
    original = EchoGuard.__call__
    monkeypatch.setattr(EchoGuard, "__call__", lambda self, i, s: calls.append(1) or original(self, i, s))
    body = headline_records(1)[0]["body"]
    tiny_generator.generate(body, num_beams=2)
    assert calls
    calls.clear()
    tiny_generator.generate(body, num_beams=2, block_echo=False)
    assert not calls
