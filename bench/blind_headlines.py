"""A blind comparison of headlines: raters rank the model's, the lead baseline's and the
reference headline without knowing which is which.

    # 1. draw the articles from `xinwen eval` outputs (predictions.jsonl) and hide the systems
    python bench/blind_headlines.py prepare --n 100 --out /tmp/blind \
        runs/headline/eval_test/predictions.jsonl runs/headline/eval_rmrb/predictions.jsonl
    # 2. each rater reads /tmp/blind/sheet.md and writes rankings as JSON: {"item-id": "BAC", ...}
    # 3. unblind and count
    python bench/blind_headlines.py score --out /tmp/blind rater1.json rater2.json

**Protocol.** Articles are drawn at random (seed 0), the same number from each predictions file.
For each article the three headlines are shuffled with a per-item random order and labelled A, B,
C; the key (which letter is which system) goes to ``key.json``, which raters never see. A rater
reads the body (first 400 characters, which is what a headline is written from) and orders the
three headlines best first, as an editor choosing what to print would: faithful to the body
first, then informative and fluent. Ties are not allowed. Identical headlines (the lead sometimes
equals the model's) are shown once each, with their letters; the rater still orders the letters.
``score`` reports, for each pair of systems, the share of articles where one is ranked above the
other (per rater and pooled), the mean rank of each system, and the raters' agreement.
"""
from __future__ import annotations

import argparse
import json
import random
from itertools import combinations
from pathlib import Path

SYSTEMS = ("model", "lead", "reference")
BODY_CHARS = 400


def prepare(files: list[str], n: int, out: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    per_file = n // len(files)
    items, key = [], {}
    for f_index, path in enumerate(files):
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rng.sample(rows, min(per_file, len(rows))):
            item_id = f"{f_index}-{row['id']}"
            order = list(SYSTEMS)
            rng.shuffle(order)
            key[item_id] = {letter: system for letter, system in zip("ABC", order)}
            items.append({"item": item_id, "body": row["source"][:BODY_CHARS],
                          "headlines": {letter: row[system] for letter, system in zip("ABC", order)}})
    rng.shuffle(items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "items.json").write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    lines = ["# Which headline would you print?", "",
             "For each article, order the three headlines best first (e.g. `BAC`): faithful to the body "
             "first (no fact, number or name changed or invented), then informative and fluent Chinese.", ""]
    for item in items:
        lines += [f"## {item['item']}", "", item["body"].replace("\n", " "), ""]
        lines += [f"- {letter}: {text}" for letter, text in item["headlines"].items()] + [""]
    (out / "sheet.md").write_text("\n".join(lines), encoding="utf-8")


def _ranks(ranking: dict[str, str], key: dict) -> dict[str, dict[str, int]]:
    """Per item, the rank (0 = best) of each system."""
    out = {}
    for item, letters in ranking.items():
        letters = letters.strip().upper()
        if sorted(letters) != ["A", "B", "C"]:
            raise ValueError(f"{item}: expected an order of A, B and C such as 'BAC', got {letters!r}")
        out[item] = {key[item][letter]: rank for rank, letter in enumerate(letters)}
    return out


def score(out: Path, rating_files: list[str]) -> dict:
    key = json.loads((out / "key.json").read_text(encoding="utf-8"))
    raters = [_ranks(json.loads(Path(f).read_text(encoding="utf-8")), key) for f in rating_files]
    result = {"raters": len(raters), "items": [len(r) for r in raters], "per_rater": [], "pooled": {}}
    pooled = [ranks for rater in raters for ranks in rater.values()]
    for rater in raters:
        result["per_rater"].append(_summary(list(rater.values())))
    result["pooled"] = _summary(pooled)
    if len(raters) >= 2:
        shared = set(raters[0]) & set(raters[1])
        same_best = sum(min(raters[0][i], key=raters[0][i].get) == min(raters[1][i], key=raters[1][i].get)
                        for i in shared)
        result["agreement_on_best"] = same_best / max(1, len(shared))
    return result


def _summary(ranks: list[dict[str, int]]) -> dict:
    n = max(1, len(ranks))
    wins = {f"{a}>{b}": sum(r[a] < r[b] for r in ranks) / n for a, b in combinations(SYSTEMS, 2)}
    mean_rank = {s: 1 + sum(r[s] for r in ranks) / n for s in SYSTEMS}
    best = {s: sum(min(r, key=r.get) == s for r in ranks) / n for s in SYSTEMS}
    return {"articles": len(ranks), "wins": wins, "mean_rank": mean_rank, "ranked_best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("predictions", nargs="+", help="predictions.jsonl files written by `xinwen eval`")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("ratings", nargs="+", help="one JSON file per rater: {item: 'BAC', ...}")
    s.add_argument("--out", required=True, help="the folder `prepare` wrote")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.predictions, args.n, Path(args.out))
    else:
        print(json.dumps(score(Path(args.out), args.ratings), indent=2))


if __name__ == "__main__":
    main()
