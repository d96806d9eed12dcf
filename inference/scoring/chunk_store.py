"""The folder where a scoring job commits its chunks (``OUTPUT.parts/``), and the final merge.

Every write goes to a temporary name in the same folder, is fsynced, and is renamed into place:
a rename within a filesystem is atomic, so after a kill -9 each file is complete or absent, never
half written. The merge writes OUTPUT and OUTPUT.rejects.jsonl the same way, and the folder is
removed only after both renames, so a job killed during the merge merges again on ``--resume``.

``OutputLock`` keeps a second job off an output while one is writing it (``OUTPUT.lock``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from xinwen.inference.records.writers import arrow_type, open_writer, output_format, value_kind

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class ChunkStoreError(ValueError):
    pass


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform/filesystem allows it; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(final: Path) -> Path:
    # Per-process names: several processes may write beside each other.
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def commit(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


class OutputLock:
    """An exclusive ``flock`` on ``OUTPUT.lock`` for the life of one job.

    Two jobs on one output would commit into the same chunk folder (one's chunks merged as the
    other's results), and ``--overwrite`` would delete a live job's work. The kernel drops a flock
    when its process exits or is killed, so a crashed job never leaves a stale lock behind.
    The file holds the owner's pid and host, for the message the second job gets."""

    def __init__(self, path: Path, output: Path):
        self.path, self.output = path, output
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
                os.close(fd)
                raise ChunkStoreError(
                    f"--output {self.output} is being written by another xinwen score job ({owner}); two jobs "
                    "on one output would mix their chunks, and --overwrite would delete the live job's work. "
                    "fix: wait for it to finish (or stop it), or choose another --output") from None
            # A finishing job unlinks the file after we opened it: then we hold a lock on a file no
            # one else will see, so start over on the current one.
            if self._same_file(fd):
                self._fd = fd
            else:
                os.close(fd)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        return self

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        # Unlink while still holding the lock, so no one can lock the old file in between.
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


class ChunkStore:
    def __init__(self, folder: Path):
        self.folder = folder

    def chunk_path(self, k: int) -> Path:
        return self.folder / f"chunk-{k:08d}.jsonl"

    def committed(self) -> set[int]:
        if not self.folder.is_dir():
            return set()
        return {int(p.name[6:14]) for p in self.folder.glob("chunk-*.jsonl")}

    def write_chunk(self, k: int, entries: list[dict[str, Any]]) -> None:
        """Commit one chunk: its entries ``{"o": result row}`` / ``{"r": reject row}`` in input order."""
        final = self.chunk_path(k)
        tmp = tmp_name(final)
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for entry in entries:
                f.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
        commit(tmp, final)

    # -- the job's identity --------------------------------------------------------------------
    def check_manifest(self, expected: dict[str, Any]) -> None:
        found = json.loads((self.folder / MANIFEST).read_text())
        changed = [f"{k}: the interrupted run had {found.get(k)!r}, this one has {v!r}"
                   for k, v in expected.items() if _jsonable(found.get(k)) != _jsonable(v)]
        if changed:
            raise ChunkStoreError(f"--resume: {self.folder} belongs to a different job ({'; '.join(changed)}). "
                                  "fix: rerun with the original options, or pass --overwrite to start over")

    def prepare(self, manifest: dict[str, Any], resume: bool, overwrite: bool) -> None:
        """Process 0, before anyone scores: check or reset the folder and write the manifest."""
        has_manifest = (self.folder / MANIFEST).is_file()
        committed = self.committed()
        if resume and has_manifest:
            self.check_manifest(manifest)
        elif committed and not overwrite:
            raise ChunkStoreError(f"{self.folder} holds {len(committed)} committed chunks of an earlier run. "
                                  "fix: pass --resume to continue it, or --overwrite to start over")
        elif resume:
            logger.info("--resume: no earlier run in %s; starting from the beginning", self.folder)
        if self.folder.is_dir() and not (resume and has_manifest):
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in list(self.folder.glob(".*.tmp-*")) + list(self.folder.glob("done-rank*.json")):
            stale.unlink()  # half-written files of a killed run; done markers of an earlier attempt
        tmp = tmp_name(self.folder / MANIFEST)
        # ASCII escapes: a path that is not valid UTF-8 (surrogate-escaped by Python) still writes.
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        commit(tmp, self.folder / MANIFEST)

    # -- several processes ---------------------------------------------------------------------
    def mark_done(self, rank: int, world_size: int, info: dict[str, Any]) -> None:
        final = self.folder / f"done-rank{rank}-of{world_size}.json"
        tmp = tmp_name(final)
        tmp.write_text(json.dumps(info) + "\n")
        commit(tmp, final)

    def wait_for_ranks(self, world_size: int, poll_s: float = 2.0) -> None:
        # Files, not a collective: a process-group barrier times out (30 min by default) when one
        # process's share takes much longer than another's; a done marker can wait as long as needed.
        pending = set(range(world_size))
        last_log = time.monotonic()
        while True:
            pending = {r for r in pending if not (self.folder / f"done-rank{r}-of{world_size}.json").is_file()}
            if not pending:
                return
            if time.monotonic() - last_log > 60:
                logger.info("waiting for processes %s to finish their chunks", sorted(pending))
                last_log = time.monotonic()
            time.sleep(poll_s)

    # -- the merge -------------------------------------------------------------------------------
    def merge(self, n_chunks: int, output: Path, rejects: Path, columns: list[str],
              labels: list[str]) -> dict[str, Any]:
        """Concatenate chunks 0..n-1, in index order, into ``output`` and ``rejects``."""
        missing = [k for k in range(n_chunks) if not self.chunk_path(k).is_file()]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            raise ChunkStoreError(f"cannot merge: chunks {shown} of {n_chunks} are missing from {self.folder}. "
                                  "fix: rerun the same command with --resume")
        fmt = output_format(output)
        types = self._parquet_types(n_chunks, columns, labels) if fmt == "parquet" else None
        out_tmp, rej_tmp = tmp_name(output), tmp_name(rejects)
        writer = open_writer(out_tmp, fmt, columns, types)
        scored, kinds = 0, Counter()
        try:
            with open(rej_tmp, "w", encoding="utf-8", newline="\n") as rejected:
                for k in range(n_chunks):
                    with open(self.chunk_path(k), encoding="utf-8") as f:
                        for line in f:
                            entry = json.loads(line)
                            if "o" in entry:
                                writer.write(entry["o"])
                                scored += 1
                            else:
                                rejected.write(json.dumps(entry["r"], ensure_ascii=False) + "\n")
                                kinds[entry["r"]["kind"]] += 1
        finally:
            writer.close()
        # Rejects first: if we die between the two renames, the chunks are still here and
        # --resume merges again; the output file only ever appears complete.
        commit(rej_tmp, rejects)
        commit(out_tmp, output)
        return {"scored": scored, "rejected_by_kind": dict(kinds)}

    def _parquet_types(self, n_chunks: int, columns: list[str], labels: list[str]) -> dict[str, Any]:
        # One pass to decide each pass-through column's type from every value in it, so all row
        # groups share one schema whatever the first rows happened to hold.
        import pyarrow as pa

        kinds: dict[str, set[str]] = {c: set() for c in columns}
        for k in range(n_chunks):
            with open(self.chunk_path(k), encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line).get("o")
                    if row is not None:
                        for c in columns:
                            kinds[c].add(value_kind(row.get(c)))
        types = {c: arrow_type(kinds[c]) for c in columns}
        types.update(label=pa.string(), score=pa.float64(), headline=pa.string(),
                     scores=pa.struct([(label, pa.float64()) for label in labels]))
        return types

    def remove(self) -> None:
        shutil.rmtree(self.folder)
