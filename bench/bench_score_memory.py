"""Memory and crash-safety of `xinwen score` on a large file: peak RSS over time, kill -9, --resume.

    python bench/make_large_jsonl.py --n 200000
    nice -n 10 python bench/bench_score_memory.py --input bench/out/articles_200k.jsonl

1. ``uninterrupted``: one run over the whole file, RSS sampled every 0.5 s together with how far
   the job is (committed chunks / all chunks), to show memory does not grow with the file.
2. ``crash``: the same command killed with SIGKILL at a random point (when a random 20-80% of the
   chunks are committed, plus a random 0-3 s, so mid-chunk), then rerun with --resume; the output
   and rejects files are compared byte for byte with run 1's.
3. ``big``: RSS of the e5-sized classifier (runs/topic, else the stand-in) on the first --big-n
   records, since the 200k runs use a tiny model to keep the bench short on 2 shared cores.

``--phases`` picks some (they may run in separate invocations, even at the same time); results
accumulate in bench/out/score_memory.json, and a summary is printed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def tiny_model() -> Path:
    """The test suite's tiny random classifier (2 layers, hidden 32), reading the first 64 tokens:
    the file-size-dependent parts of the job (reading, chunk commits, merge) at full scale, with
    little model time on a shared 2-core machine."""
    folder = OUT / "tiny_classifier"
    if not (folder / "config.json").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import save_tiny_classifier

        from xinwen.inference.settings import ClassifierSettings, TextSettings

        folder.mkdir(parents=True, exist_ok=True)
        save_tiny_classifier(folder)
        ClassifierSettings(text=TextSettings(max_length=64, long_text="head", prefix="")).save(folder)
    return folder


def big_model() -> Path:
    trained = ROOT / "runs" / "topic"
    if (trained / "config.json").is_file():
        return trained
    standin = OUT / "standin_topic"
    if not (standin / "config.json").is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_standin_classifier.py"), "--output", str(standin)],
                       check=True)
    return standin


def count_records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def command(model: Path, source: Path, output: Path, chunk_size: int, threads: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "xinwen.inference.scoring.cli", "score", "--classifier", str(model), "--input",
            str(source), "--output", str(output), "--chunk-size", str(chunk_size), "--threads", str(threads),
            "--no-progress", *extra]


def watch(cmd: list[str], parts: Path, total_chunks: int, kill_at: tuple[float, float] | None = None) -> dict:
    """Run cmd, sampling RSS and progress; SIGKILL it once the committed fraction of chunks reaches
    kill_at[0], kill_at[1] seconds later, if given."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    started = time.monotonic()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    samples = []
    killed = False
    reached = None
    seen_parts = False
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            break
        # Before the parts folder appears nothing is committed; after the merge removes it, all is.
        seen_parts = seen_parts or parts.is_dir()
        done = len(list(parts.glob("chunk-*.jsonl"))) if parts.is_dir() else (total_chunks if seen_parts else 0)
        samples.append((round(time.monotonic() - started, 2), rss, done / max(1, total_chunks)))
        if kill_at is not None and reached is None and done / max(1, total_chunks) >= kill_at[0]:
            reached = time.monotonic()
        if reached is not None and time.monotonic() - reached >= kill_at[1]:
            proc.kill()  # SIGKILL
            killed = True
            break
        time.sleep(0.1 if reached is not None else 0.5)
    stdout = proc.communicate()[0] if not killed else ""
    proc.wait()
    if not killed and proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    peak = max(s[1] for s in samples) if samples else 0
    # Peak RSS so far at the first sample where the committed fraction reached each mark: a value
    # that climbs from mark to mark would mean memory grows with the amount of input read.
    by_progress = {}
    for mark in (0.1, 0.25, 0.5, 0.75, 0.9):
        upto = [s for s in samples if s[2] < mark] + [s for s in samples if s[2] >= mark][:1]
        if any(s[2] >= mark for s in samples):
            by_progress[f"{int(mark * 100)}%"] = round(max(s[1] for s in upto) / 2**20)
    return {"seconds": round(time.monotonic() - started, 1), "peak_rss_mib": round(peak / 2**20),
            "peak_rss_mib_by_progress": by_progress, "killed": killed, "samples": len(samples),
            "chunks_at_end": len(list(parts.glob("chunk-*.jsonl"))) if parts.is_dir() else None,
            "summary": stdout.strip()}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(OUT / "articles_200k.jsonl"))
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="for the kill point (default: random)")
    parser.add_argument("--big-n", type=int, default=300, help="records for the e5-sized RSS run")
    parser.add_argument("--tag", default="", help="suffix for output files and result keys (runs on several files)")
    parser.add_argument("--phases", default="uninterrupted,crash,big", help="any of uninterrupted, crash, "
                        "resume (only the --resume run, after a kill by hand), big")
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    source = Path(args.input)
    records = count_records(source)
    chunks = math.ceil(records / args.chunk_size)
    model = tiny_model()
    report = OUT / "score_memory.json"
    results: dict = json.loads(report.read_text()) if report.is_file() else {}
    results.update({"input": str(source), "input_mib": round(source.stat().st_size / 2**20), "records": records,
                    "chunk_size": args.chunk_size, "threads": args.threads, "model_200k": str(model)})
    a, b = OUT / f"mem{args.tag}_uninterrupted.jsonl", OUT / f"mem{args.tag}_crash.jsonl"

    if "uninterrupted" in phases:
        print(f"1. uninterrupted run over {records} records ...", flush=True)
        results["uninterrupted" + args.tag] = watch(command(model, source, a, args.chunk_size, args.threads, "--overwrite"),
                                         Path(str(a) + ".parts"), chunks)
        print(json.dumps(results["uninterrupted" + args.tag], ensure_ascii=False), flush=True)
        _save(report, results)

    if "crash" in phases:
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        rng = random.Random(seed)
        kill_at = (rng.uniform(0.2, 0.8), rng.uniform(0.0, 3.0))
        print(f"2. run killed with SIGKILL {kill_at[1]:.1f} s after {kill_at[0]:.0%} of chunks were committed "
              f"(seed {seed}), then --resume ...", flush=True)
        parts_b = Path(str(b) + ".parts")
        killed = watch(command(model, source, b, args.chunk_size, args.threads, "--overwrite"), parts_b, chunks,
                       kill_at)
        resumed = watch(command(model, source, b, args.chunk_size, args.threads, "--resume"), parts_b, chunks)
        results["killed"] = {**killed, "kill_at_fraction": round(kill_at[0], 3),
                             "kill_delay_s": round(kill_at[1], 2), "seed": seed}
        results["resumed"] = resumed
        print(json.dumps({"killed": results["killed"], "resumed": resumed}, ensure_ascii=False), flush=True)
        _save(report, results)

    if "resume" in phases:  # finish a run that was killed by hand (or by a crash)
        print("2b. --resume of an interrupted run ...", flush=True)
        results["resumed"] = watch(command(model, source, b, args.chunk_size, args.threads, "--resume"),
                                   Path(str(b) + ".parts"), chunks)
        print(json.dumps(results["resumed"], ensure_ascii=False), flush=True)
        _save(report, results)

    if "big" in phases and args.big_n:
        head = OUT / f"mem_head_{args.big_n}.jsonl"
        with open(source, "rb") as f, open(head, "wb") as g:
            for _ in range(args.big_n):
                g.write(f.readline())
        big = big_model()
        print(f"3. e5-sized model {big} on {args.big_n} records ...", flush=True)
        out = OUT / "mem_big.jsonl"
        results["model_big"] = str(big)
        results["big"] = watch(command(big, head, out, 64, 2, "--overwrite"), Path(str(out) + ".parts"),
                               math.ceil(args.big_n / 64))
        print(json.dumps(results["big"], ensure_ascii=False), flush=True)
        _save(report, results)

    if a.is_file() and b.is_file() and not Path(str(b) + ".parts").exists():
        results["identical_output"] = sha256(a) == sha256(b)
        results["identical_rejects"] = sha256(Path(str(a) + ".rejects.jsonl")) == sha256(Path(str(b) + ".rejects.jsonl"))
        _save(report, results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("uninterrupted", "killed", "resumed", "big")},
                     ensure_ascii=False, indent=1))


def _save(path: Path, results: dict) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
