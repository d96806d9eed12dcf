"""A frozen e5 + logistic regression probe beside the fine-tuned model and TF-IDF, per training set.

    python bench/bench_frozen_probe.py /tmp/s6/webonly runs/topic [--max-length 128]

For each model folder, two classical references are trained on the training records its
config names (e.g. web news only, or web news + the project-written articles): character
TF-IDF + LR (as `xinwen eval` fits it) and a logistic regression on the frozen builtin e5's
mean-pooled ``query: `` embeddings (first ``--max-length`` tokens; C picked on dev from a small grid, the
only dev-tuned choice here). Both, and the folder's own model (encoder x lexical expert, as
`NewsClassifier` loads it), predict the dev split, the two formal check sets and the People's Daily articles. Embeddings are
computed once per distinct text. Prints one markdown table of macro-F1 and writes it to
bench/out/frozen_probe.json.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from bench_label_prior import embed
from check_sets import add_check_set_arguments, requested_check_sets
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from xinwen.inference import NewsClassifier
from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.config.sections import load_config
from xinwen.training.data.topic import load_topic_splits
from xinwen.training.topic.evaluate import tfidf_baseline

OUT = Path(__file__).resolve().parent / "out" / "frozen_probe.json"
C_GRID = (0.1, 1.0, 10.0)


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+")
    parser.add_argument("--max-length", type=int, default=128)
    add_check_set_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    source = check_model_source("builtin:multilingual-e5-small")
    e5, tokenizer = AutoModel.from_pretrained(source).eval(), AutoTokenizer.from_pretrained(source)
    formal = requested_check_sets(args)

    def text_of(record: dict, i: int) -> str:
        return classifier_text(as_article(record, i), "query: ")

    splits = {model_dir: load_topic_splits(load_config(Path(model_dir, "config.yaml")))
              for model_dir in args.model_dirs}
    every_text = sorted({text_of(r, i) for train, dev in splits.values() for recs in (train, dev)
                         for i, r in enumerate(recs)}
                        | {text_of(r, i) for recs in formal.values() for i, r in enumerate(recs)})
    logging.info("embedding %d distinct texts with the frozen e5 (%d tokens)", len(every_text), args.max_length)
    vectors = embed(e5, tokenizer, every_text, max_length=args.max_length).numpy()
    row_of = {text: i for i, text in enumerate(every_text)}

    def features(records: list[dict]) -> np.ndarray:
        return vectors[[row_of[text_of(r, i)] for i, r in enumerate(records)]]

    rows, raw = [], {}
    for model_dir, (train, dev) in splits.items():
        clf = NewsClassifier.from_pretrained(model_dir, device="cpu", first_stage=False)
        labels = clf.labels
        gold_train = [r["label"] for r in train]
        tfidf = tfidf_baseline(train, labels)

        def f1(gold: list[str], pred: list[str]) -> float:
            return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))

        probes = {c: LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(features(train), gold_train)
                  for c in C_GRID}
        dev_gold = [r["label"] for r in dev]
        best_c = max(C_GRID, key=lambda c: f1(dev_gold, list(probes[c].predict(features(dev)))))
        for name, records in {"dev": dev, **formal}.items():
            gold = [r["label"] for r in records]
            articles = [as_article(r, i) for i, r in enumerate(records)]
            model = [labels[i] for i in clf.probabilities(articles).argmax(1).tolist()]
            scores = {"TF-IDF + LR": f1(gold, tfidf(records)),
                      f"frozen e5 + LR (C={best_c:g})": f1(gold, list(probes[best_c].predict(features(records)))),
                      "xinwen model": f1(gold, model)}
            raw[f"{model_dir}|{name}"] = scores
            rows.append(f"| {model_dir} ({len(train)} training records) | {name} ({len(records)}) | "
                        + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
            logging.info("%s %s: %s", model_dir, name, {k: round(v, 3) for k, v in scores.items()})
    table = ("| training set (model folder) | set | TF-IDF + LR | frozen e5 + LR | xinwen model |\n"
             "|---|---|---|---|---|\n" + "\n".join(rows))
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"table": table, "macro_f1": raw, "max_length": args.max_length},
                              indent=2, ensure_ascii=False))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
