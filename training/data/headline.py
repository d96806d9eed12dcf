"""(body -> headline) pairs for the headline task: bundled inews titles/bodies or user files.

Web titles are noisy, so every split goes through the same steps, each one counted and logged:
clean the title (site suffixes, repost tags), drop the body's leading copy of its title, filter
pairs that cannot teach or test headline writing (empty/short titles, spam, near-empty bodies,
titles unrelated to their body), then remove near-duplicates inside the split and against every
split used for training. The evaluation split therefore never overlaps training.
"""
from __future__ import annotations

import logging
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from xinwen.inference.headline.text import cjk_count, headline_source, headline_target
from xinwen.inference.headline.text import letters_and_digits
from xinwen.inference.text import as_article
from xinwen.training.data.builtin import extra_articles, load_inews_split
from xinwen.training.config.sections import BUILTIN_HEADLINE_SPLITS, BUILTIN_HEADLINES
from xinwen.training.data.files import DataError, load_labelled

logger = logging.getLogger(__name__)

BUILTIN_TRAIN, BUILTIN_SPLITS = BUILTIN_HEADLINES, BUILTIN_HEADLINE_SPLITS  # the names this module's callers use

# Gambling/SEO spam and ads. Rare (~2%), but such pairs teach the model to write casino names.
_GAMBLING = (r"娱乐城|娱乐平台|电子游艺|博彩|真人娱乐|娱乐app|娱乐官网|诚信网投|老虎机|百家乐|时时彩|六合彩"
             r"|彩票(?:平台|软件|网)|pk10|巴黎人|威尼斯人|葡京|澳门.{0,4}在线")
_MOBILE = r"(?<!\d)1[3-9]\d{9}(?!\d)"  # a mobile number: classified ads and personal posts
_SPAM_TITLE = re.compile(_GAMBLING + "|" + _MOBILE + r"|高仿|一比一|总代理|诚招|加盟商|官方网址|doc下载|www\.|\.com")
_SPAM_BODY = re.compile(_GAMBLING + "|" + _MOBILE)


@dataclass
class PairFilters:
    """Thresholds a (title, body) pair must pass; defaults come from HeadlineDataSection."""

    min_title_cjk: int = 5
    max_title_chars: int = 64
    min_body_cjk: int = 30
    min_title_overlap: float = 0.3


def make_pair(rec: dict, filters: PairFilters) -> tuple[dict | None, str]:
    """``({id, source, target}, "ok")`` or ``(None, reason)`` for one raw record."""
    target = headline_target(rec.get("title") or "")
    if not target:
        return None, "empty title"
    if cjk_count(target) < filters.min_title_cjk:
        return None, f"title with < {filters.min_title_cjk} Chinese characters"
    if len(target) > filters.max_title_chars:
        return None, f"title longer than {filters.max_title_chars} characters"
    article = as_article({"title": rec.get("title") or "", "body": rec.get("body") or ""})
    source = headline_source(article)
    if _SPAM_TITLE.search(target.lower()) or _SPAM_BODY.search(source[:200].lower()):
        return None, "spam or advertisement"
    if cjk_count(source) < filters.min_body_cjk:
        return None, f"body with < {filters.min_body_cjk} Chinese characters (after removing the title copy)"
    # A title none of whose characters occur near the start of its body belongs to another page
    # (the crawl mismatched some pairs); it can be neither learned nor fairly scored.
    title_chars = {ch for ch in target if cjk_count(ch)}
    overlap = len(title_chars & set(source[:600])) / max(1, len(title_chars))
    if overlap < filters.min_title_overlap:
        return None, f"title unrelated to its body (< {filters.min_title_overlap:.0%} shared characters)"
    return {"id": str(rec.get("id", "")), "source": source, "target": target}, "ok"


def _bigrams(key: str) -> set[str]:
    return {key[i : i + 2] for i in range(len(key) - 1)}


