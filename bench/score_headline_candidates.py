"""Score the beam candidates written by ``bench/gpu_headline.py`` as ``bench_headline_rerank.py``
scores its own: ROUGE against the references, ROUGE-L minus the lead's (paired bootstrap) and the
editor's checks, for beam's best, reranked and ``generate()``'s default (reranked + lead fallback).

Each set is restricted to the articles every given variant was scored on (a variant trained on
more data drops more near-duplicates of its training items), so the rows compare like with like.

    python bench/score_headline_candidates.py /work/.device/2 --output bench/out/gpu_headline_scores.json
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
from pathlib import Path

from bench_headline_rerank import score_systems, systems_from_candidates
from xinwen.training.headline.evaluate import load_char_rouge

logger = logging.getLogger("score_headline_candidates")
SHOWN = ("beam", "reranked", "reranked + lead fallback")


def read_variant(path: Path) -> dict[str, dict[str, dict]]:
    by_set: dict[str, dict[str, dict]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows = by_set.setdefault(row["set"], {})
            if not row["id"] or row["id"] in rows:  # rows are matched across variants by id
                raise SystemExit(f"{path}: {row['set']} has an empty or repeated id {row['id']!r}; "
                                 "give the evaluation file unique ids")
            rows[row["id"]] = row
    return by_set


def common_ids(variants: dict[str, dict[str, dict[str, dict]]], set_name: str) -> list[str]:
    id_sets = [set(v.get(set_name, {})) for v in variants.values()]
    first = next(iter(variants.values()))[set_name]
    return [i for i in first if all(i in ids for ids in id_sets)]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="OUTDIR of gpu_headline.py (summary.json, NAME.jsonl.gz)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    summary = json.loads((args.folder / "summary.json").read_text(encoding="utf-8"))
    variants = {name: read_variant(args.folder / f"{name}.jsonl.gz") for name in summary}
    rouge = load_char_rouge()
    results = []
    for set_name in next(iter(variants.values())):
        ids = common_ids(variants, set_name)
        for name, by_set in variants.items():
            rows = [by_set[set_name][i] for i in ids]
            pairs = [{"id": r["id"], "source": r["source"], "target": r["target"]} for r in rows]
            systems = systems_from_candidates(pairs, [r["candidates"] for r in rows], summary[name]["lead_chars"])
            report = score_systems(set_name, pairs, systems, rouge)
            report.pop("rows")
            report["variant"] = name
            results.append(report)
            cells = [f"{s}: L {report['systems'][s]['rougeL']:.2f} "
                     f"({report['systems'][s]['rougeL_minus_lead']:+.2f}), "
                     f"faithful {100 * report['systems'][s]['quality']['faithful']:.1f}%, "
                     f"echo {100 * report['systems'][s]['quality']['echo']:.1f}%" for s in SHOWN]
            logger.info("%s (%d) %s | lead L %.2f | %s", set_name, len(ids), name,
                        report["systems"]["lead"]["rougeL"], " | ".join(cells))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
