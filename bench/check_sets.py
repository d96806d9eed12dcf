"""The labelled check sets the topic benches share: the model's dev split and two formal sets."""
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