class DuplicateIndex:
    """Finds near-duplicates: same body start, or titles with character-bigram Jaccard >= 0.7."""

    def __init__(self, jaccard: float = 0.7, body_prefix: int = 60):
        self.jaccard, self.body_prefix = jaccard, body_prefix
        self.bodies: set[str] = set()
        self.titles: list[set[str]] = []
        self.postings: dict[str, list[int]] = defaultdict(list)

    def _keys(self, pair: dict) -> tuple[str, set[str]]:
        body = letters_and_digits(pair["source"][: 3 * self.body_prefix])[0][: self.body_prefix]
        return body, _bigrams(letters_and_digits(pair["target"])[0])

    def contains(self, pair: dict) -> bool:
        body, grams = self._keys(pair)
        if len(body) >= 20 and body in self.bodies:
            return True
        shared: Counter[int] = Counter()
        for g in grams:
            shared.update(self.postings.get(g, ()))
        for j, n in shared.items():
            if n / len(grams | self.titles[j]) >= self.jaccard:
                return True
        return False

    def add(self, pair: dict) -> None:
        body, grams = self._keys(pair)
        if len(body) >= 20:
            self.bodies.add(body)
        for g in grams:
            self.postings[g].append(len(self.titles))
        self.titles.append(grams)


def build_pairs(records: list[dict], filters: PairFilters, name: str,
                seen: DuplicateIndex | None = None) -> list[dict]:
    """Clean, filter and deduplicate ``records``; items near-duplicating anything already in
    ``seen`` (the training splits) are dropped too. The split's pairs are added to ``seen``."""
    seen = seen if seen is not None else DuplicateIndex()
    own = DuplicateIndex()
    reasons: Counter[str] = Counter()
    pairs = []
    for rec in records:
        pair, reason = make_pair(rec, filters)
        if pair is not None and own.contains(pair):
            pair, reason = None, "near-duplicate inside the split"
        if pair is not None and seen.contains(pair):
            pair, reason = None, "near-duplicate of a training item"
        reasons[reason] += 1
        if pair is not None:
            own.add(pair)
            pairs.append(pair)
    for pair in pairs:
        seen.add(pair)
    dropped = ", ".join(f"{n} {r}" for r, n in reasons.most_common() if r != "ok") or "none"
    logger.info("%s: kept %d of %d pairs; dropped: %s", name, len(pairs), len(records), dropped)
    return pairs


def inews_records(split: str) -> list[dict]:
    titles, bodies = load_inews_split(split)
    return [{"id": f"{split}:{i}", "title": t, "body": b} for i, (t, b) in enumerate(zip(titles, bodies))]


def read_records(spec: str, data) -> list[dict]:
    """Raw records of a builtin split name or a JSONL/CSV/Parquet file."""
    if spec in BUILTIN_SPLITS:
        return inews_records(BUILTIN_SPLITS[spec])
    if spec.startswith("builtin:"):
        raise DataError(f"unknown builtin data {spec!r}; expected {BUILTIN_TRAIN} or one of {sorted(BUILTIN_SPLITS)}")
    recs = load_labelled(spec, data.title_column, data.body_column, None, data.id_column, None)
    empty = [r["id"] for r in recs if not r["title"].strip()]
    if len(empty) == len(recs):
        raise DataError(f"{spec}: every {data.title_column!r} is empty; headline data needs titles "
                        "(set data.title_column to the headline column)")
    return recs


def filters_from(data) -> PairFilters:
    return PairFilters(data.min_title_cjk, data.max_title_chars, data.min_body_cjk, data.min_title_overlap)


def load_headline_splits(data) -> tuple[list[dict], list[dict], DuplicateIndex]:
    """Train and dev pairs for ``HeadlineDataSection`` ``data``, dev deduplicated against train.

    Returns the index of training items too, so other evaluation splits can be checked against it."""
    filters = filters_from(data)
    seen = DuplicateIndex()
    if data.train == BUILTIN_TRAIN:
        raw = inews_records("train")
        if data.extra_articles:
            raw += extra_articles()
        train = build_pairs(raw, filters, "train (inews train + project articles)" if data.extra_articles
                            else "train (inews train)", seen)
        dev_spec = data.dev or f"{BUILTIN_TRAIN}:dev"
    else:
        train = build_pairs(read_records(data.train, data), filters, f"train ({data.train})", seen)
        dev_spec = data.dev
    for extra in data.extra_train:
        train += build_pairs(read_records(extra, data), filters, f"train (data.extra_train: {extra})", seen)
    if not train:
        raise DataError(f"{data.train}: no usable training pairs after cleaning; see the counts logged above")
    dev = build_pairs(read_records(dev_spec, data), filters, f"dev ({dev_spec})", seen)
    if not dev:
        raise DataError(f"{dev_spec}: no usable dev pairs after cleaning and deduplication against train")
    return train, dev, seen


def median_title_chars(pairs: list[dict]) -> int:
    return int(round(statistics.median(len(p["target"]) for p in pairs)))
