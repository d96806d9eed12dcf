"""Character-level ROUGE for Chinese, as an ``evaluate`` metric that works offline.

``evaluate.load("rouge")`` needs the hub, and ``rouge_score``'s default tokenizer deletes every
CJK character (it keeps ``[a-z0-9]`` only), which scores all Chinese text as 0. Here each letter
or digit character is one token (after NFKC and lower-casing); punctuation and spaces are not
tokens. ROUGE-1/2 are clipped n-gram overlaps and ROUGE-L the longest common subsequence, as in
``rouge_score`` (Lin 2004); scores are per-pair F1 averaged over pairs, x100.

Load it by file path so no network is involved::

    >>> import evaluate, xinwen.inference.metrics.char_rouge as m        # doctest: +SKIP
    >>> rouge = evaluate.load(m.__file__)                                # doctest: +SKIP
    >>> rouge.compute(predictions=["海关发布数据"], references=["海关总署发布数据"])  # doctest: +SKIP
    {'rouge1': 85.71..., 'rouge2': 66.66..., 'rougeL': 85.71..., ...}

``evaluate`` copies this file into its cache before importing it, so it imports only absolute
names (the LCS is shared with the headline checks through ``xinwen.inference.text``).
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

import datasets
import evaluate

from xinwen.inference.text import lcs_length

TOKENIZATION = ("character-level: NFKC, lower-cased, one token per letter or digit character "
                "(each Chinese character is a token); punctuation and spaces dropped")

_TOKEN = re.compile(r"[^\W_]")

_DESCRIPTION = "ROUGE-1, ROUGE-2 and ROUGE-L F1 (x100) on characters, correct for Chinese. " + TOKENIZATION
_KWARGS = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, one per prediction.
    use_aggregator: True (default) returns the mean over pairs; False returns per-pair lists.
Returns:
    rouge1, rouge2, rougeL: F1 x100; tokenization: how the texts were split.
"""


def char_tokens(text: str) -> list[str]:
    """Tokens ROUGE compares: every letter/digit character of ``text`` (NFKC, lower-cased)."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


class CharTokenizer:
    """``rouge_score``-compatible tokenizer (``RougeScorer(..., tokenizer=CharTokenizer())``)."""

    def tokenize(self, text: str) -> list[str]:
        return char_tokens(text)


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if not overlap or not n_pred or not n_ref:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _ngram_f1(pred: list[str], ref: list[str], n: int) -> float:
    pc = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
    rc = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
    return _f1(sum((pc & rc).values()), sum(pc.values()), sum(rc.values()))


def pair_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F1 x100 of one prediction against one reference."""
    pred, ref = char_tokens(prediction), char_tokens(reference)
    return {
        "rouge1": 100 * _ngram_f1(pred, ref, 1),
        "rouge2": 100 * _ngram_f1(pred, ref, 2),
        "rougeL": 100 * _f1(lcs_length(pred, ref), len(pred), len(ref)),
    }


def char_rouge(predictions: list[str], references: list[str], use_aggregator: bool = True) -> dict:
    if len(predictions) != len(references):
        raise ValueError(f"char_rouge: {len(predictions)} predictions but {len(references)} references; "
                         "give one reference per prediction")
    rows = [pair_scores(p, r) for p, r in zip(predictions, references)]
    out: dict = {}
    for key in ("rouge1", "rouge2", "rougeL"):
        values = [row[key] for row in rows]
        out[key] = (sum(values) / len(values) if values else 0.0) if use_aggregator else values
    out["tokenization"] = TOKENIZATION
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class CharRouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, use_aggregator: bool = True):
        return char_rouge(list(predictions), list(references), use_aggregator=use_aggregator)
