"""`xinwen score --engine ray` against `xinwen score` on the same machine and file: throughput (the
engine's overhead), peak memory per process, and whether the rows agree.

    python bench/make_large_jsonl.py --n 2000 --output bench/out/articles_2k.jsonl
    nice -n 10 python bench/bench_score_ray.py --input bench/out/articles_2k.jsonl --model standin

Both runs are the real command in a subprocess, on all the machine's cores: the local engine as one
process with ``--threads`` = cores; the Ray engine on a local cluster it starts itself, one
one-thread actor per core. Memory is sampled every 0.2 s with psutil: the local process; for Ray,
each actor (``ChunkScorer``) and the driver, and the sum over every Ray process (raylet, GCS,
workers). Models: ``tiny`` (the test suite's random 2-layer classifier, first 64 tokens: almost no
model time, so the engine's own cost shows), ``standin`` (the e5-sized stand-in from
bench/make_standin_classifier.py) or a classifier folder. Results: bench/out/score_ray.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def model_folder(name: str) -> Path:
    if name == "tiny":
        sys.path.insert(0, str(ROOT / "bench"))
        from bench_score_memory import tiny_model

        return tiny_model()
    if name == "standin":
        folder = OUT / "standin_topic"
        if not (folder / "config.json").is_file():
            subprocess.run([sys.executable, str(ROOT / "bench" / "make_standin_classifier.py"), "--output",
                            str(folder)], check=True)
        return folder
    return Path(name)


class MemorySampler(threading.Thread):
    """Peak RSS per process of interest while a command runs."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid, self.peaks, self.total_peak, self.stop = root_pid, {}, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            for proc in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                cmd = " ".join(proc.info["cmdline"] or [])
                if proc.info["memory_info"] is None:
                    continue
                scorer = "xinwen.inference.scoring.cli" in cmd and proc.info["pid"] != self.root_pid
                role = ("actor" if "ChunkScorer" in cmd or scorer else "driver" if proc.info["pid"] == self.root_pid
                        else "ray" if ("ray" in cmd and ("raylet" in cmd or "gcs_server" in cmd or "ray::" in cmd
                                                         or "default_worker" in cmd)) else None)
                if role is None:
                    continue
                rss = proc.info["memory_info"].rss
                key = (role, proc.info["pid"])
                self.peaks[key] = max(self.peaks.get(key, 0), rss)
                total += rss
            self.total_peak = max(self.total_peak, total)
            time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(engine: str, model: Path, source: Path, threads: int) -> dict:
    """engine: ``local`` (one process, all cores), ``local-sharded`` (one one-thread process per
    core through torchrun, as `accelerate launch` starts them) or ``ray``."""
    output = OUT / f"score_ray_{engine}.jsonl"
    launcher = [sys.executable]
    if engine == "local-sharded":
        launcher += ["-m", "torch.distributed.run", "--nproc-per-node", str(threads), "--master-addr", "127.0.0.1",
                     "--master-port", str(_free_port())]
    command = launcher + ["-m", "xinwen.inference.scoring.cli", "score", "--engine", engine.split("-")[0],
                          "--classifier", str(model), "--input", str(source), "--output", str(output), "--overwrite",
                          "--no-progress", "--threads", str(threads if engine == "local" else 1)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = MemorySampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{stderr[-3000:]}")
    # Sharded: every process reports its own share; the job took as long as the slowest.
    shares = [(int(n), float(s)) for n, s in re.findall(r"(\d+) articles in ([\d.]+) s", stdout)]
    articles, job_s = sum(n for n, _ in shares), max(s for _, s in shares)
    by_role: dict[str, list[int]] = {}
    for (role, _), peak in sampler.peaks.items():
        by_role.setdefault(role, []).append(peak)
    mib = lambda b: round(b / 2**20)  # noqa: E731
    return {"engine": engine, "wall_s": round(wall, 1), "articles": articles, "job_s": job_s,
            "articles_per_s_wall": round(articles / wall, 2), "articles_per_s_job": round(articles / job_s, 2),
            "driver_peak_mib": mib(max(by_role.get("driver", [0]))),
            "actor_peak_mib": sorted(mib(p) for p in by_role.get("actor", [])),
            "all_processes_peak_mib": mib(sampler.total_peak), "output": str(output), "summary": stdout.strip()}


def agreement(a: Path, b: Path) -> dict:
    rows = lambda p: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]  # noqa: E731
    left, right = rows(a), rows(b)
    same_ids = [x["id"] for x in left] == [y["id"] for y in right]
    labels = sum(x["label"] == y["label"] for x, y in zip(left, right)) / max(1, len(left))
    diff = max((abs(x["scores"][k] - y["scores"][k]) for x, y in zip(left, right) for k in x["scores"]), default=0)
    return {"same_ids_in_order": same_ids, "label_agreement": labels, "max_probability_diff": diff,
            "identical_bytes": a.read_bytes() == b.read_bytes()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", default="standin", help="tiny, standin or a classifier folder")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    model = model_folder(args.model)
    results = {"model": args.model, "input": args.input, "cores": os.cpu_count(),
               "load_before": os.getloadavg()[0]}
    for engine in ("local", "local-sharded", "ray"):
        results[engine] = run(engine, model, Path(args.input), args.threads)
    results["agreement"] = agreement(Path(results["local"]["output"]), Path(results["ray"]["output"]))
    results["load_after"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    saved = OUT / "score_ray.json"
    history = json.loads(saved.read_text()) if saved.is_file() else []
    saved.write_text(json.dumps(history + [results], indent=2, ensure_ascii=False) + "\n")
    for engine in ("local", "local-sharded", "ray"):
        r = results[engine]
        print(f"| {args.model} | {engine} | {r['articles']} | {r['wall_s']} | {r['job_s']} | {r['articles_per_s_job']} "
              f"| {r['driver_peak_mib']} | {r['actor_peak_mib']} | {r['all_processes_peak_mib']} |")
    print(json.dumps(results["agreement"]))


if __name__ == "__main__":
    main()
