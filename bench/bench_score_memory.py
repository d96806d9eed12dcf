"""Memory and crash-safety of `xinwen score` on a large file: peak RSS over time, kill -9, --resume.

    python bench/make_large_jsonl.py --n 200000
    nice -n 10 python bench/bench_score_memory.py --input bench/out/articles_200k.jsonl

1. An uninterrupted run over the whole file, RSS sampled every 0.5 s together with how far the job
   is (committed chunks / all chunks), to show memory does not grow with the file.
2. The same command killed with SIGKILL at a random moment (20-80% of run 1's duration), then
   rerun with --resume; the output and rejects files are compared byte for byte with run 1's.
3. RSS of the e5-sized classifier (runs/topic, else the stand-in) on the first --big-n records,
   since the 200k runs use a tiny model to keep the bench under an hour on 2 cores.

Results: bench/out/score_memory.json and a summary on stdout.
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
    return [sys.executable, "-m", "xinwen.inference.score_cli", "score", "--classifier", str(model), "--input",
            str(source), "--output", str(output), "--chunk-size", str(chunk_size), "--threads", str(threads),
            "--no-progress", *extra]


def watch(cmd: list[str], parts: Path, total_chunks: int, kill_after: float | None = None) -> dict:
    """Run cmd, sampling RSS and progress; SIGKILL it after kill_after seconds if given."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    started = time.monotonic()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    samples = []
    killed = False
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss
        except psutil.NoSuchProcess:
            break
        done = len(list(parts.glob("chunk-*.jsonl"))) if parts.is_dir() else total_chunks
        samples.append((round(time.monotonic() - started, 2), rss, done / max(1, total_chunks)))
        if kill_after is not None and time.monotonic() - started >= kill_after:
            proc.kill()
            killed = True
            break
        time.sleep(0.5)
    stdout = proc.communicate()[0] if not killed else ""
    proc.wait()
    if not killed and proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
    peak = max(s[1] for s in samples) if samples else 0
    by_progress = {}
    for mark in (0.1, 0.25, 0.5, 0.75, 0.9):
        at = [s[1] for s in samples if s[2] >= mark]
        if at:
            by_progress[f"{int(mark * 100)}%"] = round(at[0] / 2**20)
    return {"seconds": round(time.monotonic() - started, 1), "peak_rss_mib": round(peak / 2**20),
            "rss_mib_at_progress": by_progress, "killed": killed, "samples": len(samples),
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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="for the kill moment (default: random)")
    parser.add_argument("--big-n", type=int, default=600, help="records for the e5-sized RSS run (0: skip)")
    args = parser.parse_args()
    source = Path(args.input)
    records = count_records(source)
    chunks = math.ceil(records / args.chunk_size)
    model = tiny_model()
    results: dict = {"input": str(source), "input_mib": round(source.stat().st_size / 2**20), "records": records,
                     "chunk_size": args.chunk_size, "threads": args.threads, "model_200k": str(model)}

    a = OUT / "mem_uninterrupted.jsonl"
    print(f"1. uninterrupted run over {records} records ...", flush=True)
    results["uninterrupted"] = run_a = watch(command(model, source, a, args.chunk_size, args.threads, "--overwrite"),
                                             Path(str(a) + ".parts"), chunks)
    print(json.dumps(run_a, ensure_ascii=False), flush=True)

    b = OUT / "mem_killed.jsonl"
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    kill_at = random.Random(seed).uniform(0.2, 0.8) * run_a["seconds"]
    print(f"2. killed run (SIGKILL after {kill_at:.1f} s, seed {seed}) then --resume ...", flush=True)
    parts_b = Path(str(b) + ".parts")
    killed = watch(command(model, source, b, args.chunk_size, args.threads, "--overwrite"), parts_b, chunks, kill_at)
    resumed = watch(command(model, source, b, args.chunk_size, args.threads, "--resume"), parts_b, chunks)
    same_output = sha256(a) == sha256(b)
    same_rejects = sha256(Path(str(a) + ".rejects.jsonl")) == sha256(Path(str(b) + ".rejects.jsonl"))
    results["killed"] = {**killed, "kill_after_s": round(kill_at, 1), "seed": seed}
    results["resumed"] = resumed
    results["identical_output"], results["identical_rejects"] = same_output, same_rejects
    print(json.dumps({"killed": results["killed"], "resumed": resumed}, ensure_ascii=False), flush=True)

    if args.big_n:
        head = OUT / f"mem_head_{args.big_n}.jsonl"
        with open(source, "rb") as f, open(head, "wb") as g:
            for _ in range(args.big_n):
                g.write(f.readline())
        big = big_model()
        print(f"3. e5-sized model {big} on {args.big_n} records ...", flush=True)
        out = OUT / "mem_big.jsonl"
        results["model_big"] = str(big)
        results["big"] = watch(command(big, head, out, 64, args.threads, "--overwrite"), Path(str(out) + ".parts"),
                               math.ceil(args.big_n / 64))
        print(json.dumps(results["big"], ensure_ascii=False), flush=True)

    (OUT / "score_memory.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\npeak RSS 200k run {run_a['peak_rss_mib']} MiB (by progress {run_a['rss_mib_at_progress']}); "
          f"resume {resumed['peak_rss_mib']} MiB; killed at {kill_at:.0f} s with {killed['chunks_at_end']} of "
          f"{chunks} chunks committed; output identical: {same_output}, rejects identical: {same_rejects}")
    if args.big_n:
        print(f"e5-sized model: peak RSS {results['big']['peak_rss_mib']} MiB "
              f"(by progress {results['big']['rss_mib_at_progress']})")


if __name__ == "__main__":
    main()
