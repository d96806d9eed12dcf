"""Batch scoring on Ray Data: ``xinwen score --engine ray`` and a ``map_batches`` class for your own
pipelines. Ray is optional (``pip install "xinwen[ray]"``); this module imports it only when used.

Your own pipeline::

    import ray
    from xinwen.inference.scoring.ray_engine import NewsScorer, split_rejects

    ds = ray.data.read_parquet("s3://bucket/articles/")           # columns: id, title, body, ...
    ds = ds.map_batches(NewsScorer, fn_constructor_kwargs={"classifier": "/models/topic"},
                        compute=ray.data.ActorPoolStrategy(size=8), batch_size=512, num_cpus=1)
    scored, rejects = split_rejects(ds.materialize())               # rejects: reject_kind, reject_reason
    scored.write_parquet("s3://bucket/scored/")

``xinwen score --engine ray`` runs the same job as the single-machine scorer, on a cluster:

- read tasks frame and check the input with the scorer's own reader (``RecordReader.parse``), so
  bad records become the same rejects (kind, reason, line); task r of R keeps the chunks k with
  k % R == r (chunks of ``--chunk-size`` records, as locally) and skips chunks already committed;
- an actor pool of ``NewsScorer``s (one per CPU core, or per ``--num-gpus-per-actor`` GPUs) loads
  the model folder once per actor and scores a chunk per call, batched by tokens as locally;
- the driver commits each chunk to ``OUTPUT.parts/`` once all its records are back (a record that a
  retried task returns twice is kept once), and merges the chunks as ``xinwen score`` does: same
  output bytes layout, same rejects file, same ``--resume`` (either engine resumes the other's parts).

A killed actor is restarted and its unfinished calls are retried by Ray (``MAX_RESTARTS``). The input
and the model folders must be readable at the same path from every node; OUTPUT is written by the
driver.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xinwen.inference.records.readers import Fields, InputRecord, RecordReader, Reject, validate_row
from xinwen.inference.scoring.chunk_store import ChunkStore, ChunkStoreError
from xinwen.inference.scoring.job import (ScoreOptions, ScoreSummary, ScoringError, Shard, build_analyzer,
                                          check_output_free, chunk_entries, job_manifest, output_lock, output_names,
                                          preflight, result_row)
from xinwen.inference.text import ArticleText

logger = logging.getLogger(__name__)

RAY_INSTALL = 'pip install "xinwen[ray]"  (or: pip install "ray[data]>=2.60")'
# A killed or crashed actor is restarted, and its calls retried, this many times before the job
# fails: enough for preempted nodes, few enough that a record that kills its actor every time
# (a poison input) ends the job instead of looping forever.
MAX_RESTARTS = 4
# Test hook: each actor sleeps this many seconds after each batch, so a test can kill one mid-job.
PAUSE_ENV = "XINWEN_RAY_PAUSE_AFTER_BATCH"
# Environment forwarded to the workers when set on the driver (a remote cluster does not inherit it).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "XINWEN_HOME", PAUSE_ENV)
RESULT_COLUMNS = ("label", "score", "scores", "headline", "reject_kind", "reject_reason")


def import_ray():
    """``ray`` with Ray Data, or a ScoringError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the part we need; plain `ray` lacks it)
    except ImportError as err:
        raise ScoringError(f"--engine ray needs Ray Data, which is not installed here ({err}). "
                           f"fix: {RAY_INSTALL}, or use --engine local") from None
    return ray


def _rows(batch: Any) -> tuple[list[dict[str, Any]], str]:
    """A Ray batch (pyarrow Table, pandas DataFrame or dict of numpy arrays) as row dicts, missing
    values as None (pandas shows them as NaN, which would read as a non-text body)."""
    if hasattr(batch, "to_pylist"):
        return batch.to_pylist(), "pyarrow"
    if hasattr(batch, "to_dict"):
        frame = batch.astype(object).where(batch.notna(), None)
        return frame.to_dict("records"), "pandas"
    columns = {name: list(values) for name, values in batch.items()}
    n = len(next(iter(columns.values()), []))
    return [{name: values[i] for name, values in columns.items()} for i in range(n)], "numpy"


