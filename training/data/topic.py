"""Train/dev records for the topic task, from the builtin corpus or the user's files."""
from __future__ import annotations

import logging
import random
from collections import Counter

from xinwen.training.data.builtin import extra_articles, inews_topics
from xinwen.training.config.sections import BUILTIN_TOPICS, TopicConfig
from xinwen.training.data.files import DataError, load_labelled

logger = logging.getLogger(__name__)
DESCRIPTION_ID = "description:"  # id prefix of a label description used as an example


def load_records(spec: str, split: str, cfg: TopicConfig) -> list[dict]:
    """Labelled records of ``spec`` (``builtin:inews-topics``, whose ``split`` is read, or a file)."""
    d = cfg.data
    if spec == BUILTIN_TOPICS:
        records = inews_topics(split)
        unknown = {r["label"] for r in records} - set(d.labels)
        if unknown:
            raise DataError(
                f"data.labels {d.labels} lacks label(s) {sorted(unknown)} used by {spec}; "
                "add them to data.labels or use your own data files"
            )
        return records
    if spec.startswith("builtin:"):
        raise DataError(f"unknown builtin dataset {spec!r} for the topic task; expected {BUILTIN_TOPICS!r} or a file path")
    return load_labelled(spec, d.title_column, d.body_column, d.label_column, d.id_column, d.labels)


def draw_per_label(records: list[dict], per_label: int, seed: int) -> list[dict]:
    """At most ``per_label`` records of each label, drawn with ``seed``, in file order."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        by_label.setdefault(record["label"], []).append(i)
    chosen = sorted(i for rows in by_label.values() for i in (rng.sample(rows, per_label)
                                                               if len(rows) > per_label else rows))
    return [records[i] for i in chosen]


def description_records(cfg: TopicConfig) -> list[dict]:
    """One training record per data.label_descriptions entry: the description is its body."""
    return [{"id": DESCRIPTION_ID + label, "title": "", "body": text, "label": label}
            for label, text in cfg.data.label_descriptions.items()]


def dev_spec(cfg: TopicConfig) -> str | None:
    """The dev split a config names: data.dev, else the builtin corpus's own, else none."""
    return cfg.data.dev or (cfg.data.train if cfg.data.train == BUILTIN_TOPICS else None)


def load_topic_splits(cfg: TopicConfig) -> tuple[list[dict], list[dict]]:
    d = cfg.data
    dev_from = dev_spec(cfg)
    if d.train is None or dev_from is None:  # a few-shot config: no dev split, maybe no examples
        missing = "data.train" if d.train is None else "data.dev"
        raise DataError(f"{missing}: this config has none (recipe: {cfg.recipe} trains without it); "
                        "name the articles to use instead (xinwen eval --data FILE, first-stage --data/--holdout)")
    train = load_records(d.train, "train", cfg)
    dev = load_records(dev_from, "dev", cfg)
    if d.extra_articles and d.train == BUILTIN_TOPICS:
        train = train + [r for r in extra_articles() if r["label"] in d.labels]
    if d.examples_per_label:
        train = draw_per_label(train, d.examples_per_label, cfg.train.seed)
    if cfg.train.max_train_items:
        train = train[: cfg.train.max_train_items]
    train = train + description_records(cfg)  # never drawn or cut: the user wrote each one
    if cfg.train.max_eval_items:
        dev = dev[: cfg.train.max_eval_items]
    for name, records in (("train", train), ("dev", dev)):
        if not records:
            raise DataError(f"the {name} split is empty; it needs at least one labelled record")
    missing = [lab for lab in d.labels if lab not in {r["label"] for r in train}]
    if missing:
        logger.warning("labels %s have no training examples; the model cannot learn them", missing)
    logger.info("train: %d records %s", len(train), dict(Counter(r["label"] for r in train)))
    logger.info("dev: %d records %s", len(dev), dict(Counter(r["label"] for r in dev)))
    return train, dev
