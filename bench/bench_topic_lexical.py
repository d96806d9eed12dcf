"""What does the lexical expert add, and how much does its weight matter?

    python bench/bench_topic_lexical.py runs/topic [more model folders] [--weights 0 0.25 0.5 1 2]

For each model folder the encoder alone predicts the dev split, both formal check sets and
the People's Daily articles (`newspaper_1998.py`; skip with --no-newspaper); a
character TF-IDF + LR is fitted on the model's training records (the expert `xinwen train` fits,
and the baseline `xinwen eval` reports) and the product of the two is scored at every weight
(weight 0 = encoder alone). The argmax does not depend on the product's temperature, so none is
fitted here. Prints one markdown table (macro-F1) and writes it with the raw figures to
bench/out/topic_lexical.json.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from check_sets import add_check_set_arguments, keep_requested, requested_check_sets
from sklearn.metrics import f1_score

from xinwen.inference import NewsClassifier
from xinwen.inference.topic.lexical import LexicalExpert, LexicalSettings
from xinwen.inference.text import as_article
from xinwen.training.config.sections import load_config
from xinwen.training.topic.lexical_fit import fit_tfidf
from xinwen.training.data.topic import load_topic_splits

OUT = Path(__file__).resolve().parent / "out" / "topic_lexical.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0])
    add_check_set_arguments(parser, only=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    formal = requested_check_sets(args)
    fitted: dict[tuple, object] = {}  # one TF-IDF fit per distinct training set
    rows, raw = [], {}
    for model_dir in args.model_dirs:
        train, dev = load_topic_splits(load_config(Path(model_dir, "config.yaml")))
        clf = NewsClassifier.from_pretrained(model_dir, device="cpu", first_stage=False, lexical=False)
        labels = clf.labels
        key = tuple((r.get("title", ""), r.get("body", ""), r["label"]) for r in train)
        if key not in fitted:
            fitted[key] = fit_tfidf(train, labels)
        for name, records in keep_requested(args, {"dev": dev, **formal}).items():
            gold = [r["label"] for r in records]
            articles = [as_article(r, i) for i, r in enumerate(records)]
            encoder = clf.probabilities(articles)
            scores = {}
            for weight in [None, *args.weights]:
                expert = LexicalExpert(LexicalSettings(weight=weight or 0.0), fitted[key])
                lexical = expert.probabilities(articles, labels)
                probs = lexical if weight is None else expert.combine(encoder, lexical, temperature=1.0)
                pred = [labels[i] for i in probs.argmax(1).tolist()]
                scores["tfidf" if weight is None else f"w={weight:g}"] = float(
                    f1_score(gold, pred, labels=labels, average="macro", zero_division=0))
            raw[f"{model_dir}|{name}"] = scores
            rows.append(f"| {model_dir} | {name} ({len(records)}) | "
                        + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
            logging.info("%s %s: %s", model_dir, name, {k: round(v, 3) for k, v in scores.items()})
    columns = ["TF-IDF + LR", *(f"weight {w:g}" + (" (encoder alone)" if w == 0 else "") for w in args.weights)]
    table = "| model | set | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns) + "\n" + "\n".join(rows)
    print(table)
    means = {col: float(np.mean([s[col] for s in raw.values()])) for col in next(iter(raw.values()))}
    print("mean over rows: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"table": table, "macro_f1": raw, "mean": means}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