class NewsScorer:
    """A callable class for ``ray.data.Dataset.map_batches``: loads the model folder(s) once per
    actor and adds ``label``, ``score``, ``scores`` (and ``headline`` with a headline folder) to
    each row. A row that cannot be scored keeps null results and says why in ``reject_kind`` and
    ``reject_reason``, with the kinds and reasons of ``xinwen score`` (``split_rejects`` separates
    them). Batches may be pyarrow, pandas or numpy; the answer is a pyarrow Table.

    The keyword arguments are ``xinwen score``'s options of the same names.
    """

    def __init__(self, classifier: str, headline: str | None = None, *, body_column: str = "body",
                 title_column: str | None = "title", top_k: int | None = None, threshold: float | None = None,
                 batch_size: int = 32, max_batch_tokens: int | None = None, headline_batch_size: int = 16,
                 backend: str = "auto", device: str | None = None, threads: int | None = None,
                 long_text: str | None = None, max_length: int | None = None, first_stage: bool = True,
                 max_record_bytes: int = 1 << 20):
        import torch

        from xinwen.inference.analyzer import NewsAnalyzer
        from xinwen.inference.topic.classifier import override_text_settings

        # One actor per core by default: one thread each, not every actor on every core.
        torch.set_num_threads(threads or 1)
        self.fields = Fields(body=body_column, title=title_column, id=None, keep=(),
                             max_record_bytes=max_record_bytes)
        self.options = {"top_k": top_k, "threshold": threshold, "batch_size": batch_size,
                        "max_batch_tokens": max_batch_tokens, "headline_batch_size": headline_batch_size}
        self.analyzer = NewsAnalyzer.from_pretrained(classifier, headline, device=device, backend=backend,
                                                     first_stage=first_stage)
        override_text_settings(self.analyzer.classifier, long_text, max_length)
        self.headline = headline is not None
        self.pause = float(os.environ.get(PAUSE_ENV, "0") or 0)

    def score_records(self, records: list[InputRecord], names: dict[str, str] | None = None) -> list[dict]:
        """The output row of each checked record, as ``xinwen score`` writes it: the pass-through
        columns (``names``: input -> output name; none by default), ``label``, ``score``, ``scores``
        and ``headline``."""
        analyses = self.analyzer.analyze_prepared([r.article for r in records], [r.original for r in records],
                                                  **self.options)
        rows = [result_row(r, a, names or {}, self.headline) for r, a in zip(records, analyses)]
        if self.pause:
            time.sleep(self.pause)
        return rows

    def __call__(self, batch: Any):
        import pyarrow as pa

        rows, _ = _rows(batch)
        checked = [validate_row(row, self.fields, line=i + 1) for i, row in enumerate(rows)]
        # No pass-through names: the row's own columns stay as they are.
        results = iter(self.score_records([c for c in checked if isinstance(c, InputRecord)]))
        answers = [next(results) if isinstance(c, InputRecord) else {"reject_kind": c.kind, "reject_reason": c.reason}
                   for c in checked]
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pylist(rows)
        labels = list(self.analyzer.classifier.labels)
        types = {"label": pa.string(), "score": pa.float64(), "headline": pa.string(),
                 "scores": pa.struct([(label, pa.float64()) for label in labels]),
                 "reject_kind": pa.string(), "reject_reason": pa.string()}
        for name in RESULT_COLUMNS:
            if name == "headline" and not self.headline:
                continue
            column = pa.array([a.get(name) for a in answers], type=types[name])
            if name in table.column_names:  # a column named like a result is replaced, as the CLI renames it
                table = table.drop_columns([name])
            table = table.append_column(name, column)
        return table


def split_rejects(ds):
    """(scored rows, rejected rows) of a dataset mapped with ``NewsScorer``. Both are lazy views of
    ``ds``: ``ds.materialize()`` first if you consume both, or the model runs twice."""

    def keep(rejected: bool):
        def select(table):
            import pyarrow.compute as pc

            missing = pc.is_null(table["reject_kind"])
            return table.filter(pc.invert(missing) if rejected else missing)
        return select

    scored = ds.map_batches(keep(False), batch_format="pyarrow").drop_columns(["reject_kind", "reject_reason"])
    return scored, ds.map_batches(keep(True), batch_format="pyarrow")


# -- xinwen score --engine ray ----------------------------------------------------------------------
@dataclass
class RayOptions:
    address: str | None = None  # None: $RAY_ADDRESS, else a local cluster on this machine
    num_gpus_per_actor: float = 0.0  # > 0: one actor per that many GPUs
    actors: int | None = None  # default: the cluster's CPUs / threads per actor, or its GPUs / num_gpus_per_actor

    def __post_init__(self) -> None:
        if self.num_gpus_per_actor < 0:
            raise ScoringError(f"--num-gpus-per-actor: expected >= 0 (0 = CPU actors), got {self.num_gpus_per_actor}")
        if self.actors is not None and self.actors < 1:
            raise ScoringError(f"actors: expected >= 1, got {self.actors}")


