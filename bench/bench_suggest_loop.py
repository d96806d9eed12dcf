"""A simulated labelling loop: do `xinwen suggest`'s picks teach a model more than random picks?

    python bench/bench_suggest_loop.py --work /tmp/suggest_loop [--draws 3 --start 8 --rounds 3 --per-round 50]

The unlabelled pool is the builtin training split (5,355 web articles, their labels hidden until
picked); the yardstick is the dev split (999). Each draw starts from ``--start`` random articles
per label, then for ``--rounds`` rounds picks ``--per-round`` more from the pool, "labels" them
with their annotation, and retrains. Three ways to pick, from the same start:

* random;
* uncertainty: the smallest margins between the two likeliest labels;
* suggest: `training/topic/suggest.py`'s `diverse_pick` (the margin pool, then uncertainty x
  distance), the function `xinwen suggest` runs.

The learner is a logistic regression on frozen e5 embeddings (mean-pooled ``query: `` vectors of
the first 160 tokens, computed once and cached in ``--work``), not the fine-tuned topic model: a
fine-tune per round and draw is hours on 2 cores. Its C is fixed (10, balanced class weights),
nothing is tuned on dev. Prints the dev macro-F1 after each round (mean over draws, and each
draw) and writes bench/out/suggest_loop.json.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from xinwen.training.data.builtin import inews_topics
from xinwen.training.topic.suggest import diverse_pick, margins

OUT = Path(__file__).resolve().parent / "out" / "suggest_loop.json"
STRATEGIES = ("random", "uncertainty", "suggest")
logger = logging.getLogger("bench_suggest_loop")


def article_text(record: dict) -> str:
    return f"{record['title']}\n{record['body']}"


def embeddings(texts: list[str], cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    import torch
    from bench_label_prior import embed
    from transformers import AutoModel, AutoTokenizer

    from xinwen.inference.encoders.loading import check_model_source

    source = check_model_source("builtin:multilingual-e5-small")
    model, tokenizer = AutoModel.from_pretrained(source).eval(), AutoTokenizer.from_pretrained(source)
    with torch.inference_mode():
        vectors = embed(model, tokenizer, ["query: " + t for t in texts], max_length=160).numpy()
    np.save(cache, vectors)
    return vectors


def fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced").fit(x, y)


def start_set(labels: np.ndarray, per_label: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for label in np.unique(labels)
            for i in rng.choice(np.flatnonzero(labels == label), per_label, replace=False)]


def pick(strategy: str, model, x: np.ndarray, texts: list[str], left: list[int], n: int,
         rng: np.random.Generator) -> list[int]:
    if strategy == "random":
        return [int(i) for i in rng.choice(left, n, replace=False)]
    uncertainty = 1.0 - margins(model.predict_proba(x[left]))
    if strategy == "uncertainty":
        return [left[k] for k in np.argsort(-uncertainty, kind="stable")[:n]]
    return [left[k] for k in diverse_pick([texts[i] for i in left], uncertainty, n)]


def run_draw(draw: int, args, x, y, texts, dev_x, dev_y, labels) -> dict[str, list[float]]:
    start = start_set(y, args.start, np.random.default_rng(draw))
    curves = {}
    for strategy in STRATEGIES:
        rng = np.random.default_rng(1000 + draw)  # the random picks differ by draw, not by strategy
        chosen = list(start)
        scores = []
        for round_no in range(args.rounds + 1):
            model = fit(x[chosen], y[chosen])
            scores.append(float(f1_score(dev_y, model.predict(dev_x), labels=labels, average="macro")))
            if round_no < args.rounds:
                taken = set(chosen)
                left = [i for i in range(len(y)) if i not in taken]
                chosen += pick(strategy, model, x, texts, left, args.per_round, rng)
        curves[strategy] = scores
        logger.info("draw %d %-11s %s", draw, strategy, " ".join(f"{s:.3f}" for s in scores))
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the cached embeddings")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--start", type=int, default=8, help="random articles per label to start from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pool, dev = inews_topics("train"), inews_topics("dev")
    texts, dev_texts = [article_text(r) for r in pool], [article_text(r) for r in dev]
    x, dev_x = embeddings(texts, work / "train.npy"), embeddings(dev_texts, work / "dev.npy")
    y, dev_y = np.array([r["label"] for r in pool]), np.array([r["label"] for r in dev])
    labels = sorted(set(y))
    draws = [run_draw(d, args, x, y, texts, dev_x, dev_y, labels) for d in range(args.draws)]
    mean = {s: np.mean([d[s] for d in draws], axis=0).round(4).tolist() for s in STRATEGIES}
    print(f"| picks (dev macro-F1, mean of {args.draws} draws) | " +
          " | ".join(f"{args.start}/label + {r * args.per_round}" for r in range(args.rounds + 1)) + " |")
    print("|---|" + "---:|" * (args.rounds + 1))
    for s in STRATEGIES:
        print(f"| {s} | " + " | ".join(f"{v:.3f}" for v in mean[s]) + " |")
    gain = [d["suggest"][-1] - d["random"][-1] for d in draws]
    print(f"suggest - random after {args.rounds} rounds, per draw: {[round(g, 3) for g in gain]}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"args": vars(args), "mean": mean, "draws": draws, "suggest_minus_random": gain},
                              indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
