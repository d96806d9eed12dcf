"""Text preparation for the headline generator, shared by training, evaluation and serving.

Training builds its (source, target) pairs with these functions and ``HeadlineGenerator`` prepares
its inputs with the same ones, so a model always reads text prepared as it was trained on.
"""
from __future__ import annotations

import re

from xinwen.inference.text import ArticleText, clean_title, lcs_length, normalise_text

# CJK ideographs (basic block, extension A, compatibility) - what "a Chinese character" means here.
CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{CJK}]")
# Characters a space next to which is never wanted in Chinese text: ideographs and CJK / full-width
# punctuation (NFKC has already turned ，：！？ into their ASCII forms, which are handled below).
_TIGHT = f"{CJK}\u3000-\u303f\uff00-\uffef“”‘’《》【】「」、。·…—"
_SPACE_AFTER_TIGHT = re.compile(f"(?<=[{_TIGHT}]) +")
_SPACE_BEFORE_TIGHT = re.compile(f" +(?=[{_TIGHT}])")
# ASCII punctuation that NFKC produced from full-width forms: no space before it in Chinese text.
_SPACE_BEFORE_PUNCT = re.compile(r" +(?=[,.:;!?%)\]])")
_SENTENCE_END = re.compile(r"(?<=[。!?！？;；\n])")


def cjk_count(text: str) -> int:
    return len(_CJK_CHAR.findall(text))


def tighten_spaces(text: str) -> str:
    """Remove spaces next to Chinese characters and punctuation; keep them between Latin words.

    Tokenizers of BERT-style Chinese models decode as "新 闻 标 题"; web titles use spaces as
    separators ("至少13人 在加州"). Output has no space between Chinese characters either way."""
    t = " ".join(text.split())
    t = _SPACE_AFTER_TIGHT.sub("", t)
    t = _SPACE_BEFORE_TIGHT.sub("", t)
    t = _SPACE_BEFORE_PUNCT.sub("", t)
    return t.strip()


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def letters_and_digits(text: str) -> tuple[str, list[int]]:
    """Letters and digits of ``text`` (lower-cased) and, for each, its index in ``text``: lets
    copies be found regardless of punctuation and spacing, and cut at the right place."""
    found = list(_LETTER_OR_DIGIT.finditer(text))
    return "".join(m.group() for m in found).lower(), [m.start() for m in found]


def strip_title_copy(body: str, title: str, max_rounds: int = 3) -> str:
    """Drop copies of ``title`` at the start of ``body``: verbatim, with other punctuation or a
    short tag before it ("[转载]..."), or a near-copy as the first line or sentence.

    Web bodies often begin with their own title; left in, the task is copying and the lead
    baseline looks far better than it is on text that does not repeat its title."""
    tkey, _ = letters_and_digits(title)
    if len(tkey) < 4:
        return body
    for _ in range(max_rounds):
        # Only the head of the body can hold the copy; keying all of it would be wasted work.
        bkey, where = letters_and_digits(body[: 3 * len(title) + 80])
        found = bkey.find(tkey, 0, len(tkey) + 12)
        if found >= 0:
            cut = where[found + len(tkey) - 1] + 1
        else:
            first = _SENTENCE_END.split(body, maxsplit=1)[0]
            fkey, _ = letters_and_digits(first)
            # A first segment about as long as the title that mostly *is* the title.
            if not fkey or len(fkey) > 1.5 * len(tkey) + 6 or lcs_length(tkey, fkey) < 0.8 * len(tkey):
                return body
            cut = len(first)
        body = body[cut:].lstrip(" \n,.:;!?、。，：；！？")
    return body


def headline_source(article: ArticleText) -> str:
    """The text a headline is written from: the cleaned body without a copy of its title, one
    paragraph per line (the lead baseline needs the line breaks; ``encoder_text`` drops them)."""
    body = strip_title_copy(article.body, article.title) if article.title else article.body
    return "\n".join(part.strip() for part in body.split("\n") if part.strip())


def encoder_text(source: str, prefix: str = "") -> str:
    """What the tokenizer reads: the source on one line (paragraph breaks carry no headline
    signal, and SentencePiece vocabularies have no newline piece)."""
    return prefix + source.replace("\n", " ")


def headline_target(title: str) -> str:
    """A web title as a training target: site suffixes stripped, spaces between Chinese removed."""
    # Leading "..." marks a title the site cut on the left; the rest is still a fine target.
    return tighten_spaces(clean_title(title).lstrip(".…").strip())


def lead_headline(source: str, max_chars: int) -> str:
    """The lead baseline: the first sentence with some Chinese in it, clipped to ``max_chars``."""
    text = normalise_text(source)
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip().rstrip("。!?！？;；")
        if cjk_count(sentence) >= 2:
            return tighten_spaces(sentence)[:max_chars]
    return tighten_spaces(text).rstrip("。!?！？;；")[:max_chars]
