"""Build an e5-sized stand-in topic classifier when no trained one exists (``runs/topic``).

    nice -n 10 python bench/make_standin_classifier.py --output bench/out/standin_topic

The speed benches need a model of the real size and shape (12 layers, hidden 384, the e5
tokenizer). Until the topic owner's trained folder exists, this takes the offline
multilingual-e5-small encoder, keeps its weights, and fits only the classification head: a
logistic regression on the pooled features of a few hundred labelled training articles, so the
head is confident where a random head would be near-uniform (near-uniform heads make label
agreement between backends meaninglessly fragile). The folder has the same layout as
``xinwen train`` output: save_pretrained + tokenizer + xinwen.json.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from xinwen.inference.encoders.builtin import prepare_builtin_encoder
from xinwen.inference.topic.classifier import encode_for_classifier, pad_batch
from xinwen.inference.settings import ClassifierSettings, TextSettings
from xinwen.inference.text import as_article
from xinwen.training.data.builtin import TOPIC_LABELS, inews_topics

logger = logging.getLogger("make_standin")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="bench/out/standin_topic")
    parser.add_argument("--per-label", type=int, default=120, help="training articles per label for the head")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    torch.manual_seed(13)

    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer, BertForSequenceClassification

    encoder = prepare_builtin_encoder()
    labels = list(TOPIC_LABELS)
    model = BertForSequenceClassification.from_pretrained(
        encoder, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    text = TextSettings(max_length=160, long_text="head_tail", prefix="query: ")

    # A balanced sample keeps the rare labels (trade: 36 items) from vanishing in the head.
    by_label: dict[str, list[dict]] = {label: [] for label in labels}
    for rec in inews_topics("train"):
        if len(by_label[rec["label"]]) < args.per_label:
            by_label[rec["label"]].append(rec)
    sample = [r for label in labels for r in by_label[label]]
    logger.info("fitting the head on %d articles: %s", len(sample), {k: len(v) for k, v in by_label.items()})

    started = time.perf_counter()
    inputs = encode_for_classifier(tokenizer, [as_article(r) for r in sample], text)
    features = np.zeros((len(sample), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(inputs), 32):
            part = inputs[start : start + 32]
            batch = pad_batch([ids for _, ids in part], tokenizer.pad_token_id)
            hidden = model.bert(**batch).pooler_output
            for (index, _), row in zip(part, hidden):
                features[index] = row.numpy()
    logger.info("features in %.0f s", time.perf_counter() - started)

    y = np.array([labels.index(r["label"]) for r in sample])
    head = LogisticRegression(max_iter=2000, C=10.0).fit(features, y)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(head.coef_, dtype=torch.float32))
        model.classifier.bias.copy_(torch.tensor(head.intercept_, dtype=torch.float32))
    logger.info("head train accuracy %.3f", head.score(features, y))

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    ClassifierSettings(text=text, temperature=1.0).save(out)
    (out / "STANDIN.md").write_text(
        "Stand-in made by bench/make_standin_classifier.py: multilingual-e5-small weights with a "
        f"logistic-regression head fitted on {len(sample)} inews-topics train articles. "
        "For speed benches only; not a trained xinwen model.\n"
    )
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
