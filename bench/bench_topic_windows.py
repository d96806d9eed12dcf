"""How much of each article should the topic model read at prediction time?

    python bench/bench_topic_windows.py runs/topic [more model folders]

The model trains on one head+tail window of `text.max_length` tokens. Here the same weights
predict the dev split, both formal check sets and the People's Daily articles with longer head+tail windows and with `chunks`
(every window of the article, probabilities averaged), one macro-F1 per variant. Evaluation
only: nothing here is used to choose a default automatically. The encoder alone is measured
(the folder's lexical expert reads whole articles anyway).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from check_sets import add_check_set_arguments, requested_check_sets
from sklearn.metrics import f1_score

from xinwen.inference import NewsClassifier
from xinwen.inference.text import as_article
from xinwen.training.config.sections import load_config
from xinwen.training.data.topic import load_topic_splits

VARIANTS = (("head_tail", 128), ("head_tail", 192), ("head_tail", 256), ("chunks", 128))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+")
    add_check_set_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    formal_sets = requested_check_sets(args)
    print("| model | set | " + " | ".join(f"{mode} {length}" for mode, length in VARIANTS) + " |")
    print("|---|---|" + "---:|" * len(VARIANTS))
    for model_dir in args.model_dirs:
        clf = NewsClassifier.from_pretrained(model_dir, device="cpu", first_stage=False, lexical=False)
        # The dev split of the model's own config (builtin inews-topics dev for the default recipe).
        check_sets = {"dev": load_topic_splits(load_config(Path(model_dir, "config.yaml")))[1], **formal_sets}
        trained = clf.settings.text
        for name, records in check_sets.items():
            gold = [r["label"] for r in records]
            articles = [as_article(r, i) for i, r in enumerate(records)]
            cells = []
            for mode, length in VARIANTS:
                clf.settings.text = replace(trained, long_text=mode, max_length=length)
                pred = [clf.labels[i] for i in clf.probabilities(articles).argmax(1).tolist()]
                cells.append(f"{f1_score(gold, pred, labels=clf.labels, average='macro', zero_division=0):.3f}")
            clf.settings.text = trained
            print(f"| {model_dir} | {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
