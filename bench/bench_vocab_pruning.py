"""Vocabulary pruning of the offline e5 encoder: size, speed and quality, before vs after.

    python bench/bench_vocab_pruning.py [--dev-items 999]

Prunes with the bundled *training* texts (as `xinwen train` does), then measures on the *dev*
texts, which the pruning never saw:
- size: parameters and safetensors bytes of the encoder;
- speed: load time and encoder throughput (articles/s, batch 32, max 128 tokens) on this CPU;
- quality: share of dev texts tokenized identically, and cosine between the pruned and full
  encoders' mean-pooled embeddings (1.0 where the tokenization is identical).
Both encoders run side by side in one process.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from xinwen.inference.encoders.builtin import prepare_builtin_encoder
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.data.builtin import inews_topics
from xinwen.training.vocab_pruning import prune_vocabulary


def embed(model, tok, texts, batch=32, max_length=128):
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev-items", type=int, default=999)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(0)
    full_dir = prepare_builtin_encoder()
    prefix = "query: "
    train_texts = [classifier_text(as_article(r), prefix) for r in inews_topics("train")]
    dev_texts = [classifier_text(as_article(r), prefix) for r in inews_topics("dev")][: args.dev_items]

    t = time.time()
    full = AutoModel.from_pretrained(full_dir).eval()
    full_tok = AutoTokenizer.from_pretrained(full_dir)
    load_full = time.time() - t
    pruned, pruned_tok = prune_vocabulary(AutoModel.from_pretrained(full_dir).eval(), full_tok, train_texts)
    with tempfile.TemporaryDirectory() as tmp:
        pruned.save_pretrained(tmp)
        pruned_tok.save_pretrained(tmp)
        size_pruned = (Path(tmp) / "model.safetensors").stat().st_size
        t = time.time()
        pruned = AutoModel.from_pretrained(tmp).eval()
        pruned_tok = AutoTokenizer.from_pretrained(tmp)
        load_pruned = time.time() - t
    size_full = (Path(full_dir) / "model.safetensors").stat().st_size

    same = [full_tok(x)["input_ids"] == [full_tok.convert_tokens_to_ids(p) for p in pruned_tok.convert_ids_to_tokens(pruned_tok(x)["input_ids"])]
            for x in dev_texts]
    rows = []
    for name, model, tok in (("full", full, full_tok), ("pruned", pruned, pruned_tok)):
        embed(model, tok, dev_texts[:32])  # warm-up
        t = time.time()
        vecs = embed(model, tok, dev_texts)
        rows.append((name, model, tok, vecs, len(dev_texts) / (time.time() - t)))
    a, b = rows[0][3], rows[1][3]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    same = np.array(same)
    print(f"| | full | pruned |\n|---|---|---|")
    print(f"| vocabulary pieces | {len(full_tok):,} | {len(pruned_tok):,} |")
    print(f"| parameters | {sum(p.numel() for p in full.parameters()) / 1e6:.1f}M | "
          f"{sum(p.numel() for p in pruned.parameters()) / 1e6:.1f}M |")
    print(f"| safetensors size | {size_full / 2**20:.0f} MiB | {size_pruned / 2**20:.0f} MiB |")
    print(f"| load time | {load_full:.2f} s | {load_pruned:.2f} s |")
    print(f"| encoder throughput (dev, batch 32, <=128 tokens) | {rows[0][4]:.1f} art/s | {rows[1][4]:.1f} art/s |")
    print(f"\nDev texts (unseen by pruning): {same.mean():.1%} tokenized identically; "
          f"embedding cosine pruned vs full: mean {cos.mean():.5f}, min {cos.min():.4f}; "
          f"on identically tokenized texts min {cos[same].min() if same.any() else float('nan'):.6f}.")


if __name__ == "__main__":
    main()
