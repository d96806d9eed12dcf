"""xinwen score is crash-safe: kill -9 then --resume gives the bytes of an uninterrupted run; a
resume of a different job is refused; sharded processes merge to the same bytes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scoring_helpers import articles, jsonl_lines, read_jsonl, score, single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.scoring import job as scoring
from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.scoring.job import ScoringError, Shard


@pytest.fixture(scope="module")
def analyzer(tiny_classifier_dir):
    return NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"))


@pytest.fixture()
def messy_input(tmp_path) -> Path:
    """60 articles with a bad record every 7th line."""
    lines = jsonl_lines(articles(60))
    for i in range(3, len(lines), 7):
        lines[i] = lines[i][: len(lines[i]) // 2]  # cut in half: malformed JSON
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(classifier: Path, source: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "xinwen.inference.scoring.cli", "score", "--classifier", str(classifier),
            "--input", str(source), "--output", str(output), "--chunk-size", "5", "--threads", "1",
            "--no-progress", *extra]


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, analyzer, tiny_classifier_dir, messy_input):
    reference = tmp_path / "reference.jsonl"
    score(analyzer, tiny_classifier_dir, messy_input, reference, chunk_size=5)

    output = tmp_path / "out.jsonl"
    parts = tmp_path / "out.jsonl.parts"
    # A real process, killed for real. It pauses after every commit so the kill lands between
    # commits at a point the test can see.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", scoring.PAUSE_ENV: "1.0"}
    proc = subprocess.Popen(_cli(tiny_classifier_dir, messy_input, output), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while len(list(parts.glob("chunk-*.jsonl"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    # While it runs, a second job on the same output is refused, even one asking to --overwrite it.
    with pytest.raises(ScoringError, match="being written by another xinwen score job"):
        score(analyzer, tiny_classifier_dir, messy_input, output, chunk_size=5, overwrite=True)
    os.kill(proc.pid, signal.SIGKILL)  # the kernel releases the dead job's lock: --resume below may run
    proc.wait()
    committed = len(list(parts.glob("chunk-*.jsonl")))
    assert 3 <= committed < 12, "the kill must land mid-run"
    assert not output.exists()

    summary = score(analyzer, tiny_classifier_dir, messy_input, output, chunk_size=5, resume=True)
    assert summary.chunks_resumed == committed and summary.chunks_scored == 12 - committed
    assert output.read_bytes() == reference.read_bytes()
    rejects = Path(str(output) + ".rejects.jsonl")
    assert rejects.read_bytes() == Path(str(reference) + ".rejects.jsonl").read_bytes()
    assert not parts.exists()
    # No record lost or duplicated: 60 lines, each once in output or rejects.
    scored, rejected = read_jsonl(output), read_jsonl(rejects)
    assert len(scored) + len(rejected) == 60
    assert len({r["id"] for r in scored}) == len(scored)
    assert sorted(r["line"] for r in rejected) == list(range(4, 61, 7))


def test_resume_after_all_chunks_committed_only_merges(tmp_path, analyzer, tiny_classifier_dir, messy_input):
    out = tmp_path / "out.jsonl"
    score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=8, keep_parts=True)
    first = out.read_bytes()
    out.unlink()  # as if killed between the last commit and the merge
    summary = score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=8, resume=True)
    assert summary.chunks_scored == 0 and summary.chunks_resumed == 8
    assert out.read_bytes() == first


def test_resume_refuses_a_different_job_and_fresh_runs_refuse_old_parts(tmp_path, analyzer, tiny_classifier_dir,
                                                                       messy_input):
    out = tmp_path / "out.jsonl"
    score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=8, keep_parts=True)
    with pytest.raises(ScoringError, match=r"chunk_size: the interrupted run had 8, this one has 9"):
        score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=9, resume=True)
    with pytest.raises(ScoringError, match=r"holds 8 committed chunks.*--resume.*--overwrite"):
        score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=8)
    summary = score(analyzer, tiny_classifier_dir, messy_input, out, chunk_size=9, overwrite=True)
    assert summary.chunks == 7 and summary.chunks_scored == 7


def test_sharded_processes_merge_to_the_single_process_bytes(tmp_path, analyzer, tiny_classifier_dir, messy_input,
                                                             monkeypatch):
    single = tmp_path / "single.jsonl"
    score(analyzer, tiny_classifier_dir, messy_input, single, chunk_size=4)

    monkeypatch.setattr(scoring, "_barrier", lambda shard: None)  # ranks are threads here, not processes
    out = tmp_path / "sharded.jsonl"

    # Rank 0 runs in a thread beside the others: give it its own model (tokenizers are not
    # meant to be shared across threads).
    own = NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"))

    def run(rank: int, results: dict) -> None:
        opts = scoring.ScoreOptions(input=messy_input, output=out, classifier=str(tiny_classifier_dir),
                                    chunk_size=4, progress=False)
        results[rank] = scoring.run_score_job(opts, analyzer=own if rank == 0 else analyzer,
                                              shard=Shard(rank, 3, rank, 3))

    results: dict = {}
    rank0 = threading.Thread(target=run, args=(0, results))
    rank0.start()
    manifest = Path(str(out) + ".parts") / "manifest.json"
    while not manifest.exists():
        time.sleep(0.01)
    # Rank 2 finishes before rank 1 starts: the merge must not depend on who finishes when.
    run(2, results)
    run(1, results)
    rank0.join(timeout=60)
    assert results[0].chunks == 15
    assert [results[r].chunks_scored for r in range(3)] == [5, 5, 5]
    assert out.read_bytes() == single.read_bytes()
    assert Path(str(out) + ".rejects.jsonl").read_bytes() == Path(str(single) + ".rejects.jsonl").read_bytes()


def test_a_real_two_process_launch_on_cpu_shards_and_merges_to_the_same_bytes(tmp_path, tiny_classifier_dir,
                                                                              messy_input):
    # torchrun sets the same RANK/WORLD_SIZE/MASTER_ADDR variables as `accelerate launch`; accelerate's
    # own state reports one process on a CPU-only machine, which once made both processes act as
    # process 0 of 1.
    single = tmp_path / "single.jsonl"
    subprocess.run(_cli(tiny_classifier_dir, messy_input, single), check=True, capture_output=True)
    out = tmp_path / "launched.jsonl"
    with socket.socket() as probe:  # a free port for the processes' rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
                "127.0.0.1", "--master-port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launcher + _cli(tiny_classifier_dir, messy_input, out)[1:], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "process 1 of 2" in done.stdout and "(process 0 of 2)" in done.stdout
    assert out.read_bytes() == single.read_bytes()
    assert Path(str(out) + ".rejects.jsonl").read_bytes() == Path(str(single) + ".rejects.jsonl").read_bytes()
