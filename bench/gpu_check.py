"""The GPU paths in one run: train the default topic config (bf16 where the GPU supports it), a short
headline training, score a large file and generate headlines on CUDA, and compare with the CPU.
Run it through ``bench/gpu_check.sh`` (which sets the offline environment):

    bench/gpu_check.sh                     # on a CUDA machine; about 10 minutes on one recent GPU
    bench/gpu_check.sh --smoke --topic-set model.name_or_path=tiny ...   # CPU, tiny sizes (the test)

Every step goes through the public entry points (``xinwen train``, ``run_score_job``,
``HeadlineGenerator``) and prints its time, throughput and peak memory (GPU: torch's peak
allocation; CPU: the process's peak RSS). Agreement: the CPU run's labels and probabilities on the
first articles of the same file against the GPU's, and exact-match of CPU and GPU headlines.
Everything is also written to WORKDIR/gpu_check.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

logger = logging.getLogger("gpu_check")
ROOT = Path(__file__).resolve().parent.parent
# Full run / --smoke: articles scored on the device, on the CPU for agreement, headlines on each.
SIZES = {"full": {"score": 100_000, "cpu_score": 2_000, "headlines": 2_000, "cpu_headlines": 100,
                  "headline_steps": 400},
         "smoke": {"score": 300, "cpu_score": 60, "headlines": 16, "cpu_headlines": 8, "headline_steps": 4}}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gpu_peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def _reset_gpu_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def environment() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def train(task: str, out: Path, device: str, overrides: list[str]) -> dict:
    """``xinwen train TASK`` in this process (so its peak GPU memory is ours to read)."""
    from xinwen.training.cli import main

    _reset_gpu_peak(device)
    started = time.perf_counter()
    args = ["train", task, f"train.output_dir={out}", "train.mixed_precision=auto", *overrides, "--overwrite",
            "--no-eval"]
    if main(args) != 0:
        raise SystemExit(f"gpu_check: `xinwen {' '.join(args)}` failed")
    metrics = json.loads((out / "metrics.json").read_text())
    dev = metrics.get("dev") or metrics.get("dev_subset") or {}  # topic / headline
    return {"seconds": round(time.perf_counter() - started, 1), "gpu_peak_mib": _gpu_peak_mib(device),
            "dev": {k: v for k, v in dev.items() if isinstance(v, (int, float))},
            "mixed_precision": _mixed_precision(device)}


def _mixed_precision(device: str) -> str:
    from xinwen.training.loop import pick_mixed_precision

    return pick_mixed_precision("auto") if device.startswith("cuda") else "no"


def make_file(n: int, path: Path) -> Path:
    if not path.is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_large_jsonl.py"), "--n", str(n), "--output",
                        str(path)], check=True)
    return path


def score(classifier: Path, source: Path, output: Path, device: str, batch_size: int, limit_note: str) -> dict:
    from xinwen.inference.scoring.job import ScoreOptions, run_score_job

    _reset_gpu_peak(device)
    opts = ScoreOptions(input=source, output=output, classifier=str(classifier), device=device, overwrite=True,
                        batch_size=batch_size, progress=False, chunk_size=4096 if device != "cpu" else 512)
    summary = run_score_job(opts)
    logger.info("%s: %s", limit_note, summary.text().replace("\n", "; "))
    return {"records": summary.records, "seconds": round(summary.seconds, 1),
            "articles_per_s": round(summary.articles_per_s, 1), "gpu_peak_mib": _gpu_peak_mib(device)}


def agreement(device_rows: Path, cpu_rows: Path) -> dict:
    def rows(path: Path) -> dict:
        return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}

    on_device, on_cpu = rows(device_rows), rows(cpu_rows)
    same = [i for i in on_cpu if i in on_device]
    labels = sum(on_device[i]["label"] == on_cpu[i]["label"] for i in same)
    diff = max((abs(on_device[i]["scores"][k] - on_cpu[i]["scores"][k]) for i in same for k in on_cpu[i]["scores"]),
               default=0.0)
    return {"articles": len(same), "label_agreement": round(labels / max(1, len(same)), 4),
            "max_probability_diff": round(diff, 6)}


def headlines(folder: Path, source: Path, device: str, n: int, n_cpu: int) -> dict:
    from xinwen.inference.headline.generator import HeadlineGenerator

    articles = []
    for line in source.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.startswith("{") and line.endswith("}") else None
        if record and isinstance(record.get("body"), str) and record["body"].strip():
            articles.append({"title": "", "body": record["body"]})
        if len(articles) == n:
            break
    _reset_gpu_peak(device)
    generator = HeadlineGenerator.from_pretrained(folder, device=device)
    started = time.perf_counter()
    on_device = generator.generate(articles, batch_size=64 if device != "cpu" else 16)
    seconds = time.perf_counter() - started
    peak = _gpu_peak_mib(device)
    on_cpu = HeadlineGenerator.from_pretrained(folder, device="cpu").generate(articles[:n_cpu])
    same = sum(a == b for a, b in zip(on_device, on_cpu))
    return {"articles": len(articles), "seconds": round(seconds, 1), "headlines_per_s": round(len(articles) / seconds, 1),
            "gpu_peak_mib": peak, "cpu_exact_match": f"{same}/{len(on_cpu)}", "examples": on_device[:3]}


def summary(report: dict) -> str:
    def mem(step: dict) -> str:
        return f"GPU peak {step['gpu_peak_mib']:.0f} MiB" if step.get("gpu_peak_mib") is not None else "GPU -"

    t, h, s, a, g = (report[k] for k in ("train_topic", "train_headline", "score_device", "score_agreement",
                                          "headlines"))
    return "\n".join([
        f"gpu check ({report['mode']}, device {report['device']}): {report['environment']}",
        f"train topic:    {t['seconds']:.0f} s, mixed precision {t['mixed_precision']}, {mem(t)}, dev {t['dev']}",
        f"train headline: {h['seconds']:.0f} s, {mem(h)}",
        f"score:          {s['records']} records in {s['seconds']:.0f} s = {s['articles_per_s']:.0f} articles/s, {mem(s)}",
        f"vs CPU:         {a['articles']} articles, labels agree {a['label_agreement']:.2%}, "
        f"max probability diff {a['max_probability_diff']:.2e}",
        f"headlines:      {g['articles']} in {g['seconds']:.1f} s = {g['headlines_per_s']:.1f}/s, {mem(g)}, "
        f"CPU exact match {g['cpu_exact_match']}",
        f"total {report['total_seconds']:.0f} s; peak RSS {report['peak_rss_mib']} MiB"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: checks the script itself")
    parser.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "gpu_check"))
    parser.add_argument("--topic-set", nargs="*", default=[], help="extra topic config overrides (key=value)")
    parser.add_argument("--headline-set", nargs="*", default=[], help="extra headline config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    sizes = SIZES["smoke" if args.smoke else "full"]
    env = environment()
    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not env["cuda"]:
        logger.error("no CUDA device here (torch %s); run with --smoke to check the script on CPU", env["torch"])
        return 2
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = {"environment": env, "mode": "smoke" if args.smoke else "full", "device": device}
    report["train_topic"] = train("topic", work / "topic", device, args.topic_set)
    report["train_headline"] = train("headline", work / "headline", device,
                                     [f"train.max_steps={sizes['headline_steps']}", "train.epochs=1",
                                      *args.headline_set])
    source = make_file(sizes["score"], work / f"articles_{sizes['score']}.jsonl")
    sample = work / "articles_cpu_sample.jsonl"
    sample.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:sizes["cpu_score"]]),
                      encoding="utf-8")
    report["score_device"] = score(work / "topic", source, work / "scored_device.jsonl", device, 256, device)
    report["score_cpu_sample"] = score(work / "topic", sample, work / "scored_cpu.jsonl", "cpu", 32, "cpu")
    report["score_agreement"] = agreement(work / "scored_device.jsonl", work / "scored_cpu.jsonl")
    report["headlines"] = headlines(work / "headline", source, device, sizes["headlines"], sizes["cpu_headlines"])
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["peak_rss_mib"] = round(_peak_rss_mib())
    (work / "gpu_check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(summary(report))  # the script's answer, not a log line
    if report["total_seconds"] > 600:
        logger.warning("the check took %.0f s, over its 10-minute budget", report["total_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
