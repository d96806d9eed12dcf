"""Headline recipe variants trained and decoded on one GPU, for choosing the next default on CPU.

Each variant is ``xinwen train headline`` with a few overrides (fp32, as on the CPU), then one beam
pass (block_echo as the folder says, every candidate kept) over the evaluation sets, prepared as
``xinwen eval`` prepares them. The candidates are written gzipped to OUTDIR/NAME.jsonl.gz and
scored afterwards on any machine by ``bench/score_headline_candidates.py`` (ROUGE, the editor's
checks, reranking and the lead fallback), so this machine needs no metric code. Variants run in
the given order until ``--budget`` seconds have passed; what finished is kept.

    python bench/gpu_headline.py --out OUTDIR --data dev builtin:inews-headlines:test rmrb_test.jsonl \
        --variant base --variant no_dropout model.decoder_input_dropout=null
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from pathlib import Path

logger = logging.getLogger("gpu_headline")


def train_variant(name: str, overrides: list[str], runs: Path) -> tuple[Path, float]:
    from xinwen.training.cli import main

    folder = runs / name
    started = time.perf_counter()
    args = ["train", "headline", f"train.output_dir={folder}", "train.mixed_precision=no", *overrides,
            "--overwrite", "--no-eval"]
    if main(args) != 0:
        raise RuntimeError(f"`xinwen {' '.join(args)}` failed")
    return folder, time.perf_counter() - started


def decode_sets(folder: Path, sets: list[str], batch_size: int, max_items: int = 0) -> tuple[list[dict], dict]:
    from xinwen.inference.headline.generator import HeadlineGenerator
    from xinwen.training.headline.evaluate import evaluation_pairs

    gen = HeadlineGenerator.from_pretrained(folder)
    beams = gen.model.generation_config.num_beams
    rows, seconds = [], {}
    for data in sets:
        pairs, set_name = evaluation_pairs(folder, None if data == "dev" else data, max_items)
        started = time.perf_counter()
        found = gen.generate([{"body": p["source"]} for p in pairs], batch_size=batch_size,
                             candidates=beams, rerank=False)
        seconds[set_name] = round(time.perf_counter() - started, 1)
        rows += [{"set": set_name, "id": p["id"], "source": p["source"], "target": p["target"],
                  "candidates": [[c.text, c.score] for c in cands]} for p, cands in zip(pairs, found)]
    return rows, {"decode_seconds": seconds, "lead_chars": gen.settings.lead_chars, "num_beams": beams}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/gpu_headline_runs"))
    parser.add_argument("--data", nargs="+", default=["dev"])
    parser.add_argument("--variant", nargs="+", action="append", required=True, metavar="NAME [KEY=VALUE ...]")
    parser.add_argument("--budget", type=float, default=420, help="start no variant after this many seconds")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-items", type=int, default=0, help="per set; 0 = all (a smaller number checks the script)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started, summary = time.perf_counter(), {}
    for name, *overrides in args.variant:
        if time.perf_counter() - started > args.budget:
            logger.warning("budget spent: %s not run", name)
            continue
        folder, train_seconds = train_variant(name, overrides, args.runs)
        rows, info = decode_sets(folder, args.data, args.batch_size, args.max_items)
        metrics = json.loads((folder / "metrics.json").read_text())
        with gzip.open(args.out / f"{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        summary[name] = {"overrides": overrides, "train_seconds": round(train_seconds, 1), **info,
                         "metrics": metrics}
        (args.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
        logger.info("%s: trained in %.0f s, decoded %s", name, train_seconds, info["decode_seconds"])


if __name__ == "__main__":
    main()
