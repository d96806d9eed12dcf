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

import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .record_io import Fields, InputError, InputRecord, RawItem, RecordReader, arrow_type, open_writer, output_format

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
    # Records per committed chunk; also the window sorted by length before batching. 512 keeps a
    # chunk to about a minute of CPU work (so a crash loses little) and its memory to a few MB.
    chunk_size: int = 512
    batch_size: int = 32
    max_batch_tokens: int | None = None
    headline_batch_size: int = 16
    top_k: int | None = None
    threshold: float | None = None
    long_text: str | None = None  # override the model's text.long_text (head, head_tail, chunks)
    resume: bool = False
    overwrite: bool = False
    keep_parts: bool = False
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.input, self.output = Path(self.input), Path(self.output)
        problems = []
        if self.chunk_size < 1 or self.batch_size < 1 or self.headline_batch_size < 1:
            problems.append("--chunk-size, --batch-size and --headline-batch-size must be >= 1")
        if self.long_text not in (None, "head", "head_tail", "chunks"):
            problems.append(f"--long-text: expected head, head_tail or chunks, got {self.long_text!r}")
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
            f"output: {self.output}; rejects: {self.rejects}"])


# -- files ---------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported on every platform/filesystem; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def _chunk_path(parts: Path, k: int) -> Path:
    return parts / f"chunk-{k:08d}.jsonl"


def _committed(parts: Path) -> set[int]:
    if not parts.is_dir():
        return set()
    return {int(p.name[6:14]) for p in parts.glob("chunk-*.jsonl")}


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
        "long_text": opts.long_text,
    }


def _check_manifest(parts: Path, expected: dict[str, Any]) -> None:
    found = json.loads((parts / "manifest.json").read_text())
    changed = [f"{k}: the interrupted run had {found.get(k)!r}, this one has {v!r}"
               for k, v in expected.items() if _jsonable(found.get(k)) != _jsonable(v)]
    if changed:
        raise ScoringError(f"--resume: {parts} belongs to a different job ({'; '.join(changed)}). "
                           "fix: rerun with the original options, or pass --overwrite to start over")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _prepare_parts(opts: ScoreOptions, manifest: dict[str, Any]) -> None:
    """Process 0, before anyone scores: check or reset the parts folder and write the manifest."""
    parts = opts.parts
    committed = _committed(parts)
    if parts.is_dir() and (parts / "manifest.json").is_file() and opts.resume:
        _check_manifest(parts, manifest)
    elif committed and not opts.overwrite:
        raise ScoringError(f"{parts} holds {len(committed)} committed chunks of an earlier run. "
                           "fix: pass --resume to continue it, or --overwrite to start over")
    elif opts.resume:
        logger.info("--resume: no earlier run in %s; starting from the beginning", parts)
    if parts.is_dir() and not (opts.resume and (parts / "manifest.json").is_file()):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    for stale in list(parts.glob(".*.tmp-*")) + list(parts.glob("done-rank*.json")):
        stale.unlink()  # half-written files of the killed run; done markers of an earlier attempt
    tmp = _tmp_name(parts / "manifest.json")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    _commit(tmp, parts / "manifest.json")


