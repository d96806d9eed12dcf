"""Beam's best vs reranked by the editor's checks, beside the lead baseline and the references:
character ROUGE and the checks' rates, on several evaluation sets, from one beam pass per set.

    python bench/newspaper_headlines.py --write /tmp/rmrb_headlines_test.jsonl
    python bench/bench_headline_rerank.py runs/headline --output bench/out/headline_rerank.json \
        --data dev builtin:inews-headlines:test /tmp/rmrb_headlines_test.jsonl bench/data/formal_news_eval.jsonl

Each set is prepared as ``xinwen eval`` prepares it (cleaned, near-duplicates of training items
removed). The model writes every beam candidate once (``generate(candidates=num_beams,
rerank=False)``); "beam" takes the most probable, "reranked" orders the same candidates by the
editor's checks, and "reranked + lead fallback" (``generate()``'s default) answers the body's first
sentence when no candidate is faithful (``inference/headline/candidates.py``). ``--block-echo on|off``
decodes with or without the echo guard (``inference/headline/echo_guard.py``; default: the
folder's setting). ``--max-chars N`` adds
``generate(max_chars=N)`` (its own beam pass) and the lead clipped to N.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from xinwen.inference.headline.candidates import rank_candidates, with_lead_fallback
from xinwen.inference.headline.generator import HeadlineGenerator
from xinwen.inference.headline.quality import quality_rates
from xinwen.inference.headline.text import lead_headline
from xinwen.training.headline.evaluate import evaluation_pairs, load_char_rouge, paired_bootstrap

logger = logging.getLogger("bench_headline_rerank")


def systems_for(pairs: list[dict], gen: HeadlineGenerator, max_chars: int, batch_size: int) -> dict[str, list[str]]:
    sources = [p["source"] for p in pairs]
    found = gen.generate([{"body": s} for s in sources], batch_size=batch_size,
                         candidates=gen.model.generation_config.num_beams, rerank=False)  # the folder's block_echo
    out = systems_from_candidates(pairs, [[(c.text, c.score) for c in cands] for cands in found],
                                  gen.settings.lead_chars)
    if max_chars:  # the product path: decoding bounded by the limit (a second beam pass)
        out[f"lead, <= {max_chars} chars"] = [lead_headline(s, min(max_chars, gen.settings.lead_chars))
                                             for s in sources]
        out[f"reranked, <= {max_chars} chars"] = gen.generate([{"body": s} for s in sources],
                                                              batch_size=batch_size, max_chars=max_chars)
    return out


def systems_from_candidates(pairs: list[dict], candidates: list[list[tuple[str, float]]],
                            lead_chars: int) -> dict[str, list[str]]:
    """Reference, lead, beam's best, reranked and ``generate()``'s default from each pair's beam
    candidates ``[(text, score), ...]`` (most probable first)."""
    sources = [p["source"] for p in pairs]
    out = {"reference": [p["target"] for p in pairs],
           "lead": [lead_headline(s, lead_chars) for s in sources],
           "beam": [c[0][0] for c in candidates]}
    ranked = [rank_candidates([t for t, _ in c], [s for _, s in c], src) for c, src in zip(candidates, sources)]
    out["reranked"] = [r[0].text for r in ranked]
    # generate()'s default: reranked, and the body's first sentence when no candidate is faithful.
    out["reranked + lead fallback"] = [with_lead_fallback(r, src, 0, lead_chars)[0].text
                                       for r, src in zip(ranked, sources)]
    return out


def measure(model_dir: str, data: str, gen, rouge, max_chars: int, batch_size: int, max_items: int = 0) -> dict:
    pairs, name = evaluation_pairs(Path(model_dir), None if data == "dev" else data, max_items)
    start = time.time()
    systems = systems_for(pairs, gen, max_chars, batch_size)
    seconds = round(time.time() - start, 1)
    report = score_systems(name, pairs, systems, rouge)
    report["beam_pass_seconds"] = seconds
    logger.info("%s: %s", name, json.dumps({k: v for k, v in report.items() if k != "rows"}, ensure_ascii=False))
    return report


def score_systems(name: str, pairs: list[dict], systems: dict[str, list[str]], rouge) -> dict:
    """ROUGE against the references, ROUGE-L minus the lead's (paired bootstrap) and the editor's
    checks for every system; per-article rows in `xinwen eval`'s predictions.jsonl shape."""
    references, bodies = systems["reference"], [p["source"] for p in pairs]
    per_item = {s: np.array(rouge.compute(predictions=h, references=references, use_aggregator=False)["rougeL"])
                for s, h in systems.items() if s != "reference"}
    report = {"data": name, "items": len(pairs), "systems": {}}
    for system, headlines in systems.items():
        row = {"quality": quality_rates(headlines, bodies),
               "mean_chars": float(np.mean([len(h) for h in headlines]))}
        if system != "reference":
            scores = rouge.compute(predictions=headlines, references=references)
            row.update({k: scores[k] for k in ("rouge1", "rouge2", "rougeL")})
        if system not in ("reference", "lead"):
            delta = per_item[system] - per_item["lead"]
            row["rougeL_minus_lead"] = float(delta.mean())
            row["rougeL_minus_lead_95ci"] = paired_bootstrap(delta)
        report["systems"][system] = row
    report["changed_by_rerank"] = sum(a != b for a, b in zip(systems["beam"], systems["reranked"])) / len(pairs)
    report["rows"] = [{"id": p["id"], "source": p["source"], "reference": systems["reference"][i],
                       "lead": systems["lead"][i], "model": systems["reranked + lead fallback"][i], "beam": systems["beam"][i],
                       "reranked": systems["reranked"][i]}
                      for i, p in enumerate(pairs)]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--data", nargs="+", default=["dev"], help="'dev', builtin names or files")
    parser.add_argument("--max-chars", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-items", type=int, default=0, help="first N pairs of each set (0 = all)")
    parser.add_argument("--block-echo", choices=["on", "off"], default=None,
                        help="decode with or without the echo guard (default: the folder's setting)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    gen = HeadlineGenerator.from_pretrained(args.model_dir, device="cpu")
    if args.block_echo:
        gen.settings.block_echo = args.block_echo == "on"
    logger.info("echo guard while decoding: %s", "on" if gen.settings.block_echo else "off")
    rouge = load_char_rouge()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for number, data in enumerate(args.data):
        report = measure(args.model_dir, data, gen, rouge, args.max_chars, args.batch_size, args.max_items)
        report["block_echo"] = gen.settings.block_echo
        # Per-article headlines in `xinwen eval`'s predictions.jsonl shape ("model" = the default: reranked + lead fallback),
        # e.g. for bench/blind_headlines.py.
        rows = output.with_name(f"{output.stem}.predictions{number}.jsonl")
        rows.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.pop("rows")), encoding="utf-8")
        report["predictions"] = str(rows)
        results.append(report)
        output.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
