"""How sure is the topic model's margin over the TF-IDF baseline? A paired bootstrap.

    python bench/bench_topic_margin.py runs/topic

The model is what `NewsClassifier` loads (with the folder's lexical expert unless
--encoder-alone). Both systems are trained on the model's own training records (the TF-IDF + LR baseline is refit
here exactly as `xinwen eval` does) and predict the dev split, the two formal check sets
(bench/data/formal_news_eval.jsonl, formal_news_eval2.jsonl) and the People's Daily articles
(`newspaper_1998.py`; skip with --no-newspaper); the
articles are then resampled with replacement (both systems' predictions together) and the
macro-F1 difference recomputed each time. Also prints four-label macro-F1 without `trade`, whose
6 dev items carry most of the dev margin.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from check_sets import add_check_set_arguments, keep_requested, requested_check_sets
from paired_bootstrap import macro_f1_margin_interval
from sklearn.metrics import f1_score

from xinwen.inference import NewsClassifier
from xinwen.inference.text import as_article
from xinwen.training.config.sections import load_config
from xinwen.training.data.topic import load_topic_splits
from xinwen.training.topic.evaluate import tfidf_baseline



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder-alone", action="store_true", help="ignore the folder's lexical expert")
    add_check_set_arguments(parser, only=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    train, dev = load_topic_splits(load_config(Path(args.model_dir, "config.yaml")))
    check_sets = keep_requested(args, {"dev": dev, **requested_check_sets(args)})
    clf = NewsClassifier.from_pretrained(args.model_dir, device="cpu", first_stage=False,
                                         lexical=not args.encoder_alone)
    labels = clf.labels
    baseline = tfidf_baseline(train, labels)
    rng = np.random.default_rng(args.seed)
    for name, records in check_sets.items():
        gold = np.array([r["label"] for r in records])
        probs = clf.probabilities([as_article(r, i) for i, r in enumerate(records)])
        model = np.array([labels[i] for i in probs.argmax(1).tolist()])
        base = np.array(baseline(records))

        def f1(idx, pred, which=labels):
            return f1_score(gold[idx], pred[idx], labels=which, average="macro", zero_division=0)

        every = np.arange(len(gold))
        low, high = macro_f1_margin_interval(gold, model, base, labels, args.resamples, rng)
        four = [label for label in labels if label != "trade"]
        print(f"{name} ({len(gold)} articles): model {f1(every, model):.3f} tfidf {f1(every, base):.3f} "
              f"diff {f1(every, model) - f1(every, base):+.3f}, 95% interval "
              f"{low:+.3f}..{high:+.3f}; without trade: "
              f"model {f1(every, model, four):.3f} tfidf {f1(every, base, four):.3f}")


if __name__ == "__main__":
    main()
