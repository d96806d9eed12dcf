"""Held-out web news beyond dev: k-fold cross-validation of the default recipe against TF-IDF.

    python bench/bench_topic_crossval.py --folds 3 --work /tmp/s6/cv [--resamples 1000]

The dev split (999 articles, 6 of them `trade`) is the only labelled web news the project
holds out, and training uses it for early stopping and the temperature. Here the builtin
training split (5,355 web articles) is cut into ``--folds`` stratified folds. For each fold the
default recipe (`configs/topic.yaml`, project-written articles included, dev as usual) is trained
on the other folds, and the held-out fold is predicted by the model (encoder x lexical expert),
by the encoder alone and by TF-IDF + LR refit on exactly the model's training records. No
held-out article is used for anything but scoring. The pooled predictions (every web training
article predicted once) give macro-F1, per-class F1 and a paired bootstrap of the margin; its
interval covers the sampling of articles, not the spread between training runs (seeds).

Each fold's training is one `xinwen train` run (about 9 minutes on 2 cores); a fold whose
``metrics.json`` exists is not retrained, so an interrupted run resumes. The work folder keeps
the fold assignment it was made with, and a rerun with other ``--folds`` / ``--seed`` is refused
(its trained folds would have seen articles that are now held out). Writes
bench/out/topic_crossval.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from paired_bootstrap import macro_f1_margin_interval
from sklearn.model_selection import StratifiedKFold

from xinwen.inference import NewsClassifier
from xinwen.inference.topic.lexical import LexicalExpert, LexicalSettings
from xinwen.inference.text import as_article
from xinwen.training.data.builtin import extra_articles, inews_topics
from xinwen.training.config.sections import load_config
from xinwen.training.topic.evaluate import tfidf_baseline

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "topic_crossval.json"
CONFIG = ROOT / "configs" / "topic.yaml"


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def fold_predictions(fold_dir: Path, train: list[dict], held_out: list[dict],
                     weights: list[float]) -> dict[str, list[str]]:
    """The held-out fold's labels from the trained folder (with and without its expert, and with
    the expert at each of ``weights``) and from TF-IDF."""
    clf = NewsClassifier.from_pretrained(fold_dir, device="cpu", first_stage=False)
    if clf.lexical is None:
        raise SystemExit(f"{fold_dir} has no lexical expert: this bench measures the default recipe")
    articles = [as_article(r, i) for i, r in enumerate(held_out)]
    encoder = clf.probabilities(articles, return_parts=True).encoder  # calibrated, without the expert
    lexical = clf.lexical.probabilities(articles, clf.labels)
    product = clf.lexical.combine(encoder, lexical)
    labels = {"xinwen": [clf.labels[i] for i in product.argmax(1).tolist()],
              "encoder_alone": [clf.labels[i] for i in encoder.argmax(1).tolist()],
              "tfidf": tfidf_baseline(train, clf.labels)(held_out)}
    for weight in weights:  # the argmax does not depend on the temperature
        logits = LexicalExpert(LexicalSettings(weight=weight), clf.lexical.ngrams).logits(encoder, lexical)
        labels[f"weight {weight:g}"] = [clf.labels[i] for i in logits.argmax(1).tolist()]
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--work", default="/tmp/xinwen_cv")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--weights", type=float, nargs="*", default=[],
                        help="also score the product at these lexical weights (the default was picked on dev)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    web = inews_topics("train")
    written = extra_articles()
    labels = list(load_config(CONFIG).data.labels)
    splitter = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    assignment = {"folds": args.folds, "seed": args.seed, "articles": len(web)}
    manifest = work / "folds.json"
    if manifest.is_file() and json.loads(manifest.read_text()) != assignment:
        raise SystemExit(f"{work} was made with {manifest.read_text()}, not {assignment}: "
                         "use another --work folder")
    manifest.write_text(json.dumps(assignment))
    gold: list[str] = []
    predicted: dict[str, list[str]] = {name: [] for name in
                                       ["xinwen", "encoder_alone", "tfidf", *(f"weight {w:g}" for w in args.weights)]}
    for k, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(web)), [r["label"] for r in web])):
        train = [web[i] for i in train_idx] + written
        held_out = [web[i] for i in held_idx]
        train_file, fold_dir = work / f"train_{k}.jsonl", work / f"fold_{k}"
        write_jsonl(train_file, train)
        if not (fold_dir / "metrics.json").is_file():
            logging.info("fold %d: training on %d records (%d web + %d written), holding out %d",
                         k, len(train), len(train_idx), len(written), len(held_out))
            subprocess.run([sys.executable, "-m", "xinwen.training.cli", "train", str(CONFIG),
                            f"data.train={train_file}", "data.dev=builtin:inews-topics",
                            f"train.output_dir={fold_dir}"], check=True, cwd=ROOT)
        fold = fold_predictions(fold_dir, train, held_out, args.weights)
        gold += [r["label"] for r in held_out]
        for name in predicted:
            predicted[name] += fold[name]
        logging.info("fold %d: %s", k, {name: round(float(f1_score([r["label"] for r in held_out], fold[name],
                                                                      labels=labels, average="macro")), 3)
                                        for name in fold})

    def macro(pred, labs=labels) -> float:
        return float(f1_score(gold, pred, labels=labs, average="macro", zero_division=0))

    rng = np.random.default_rng(0)
    result = {"folds": args.folds, "n": len(gold), "macro_f1": {}, "per_class_f1": {}, "margins": {}}
    for name, pred in predicted.items():
        result["macro_f1"][name] = macro(pred)
        result["per_class_f1"][name] = dict(zip(labels, f1_score(gold, pred, labels=labels, average=None).tolist()))
        result["macro_f1"][f"{name} without trade"] = macro(pred, labs=[l for l in labels if l != "trade"])
    for name in ("xinwen", "encoder_alone"):
        low, high = macro_f1_margin_interval(gold, predicted[name], predicted["tfidf"], labels, args.resamples, rng)
        result["margins"][name] = {"diff": result["macro_f1"][name] - result["macro_f1"]["tfidf"],
                                   "low": low, "high": high}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"{args.folds}-fold cross-validation over the {len(gold)} web training articles (pooled held-out folds)")
    print("| | " + " | ".join(predicted) + " |\n|---|" + "---:|" * len(predicted))
    print("| macro-F1 | " + " | ".join(f"{result['macro_f1'][n]:.3f}" for n in predicted) + " |")
    print("| macro-F1 without trade | " + " | ".join(f"{result['macro_f1'][n + ' without trade']:.3f}"
                                               for n in predicted) + " |")
    for lab in labels:
        print(f"| F1 {lab} (n={gold.count(lab)}) | "
              + " | ".join(f"{result['per_class_f1'][n][lab]:.3f}" for n in predicted) + " |")
    for name, m in result["margins"].items():
        print(f"{name} - tfidf: {m['diff']:+.3f}, 95% interval {m['low']:+.3f}..{m['high']:+.3f}")


if __name__ == "__main__":
    main()
