"""`xinwen score` against a naive `transformers.pipeline` loop: same file, same model folder, one run.

    python bench/bench_score_speed.py --articles 990 --source test --threads 2 --skip chunks,native

Baseline: ``pipeline("text-classification", model=DIR)`` called once per article on exactly the text
``xinwen score`` prepares (``classifier_text(as_article(rec), prefix)``), truncated to the model's
max length. Contender: the ``xinwen score`` command as a user runs it, end to end (process start
and model load included), with ``--long-text head`` so both read the same tokens; label agreement is
measured on that run, and against the fp32 ``score`` run: the pipeline reads the encoder alone, so
with a lexical expert in the folder it is no longer the reference for fidelity (for the native and
chunks runs that column shows what the other long-text mode changes). Runs: torch fp32, int8, int8-checked; when the folder holds a first stage
(``xinwen first-stage DIR``), torch and int8-checked with it, in one process and sharded over
``--processes`` processes by ``accelerate launch`` (the cores split between them); the model's own
long-text mode and chunk mode unless skipped. Every other run passes ``--no-first-stage``. The
pipeline and single-process runs use ``--threads`` torch threads. Wall time and CPU time are both
reported; "steady" is the command's own rate (start and model load excluded; for sharded runs, all
articles over the slowest process's time).

``--source test`` uses only the test split's texts, which neither training nor the first stage's
fitting and accept-level choice (train and dev) have seen; gold accuracy is then not available.

Model: ``runs/topic`` when the trained classifier exists, else the e5-sized stand-in built by
``bench/make_standin_classifier.py``. Results: bench/out/score_speed.json (and a table on stdout).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
logger = logging.getLogger("bench_score_speed")


def pick_model(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    trained = ROOT / "runs" / "topic"
    if (trained / "config.json").is_file():
        return trained
    standin = OUT / "standin_topic"
    if not (standin / "config.json").is_file():
        logger.info("no runs/topic; building the e5-sized stand-in (a few minutes)")
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_standin_classifier.py"), "--output", str(standin)],
                       check=True)
    return standin


def write_articles(path: Path, n: int, source: str = "dev") -> list[dict]:
    from xinwen.training.data.builtin import inews_topics, load_inews_split

    records = []
    if source == "dev":
        records = [{"id": r["id"], "title": r["title"], "body": r["body"], "gold": r["label"]} for r in inews_topics("dev")]
    if len(records) < n:  # unlabelled test-split texts when more than the 999 dev articles are asked for
        titles, bodies = load_inews_split("test")
        records += [{"id": f"test:{i}", "title": t, "body": b, "gold": None} for i, (t, b) in enumerate(zip(titles, bodies))]
    from xinwen.inference.text import as_article

    # Only articles `xinwen score` accepts (a body left after cleaning), so both sides score the
    # same set; records it would reject are tested elsewhere.
    records = [r for r in records if as_article(r).body][:n]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records


def naive_pipeline(model: Path, records: list[dict], threads: int) -> tuple[list[str], float, float]:
    import torch
    from transformers import pipeline

    from xinwen.inference.settings import ClassifierSettings
    from xinwen.inference.text import as_article, classifier_text

    torch.set_num_threads(threads)
    settings = ClassifierSettings.load(model)
    pipe = pipeline("text-classification", model=str(model), device="cpu")
    texts = [classifier_text(as_article(r), settings.text.prefix) for r in records]
    pipe(texts[0], truncation=True, max_length=settings.text.max_length)  # warm-up, as a server would
    started, cpu = time.perf_counter(), time.process_time()
    labels = [pipe(t, truncation=True, max_length=settings.text.max_length)[0]["label"] for t in texts]
    return labels, time.perf_counter() - started, time.process_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_score(model: Path, data: Path, output: Path, threads: int,
              extra: list[str], processes: int = 1) -> tuple[list[dict], float, float, str]:
    if processes > 1:
        # The documented scale-out command; each process gets cores / processes torch threads.
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                    str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    "-m", "xinwen.inference.scoring.cli"]
        threading = []
    else:
        launcher, threading = [sys.executable, "-m", "xinwen.inference.scoring.cli"], ["--threads", str(threads)]
    cmd = [*launcher, "score", "--classifier", str(model), "--input", str(data), "--output", str(output),
           *threading, "--threshold", "0", "--no-progress", "--overwrite", *extra]
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    seconds, cpu_seconds = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    return rows, seconds, cpu_seconds, done.stdout.strip()


def _steady_rate(summary: str) -> float:
    """Articles per second while scoring (process start and model load excluded); for a sharded
    run, all processes' articles over the slowest process's time."""
    found = re.findall(r"([0-9]+) articles in ([0-9.]+) s = [0-9.]+ articles/s", summary)
    if not found:
        return float("nan")
    return sum(int(n) for n, _ in found) / max(float(sec) for _, sec in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--skip", default="", help="comma-separated runs to skip: int8,native,chunks")
    parser.add_argument("--processes", type=int, default=2,
                        help="also time the first-stage runs sharded over this many processes "
                             "(`accelerate launch`, cores split between them); 1 = no sharded runs")
    parser.add_argument("--chunk-size", type=int, default=256, help="records per committed chunk (the unit "
                        "that sharded processes split)")
    parser.add_argument("--source", default="dev", choices=["dev", "test"],
                        help="dev: labelled dev articles (then test texts if more are asked for); test: only the "
                             "test split's texts (unlabelled), which neither training nor `xinwen first-stage` saw")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    OUT.mkdir(parents=True, exist_ok=True)
    model = pick_model(args.model)
    data = OUT / "speed_articles.jsonl"
    records = write_articles(data, args.articles, args.source)
    n = len(records)
    logger.info("model %s, %d articles, %d threads", model, n, args.threads)

    logger.info("naive pipeline loop ...")
    pipe_labels, pipe_s, pipe_cpu = naive_pipeline(model, records, args.threads)
    results = {"model": str(model), "articles": n, "source": args.source, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "pipeline": {"seconds": pipe_s, "cpu_seconds": pipe_cpu, "articles_per_s": n / pipe_s,
                            "articles_per_cpu_s": n / pipe_cpu}}
    from xinwen.inference.settings import ClassifierSettings

    native = ClassifierSettings.load(model).text.long_text
    runs = {"score_head": ["--long-text", "head", "--backend", "torch"]}
    skip = set(filter(None, args.skip.split(",")))
    if "int8" not in skip:
        runs["score_head_int8"] = ["--long-text", "head", "--backend", "int8"]
        runs["score_head_int8_checked"] = ["--long-text", "head", "--backend", "int8-checked"]
    if "native" not in skip:
        runs[f"score_{native}"] = ["--backend", "torch"]  # the model's own long-text mode
    if "chunks" not in skip and native != "chunks":
        runs["score_chunks"] = ["--long-text", "chunks", "--backend", "torch"]
    # Every run above reads the transformer for every article; a first stage fitted into the folder
    # gets runs of its own.
    runs = {name: extra + ["--no-first-stage"] for name, extra in runs.items()}
    if (model / "first_stage.json").is_file():
        if args.source == "dev":
            logger.warning("the first stage's accept level was chosen on dev articles: use --source test")
        runs["score_head_first_stage"] = ["--long-text", "head", "--backend", "torch"]
        if "int8" not in skip:
            runs["score_head_int8_checked_first_stage"] = ["--long-text", "head", "--backend", "int8-checked"]
        if args.processes > 1:
            for name in [n for n in runs if n.endswith("first_stage")]:
                runs[f"{name}_{args.processes}proc"] = runs[name]
    labels_by_run: dict[str, list[str]] = {}
    for name, extra in runs.items():
        logger.info("%s ...", name)
        processes = args.processes if name.endswith("proc") else 1
        rows, seconds, cpu_seconds, stdout = run_score(
            model, data, OUT / f"speed_{name}.jsonl", args.threads,
            extra + ["--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size)], processes)
        by_id = {r["id"]: r["label"] for r in rows}
        if len(by_id) != n:
            raise RuntimeError(f"{name}: scored {len(by_id)} of {n} articles; see {OUT / f'speed_{name}.jsonl.rejects.jsonl'}")
        labels = [by_id[r["id"]] for r in records]
        labels_by_run[name] = labels
        gold = [r["gold"] for r in records]
        results[name] = {
            "seconds_end_to_end": seconds, "cpu_seconds": cpu_seconds, "articles_per_s": n / seconds,
            "articles_per_cpu_s": n / cpu_seconds, "speedup_vs_pipeline": pipe_s / seconds,
            "cpu_speedup_vs_pipeline": pipe_cpu / cpu_seconds,
            "label_agreement_with_pipeline": sum(a == b for a, b in zip(labels, pipe_labels)) / n,
            "gold_accuracy": (sum(a == g for a, g in zip(labels, gold) if g) / max(1, sum(1 for g in gold if g))),
            "summary": stdout,
            # The command's own rate: model load and process start excluded (what a long job sees).
            "steady_articles_per_s": _steady_rate(stdout),
        }
    # The pipeline reads the encoder alone; with a lexical expert in the folder every xinwen run
    # answers with the product, so fidelity is measured against the fp32 xinwen run too.
    reference = labels_by_run["score_head"]
    for name in runs:
        results[name]["label_agreement_with_score_head_torch"] = sum(
            a == b for a, b in zip(labels_by_run[name], reference)) / n
    results["pipeline"]["gold_accuracy"] = (sum(a == r["gold"] for a, r in zip(pipe_labels, records) if r["gold"])
                                            / max(1, sum(1 for r in records if r["gold"])))
    (OUT / "score_speed.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")

    print(f"\nmodel {model} | {n} articles | {args.threads} threads | {results['cpu']}\n")
    print("| run | wall s | articles/s | speed-up (wall) | steady articles/s | steady speed-up | CPU s | "
          "labels = pipeline | labels = score_head (torch) | gold accuracy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| naive pipeline loop | {pipe_s:.1f} | {n / pipe_s:.2f} | 1.00x | {n / pipe_s:.2f} | 1.00x | "
          f"{pipe_cpu:.0f} | - | - | {results['pipeline']['gold_accuracy']:.3f} |")
    for name in runs:
        r = results[name]
        steady = r["steady_articles_per_s"]
        print(f"| xinwen {name} | {r['seconds_end_to_end']:.1f} | {r['articles_per_s']:.2f} | "
              f"{r['speedup_vs_pipeline']:.2f}x | {steady:.2f} | {steady / (n / pipe_s):.2f}x | {r['cpu_seconds']:.0f} | "
              f"{r['label_agreement_with_pipeline']:.2%} | {r['label_agreement_with_score_head_torch']:.2%} | "
              f"{r['gold_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