def _read_shard(batch, *, path: str, fields: Fields, encoding: str, chunk_size: int, shards: int,
                committed: frozenset):
    """Ray task: frame and check the input with the scorer's reader, and yield one row per chunk
    this shard owns (k % shards == shard) that is not committed yet. A whole chunk per row, so the
    actor batches exactly the records the local scorer batches together (same padding, same
    numbers); its records travel as JSON text (ids of any JSON type, any text)."""
    import pyarrow as pa

    for shard in batch["shard"].to_pylist():
        reader = RecordReader(path, fields, encoding)
        chunk: list[dict[str, Any]] = []
        index = -1
        for index, raw in enumerate(reader):
            k = index // chunk_size
            if k % shards == shard and k not in committed:
                chunk.append(_packed(reader.parse(raw)))
            if (index + 1) % chunk_size == 0 and chunk:
                yield pa.table({"chunk": [k], "records": [json.dumps(chunk, default=str)]})
                chunk = []
        if chunk:
            yield pa.table({"chunk": [index // chunk_size], "records": [json.dumps(chunk, default=str)]})


def _packed(parsed: InputRecord | Reject) -> dict[str, Any]:
    if isinstance(parsed, Reject):
        return {"r": parsed.to_row()}
    return {"line": parsed.line, "title": parsed.article.title, "body": parsed.article.body,
            "original": parsed.original, "passthrough": parsed.passthrough}


class ChunkScorer:
    """The ``--engine ray`` actor: loads the model as ``xinwen score`` does (``build_analyzer``) and
    turns each chunk the read tasks checked into its chunk-store entries with the local scorer's own
    ``chunk_entries``: the same slices, batches and rows."""

    def __init__(self, opts: ScoreOptions):
        self.opts = opts
        self.names = output_names(opts.fields)
        self.analyzer = build_analyzer(opts, Shard())
        self.pause = float(os.environ.get(PAUSE_ENV, "0") or 0)

    def __call__(self, batch):
        import pyarrow as pa

        entries = [json.dumps(self.score_chunk(json.loads(text))) for text in batch["records"].to_pylist()]
        return pa.table({"chunk": batch["chunk"], "entries": entries})

    def score_chunk(self, packed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = [Reject(p["r"]["line"], p["r"]["kind"], p["r"]["reason"], p["r"].get("excerpt", ""), p["r"].get("id"))
                  if "r" in p else
                  InputRecord(p["line"], ArticleText(p["title"], p["body"]), p["original"], p["passthrough"])
                  for p in packed]
        entries = chunk_entries(parsed, self.analyzer, self.opts, self.names)
        if self.pause:
            time.sleep(self.pause)
        return entries


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` / $RAY_ADDRESS, or start a local one. True when this call
    did it (and so should shut it down); a caller's own ``ray.init`` is left alone."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # ray's own progress lines, unless -v
        logging.getLogger("ray").setLevel(logging.WARNING)
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": _forwarded_env()} if address else None)
    logger.info("ray: %s cluster, resources %s", "joined the" if address else "started a local",
                ray.cluster_resources())
    return True


def _forwarded_env() -> dict[str, str]:
    return {"TOKENIZERS_PARALLELISM": "false",
            **{name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}}


def _actor_plan(ray, opts: ScoreOptions, ray_opts: RayOptions) -> dict[str, Any]:
    """Resources per actor and how many actors: one per GPU share, else one per ``--threads`` cores."""
    resources = ray.cluster_resources()
    if ray_opts.num_gpus_per_actor > 0:
        gpus = resources.get("GPU", 0)
        if gpus < ray_opts.num_gpus_per_actor:
            raise ScoringError(f"--num-gpus-per-actor {ray_opts.num_gpus_per_actor}: the cluster has {gpus:g} GPUs. "
                               "fix: pass --num-gpus-per-actor 0 for CPU actors, or join a cluster with GPUs")
        size = ray_opts.actors or int(gpus // ray_opts.num_gpus_per_actor)
        return {"size": size, "num_cpus": 1, "num_gpus": ray_opts.num_gpus_per_actor, "threads": opts.threads or 1}
    threads = opts.threads or 1
    size = ray_opts.actors or max(1, int(resources.get("CPU", 1) // threads))
    return {"size": size, "num_cpus": threads, "num_gpus": 0, "threads": threads}


def _absolute(folder: str | None) -> str | None:
    return str(Path(folder).resolve()) if folder and Path(folder).exists() else folder


def _dataset(ray, opts: ScoreOptions, reader: RecordReader, committed: set[int], plan: dict[str, Any]):
    shards = plan["size"]
    source = ray.data.from_items([{"shard": r} for r in range(shards)], override_num_blocks=shards)
    # One chunk per block: Ray Data otherwise packs a read task's chunks into one block (up to
    # 128 MiB), and an actor's answers for a block reach the driver together, so a shard's chunks
    # were committed at once at its end and a killed job lost the shard's whole work. A chunk is
    # the unit of commit and resume. The datasets derived from `source` share its context (a copy
    # made by from_items), so this job's stages change and the caller's global context does not.
    source.context.target_max_block_size = 1
    read = source.map_batches(
        _read_shard, batch_size=1, batch_format="pyarrow", num_cpus=0,  # reading is light beside the model
        fn_kwargs={"path": str(opts.input.resolve()), "fields": opts.fields, "encoding": reader.encoding,
                   "chunk_size": opts.chunk_size, "shards": shards, "committed": frozenset(committed)})
    # The actors' options: the driver's, with the threads of one actor and absolute model paths
    # (workers do not share the driver's working directory).
    actor_opts = replace(opts, threads=plan["threads"], classifier=_absolute(opts.classifier),
                         headline=_absolute(opts.headline), progress=False)
    return read.map_batches(
        ChunkScorer, batch_size=1, batch_format="pyarrow",  # one chunk per call
        fn_constructor_kwargs={"opts": actor_opts},
        compute=ray.data.ActorPoolStrategy(size=plan["size"]), num_cpus=plan["num_cpus"],
        num_gpus=plan["num_gpus"] or None, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS,
        runtime_env={"env_vars": _forwarded_env()})


class _ChunkCollector:
    """Driver side: chunks arrive in any order, and a retried task may send one twice; each is
    committed once."""

    def __init__(self, store: ChunkStore, committed: set[int]):
        self.store, self.done = store, set(committed)
        self.highest, self.committed_now, self.records_now = max(committed, default=-1), 0, 0
        self.started = self.seconds = 0.0

    def add(self, k: int, entries: list[dict[str, Any]]) -> None:
        if k in self.done:
            return
        self.store.write_chunk(k, entries)
        self.done.add(k)
        self.highest = max(self.highest, k)
        self.committed_now += 1
        self.records_now += sum("o" in entry for entry in entries)


def run_ray_score_job(opts: ScoreOptions, ray_opts: RayOptions | None = None) -> ScoreSummary:
    """``xinwen score --engine ray``: the job of ``run_score_job`` on a Ray cluster; same output,
    same checks before any work, same lock on the output."""
    ray_opts = ray_opts or RayOptions()
    ray = import_ray()
    try:
        reader, backend = preflight(opts)
        with output_lock(opts):
            check_output_free(opts)  # again, under the lock
            store = ChunkStore(opts.parts)
            store.prepare(job_manifest(opts, reader, backend), resume=opts.resume, overwrite=opts.overwrite)
            committed = store.committed()
            started_here = _connect(ray, ray_opts.address)
            try:
                collector = _collect(ray, opts, ray_opts, reader, store, committed)
            finally:
                if started_here:
                    ray.shutdown()
            return _finish(opts, store, collector, committed, labels=_labels(opts.classifier))
    except ChunkStoreError as err:
        raise ScoringError(str(err)) from err


def _collect(ray, opts: ScoreOptions, ray_opts: RayOptions, reader: RecordReader, store: ChunkStore,
             committed: set[int]) -> _ChunkCollector:
    plan = _actor_plan(ray, opts, ray_opts)
    logger.info("ray: %d actors x (%s CPU, %s GPU)", plan["size"], plan["num_cpus"], plan["num_gpus"])
    collector = _ChunkCollector(store, committed)
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit=" records", desc=f"scoring {opts.input.name} on ray", dynamic_ncols=True)
    collector.started = time.perf_counter()
    for batch in _dataset(ray, opts, reader, committed, plan).iter_batches(batch_size=None, batch_format="pyarrow"):
        for k, entries in zip(batch["chunk"].to_pylist(), batch["entries"].to_pylist()):
            entries = json.loads(entries)
            collector.add(k, entries)
            if bar is not None:
                bar.update(len(entries))
    collector.seconds = time.perf_counter() - collector.started
    if bar is not None:
        bar.close()
    return collector


def _labels(classifier: str) -> list[str]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(classifier)  # the classifier's label order, as NewsClassifier.labels
    return [config.id2label[i] for i in range(config.num_labels)]


def _finish(opts: ScoreOptions, store: ChunkStore, collector: _ChunkCollector, committed: set[int],
            labels: list[str]) -> ScoreSummary:
    n_chunks = collector.highest + 1
    columns = list(output_names(opts.fields).values()) + ["label", "score", "scores"] + (
        ["headline"] if opts.headline else [])
    counts = store.merge(n_chunks, opts.output, opts.rejects, columns, labels)
    summary = ScoreSummary(str(opts.input), str(opts.output), str(opts.rejects), chunks=n_chunks,
                           chunks_resumed=len(committed), chunks_scored=collector.committed_now,
                           articles_scored_here=collector.records_now, seconds=collector.seconds,
                           scored=counts["scored"], rejected_by_kind=counts["rejected_by_kind"])
    summary.rejected = sum(summary.rejected_by_kind.values())
    summary.records = summary.scored + summary.rejected
    if not opts.keep_parts:
        store.remove()
    return summary
