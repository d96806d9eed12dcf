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
    title: str
    body: str


def as_article(item: Article, index: int | None = None) -> ArticleText:
    """Accept a plain string (body only) or a mapping with ``title`` and/or ``body``."""
    where = f" at index {index}" if index is not None else ""
    if isinstance(item, str):
        return ArticleText("", clean_body(item))
    if isinstance(item, Mapping):
        title, body = item.get("title"), item.get("body")
        for name, value in (("title", title), ("body", body)):
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"article{where}: field {name!r} must be a string, got {type(value).__name__}"
                )
        if not (title or body):
            raise ValueError(f"article{where}: needs a non-empty 'title' or 'body'")
        t = clean_title(title or "")
        return ArticleText(t, clean_body(body or "", t))
    raise TypeError(
        f"article{where} must be a str or a mapping with 'title'/'body', got {type(item).__name__}"
    )


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
    """Overlapping windows of ``budget`` tokens covering the text (at most ``max_chunks``; 0 = no cap)."""
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
