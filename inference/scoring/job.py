"""The batch scoring job behind ``xinwen score``: streaming, crash-safe, shardable.

While it runs, the job keeps its state beside the output::

    OUTPUT.parts/manifest.json          what the job is; ``--resume`` refuses a different job
    OUTPUT.parts/chunk-00000042.jsonl   one committed chunk: results and rejects, in input order
    OUTPUT.parts/done-rank1-of2.json    process 1 of 2 has finished its share

Chunk k is input records ``[k*chunk_size, (k+1)*chunk_size)``: a deterministic split that does not
depend on timing. A chunk is written under a temporary name, fsynced and renamed, so it exists
complete or not at all; after a kill -9, ``--resume`` redoes exactly the chunks that are missing
and, because a chunk is always batched the same way, writes the same bytes. Process r of W scores
the chunks with ``k % W == r`` (``accelerate launch`` / ``torchrun`` set RANK and WORLD_SIZE); process
0 waits for every process's done marker, then merges the chunks in index order into OUTPUT and
OUTPUT.rejects.jsonl, again through a temporary file and a rename. Memory is one chunk at a time.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xinwen.inference.scoring.chunk_store import ChunkStore, ChunkStoreError
from xinwen.inference.records.readers import Fields, InputError, InputRecord, RawItem, RecordReader
from xinwen.inference.records.writers import output_format

logger = logging.getLogger(__name__)

RESULT_FIELDS = ("label", "score", "scores", "headline")
MANIFEST_VERSION = 1
# Test hook for the crash tests: sleep this many seconds after each committed chunk, so a test
# can kill -9 the process between two commits.
PAUSE_ENV = "XINWEN_SCORE_PAUSE_AFTER_CHUNK"


class ScoringError(ValueError):
    pass


@dataclass
class ScoreOptions:
    input: Path
    output: Path
    classifier: str
    headline: str | None = None
    backend: str = "auto"  # torch | int8 | onnx | onnx-int8; auto: what `xinwen export` recorded
    device: str | None = None
    encoding: str = "auto"
    fields: Fields = field(default_factory=Fields)
    # Records per committed chunk; also the window sorted by length before batching. 512 is about
    # two minutes of an e5-small classifier on 2 CPU cores (a crash loses little) and a few MB.
    chunk_size: int = 512
    batch_size: int = 32
    max_batch_tokens: int | None = None
    headline_batch_size: int = 16
    top_k: int | None = None
    threshold: float | None = None
    long_text: str | None = None  # override the model's text.long_text (head, head_tail, chunks)
    max_length: int | None = None  # override the model's text.max_length (tokens per window)
    resume: bool = False
    overwrite: bool = False
    keep_parts: bool = False
    threads: int | None = None
    progress: bool = True
    # Use a first stage fitted into the classifier folder (`xinwen first-stage`), if there is one.
    first_stage: bool = True

    def __post_init__(self) -> None:
        self.input, self.output = Path(self.input), Path(self.output)
        problems = []
        if self.chunk_size < 1 or self.batch_size < 1 or self.headline_batch_size < 1:
            problems.append("--chunk-size, --batch-size and --headline-batch-size must be >= 1")
        if self.long_text not in (None, "head", "head_tail", "chunks"):
            problems.append(f"--long-text: expected head, head_tail or chunks, got {self.long_text!r}")
        if self.max_length is not None and not 16 <= self.max_length <= 4096:
            problems.append(f"--max-length: expected 16..4096 tokens, got {self.max_length}")
        if self.resume and self.overwrite:
            problems.append("--resume continues the earlier run and --overwrite discards it; pick one")
        if self.top_k is not None and self.top_k < 1:
            problems.append(f"--top-k: expected >= 1, got {self.top_k}")
        try:
            output_format(self.output)
        except InputError as err:
            problems.append(str(err))
        if self.input.resolve() == self.output.resolve():
            problems.append("--output is the same file as --input; choose another name")
        if problems:
            raise ScoringError("; ".join(problems))

    @property
    def parts(self) -> Path:
        return self.output.with_name(self.output.name + ".parts")

    @property
    def rejects(self) -> Path:
        return self.output.with_name(self.output.name + ".rejects.jsonl")


@dataclass
class ScoreSummary:
    input: str
    output: str
    rejects: str
    records: int = 0
    scored: int = 0
    rejected: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    chunks_resumed: int = 0  # committed by an earlier, interrupted run
    chunks_scored: int = 0  # scored by this process in this run
    articles_scored_here: int = 0
    seconds: float = 0.0
    rank: int = 0
    world_size: int = 1
    # int8-checked backend: classifier rows (texts or chunks) this process saw and recomputed in fp32.
    fp32_rechecks: tuple[int, int] | None = None
    # First stage: articles this process saw and articles it answered without the classifier.
    first_stage_answers: tuple[int, int] | None = None

    @property
    def articles_per_s(self) -> float:
        return self.articles_scored_here / self.seconds if self.seconds else 0.0

    def text(self) -> str:
        rate = (f"{self.articles_scored_here} articles in {self.seconds:.1f} s = "
                f"{self.articles_per_s:.1f} articles/s")
        if self.rank != 0:
            return (f"process {self.rank} of {self.world_size}: scored {self.chunks_scored} of {self.chunks} "
                    f"chunks, {rate}; process 0 merges")
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.rejected_by_kind.items())) or "none"
        where = f" (process 0 of {self.world_size})" if self.world_size > 1 else ""
        return "\n".join([
            f"scored {self.scored} of {self.records} records; rejected {self.rejected} ({kinds})",
            f"chunks: {self.chunks} ({self.chunks_resumed} from the earlier run, {self.chunks_scored} scored "
            f"now{where}); {rate}",
            f"output: {self.output}; rejects: {self.rejects}"]
            + ([f"int8-checked: {self.fp32_rechecks[1]} of {self.fp32_rechecks[0]} classifier rows recomputed in fp32"
                f"{where}"]
               if self.fp32_rechecks else [])
            + ([f"first stage: answered {self.first_stage_answers[1]} of {self.first_stage_answers[0]} articles "
                f"without the transformer{where}"] if self.first_stage_answers else []))


def _fingerprint(folder: str | None) -> list[list[Any]] | None:
    # Sizes and mtimes of a model folder's files: a retrained model in the same folder is a new job.
    if folder is None:
        return None
    path = Path(folder)
    if not path.is_dir():
        return [[str(folder)]]
    return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in path.iterdir() if p.is_file())


def _manifest(opts: ScoreOptions, reader: RecordReader, backend: str) -> dict[str, Any]:
    stat = opts.input.stat()
    return {
        "version": MANIFEST_VERSION, "input": str(opts.input.resolve()), "input_bytes": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns, "format": reader.format, "encoding": reader.encoding,
        "classifier": str(Path(opts.classifier).resolve()), "classifier_files": _fingerprint(opts.classifier),
        "headline": str(Path(opts.headline).resolve()) if opts.headline else None,
        "headline_files": _fingerprint(opts.headline), "backend": backend, "fields": asdict(opts.fields),
        "chunk_size": opts.chunk_size, "batch_size": opts.batch_size, "max_batch_tokens": opts.max_batch_tokens,
        "headline_batch_size": opts.headline_batch_size, "top_k": opts.top_k, "threshold": opts.threshold,
        "long_text": opts.long_text, "max_length": opts.max_length, "first_stage": opts.first_stage,
    }


# -- distributed ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        """This process's place in a launch by ``torchrun``/``accelerate launch`` (RANK, WORLD_SIZE,
        LOCAL_RANK, LOCAL_WORLD_SIZE) or mpirun (OMPI_/PMI_ variables); a single process otherwise.

        Read from the environment rather than from accelerate's state, which reports a single
        process on CPU-only machines even when the launcher started several."""
        env = os.environ

        def first(*names: str, default: int) -> int:
            return next((int(env[n]) for n in names if env.get(n)), default)

        world = first("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", default=1)
        if world <= 1:
            return cls()
        rank = first("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", default=0)
        local_rank = first("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", default=0)
        local_world = first("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", default=world)
        if not 0 <= rank < world:
            raise ScoringError(f"launcher environment: rank {rank} is outside world size {world}")
        return cls(rank, world, local_rank, local_world)


def _barrier(shard: Shard) -> None:
    """Every process waits here until all have arrived (process 0 has prepared the chunk folder)."""
    if shard.world_size <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
    elif os.environ.get("MASTER_ADDR"):
        # torchrun / accelerate launch: join their rendezvous. gloo, because a barrier is the only
        # collective here and gloo runs with or without GPUs.
        dist.init_process_group("gloo", rank=shard.rank, world_size=shard.world_size)
        dist.barrier()
    else:  # mpirun without a torch rendezvous address: accelerate knows how to join
        from accelerate import PartialState

        PartialState().wait_for_everyone()


# -- the job -------------------------------------------------------------------------------------
def output_names(fields: Fields) -> dict[str, str]:
    """Input column -> output column for pass-through columns; a column named like a result field
    (e.g. a gold ``label`` kept for comparison) is renamed ``input_<name>`` instead of overwritten."""
    return {c: (f"input_{c}" if c in RESULT_FIELDS else c) for c in fields.passthrough()}


def _result_row(record: InputRecord, analysis: dict[str, Any], names: dict[str, str], headline: bool) -> dict:
    row = {names[k]: v for k, v in record.passthrough.items()}
    row["label"] = analysis["label"]
    # 6 decimals: plenty for a probability, and stable text across runs.
    row["score"] = round(analysis["score"], 6)
    row["scores"] = {k: round(v, 6) for k, v in analysis["scores"].items()}
    if headline:
        row["headline"] = analysis["headline"]
    return row


def _score_chunk(store: ChunkStore, k: int, items: list[RawItem], reader: RecordReader, analyzer: Any,
                 opts: ScoreOptions, names: dict[str, str]) -> int:
    parsed = [reader.parse(raw) for raw in items]
    records = [p for p in parsed if isinstance(p, InputRecord)]
    results = iter(analyzer.analyze_prepared(
        [r.article for r in records], [r.original for r in records], top_k=opts.top_k, threshold=opts.threshold,
        batch_size=opts.batch_size, max_batch_tokens=opts.max_batch_tokens,
        headline_batch_size=opts.headline_batch_size))
    store.write_chunk(k, [{"o": _result_row(p, next(results), names, opts.headline is not None)}
                          if isinstance(p, InputRecord) else {"r": p.to_row()} for p in parsed])
    return len(records)


def _build_analyzer(opts: ScoreOptions, shard: Shard):
    import torch

    from xinwen.inference.analyzer import NewsAnalyzer
    from xinwen.inference.topic.classifier import override_text_settings

    if opts.threads:
        torch.set_num_threads(opts.threads)
    elif shard.local_world_size > 1 and not torch.cuda.is_available():
        # Processes sharing one machine's CPUs: split the cores instead of oversubscribing them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard.local_world_size))
    device = opts.device
    if device is None and shard.world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{shard.local_rank}"
    analyzer = NewsAnalyzer.from_pretrained(opts.classifier, opts.headline, device=device, backend=opts.backend,
                                            first_stage=opts.first_stage)
    try:
        override_text_settings(analyzer.classifier, opts.long_text, opts.max_length)
    except ValueError as err:
        raise ScoringError(str(err)) from None
    return analyzer


def run_score_job(opts: ScoreOptions, analyzer: Any = None, shard: Shard | None = None) -> ScoreSummary:
    """Score ``opts.input`` into ``opts.output``. ``analyzer`` (a ``NewsAnalyzer``) is loaded from
    ``opts`` when not given."""
    try:
        return _run(opts, analyzer, shard)
    except ChunkStoreError as err:
        raise ScoringError(str(err)) from err


def _run(opts: ScoreOptions, analyzer: Any, shard: Shard | None) -> ScoreSummary:
    shard = shard or Shard.from_env()
    reader = RecordReader(opts.input, opts.fields, opts.encoding)  # fails fast on a bad file
    from xinwen.inference.topic.backends import BACKENDS, recorded_backend

    backend = (recorded_backend(opts.classifier) or "torch") if opts.backend == "auto" else opts.backend
    if backend not in BACKENDS:
        raise ScoringError(f"--backend: expected one of {('auto',) + BACKENDS}, got {opts.backend!r}")
    manifest = _manifest(opts, reader, backend)
    store = ChunkStore(opts.parts)
    if shard.rank == 0:
        store.prepare(manifest, resume=opts.resume, overwrite=opts.overwrite)
    _barrier(shard)
    if shard.rank != 0:
        store.check_manifest(manifest)
    committed = store.committed()
    if analyzer is None:
        analyzer = _build_analyzer(opts, shard)
    names = output_names(opts.fields)
    summary = ScoreSummary(str(opts.input), str(opts.output), str(opts.rejects), rank=shard.rank,
                           world_size=shard.world_size)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)

    bar = _progress_bar(reader, opts.progress and shard.rank == 0)
    started = time.perf_counter()
    model = analyzer.classifier.model
    rechecks_before = (model.rows, model.rechecked) if hasattr(model, "rechecked") else None
    stage_before = tuple(analyzer.classifier.first_stage_counts)
    buffer: list[RawItem] = []
    index = 0

    def finish_chunk(k: int) -> None:
        nonlocal buffer
        if buffer:
            summary.articles_scored_here += _score_chunk(store, k, buffer, reader, analyzer, opts, names)
            summary.chunks_scored += 1
            buffer = []
            if pause:
                time.sleep(pause)
        if bar is not None:
            bar.update(reader.position() - bar.n)
            elapsed = time.perf_counter() - started
            bar.set_postfix_str(f"{summary.articles_scored_here / elapsed:.1f} articles/s", refresh=False)

    for raw in reader:
        k = index // opts.chunk_size
        if k % shard.world_size == shard.rank and k not in committed:
            buffer.append(raw)
        index += 1
        if index % opts.chunk_size == 0:
            finish_chunk(k)
    if index % opts.chunk_size:
        finish_chunk(index // opts.chunk_size)
    if bar is not None:
        bar.close()
    summary.records = index
    summary.chunks = math.ceil(index / opts.chunk_size)
    summary.chunks_resumed = len({k for k in committed if k < summary.chunks})
    summary.seconds = time.perf_counter() - started
    if rechecks_before is not None:  # this job's rows only (an analyzer may serve several jobs)
        summary.fp32_rechecks = (model.rows - rechecks_before[0], model.rechecked - rechecks_before[1])
    if analyzer.classifier.first_stage is not None:
        seen, answered = analyzer.classifier.first_stage_counts
        summary.first_stage_answers = (seen - stage_before[0], answered - stage_before[1])

    store.mark_done(shard.rank, shard.world_size, {"records": index, "chunks_scored": summary.chunks_scored})
    if shard.rank != 0:
        return summary
    store.wait_for_ranks(shard.world_size)
    columns = list(names.values()) + ["label", "score", "scores"] + (["headline"] if opts.headline else [])
    counts = store.merge(summary.chunks, opts.output, opts.rejects, columns, list(analyzer.classifier.labels))
    summary.scored, summary.rejected_by_kind = counts["scored"], counts["rejected_by_kind"]
    summary.rejected = sum(summary.rejected_by_kind.values())
    if not opts.keep_parts:
        store.remove()
    return summary


def _progress_bar(reader: RecordReader, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    parquet = reader.format == "parquet"
    # Text files are measured in bytes read, so the bar knows its total (and ETA) without a
    # counting pass over the file; the articles/s rate is shown beside it.
    return tqdm(total=reader.total, unit="rows" if parquet else "B", unit_scale=not parquet,
                unit_divisor=1024, desc=f"scoring {reader.path.name}", dynamic_ncols=True)
