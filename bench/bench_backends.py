"""Quality and speed of the faster classifier backends against fp32 torch, on the dev split.

    nice -n 10 python bench/bench_backends.py --articles 300 --threads 2

For each of int8 (torch dynamic), onnx and onnx-int8 this runs ``xinwen export DIR --eval-data
DEV``, which measures label agreement with fp32 and macro-F1 of both against the gold labels (the
same articles, the model's own text settings), and times both. Model: ``runs/topic`` when it
exists, else the e5-sized stand-in. Results: bench/out/backends.json and a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from xinwen.inference.topic.backends import export_classifier

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="int8,onnx,onnx-int8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else (
        ROOT / "runs" / "topic" if (ROOT / "runs" / "topic" / "config.json").is_file() else OUT / "standin_topic")
    from xinwen.training.data.builtin import inews_topics

    dev = OUT / "backends_dev.jsonl"
    rows = [{"id": r["id"], "title": r["title"], "body": r["body"], "label": r["label"]}
            for r in inews_topics("dev")][: args.articles]
    dev.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")

    results = {"model": str(model), "articles": len(rows), "threads": args.threads, "backends": {}}
    for backend in args.backends.split(","):
        out = OUT / f"export_{backend}"
        if out.exists():
            shutil.rmtree(out)
        started = time.perf_counter()
        report = export_classifier(model, out, int8="int8" in backend, onnx=backend.startswith("onnx"),
                                   eval_data=dev)
        results["backends"][backend] = {**report.eval, "export_seconds": time.perf_counter() - started,
                                        "probe_max_prob_diff": report.probe_max_prob_diff,
                                        "size_mib": sum(p.stat().st_size for p in out.iterdir()) / 2**20}
        print(backend, json.dumps(results["backends"][backend]), flush=True)
    (OUT / "backends.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nmodel {model} | {len(rows)} dev articles | {args.threads} threads\n")
    print("| backend | labels = fp32 | macro-F1 fp32 | macro-F1 backend | articles/s fp32 | articles/s backend |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend, r in results["backends"].items():
        print(f"| {backend} | {r['label_agreement']:.2%} | {r['macro_f1_fp32']:.4f} | {r['macro_f1_export']:.4f} | "
              f"{r['articles_per_s_fp32']:.2f} | {r['articles_per_s_export']:.2f} |")


if __name__ == "__main__":
    main()
