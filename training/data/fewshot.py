"""The records of a few-shot run: its labels, the drawn examples, the descriptions, a dev split.

Used by the recipe (training/topic/fewshot/) and by `xinwen eval`, whose TF-IDF baseline trains
on the same examples the model learnt from.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from xinwen.inference.settings import TOPIC_LABELS
from xinwen.training.config.sections import BUILTIN_TOPICS, TopicConfig
from xinwen.training.data.files import ANY_TEXT_LABEL, DataError, load_labelled
from xinwen.training.data.topic import description_records, dev_spec, draw_per_label, load_records

logger = logging.getLogger(__name__)


@dataclass
class FewshotData:
    labels: list[str]
    examples: list[dict]  # the drawn labelled records
    descriptions: list[dict]  # one record per data.label_descriptions entry
    dev: list[dict]  # reported only; may be empty


def fewshot_data(cfg: TopicConfig) -> FewshotData:
    """Labels (data.labels, or those of data.train when it is []), examples, descriptions, dev."""
    d = cfg.data
    labels, examples = list(d.labels), []
    if d.train and not labels:
        labels, examples = labels_of_file(cfg)
    elif d.train:
        examples = load_records(d.train, "train", cfg)
    problems = _description_problems(cfg, labels)
    if problems:
        raise DataError("\n".join(problems))
    if d.examples_per_label:
        examples = draw_per_label(examples, d.examples_per_label, cfg.train.seed)
    descriptions = description_records(cfg)
    spec = dev_spec(cfg)
    dev = load_records(spec, "dev", _with_labels(cfg, labels)) if spec else []
    logger.info("few-shot examples: %d %s, descriptions of %s%s", len(examples),
                dict(Counter(r["label"] for r in examples)), sorted(d.label_descriptions) or "no label",
                f"; dev (reported only): {len(dev)}" if dev else "")
    return FewshotData(labels, examples, descriptions, dev)


def labels_of_file(cfg: TopicConfig) -> tuple[list[str], list[dict]]:
    """The labels of data.train in first-seen order (then described labels it lacks), and its
    records; every record must carry a text label, and data.fallback_label must be among them."""
    d = cfg.data
    builtin = d.train == BUILTIN_TOPICS
    records = [] if builtin else load_labelled(d.train, d.title_column, d.body_column, d.label_column, d.id_column,
                                               ANY_TEXT_LABEL)
    labels = list(TOPIC_LABELS) if builtin else list(dict.fromkeys([r["label"] for r in records]
                                                                   + list(d.label_descriptions)))
    if len(labels) < 2:
        raise DataError(f"data.train {d.train}: expected >= 2 labels in column {d.label_column!r}, found {labels}")
    if d.fallback_label not in labels:
        raise DataError(f"data.fallback_label: expected one of the labels of {d.train} {labels}, got "
                        f"{d.fallback_label!r}; set data.fallback_label=LABEL (the answer below the threshold)")
    if builtin:
        records = load_records(d.train, "train", _with_labels(cfg, labels))
    logger.info("labels from %s: %s", d.train, labels)
    return labels, records


def _description_problems(cfg: TopicConfig, labels: list[str]) -> list[str]:
    return [f"data.label_descriptions: {key!r} is not one of the labels {labels}; fix the key or add the label"
            for key in cfg.data.label_descriptions if key not in labels]


def _with_labels(cfg: TopicConfig, labels: list[str]) -> TopicConfig:
    """``cfg`` reading records against ``labels`` (the config itself is left as it is)."""
    from dataclasses import replace

    return replace(cfg, data=replace(cfg.data, labels=list(labels)))
