"""The batch scoring job behind ``xinwen score``: streaming, crash-safe, shardable.

While it runs, the job keeps its state beside the output::

    OUTPUT.lock                         held by the running job; a second job on OUTPUT is refused
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

Everything that can be checked without scoring is checked first (``preflight``): every option's
range, the input's columns, the output path, the model folders, and that no other job holds the
output. A mistake therefore costs seconds, never a finished job's worth of work.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from xinwen.inference.encoders.loading import ModelFolderError
from xinwen.inference.records.readers import (ENCODINGS, Fields, InputError, InputRecord, RawItem, RecordReader,
                                              Reject)
from xinwen.inference.records.writers import output_format
from xinwen.inference.scoring.chunk_store import ChunkStore, ChunkStoreError, OutputLock
from xinwen.inference.settings import BACKENDS

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
        problems = option_problems(self) + path_problems(self)
        if problems:
            raise ScoringError("; ".join(problems))

    @property
    def parts(self) -> Path:
        return self.output.with_name(self.output.name + ".parts")

    @property
    def rejects(self) -> Path:
        return self.output.with_name(self.output.name + ".rejects.jsonl")

    @property
    def lock(self) -> Path:
        return self.output.with_name(self.output.name + ".lock")


# -- checks before any work -----------------------------------------------------------------------
def _count_problem(flag: str, value: Any, low: int, high: int | None = None, optional: bool = True) -> list[str]:
    if value is None and optional:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        return [f"{flag}: expected an integer {span}, got {value!r}"]
    return []


def option_problems(o: ScoreOptions) -> list[str]:
    """Every flag's range, all at once (the CLI's flags have the same names)."""
    problems = (_count_problem("--chunk-size", o.chunk_size, 1, 10_000_000, optional=False)
                + _count_problem("--batch-size", o.batch_size, 1, 65_536, optional=False)
                + _count_problem("--headline-batch-size", o.headline_batch_size, 1, 65_536, optional=False)
                + _count_problem("--max-batch-tokens", o.max_batch_tokens, 16)
                + _count_problem("--top-k", o.top_k, 1) + _count_problem("--threads", o.threads, 1, 4096)
                + _count_problem("--max-length", o.max_length, 16, 4096))
    if o.threshold is not None and not (isinstance(o.threshold, (int, float)) and 0.0 <= o.threshold <= 1.0):
        problems.append(f"--threshold: expected a probability 0..1, got {o.threshold!r}")
    if o.long_text not in (None, "head", "head_tail", "chunks"):
        problems.append(f"--long-text: expected head, head_tail or chunks, got {o.long_text!r}")
    if o.backend not in ("auto", *BACKENDS):
        problems.append(f"--backend: expected one of {['auto', *BACKENDS]}, got {o.backend!r}")
    if o.encoding not in ENCODINGS:
        problems.append(f"--encoding: expected one of {list(ENCODINGS)}, got {o.encoding!r}")
    if o.resume and o.overwrite:
        problems.append("--resume continues the earlier run and --overwrite discards it; pick one")
    return problems + _device_problems(o.device)


def _device_problems(device: str | None) -> list[str]:
    if device is None:
        return []
    import torch

    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        return [f"--device: expected cpu, cuda, cuda:N or mps, got {device!r}"]
    if chosen.type == "cuda" and not torch.cuda.is_available():
        return [f"--device {device}: no CUDA GPU is visible here; fix: pass --device cpu or leave --device out"]
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        return [f"--device {device}: only {torch.cuda.device_count()} GPU(s) here (cuda:0..)"]
    return []


def path_problems(o: ScoreOptions) -> list[str]:
    """The output path is usable, and is none of the job's own inputs: the input itself, or this
    output's rejects, lock, parts or temporary files (writing them would destroy what is read)."""
    problems = []
    try:
        output_format(o.output)
    except InputError as err:
        problems.append(str(err))
    if o.output.is_dir():
        problems.append(f"--output {str(o.output)!r} is a folder; expected a file name such as "
                        f"{str(o.output / 'scored.jsonl')!r}")
    own = _own_file(o)
    if own:
        problems.append(f"--input {str(o.input)!r} is {own}; scoring it into this --output would replace it "
                        "while it is read. fix: choose another --output (or copy the input first)")
    return problems


