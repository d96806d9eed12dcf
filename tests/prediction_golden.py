"""Recorded outputs of the topic prediction path, to prove a refactor leaves every probability alone.

The tiny classifiers here get their weights from numpy's PCG64 stream (stable across numpy, torch
and transformers versions), not from torch's random init, so the recorded numbers hold wherever
the suite runs. ``tests/data/prediction_golden.json`` was written by the code *before* the
prediction path was reduced to one method (``python tests/prediction_golden.py --record``, at
commit 9929ce9); tests/test_prediction_path.py compares today's outputs with it. Re-record only
when a change of probabilities is intended, and say so in the commit.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import TOPIC_LABELS, tiny_bert_config, tiny_tokenizer  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "prediction_golden.json"

ARTICLES = [
    "海关进口贸易数据发布",  # short, body only
    {"title": "铁路运输", "body": "高铁列车航班机场港口物流运输发展很快"},
    {"title": "火灾事故救援_某某新闻网"},  # title only (site suffix cleaned)
    {"title": "产业政策", "body": "园区招商企业发展规划。" * 30},  # long: several windows
    {"title": "", "body": "我们学生在家\n电力水化工业"},
    {"title": "海关数据", "body": "海关发布进口出口贸易数据，铁路物流也有增长。" * 12},  # long, keyword
    "事故安全火灾爆炸救援消防" * 3,
]

# name -> (long_text, max_length, temperature, threshold, lexical (weight, T) or None, first-stage accept or None)
SCENARIOS = {
    "chunks_alone": ("chunks", 32, 1.7, 0.0, None, None),
    "chunks_lexical": ("chunks", 32, 1.7, 0.0, (0.5, 1.3), None),
    "head_tail_lexical_stage": ("head_tail", 32, 0.8, 0.0, (0.7, 0.9), 0.9),
    "head_stage_threshold": ("head", 24, 1.0, 0.3, None, 0.9),
    "chunks_lexical_stage_threshold": ("chunks", 32, 1.2, 0.35, (0.5, 1.1), 0.95),
}


def _fill_weights(model: torch.nn.Module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.from_numpy(rng.normal(0.0, 1.0, tuple(p.shape)).astype(np.float32))
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name == "classifier.weight":  # a wide logit spread: confident and unsure rows
                p.copy_(0.8 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.15 * noise)


def _keyword_ngrams(labels, words: dict[str, str]):
    from xinwen.inference.topic.ngram_model import NgramModel

    vocabulary = list(words)
    weights = np.zeros((len(labels), len(vocabulary)), dtype=np.float32)
    for col, (word, label) in enumerate(words.items()):
        weights[labels.index(label), col] = 6.0
    return NgramModel(labels, vocabulary, np.ones(len(vocabulary), dtype=np.float32), weights,
                      np.linspace(-0.2, 0.2, len(labels)).astype(np.float32), ngram_range=(2, 2))


def build_folder(folder: Path, scenario: str, seed: int = 3) -> Path:
    """A classifier folder for ``scenario`` with deterministic weights (and expert / first stage)."""
    from transformers import BertForSequenceClassification

    from xinwen.inference.settings import ClassifierSettings, TextSettings
    from xinwen.inference.topic.first_stage import FirstStage, FirstStageSettings
    from xinwen.inference.topic.lexical import LexicalExpert, LexicalSettings

    long_text, max_length, temperature, threshold, lexical, accept = SCENARIOS[scenario]
    if folder.exists():
        shutil.rmtree(folder)
    tok = tiny_tokenizer()
    labels = list(TOPIC_LABELS)
    cfg = tiny_bert_config(len(tok), num_labels=len(labels), id2label=dict(enumerate(labels)),
                           label2id={l: i for i, l in enumerate(labels)})
    model = BertForSequenceClassification(cfg)
    _fill_weights(model, seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    text = TextSettings(max_length=max_length, prefix="", long_text=long_text, chunk_stride=8)
    ClassifierSettings(text=text, temperature=temperature, threshold=threshold).save(folder)
    if lexical is not None:
        words = {"海关": "trade", "铁路": "transport", "火灾": "safety", "政策": "industry_policy"}
        LexicalExpert(LexicalSettings(weight=lexical[0], temperature=lexical[1]),
                      _keyword_ngrams(labels, words)).save(folder)
    if accept is not None:
        words = {"海关": "trade", "事故": "safety"}
        FirstStage(FirstStageSettings(accept=accept), _keyword_ngrams(labels, words)).save(folder)
    return folder


def _rows(t: torch.Tensor) -> list[list[float]]:
    return [[round(float(x), 9) for x in row] for row in t]


def outputs(folder: Path, backend: str = "torch") -> dict:
    """Everything a user or a job can read off the prediction path, for one folder."""
    from xinwen.inference.analyzer import NewsAnalyzer
    from xinwen.inference.text import as_article
    from xinwen.inference.topic.backends import load_classifier

    clf = load_classifier(folder, backend=backend, device="cpu")
    articles = [as_article(a, i) for i, a in enumerate(ARTICLES)]
    preds = clf.predict(ARTICLES, top_k=3)
    analyzer = NewsAnalyzer(clf)
    tight = analyzer.analyze_prepared(articles, ARTICLES, batch_size=2, max_batch_tokens=40)
    return {
        "probabilities": _rows(clf.probabilities(articles)),
        "probabilities_bs1": _rows(clf.probabilities(articles, batch_size=1)),
        "predict": [[p.label, round(p.score, 9), {k: round(v, 9) for k, v in p.scores.items()}] for p in preds],
        "analyze_tight_budget": [[a["label"], round(a["score"], 9)] for a in tight],
        "predict_threshold_0.6": [p.label for p in clf.predict(ARTICLES, threshold=0.6)],
        "encoder_alone": _rows(encoder_alone(clf, articles)),
    }


def encoder_alone(clf, articles) -> torch.Tensor:
    """The encoder's calibrated probabilities without expert or first stage (the eval's column)."""
    import inspect

    if "return_parts" in inspect.signature(clf.probabilities).parameters:
        return clf.probabilities(articles, return_parts=True).encoder
    return clf.model_probabilities(articles)  # the API before the one prediction path


def record(work: Path) -> dict:
    import torch.backends.quantized as quantized

    golden = {"quantized_engine": quantized.engine, "scenarios": {}}
    for name in SCENARIOS:
        folder = build_folder(work / name, name)
        golden["scenarios"][name] = outputs(folder)
    # int8 with the fp32 recheck, on the folder with an expert and a first stage.
    golden["scenarios"]["int8_checked"] = outputs(work / "chunks_lexical_stage_threshold", backend="int8-checked")
    return golden


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/prediction_golden.py --record  (overwrites tests/data/prediction_golden.json)")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = record(Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
