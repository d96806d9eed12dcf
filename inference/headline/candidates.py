"""Choosing among the beam's headlines: the editor's checks first, the decoder's score second.

Beam search ranks candidates by probability alone, and the most probable headline is sometimes
the one that echoes a word or bends a number. Every candidate is checked
(``inference/headline/quality.py``); with reranking on, a faithful, fluent candidate within the
length limit comes before any that is not, and the decoder's score orders the rest. Nothing is
invented: the chosen headline is one the model wrote (cut at a phrase boundary only when every
candidate is over ``max_chars``) or, when every candidate bends a number or a name and the
fallback is on, the body's own first sentence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from xinwen.inference.headline.quality import check_headline
from xinwen.inference.headline.text import lead_headline

# Where a headline may be cut to fit: after punctuation or a space.
_BREAK = re.compile(r"[\s,，、:：;；!！?？。]")


@dataclass
class HeadlineCandidate:
    """One headline for an article: written by the model, or the lead fallback (``origin``)."""

    text: str
    # The decoder's length-normalised log-probability (beam score); higher is more probable.
    score: float
    # What the editor's checks found (empty: faithful and fluent), plus "longer than N characters".
    problems: list[str] = field(default_factory=list)
    over_length: bool = False
    unfaithful: bool = False
    # "model", or "lead" for the extractive fallback (the body's first sentence; score -inf).
    origin: str = "model"


def fit_to_length(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, at the last phrase break when one keeps at least
    half of the budget, without trailing punctuation."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    breaks = [m.start() for m in _BREAK.finditer(head) if m.start() >= max_chars // 2]
    cut = (head[: breaks[-1]] if breaks else head).rstrip(" ,，、:：;；")
    return cut or head  # a text opening with punctuation still gives a headline


def checked_candidate(text: str, score: float, source: str, max_chars: int = 0) -> HeadlineCandidate:
    """A candidate with the checks' findings and, when ``max_chars`` is set, its length verdict."""
    check = check_headline(text, source)
    over = bool(max_chars) and len(text) > max_chars
    problems = check.problems() + ([f"longer than {max_chars} characters"] if over else [])
    return HeadlineCandidate(text, score, problems, over_length=over, unfaithful=not check.faithful)


def rank_candidates(texts: list[str], scores: list[float], source: str, max_chars: int = 0,
                    rerank: bool = True) -> list[HeadlineCandidate]:
    """Candidates best first. The length limit always comes first; with ``rerank``, faithful
    before unfaithful, then fewer fluency problems; the decoder's score breaks ties. If every
    candidate is over the limit, the best one is cut to fit (and checked again)."""
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 0:
        raise ValueError(f"max_chars: expected an integer >= 0 (0 = no limit), got {max_chars!r}")
    best: dict[str, float] = {}
    for text, score in zip(texts, scores, strict=True):  # two token paths can spell the same headline
        best[text] = max(score, best.get(text, float("-inf")))
    cands = [checked_candidate(t, s, source, max_chars) for t, s in best.items()]
    if rerank:
        cands.sort(key=lambda c: (c.over_length, c.unfaithful, len(c.problems), -c.score))
    else:
        cands.sort(key=lambda c: (c.over_length, -c.score))
    if cands and cands[0].over_length:
        cands[0] = checked_candidate(fit_to_length(cands[0].text, max_chars), cands[0].score, source, max_chars)
    return cands


def with_lead_fallback(ranked: list[HeadlineCandidate], source: str, max_chars: int,
                       lead_chars: int) -> list[HeadlineCandidate]:
    """``ranked`` with the body's first sentence (cut at a phrase break to the length limit, or to
    ``lead_chars``) put first when no model candidate passed the faithfulness check and the
    sentence does. An editor prints a plain headline before a wrong one."""
    if not ranked or not ranked[0].unfaithful:
        return ranked
    limit = max_chars or lead_chars
    lead = checked_candidate(fit_to_length(lead_headline(source, 10 * limit), limit), float("-inf"), source,
                             max_chars)
    if lead.unfaithful or not lead.text:
        return ranked
    lead.origin = "lead"
    return [lead, *ranked]