def _own_file(o: ScoreOptions) -> str | None:
    source, out = o.input.resolve(), o.output.resolve()
    if source == out or (o.input.exists() and o.output.exists() and os.path.samefile(o.input, o.output)):
        return "the same file as --output"
    if source == o.rejects.resolve():
        return "this --output's own rejects file"
    if source == o.lock.resolve():
        return "this --output's lock file"
    if o.parts.resolve() in source.parents:
        return "inside this --output's chunk folder (.parts)"
    if source.parent == out.parent and source.name.startswith((f".{out.name}.tmp-", f".{o.rejects.name}.tmp-")):
        return "a temporary file of this --output"
    return None


def check_model_folders(opts: ScoreOptions) -> None:
    """Refuse a missing, damaged or wrong-kind model folder before any work (seconds, not after
    loading the input's worth of chunks)."""
    from xinwen.inference.encoders.loading import check_classifier_folder, check_headline_folder, check_model_source

    try:
        check_classifier_folder(check_model_source(opts.classifier, what="--classifier"))
        if opts.headline is not None:
            check_headline_folder(check_model_source(opts.headline, what="--headline"))
    except (FileNotFoundError, ModelFolderError) as err:
        raise ScoringError(str(err)) from None


def check_output_free(opts: ScoreOptions) -> None:
    """A finished output is not replaced unless asked: it may be the only copy of hours of work.
    (With chunks in OUTPUT.parts, the chunk store decides: resume, or refuse without a flag.)"""
    if opts.output.exists() and not opts.parts.is_dir() and not opts.overwrite:
        raise ScoringError(f"--output {opts.output} already exists (a finished run?). fix: pass --overwrite to "
                           "replace it, or choose another --output")


def resolve_backend(opts: ScoreOptions) -> str:
    from xinwen.inference.topic.backends import recorded_backend

    return (recorded_backend(opts.classifier) or "torch") if opts.backend == "auto" else opts.backend


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


def job_manifest(opts: ScoreOptions, reader: RecordReader, backend: str) -> dict[str, Any]:
    """What makes two runs the same job (``--resume`` compares it); the Ray engine writes it too."""
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


# -- the rows ------------------------------------------------------------------------------------
def output_names(fields: Fields) -> dict[str, str]:
    """Input column -> output column for pass-through columns; a column named like a result field
    (e.g. a gold ``label`` kept for comparison) is renamed ``input_<name>`` instead of overwritten."""
    return {c: (f"input_{c}" if c in RESULT_FIELDS else c) for c in fields.passthrough()}


def result_row(record: InputRecord, analysis: dict[str, Any], names: dict[str, str], headline: bool) -> dict:
    row = {names[k]: v for k, v in record.passthrough.items()}
    row["label"] = analysis["label"]
    # 6 decimals: plenty for a probability, and stable text across runs.
    row["score"] = round(analysis["score"], 6)
    row["scores"] = {k: round(v, 6) for k, v in analysis["scores"].items()}
    if headline:
        row["headline"] = analysis["headline"]
    return row


def _slices(records: list[InputRecord], opts: ScoreOptions, max_length: int) -> list[list[int]]:
    """The chunk's records in about one classifier batch per slice (the length batcher on
    character counts, a cheap stand-in for tokens), so progress is reported batch by batch while
    each slice is still one length-sorted call. Deterministic: a resumed chunk slices the same."""
    from xinwen.inference.batching import length_batches

    lengths = [min(len(r.article.title) + len(r.article.body) + 2, max_length) for r in records]
    return length_batches(lengths, opts.batch_size, opts.max_batch_tokens or opts.batch_size * max_length)


def chunk_entries(parsed: list[InputRecord | Reject], analyzer: Any, opts: ScoreOptions, names: dict[str, str],
                  on_scored: Callable[[list[int]], None] | None = None) -> list[dict]:
    """One chunk's chunk-store entries, ``{"o": output row}`` or ``{"r": reject row}`` in input
    order. Both engines call it (the Ray engine on its actors), so a chunk is batched, and
    answered, the same way by either. ``on_scored(indices)`` after each slice."""
    index = [i for i, p in enumerate(parsed) if isinstance(p, InputRecord)]
    results: dict[int, dict] = {}
    for part in _slices([parsed[i] for i in index], opts, analyzer.classifier.settings.text.max_length):
        chosen = [index[j] for j in part]
        analyses = analyzer.analyze_prepared(
            [parsed[i].article for i in chosen], [parsed[i].original for i in chosen], top_k=opts.top_k,
            threshold=opts.threshold, batch_size=opts.batch_size, max_batch_tokens=opts.max_batch_tokens,
            headline_batch_size=opts.headline_batch_size)
        results.update(zip(chosen, analyses))
        if on_scored is not None:
            on_scored(chosen)
    return [{"o": result_row(p, results[i], names, opts.headline is not None)}
            if isinstance(p, InputRecord) else {"r": p.to_row()} for i, p in enumerate(parsed)]


