"""End-to-end topic training on a tiny random encoder and tiny JSONL data (offline, seconds)."""
import json

import pytest
import torch

from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.training.config.sections import load_config
from xinwen.training.topic.train import train_topic
from xinwen.training.topic.evaluate import evaluate_topic_folder


def tiny_config_overrides(encoder, train, dev, out, *extra) -> list[str]:
    return [
        f"model.name_or_path={encoder}", f"data.train={train}", f"data.dev={dev}",
        "data.extra_articles=false", "data.fallback_per_epoch=0", "model.freeze_layers=0",
        "model.freeze_embeddings=false", "text.max_length=32", "text.chunk_stride=8", "text.prefix=''",
        "train.batch_size=4", "train.epochs=10", "train.lr=3e-3", "train.head_lr=3e-3", "train.label_smoothing=0",
        "train.warmup_ratio=0", f"train.output_dir={out}", "train.checkpoint_every=0",
        "train.early_stopping_patience=10", *extra,
    ]


def tiny_config(encoder, train, dev, out, *extra):
    return load_config(None, tiny_config_overrides(encoder, train, dev, out, *extra))


def test_trains_saves_and_loads_everywhere(tiny_encoder_dir, topic_files, tmp_path):
    train, dev = topic_files
    out = tmp_path / "run"
    result = train_topic(tiny_config(tiny_encoder_dir, train, dev, out))
    metrics = result.metrics
    for name in ("config.yaml", "metrics.json", "model.safetensors", "xinwen.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dev"]["macro_f1"] == pytest.approx(metrics["dev"]["macro_f1"])
    assert saved["temperature"] > 0 and len(saved["history"]) == 10
    # The tiny data is learnable: words determine the label. Chance accuracy is 0.2.
    assert saved["dev"]["accuracy"] >= 0.6, saved["history"]

    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(out))
    assert pipe("海关贸易出口进口")[0]["label"] in {"industry_policy", "transport", "trade", "safety", "other"}
    clf = NewsClassifier.from_pretrained(out)
    assert clf.settings.temperature == pytest.approx(saved["temperature"])
    assert clf.predict({"title": "海关", "body": "贸易出口进口"}).label in clf.labels

    results = evaluate_topic_folder(str(out), data=str(dev))
    assert set(results["systems"]) == {"xinwen", "encoder_alone", "tfidf_char_lr"}  # lexical expert on
    assert (out / "eval" / "confusion_xinwen.png").stat().st_size > 1000
    assert (out / "eval" / "report.json").is_file()
    assert "ece_calibrated" in results["calibration"]


def test_prior_shift_restores_the_corpus_prior():
    from collections import Counter

    from xinwen.training.topic.train import _prior_shift

    y = [0] * 10 + [1] * 90  # corpus: 10% / 90%
    always = [False] * 100
    seen = Counter({0: 10, 1: 10})  # undersampled to 50/50 per epoch
    shift = _prior_shift(y, always, seen, None, 2)
    # the under-sampled majority class gets its log-odds back: log(91/11) ~ 2.1
    assert shift[1] - shift[0] == pytest.approx(torch.log(torch.tensor(91 / 11)).item(), rel=1e-4)
    balanced = _prior_shift([0, 1] * 5, [False] * 10, Counter({0: 5, 1: 5}), None, 2)
    assert torch.allclose(balanced, torch.zeros(2), atol=1e-6)
    # project-written (always-used) items do not count towards the corpus prior
    extra = _prior_shift(y + [0] * 50, always + [True] * 50, seen, None, 2)
    assert torch.allclose(extra, shift)


def test_eval_can_override_how_much_text_the_model_reads(tiny_classifier_dir, topic_files, tmp_path):
    _, dev = topic_files
    saved = evaluate_topic_folder(str(tiny_classifier_dir), data=str(dev), output=str(tmp_path / "a"), baseline=False)
    chunked = evaluate_topic_folder(str(tiny_classifier_dir), data=str(dev), output=str(tmp_path / "b"),
                                    baseline=False, long_text="chunks", max_length=16)
    assert chunked["text"] == {"long_text": "chunks", "max_length": 16}
    assert saved["text"]["long_text"] != "chunks" or saved["text"]["max_length"] != 16
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["text"] == chunked["text"]
    with pytest.raises(ValueError, match="--max-length 100000"):
        evaluate_topic_folder(str(tiny_classifier_dir), data=str(dev), output=str(tmp_path / "c"),
                              baseline=False, max_length=100000)
