"""Tiny random-init models and data for offline tests (a few dozen CJK characters, 2 layers,
hidden 32). Built with the same tokenizer machinery as the real encoder."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from xinwen.inference.encoders.builtin import build_tokenizer, wrap_tokenizer

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
CHARS = list("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由过海关贸易出口进口铁路高铁列车航班机场港口物流运输事故安全火灾爆炸救援消防政策产业规划园区招商企业发展")
TOPIC_LABELS = ["industry_policy", "transport", "trade", "safety", "other"]


def tiny_tokenizer(max_length: int = 64):
    pieces = SPECIALS + ["▁"] + sorted(set(CHARS)) + list("0123456789,.:!?") + ["<mask>"]
    scores = [0.0] * len(SPECIALS) + [-3.0] + [-5.0] * (len(pieces) - len(SPECIALS) - 2) + [0.0]
    tok = build_tokenizer(pieces, scores, normalisation={}, unk_id=3)
    return wrap_tokenizer(tok, model_max_length=max_length)


def tiny_bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128, pad_token_id=1, **extra)


def save_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """A tiny random BertModel + tokenizer folder, usable as model.name_or_path."""
    from transformers import BertModel

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    model = BertModel(tiny_bert_config(len(tok)))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def save_tiny_classifier(folder: Path, labels=TOPIC_LABELS, seed: int = 0, temperature: float = 1.0) -> Path:
    from transformers import BertForSequenceClassification

    from xinwen.inference.settings import ClassifierSettings, TextSettings

    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    cfg = tiny_bert_config(len(tok), num_labels=len(labels), id2label=dict(enumerate(labels)),
                           label2id={l: i for i, l in enumerate(labels)})
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    ClassifierSettings(text=TextSettings(max_length=32, prefix="", long_text="chunks"),
                       temperature=temperature).save(folder)
    return folder


def topic_records(n_per_label: int = 6) -> list[dict]:
    """Small labelled articles whose words match their label (learnable by a tiny model)."""
    words = {
        "industry_policy": "产业政策规划园区招商企业发展",
        "transport": "铁路高铁列车航班机场港口物流运输",
        "trade": "海关贸易出口进口",
        "safety": "事故安全火灾爆炸救援消防",
        "other": "我们学生年家电水化",
    }
    recs = []
    for label, w in words.items():
        for i in range(n_per_label):
            body = (w[i % len(w):] + w[: i % len(w)]) * 3
            recs.append({"id": f"{label}-{i}", "title": w[:4] + str(i), "body": body, "label": label})
    return recs


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