def _score_chunk(store: ChunkStore, k: int, items: list[RawItem], reader: RecordReader, analyzer: Any,
                 opts: ScoreOptions, names: dict[str, str], progress: "_Progress") -> int:
    parsed = [reader.parse(raw) for raw in items]
    progress.advance([raw for raw, p in zip(items, parsed) if not isinstance(p, InputRecord)])  # rejects: done
    entries = chunk_entries(parsed, analyzer, opts, names,
                            lambda chosen: progress.advance([items[i] for i in chosen], scored=len(chosen)))
    store.write_chunk(k, entries)
    return sum(isinstance(p, InputRecord) for p in parsed)


class _Progress:
    """The ``score`` bar. Text files are measured in bytes, so the bar knows its total (and ETA)
    without a counting pass; it advances by each record's bytes as the record is scored (one
    classifier batch at a time), and is set to the reader's position at each chunk's end."""

    def __init__(self, reader: RecordReader, enabled: bool):
        self.reader, self.bar, self.scored = reader, None, 0
        self.started = time.perf_counter()
        if enabled:
            from tqdm.auto import tqdm

            parquet = reader.format == "parquet"
            self.bar = tqdm(total=reader.total, unit="rows" if parquet else "B", unit_scale=not parquet,
                            unit_divisor=1024, desc=f"scoring {reader.path.name}", dynamic_ncols=True)

    def advance(self, done: list[RawItem], scored: int = 0) -> None:
        self.scored += scored
        if self.bar is None:
            return
        amount = len(done) if self.reader.format == "parquet" else sum(raw.size for raw in done)
        self.bar.update(max(0, min(amount, self.bar.total - self.bar.n)))
        if scored:
            rate = self.scored / max(time.perf_counter() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{self.scored} articles, {rate:.1f}/s", refresh=False)

    def sync(self) -> None:
        if self.bar is not None:
            self.bar.update(self.reader.position() - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- the job -------------------------------------------------------------------------------------
def build_analyzer(opts: ScoreOptions, shard: Shard):
    """The ``NewsAnalyzer`` for ``opts``; a folder that fails to load is a ScoringError naming it."""
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
    try:
        analyzer = NewsAnalyzer.from_pretrained(opts.classifier, opts.headline, device=device,
                                                backend=opts.backend, first_stage=opts.first_stage)
    except Exception as err:  # the folders passed the checks; what is left is damage we cannot name
        folders = opts.classifier + (f" / {opts.headline}" if opts.headline else "")
        raise ScoringError(f"cannot load the model folder(s) {folders}: {type(err).__name__}: {err}. "
                           "fix: copy the folder again from where it was trained, or retrain it") from err
    try:
        override_text_settings(analyzer.classifier, opts.long_text, opts.max_length)
    except ValueError as err:
        raise ScoringError(str(err)) from None
    return analyzer


def preflight(opts: ScoreOptions, check_models: bool = True, owner: bool = True) -> tuple[RecordReader, str]:
    """Every check that needs no scoring, for any engine: the input and its columns, the model
    folders, the output (``owner``: the process that will write it). Returns the open reader and
    the backend the job will run."""
    reader = RecordReader(opts.input, opts.fields, opts.encoding)
    if check_models:
        check_model_folders(opts)
    if owner:
        check_output_free(opts)
    backend = resolve_backend(opts)
    if backend not in BACKENDS:
        raise ScoringError(f"{opts.classifier}: recorded backend {backend!r} is none of {list(BACKENDS)}; "
                           "fix: pass --backend, or export the folder again")
    return reader, backend


@contextlib.contextmanager
def output_lock(opts: ScoreOptions):
    """Hold ``OUTPUT.lock`` (see ``OutputLock``); creates the output's folder if it is missing."""
    try:
        if not opts.output.parent.is_dir():
            logger.info("creating the output folder %s", opts.output.parent)
            opts.output.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(opts.lock, opts.output).acquire()
    except OSError as err:  # a read-only folder, or a file where a folder should be
        raise ScoringError(f"--output {opts.output}: cannot write in {opts.output.parent} ({err.strerror or err}); "
                           "fix: choose an --output in a folder you can write") from None
    try:
        yield
    finally:
        lock.release()


def run_score_job(opts: ScoreOptions, analyzer: Any = None, shard: Shard | None = None) -> ScoreSummary:
    """Score ``opts.input`` into ``opts.output``. ``analyzer`` (a ``NewsAnalyzer``) is loaded from
    ``opts`` when not given (and the model folders are then checked first)."""
    shard = shard or Shard.from_env()
    try:
        reader, backend = preflight(opts, check_models=analyzer is None, owner=shard.rank == 0)
        # Process 0 owns the output; the others only add chunks to the folder it prepared.
        with output_lock(opts) if shard.rank == 0 else contextlib.nullcontext():
            return _run(opts, reader, backend, analyzer, shard)
    except (ChunkStoreError, ModelFolderError) as err:
        raise ScoringError(str(err)) from err


def _run(opts: ScoreOptions, reader: RecordReader, backend: str, analyzer: Any, shard: Shard) -> ScoreSummary:
    manifest = job_manifest(opts, reader, backend)
    store = ChunkStore(opts.parts)
    if shard.rank == 0:
        check_output_free(opts)  # again, under the lock: a job that just finished may have written it
        store.prepare(manifest, resume=opts.resume, overwrite=opts.overwrite)
    _barrier(shard)
    if shard.rank != 0:
        store.check_manifest(manifest)
    committed = store.committed()
    analyzer = analyzer or build_analyzer(opts, shard)
    summary = ScoreSummary(str(opts.input), str(opts.output), str(opts.rejects), rank=shard.rank,
                           world_size=shard.world_size)
    _score_share(opts, reader, analyzer, store, committed, shard, summary)
    store.mark_done(shard.rank, shard.world_size, {"records": summary.records, "chunks_scored": summary.chunks_scored})
    if shard.rank != 0:
        return summary
    store.wait_for_ranks(shard.world_size)
    names = output_names(opts.fields)
    columns = list(names.values()) + ["label", "score", "scores"] + (["headline"] if opts.headline else [])
    counts = store.merge(summary.chunks, opts.output, opts.rejects, columns, list(analyzer.classifier.labels))
    summary.scored, summary.rejected_by_kind = counts["scored"], counts["rejected_by_kind"]
    summary.rejected = sum(summary.rejected_by_kind.values())
    if not opts.keep_parts:
        store.remove()
    return summary


def _score_share(opts: ScoreOptions, reader: RecordReader, analyzer: Any, store: ChunkStore, committed: set[int],
                 shard: Shard, summary: ScoreSummary) -> None:
    """Score this process's chunks that are not committed yet, one chunk in memory at a time."""
    names = output_names(opts.fields)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    progress = _Progress(reader, opts.progress and shard.rank == 0)
    counters = _Counters(analyzer)
    buffer: list[RawItem] = []
    index = 0

    def finish_chunk(k: int) -> None:
        nonlocal buffer
        if buffer:
            summary.articles_scored_here += _score_chunk(store, k, buffer, reader, analyzer, opts, names, progress)
            summary.chunks_scored += 1
            buffer = []
            if pause:
                time.sleep(pause)
        progress.sync()

    for raw in reader:
        k = index // opts.chunk_size
        if k % shard.world_size == shard.rank and k not in committed:
            buffer.append(raw)
        index += 1
        if index % opts.chunk_size == 0:
            finish_chunk(k)
    if index % opts.chunk_size:
        finish_chunk(index // opts.chunk_size)
    progress.close()
    summary.records = index
    summary.chunks = math.ceil(index / opts.chunk_size)
    summary.chunks_resumed = len({k for k in committed if k < summary.chunks})
    summary.seconds = time.perf_counter() - progress.started
    counters.report(summary)


class _Counters:
    """What the backend and the first stage counted during this job (an analyzer may serve several
    jobs, so the totals at the start are subtracted)."""

    def __init__(self, analyzer: Any):
        self.classifier = analyzer.classifier
        self.start = self.classifier.runtime_counts()

    def report(self, summary: ScoreSummary) -> None:
        now, start = self.classifier.runtime_counts(), self.start
        if now.backend_rows is not None:
            summary.fp32_rechecks = (now.backend_rows - start.backend_rows, now.fp32_rechecked - start.fp32_rechecked)
        if self.classifier.first_stage is not None:
            summary.first_stage_answers = (now.articles - start.articles,
                                           now.first_stage_answered - start.first_stage_answered)
