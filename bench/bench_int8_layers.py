"""Which linear layers dynamic int8 may touch: label agreement with fp32, and the int8 top-two
probability gaps at which labels flip (what the int8-checked backend's recheck margin rests on).

    python bench/bench_int8_layers.py --articles 400

Model: runs/topic; data: the first N inews-topics dev articles; everything in one process, fp32
first. Variants: every linear layer int8, and the projections that read the attention context
or the GELU output (``*.output.dense``) kept fp32, which is what ``quantize_int8`` ships. Prints,
per variant, agreement, speed relative to fp32 in this process, the flips' int8 gaps, and for a
few recheck margins the share of rows rechecked and the agreement a recheck would give.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from xinwen.inference import NewsClassifier
from xinwen.inference.text import as_article
from xinwen.training.data.builtin import inews_topics

VARIANTS = {"every linear layer": (), "output.dense kept fp32": ("output.dense",)}


def top_two_gap(probs: torch.Tensor) -> torch.Tensor:
    top = probs.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/topic")
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    articles = []
    for record in inews_topics("dev")[: args.articles]:
        try:
            articles.append(as_article(record))
        except (TypeError, ValueError):  # no usable text: scoring would reject it too
            pass
    # The encoder alone, as the int8 backends see it (no first stage, no lexical expert).
    reference = NewsClassifier.from_pretrained(args.model, device="cpu", first_stage=False, lexical=False)
    started = time.time()
    p32 = reference.probabilities(articles)
    fp32_seconds = time.time() - started
    print(f"fp32: {len(articles)} articles in {fp32_seconds:.1f} s")

    for name, kept in VARIANTS.items():
        clf = NewsClassifier.from_pretrained(args.model, device="cpu", first_stage=False, lexical=False)
        layers = {n for n, m in clf.model.named_modules()
                  if isinstance(m, torch.nn.Linear) and not any(n.endswith(k) for k in kept)}
        clf.model = quantize_dynamic(clf.model, {n: per_channel_dynamic_qconfig for n in layers}, dtype=torch.qint8)
        started = time.time()
        p8 = clf.probabilities(articles)
        seconds = time.time() - started
        flips = p8.argmax(1) != p32.argmax(1)
        gap = top_two_gap(p8)
        print(f"{name}: labels = fp32 {1 - flips.float().mean():.4f}, speed x{fp32_seconds / seconds:.2f}, "
              f"largest probability change {(p8 - p32).abs().max():.3f}, "
              f"int8 gaps of the flips {sorted(round(g, 3) for g in gap[flips].tolist())}")
        for margin in (0.05, 0.1, 0.2, 0.3):
            recheck = gap < margin
            print(f"  recheck gap < {margin}: {recheck.float().mean():.3f} of rows, "
                  f"labels = fp32 {(~flips | recheck).float().mean():.4f}")


if __name__ == "__main__":
    main()
