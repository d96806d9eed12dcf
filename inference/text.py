"""Text preparation shared by training and serving: cleaning, article -> model input, chunking.

Training imports these functions, so a model always sees text prepared exactly as it will be at
inference time.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

Article = Union[str, Mapping[str, Any]]

# Site names appended to web-page titles ("..._搜狐网", "...-xx新闻网", "..._百度贴吧"). They
# carry the publisher, not the topic, and the headline generator must not learn to write them.
_SITE_WORDS = (
    "网", "网站", "在线", "新闻", "资讯", "频道", "贴吧", "博客", "知道", "头条", "论坛", "社区",
    "百科", "日报", "晚报", "快讯", "财经", "首页", "官网", "门户", "客户端", "号",
)
_SITE_SUFFIX = re.compile(
    r"(?:\s*[_|｜–—\-]+\s*[^_|｜–—\-]{0,24}?(?:" + "|".join(map(re.escape, _SITE_WORDS)) + r")"
    r"[^_|｜–—\-]{0,6}|\s*[_|｜]+\s*[^_|｜]{1,12})+\s*$"
)
_TRAILING_PAGE = re.compile(r"[_\-]\d{1,3}$")  # "..._1" page counters
_REPOST = re.compile(r"^\s*(?:\[(?:转载|原创|转)\]|【(?:转载|原创)】)\s*")
_ELLIPSIS = re.compile(r"(?:\.{2,}|…+)$")
_ORIGINAL_TITLE = re.compile(r"^\s*原标题[:：]\s*")
_SPACES = re.compile(r"[ \t\u3000\xa0]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def clean_title(title: str) -> str:
    """Strip site suffixes, repost tags and page counters from a web title."""
    t = normalise_text(title).replace("\n", " ")
    t = _REPOST.sub("", t)
    t = _TRAILING_PAGE.sub("", t)
    t = _SITE_SUFFIX.sub("", t).strip()
    t = _ELLIPSIS.sub("", t).strip()
    return t


def normalise_text(text: str) -> str:
    """Unicode NFKC, literal '\\n' escapes to newlines, collapsed whitespace."""
    t = unicodedata.normalize("NFKC", text)
    t = t.replace("\\n", "\n").replace("\\t", " ").replace("\r", "\n")
    # Drop control/format characters. Almost every text has none: str.isprintable() (C code)
    # proves that for the whole string at once, and only texts that fail it take the
    # per-character path (which was ~40% of scoring time with small models).
    if not t.replace("\n", "").replace(" ", "").isprintable():
        t = "".join(ch for ch in t if ch == "\n" or unicodedata.category(ch)[0] != "C")
    t = _SPACES.sub(" ", t)
    t = _NEWLINES.sub("\n", t)
    return t.strip()


def clean_body(body: str, title: str = "") -> str:
    """Normalise a body and drop a leading copy of the title ("原标题：..." or verbatim)."""
    b = _ORIGINAL_TITLE.sub("", normalise_text(body))
    if title:
        t = normalise_text(title)
        if len(t) >= 4 and b.startswith(t):
            b = b[len(t):].lstrip(" \n:：")
    return b


@dataclass(frozen=True)
class ArticleText:
    """An article as every model reads it: a cleaned title and/or body (one may be empty)."""

    title: str
    body: str


# What an article is, for the Python API and `xinwen score` alike: a title and/or a body. One
# with neither (after cleaning: whitespace and control characters do not count) is refused with
# these words - a ValueError in Python, a reject in `score`.
EMPTY_ARTICLE = "has neither a title nor a body with text; expected a non-empty 'title' or 'body' (or both)"


def clean_article(title: str | None, body: str | None) -> ArticleText:
    """The cleaned article for a raw title and body (``None`` = absent), as the models read it.

    >>> clean_article("高铁新线开通_某某新闻网", None)
    ArticleText(title='高铁新线开通', body='')
    """
    t = clean_title(title or "")
    return ArticleText(t, clean_body(body or "", t))


def is_empty_article(article: ArticleText) -> bool:
    """Whether ``article`` has nothing to read (see ``EMPTY_ARTICLE``).

    >>> is_empty_article(clean_article(" ", "\u3000")), is_empty_article(clean_article("标题", ""))
    (True, False)
    """
    return not (article.title or article.body)


def is_one_article(item) -> bool:
    """True for what ``predict``/``generate``/``analyze`` take as one article rather than a list:
    text, bytes (so they are refused whole, not read as a list of ints), a mapping, an
    ``ArticleText``."""
    return isinstance(item, (str, bytes, bytearray, Mapping, ArticleText))


def as_article(item: Article, index: int | None = None) -> ArticleText:
    """A plain string (the body) or a mapping with ``title`` and/or ``body``, cleaned (an
    ``ArticleText`` is already clean and passes as it is).

    ``index`` (its place in a list) is named in the errors: TypeError for anything that is not
    text, ValueError for an article with neither a title nor a body.

    >>> as_article({"title": "铁路运输"})
    ArticleText(title='铁路运输', body='')
    >>> as_article("", 2)
    Traceback (most recent call last):
    ...
    ValueError: article at index 2 has neither a title nor a body with text; expected a non-empty 'title' or 'body' (or both)
    """
    where = f" at index {index}" if index is not None else ""
    if isinstance(item, ArticleText):  # already cleaned (e.g. by the `score` reader)
        article = item
    elif isinstance(item, str):
        article = clean_article(None, item)
    elif isinstance(item, Mapping):
        title, body = item.get("title"), item.get("body")
        for name, value in (("title", title), ("body", body)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"article{where}: field {name!r} must be a string, got {type(value).__name__}")
        article = clean_article(title, body)
        if is_empty_article(article) and not {"title", "body"} & set(item):
            raise ValueError(f"article{where} {EMPTY_ARTICLE}; the mapping has no 'title' or 'body' key, "
                             f"only {sorted(map(str, item))[:8]}")
    elif isinstance(item, (bytes, bytearray)):
        raise TypeError(f"article{where} is {type(item).__name__}, expected text; "
                        "fix: decode it first, e.g. data.decode('utf-8')")
    else:
        raise TypeError(f"article{where} must be a str or a mapping with 'title' and/or 'body', "
                        f"got {type(item).__name__}")
    if is_empty_article(article):
        raise ValueError(f"article{where} {EMPTY_ARTICLE}")
    return article


def classifier_text(article: ArticleText, prefix: str = "") -> str:
    """The single string the classifier reads: title, then body (long bodies are cut or chunked
    later, on token ids)."""
    title, body = article.title, article.body.replace("\n", " ")
    if title and body:
        sep = "" if title.endswith(("。", "！", "？", "!", "?")) else "。"
        return f"{prefix}{title}{sep}{body}"
    return prefix + (title or body)


def head_tail_ids(ids: list[int], budget: int, tail_fraction: float) -> list[int]:
    """Keep the start and the end of a long token sequence (Sun et al. 2019, 'How to fine-tune
    BERT for text classification': head+tail beats head-only for long documents)."""
    if len(ids) <= budget:
        return ids
    n_tail = int(budget * tail_fraction)
    return ids[: budget - n_tail] + (ids[-n_tail:] if n_tail else [])


def chunk_ids(ids: list[int], budget: int, stride: int, max_chunks: int) -> list[list[int]]:
    """Overlapping windows of ``budget`` tokens covering the text; with a cap (``max_chunks`` > 0)
    only the first ``max_chunks`` windows.

    >>> chunk_ids(list(range(10)), budget=4, stride=1, max_chunks=0)
    [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    >>> chunk_ids(list(range(10)), budget=4, stride=1, max_chunks=2)
    [[0, 1, 2, 3], [3, 4, 5, 6]]
    """
    if len(ids) <= budget:
        return [ids]
    # Overlap at most half a window: a stride close to the window would advance one token a time.
    step = max(budget // 2, budget - stride, 1)
    chunks = []
    for start in range(0, len(ids), step):
        chunks.append(ids[start : start + budget])
        if start + budget >= len(ids) or (max_chunks and len(chunks) == max_chunks):
            break
    return chunks


def lcs_length(a, b) -> int:
    """Length of the longest common subsequence of two sequences (strings or token lists): the
    core of ROUGE-L and of the headline check that a title is a copy of a body sentence."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]
