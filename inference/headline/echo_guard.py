"""A decoding constraint: never write a span of two or more characters twice in a row.

A copy decoder likes to copy its most salient source word again right after writing it
(``寿光寿光市``). ``no_repeat_ngram_size`` works on pieces and misses most of these: ``寿光`` twice
is one piece repeated, not a repeated pair, and ``寿`` ``光`` ``寿光`` spells the same echo with new
pairs. This processor works on characters: at each step, for each beam, it finds the pieces
that would complete ``YY`` (``Y`` of 2..``max_span`` characters with a Chinese one among them),
or start with such a completion (``成都`` then ``成都市``), and gives them no probability. Reduplications a headline may use (``哈哈``: one character twice)
stay allowed.
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor

from xinwen.inference.headline.text import cjk_count


def echo_completions(text: str, max_span: int = 8) -> set[str]:
    """Every string ``w`` (of at most ``max_span`` characters) such that ``text + w`` ends with a
    span written twice back to back, the span holding a Chinese character."""
    banned = set()
    for span in range(2, max_span + 1):
        for added in range(1, span + 1):
            if len(text) < 2 * span - added:
                continue
            first = text[len(text) - (2 * span - added):][:span]  # the span as already written
            written_again = text[len(text) - (span - added):] if span > added else ""
            if first.startswith(written_again) and cjk_count(first):
                banned.add(first[span - added:])
    return banned


class EchoGuard(LogitsProcessor):
    """A ``logits_processor`` for ``generate``: pieces that would complete an echo get -inf."""

    def __init__(self, tokenizer, max_span: int = 8):
        self.max_span = max_span
        special = set(tokenizer.all_special_ids)
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        # A piece's characters as they appear in the headline (SentencePiece's word marker and
        # WordPiece's continuation marker are not characters of the text).
        self.piece_text = ["" if i in special else (p or "").replace("\u2581", "").removeprefix("##")
                           for i, p in enumerate(pieces)]
        # Pieces by every prefix of their text up to max_span: a piece that starts with a
        # completion completes the echo too, then goes on (寿光 + 寿光市).
        self.ids_starting_with: dict[str, list[int]] = {}
        for i, text in enumerate(self.piece_text):
            for end in range(1, min(len(text), max_span) + 1):
                self.ids_starting_with.setdefault(text[:end], []).append(i)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, ids in enumerate(input_ids.tolist()):
            written = "".join(self.piece_text[i] if i < len(self.piece_text) else "" for i in ids)
            banned = [i for w in echo_completions(written, self.max_span)
                      for i in self.ids_starting_with.get(w, ())]
            if banned:
                scores[row, banned] = float("-inf")
        return scores
