"""The model card and the input format a plain-transformers user needs, on tiny folders."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from xinwen.training.config.sections import HeadlineConfig, TopicConfig
from xinwen.training.model_card import INPUT_FORMAT_KEY, write_model_card

TOPIC_METRICS = {
    "dev": {"n": 40, "macro_f1": 0.7561, "accuracy": 0.8123},
    "dev_encoder_alone": {"n": 40, "macro_f1": 0.7249, "accuracy": 0.8},
    "best_epoch": 2, "train_records": 6013, "train_seconds": 540.2,
}


def _front_matter(path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body


def test_topic_card_has_hub_metadata_with_the_dev_figures(tmp_path):
    cfg = TopicConfig()
    path = write_model_card(tmp_path, "topic", cfg, TOPIC_METRICS)
    meta, body = _front_matter(path)
    assert meta["language"] == ["zh"] and meta["pipeline_tag"] == "text-classification"
    assert meta["labels"] == cfg.data.labels
    assert meta["base_model"] == "intfloat/multilingual-e5-small"
    result = meta["model-index"][0]["results"][0]
    assert "dev" in result["dataset"]["name"] and "inews" in result["dataset"]["name"]
    assert {m["name"]: m["value"] for m in result["metrics"]} == {"macro-F1": 0.7561, "accuracy": 0.8123}
    assert "0.756" in body and "0.725" in body and "6013" in body and "540.2 s" in body
    assert 'pipeline("text-classification"' in body and "truncation=True" in body
    assert '"query: 海关总署' in body  # the prefix the model was trained with


def test_headline_card_names_the_registered_model_type(tmp_path):
    metrics = {"dev_subset": {"items": 300, "num_beams": 1,
                              "model": {"rouge1": 30.1, "rouge2": 15.2, "rougeL": 23.5},
                              "lead": {"rouge1": 20.0, "rouge2": 8.0, "rougeL": 16.8}},
               "train_pairs": 5000, "train_seconds": 2400, "best_epoch": 5}
    meta, body = _front_matter(write_model_card(tmp_path, "headline", HeadlineConfig(), metrics))
    assert meta["pipeline_tag"] == "summarization"
    values = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values["character ROUGEL F1"] == 23.5
    assert "xinwen-copy-encoder-decoder" in body and "16.80" in body


def test_unknown_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'topic' or 'headline'"):
        write_model_card(tmp_path, "sentiment", TopicConfig(), {})


def test_topic_input_format_reaches_config_json_and_the_pipeline_works(tmp_path, tiny_classifier_dir):
    from transformers import AutoConfig, pipeline

    folder = shutil.copytree(tiny_classifier_dir, tmp_path / "clf")
    cfg = TopicConfig()
    cfg.text.max_length = 32
    write_model_card(folder, "topic", cfg, TOPIC_METRICS)
    fmt = AutoConfig.from_pretrained(folder).to_dict()[INPUT_FORMAT_KEY]
    assert fmt["prefix"] == "query: " and fmt["truncation"] is True and fmt["max_length"] == 32
    # The README's call, on an article far longer than the model's positions: truncation=True works.
    clf = pipeline("text-classification", model=str(folder), device="cpu")
    out = clf(fmt["prefix"] + "海关贸易出口增长。" + "铁路运输" * 200, truncation=True)
    assert out[0]["label"] in cfg.data.labels and 0 < out[0]["score"] <= 1
    assert json.loads((folder / "config.json").read_text())["id2label"]["0"] == cfg.data.labels[0]