# -- distributed ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        """This process's place in a launch by ``accelerate launch``/``torchrun`` (RANK, WORLD_SIZE)
        or mpirun (OMPI_/PMI_ variables); a single process otherwise."""
        env = os.environ
        if max(int(env.get(k, "1")) for k in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")) <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState()  # joins the process group that the launcher set up
        local_world = int(env.get("LOCAL_WORLD_SIZE") or env.get("OMPI_COMM_WORLD_LOCAL_SIZE") or state.num_processes)
        return cls(state.process_index, state.num_processes, state.local_process_index, local_world)


def _barrier(shard: Shard) -> None:
    if shard.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _wait_for_ranks(parts: Path, shard: Shard, poll_s: float = 2.0) -> None:
    # Files, not a collective: a process group barrier times out (30 min by default) when one
    # process's share takes much longer than another's; a done marker can wait as long as needed.
    pending = set(range(shard.world_size))
    last_log = time.monotonic()
    while True:
        pending = {r for r in pending if not (parts / f"done-rank{r}-of{shard.world_size}.json").is_file()}
        if not pending:
            return
        if time.monotonic() - last_log > 60:
            logger.info("waiting for processes %s to finish their chunks", sorted(pending))
            last_log = time.monotonic()
        time.sleep(poll_s)


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


def _score_chunk(k: int, items: list[RawItem], reader: RecordReader, analyzer: Any, opts: ScoreOptions,
                 names: dict[str, str]) -> int:
    parsed = [reader.parse(raw) for raw in items]
    records = [p for p in parsed if isinstance(p, InputRecord)]
    results = iter(analyzer.analyze_prepared(
        [r.article for r in records], [r.original for r in records], top_k=opts.top_k, threshold=opts.threshold,
        batch_size=opts.batch_size, max_batch_tokens=opts.max_batch_tokens,
        headline_batch_size=opts.headline_batch_size))
    final = _chunk_path(opts.parts, k)
    tmp = _tmp_name(final)
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for p in parsed:
            entry = ({"o": _result_row(p, next(results), names, opts.headline is not None)}
                     if isinstance(p, InputRecord) else {"r": p.to_row()})
            f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
    _commit(tmp, final)
    return len(records)


def _build_analyzer(opts: ScoreOptions, shard: Shard):
    import torch

    from .analyzer import NewsAnalyzer

    if opts.threads:
        torch.set_num_threads(opts.threads)
    elif shard.local_world_size > 1 and not torch.cuda.is_available():
        # Processes sharing one machine's CPUs: split the cores instead of oversubscribing them.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard.local_world_size))
    device = opts.device
    if device is None and shard.world_size > 1 and torch.cuda.is_available():
        device = f"cuda:{shard.local_rank}"
    analyzer = NewsAnalyzer.from_pretrained(opts.classifier, opts.headline, device=device, backend=opts.backend)
    if opts.long_text:
        settings = analyzer.classifier.settings
        settings.text = replace(settings.text, long_text=opts.long_text)
    return analyzer


def run_score_job(opts: ScoreOptions, analyzer: Any = None, shard: Shard | None = None) -> ScoreSummary:
    """Score ``opts.input`` into ``opts.output``. ``analyzer`` (a ``NewsAnalyzer``) is loaded from
    ``opts`` when not given."""
    shard = shard or Shard.from_env()
    reader = RecordReader(opts.input, opts.fields, opts.encoding)  # fails fast on a bad file
    from .backends import BACKENDS, recorded_backend

    backend = (recorded_backend(opts.classifier) or "torch") if opts.backend == "auto" else opts.backend
    if backend not in BACKENDS:
        raise ScoringError(f"--backend: expected one of {('auto',) + BACKENDS}, got {opts.backend!r}")
    manifest = _manifest(opts, reader, backend)
    if shard.rank == 0:
        _prepare_parts(opts, manifest)
    _barrier(shard)
    if shard.rank != 0:
        _check_manifest(opts.parts, manifest)
    committed = _committed(opts.parts)
    if analyzer is None:
        analyzer = _build_analyzer(opts, shard)
    names = output_names(opts.fields)
    summary = ScoreSummary(str(opts.input), str(opts.output), str(opts.rejects), rank=shard.rank,
                           world_size=shard.world_size)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)

    bar = _progress_bar(reader, opts.progress and shard.rank == 0)
    started = time.perf_counter()
    buffer: list[RawItem] = []
    index = 0

    def finish_chunk(k: int) -> None:
        nonlocal buffer
        if buffer:
            summary.articles_scored_here += _score_chunk(k, buffer, reader, analyzer, opts, names)
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

    marker = opts.parts / f"done-rank{shard.rank}-of{shard.world_size}.json"
    tmp = _tmp_name(marker)
    tmp.write_text(json.dumps({"records": index, "chunks_scored": summary.chunks_scored}) + "\n")
    _commit(tmp, marker)
    if shard.rank != 0:
        return summary
    _wait_for_ranks(opts.parts, shard)
    labels = list(analyzer.classifier.labels)
    counts = merge_parts(opts, summary.chunks, names, labels)
    summary.scored, summary.rejected_by_kind = counts["scored"], counts["rejected_by_kind"]
    summary.rejected = sum(summary.rejected_by_kind.values())
    if not opts.keep_parts:
        shutil.rmtree(opts.parts)
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


def merge_parts(opts: ScoreOptions, n_chunks: int, names: dict[str, str], labels: list[str]) -> dict[str, Any]:
    """Concatenate the committed chunks, in index order, into the output and rejects files."""
    parts = opts.parts
    missing = [k for k in range(n_chunks) if not _chunk_path(parts, k).is_file()]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ScoringError(f"cannot merge: chunks {shown} of {n_chunks} are missing from {parts}. "
                           "fix: rerun the same command with --resume")
    fmt = output_format(opts.output)
    columns = list(names.values()) + ["label", "score", "scores"] + (["headline"] if opts.headline else [])
    types = _parquet_types(parts, n_chunks, columns, labels) if fmt == "parquet" else None
    out_tmp, rej_tmp = _tmp_name(opts.output), _tmp_name(opts.rejects)
    writer = open_writer(out_tmp, fmt, columns, types)
    scored, kinds = 0, Counter()
    try:
        with open(rej_tmp, "w", encoding="utf-8", newline="\n") as rejects:
            for k in range(n_chunks):
                with open(_chunk_path(parts, k), encoding="utf-8") as f:
                    for line in f:
                        entry = json.loads(line)
                        if "o" in entry:
                            writer.write(entry["o"])
                            scored += 1
                        else:
                            rejects.write(json.dumps(entry["r"], ensure_ascii=False) + "\n")
                            kinds[entry["r"]["kind"]] += 1
    finally:
        writer.close()
    # Rejects first: if we die between the two renames, the parts are still there and --resume
    # merges again; the output file only ever appears complete.
    _commit(rej_tmp, opts.rejects)
    _commit(out_tmp, opts.output)
    return {"scored": scored, "rejected_by_kind": dict(kinds)}


def _parquet_types(parts: Path, n_chunks: int, columns: list[str], labels: list[str]) -> dict[str, Any]:
    # One pass to decide each pass-through column's type from every value in it, so all row
    # groups share one schema whatever the first rows happened to hold.
    import pyarrow as pa

    kinds: dict[str, set[str]] = {c: set() for c in columns}
    for k in range(n_chunks):
        with open(_chunk_path(parts, k), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line).get("o")
                if row is not None:
                    for c in columns:
                        kinds[c].add(type(row.get(c)).__name__)
    types = {c: arrow_type(kinds[c]) for c in columns}
    types.update(label=pa.string(), score=pa.float64(), headline=pa.string(),
                 scores=pa.struct([(label, pa.float64()) for label in labels]))
    return types
