"""Streaming record readers and writers for batch scoring: JSONL, CSV and Parquet.

Readers hold one record at a time (plus, for CSV, the lines of one broken record while they are
re-read), so memory does not grow with the file. Reading is split in two steps so a job can skip
records cheaply (on ``--resume``, or records another process scores):

- iterating a reader yields ``RawItem``: where a record is (1-based line; for Parquet the 1-based
  row) and its undecoded payload, or the problem that stopped it from being a record at all;
- ``reader.parse(raw)`` turns one into an ``InputRecord`` or a ``Reject`` (line + reason).

Text encodings: UTF-8 (with or without BOM), GB18030 and GBK, detected from the first MiB or
given. GB18030 reads nearly every GBK file (and the characters GBK lacks); GBK is tried last for
the cp936 extras GB18030 refuses (0x80 for €). Files are split on the byte ``\\n`` before
decoding, which is safe for all three: no multi-byte character contains 0x0A.
"""
from __future__ import annotations

import codecs
import csv
import json
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from xinwen.inference.text import ArticleText, clean_body, clean_title

logger = logging.getLogger(__name__)

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030")
# Reject kinds, stable names for scripts that post-process the rejects file.
MALFORMED_JSON, MALFORMED_CSV, NOT_AN_OBJECT = "malformed_json", "malformed_csv", "not_an_object"
MISSING_FIELD, EMPTY_BODY, NON_TEXT, OVERSIZE, UNDECODABLE = (
    "missing_field", "empty_body", "non_text", "oversize", "undecodable")
_SNIFF_BYTES = 1 << 20
_EXCERPT_CHARS = 120


class InputError(ValueError):
    """A problem with the whole input (not one record): the job cannot start."""


@dataclass(frozen=True)
class Fields:
    """Which columns hold the text, which pass through to the output, and the size limit."""

    body: str = "body"
    title: str | None = "title"
    id: str | None = "id"
    keep: tuple[str, ...] = ()
    # A record larger than this (raw bytes) is rejected, not read: one runaway record must not
    # take the job's memory. 1 MiB is ~300k Chinese characters, far beyond any news article.
    max_record_bytes: int = 1 << 20

    def passthrough(self) -> list[str]:
        names = ([self.id] if self.id else []) + [k for k in self.keep if k != self.id]
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class RawItem:
    line: int
    payload: Any = None  # JSONL: bytes; CSV: list of fields; Parquet: dict
    end_line: int = 0
    problem: tuple[str, str] | None = None  # (kind, reason) when the reader could not frame a record
    size: int = 0


@dataclass(frozen=True)
class Reject:
    line: int
    kind: str
    reason: str
    excerpt: str = ""
    id: Any = None

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"line": self.line, "kind": self.kind, "reason": self.reason}
        if self.id is not None:
            row["id"] = self.id
        if self.excerpt:
            row["excerpt"] = self.excerpt
        return row


@dataclass(frozen=True)
class InputRecord:
    line: int
    article: ArticleText  # cleaned title/body, as the classifier reads them
    original: dict[str, str]  # title/body as given, for the headline generator (it prepares its own text)
    passthrough: dict[str, Any] = field(default_factory=dict)


def input_format(path: Path, what: str = "--input") -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{what} {str(path)!r}: unsupported extension {path.suffix!r}; "
                         f"expected one of {sorted(FORMATS)}")
    return fmt


def detect_encoding(path: Path) -> str:
    """The encoding under which most lines of the first MiB decode: utf-8 (utf-8-sig with a BOM),
    else gb18030, else gbk; ties go to that order. Counting lines rather than demanding a clean
    decode lets a UTF-8 file with one corrupt line stay UTF-8 (that line becomes a reject)."""
    with open(path, "rb") as f:
        sample = f.read(_SNIFF_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    lines = sample.split(b"\n")
    if len(sample) == _SNIFF_BYTES and len(lines) > 1:
        lines.pop()  # cut by the sample's end
    lines = [line for line in lines if not line.isascii()]
    if not lines:
        return "utf-8"
    valid = {}
    for encoding in ("utf-8", "gb18030", "gbk"):
        valid[encoding] = 0
        for line in lines:
            try:
                line.decode(encoding)
                valid[encoding] += 1
            except UnicodeDecodeError:
                pass
    best = max(valid, key=lambda e: valid[e])  # max keeps the first of equals: utf-8 first
    if valid[best] == 0:
        raise InputError(f"{path}: no line of the first MiB is UTF-8, GB18030 or GBK text; "
                         "fix: convert the file to UTF-8 or pass --encoding")
    return best


def _excerpt(text: str) -> str:
    return text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else "")


class RecordReader:
    """Iterate ``RawItem`` over a JSONL/CSV/Parquet file; ``parse`` each one you need."""

    def __init__(self, path: str | Path, fields: Fields = Fields(), encoding: str = "auto"):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"--input {str(self.path)!r} does not exist; give a JSONL, CSV or Parquet file")
        if encoding not in ENCODINGS:
            raise InputError(f"--encoding: expected one of {list(ENCODINGS)}, got {encoding!r}")
        self.format = input_format(self.path)
        self.fields = fields
        self.encoding = "utf-8" if self.format == "parquet" else (
            detect_encoding(self.path) if encoding == "auto" else encoding)
        self._file: BinaryIO | None = None
        self._rows_read = 0
        self.columns: list[str] | None = None
        if self.format == "parquet":
            self._open_parquet()
        elif self.format == "csv":
            self._read_csv_header()

    # -- progress: bytes for text files, rows for Parquet ------------------------------------
    @property
    def total(self) -> int:
        return self._parquet.metadata.num_rows if self.format == "parquet" else self.path.stat().st_size

    def position(self) -> int:
        if self.format == "parquet":
            return self._rows_read
        return self._file.tell() if self._file is not None and not self._file.closed else 0

    def __iter__(self) -> Iterator[RawItem]:
        if self.format == "jsonl":
            return self._iter_jsonl()
        if self.format == "csv":
            return self._iter_csv()
        return self._iter_parquet()

    def parse(self, raw: RawItem) -> InputRecord | Reject:
        if raw.problem is not None:
            return Reject(raw.line, raw.problem[0], raw.problem[1], _excerpt(raw.payload or ""))
        if self.format == "jsonl":
            try:
                text = raw.payload.decode(self.encoding)
            except UnicodeDecodeError as err:
                return Reject(raw.line, UNDECODABLE,
                              f"bytes {err.start}-{err.end} are not valid {self.encoding}; "
                              "fix: pass the right --encoding or repair the line")
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                return Reject(raw.line, MALFORMED_JSON, f"malformed JSON: {err.msg} at column {err.colno}",
                              _excerpt(text))
            if not isinstance(obj, dict):
                return Reject(raw.line, NOT_AN_OBJECT,
                              f"expected a JSON object per line, got {type(obj).__name__}", _excerpt(text))
            return self._validate(raw.line, obj, raw.size)
        if self.format == "csv":
            if len(raw.payload) != len(self.columns):
                return Reject(raw.line, MALFORMED_CSV,
                              f"malformed CSV row: expected {len(self.columns)} fields "
                              f"({','.join(self.columns)}), got {len(raw.payload)}",
                              _excerpt(",".join(raw.payload)))
            return self._validate(raw.line, dict(zip(self.columns, raw.payload)), raw.size)
        return self._validate(raw.line, raw.payload, raw.size)

    # -- checks shared by every format ---------------------------------------------------------
    def _validate(self, line: int, obj: dict[str, Any], size: int) -> InputRecord | Reject:
        f = self.fields
        rid = obj.get(f.id) if f.id else None
        if size > f.max_record_bytes:
            return Reject(line, OVERSIZE, f"record is {size} bytes, over --max-record-bytes {f.max_record_bytes}",
                          id=rid)
        if f.body not in obj or obj[f.body] is None:
            found = sorted(obj)[:12]
            return Reject(line, MISSING_FIELD, f"missing field {f.body!r} (found {found}); "
                          "fix: add it or pass --body-column", id=rid)
        body, title = obj[f.body], obj.get(f.title) if f.title else None
        for name, value in ((f.body, body), (f.title, title)):
            if value is not None and not isinstance(value, str):
                return Reject(line, NON_TEXT, f"field {name!r} must be text, got {type(value).__name__} "
                              f"{_excerpt(repr(value))}", id=rid)
        clean = clean_title(title or "")
        cleaned = clean_body(body, clean)
        if not cleaned:
            return Reject(line, EMPTY_BODY, f"field {f.body!r} is empty after cleaning", id=rid)
        return InputRecord(line, ArticleText(clean, cleaned), {"title": title or "", "body": body},
                           {k: obj.get(k) for k in f.passthrough()})

    # -- JSONL ---------------------------------------------------------------------------------
    def _iter_jsonl(self) -> Iterator[RawItem]:
        limit = self.fields.max_record_bytes
        with open(self.path, "rb") as self._file:
            line_no = 0
            while True:
                # readline(limit + 2) bounds memory: a longer line is skipped piece by piece.
                line = self._file.readline(limit + 2)
                if not line:
                    return
                line_no += 1
                if not line.endswith(b"\n") and len(line) >= limit + 2:
                    size = len(line)
                    head = line[:_EXCERPT_CHARS * 4].decode(self.encoding, errors="replace")
                    while not line.endswith(b"\n"):
                        line = self._file.readline(1 << 20)
                        if not line:
                            break
                        size += len(line)
                    yield RawItem(line_no, head, line_no,
                                  (OVERSIZE, f"line is {size} bytes, over --max-record-bytes {limit}"), size)
                    continue
                if line_no == 1 and self.encoding == "utf-8-sig":
                    line = line.removeprefix(codecs.BOM_UTF8)
                payload = line.rstrip(b"\r\n")
                if payload.strip():  # blank lines separate nothing and are not records
                    yield RawItem(line_no, payload, line_no, None, len(payload))

    # -- CSV -----------------------------------------------------------------------------------
    def _decoded_lines(self, f: BinaryIO) -> Iterator[tuple[int, str, bool]]:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and self.encoding == "utf-8-sig":
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield line_no, raw.decode(self.encoding), True
            except UnicodeDecodeError:
                yield line_no, raw.decode(self.encoding, errors="replace"), False

    def _read_csv_header(self) -> None:
        with open(self.path, "rb") as f:
            for _, text, ok in self._decoded_lines(f):
                if not ok:
                    raise InputError(f"{self.path}:1: the CSV header is not valid {self.encoding}; pass --encoding")
                self.columns = next(csv.reader([text]), [])
                break
        if not self.columns:
            raise InputError(f"{self.path}: empty CSV; expected a header line with a {self.fields.body!r} column")
        self._check_columns(self.columns)

    def _iter_csv(self) -> Iterator[RawItem]:
        # csv caps a field's size; keep the cap above our own record limit so that our check,
        # with its clear reason, is the one that fires.
        csv.field_size_limit(max(csv.field_size_limit(), 4 * self.fields.max_record_bytes))
        with open(self.path, "rb") as self._file:
            lines = self._decoded_lines(self._file)
            next(lines, None)  # header, read in __init__
            pending: deque[tuple[int, str, bool]] = deque()  # lines to re-read after a broken record
            taken: list[tuple[int, str, bool]] = []

            def feed() -> Iterator[str]:
                while True:
                    item = pending.popleft() if pending else next(lines, None)
                    if item is None:
                        return
                    taken.append(item)
                    yield item[1]

            reader = csv.reader(feed(), strict=True)
            while True:
                taken.clear()
                try:
                    row, problem = next(reader), None
                except StopIteration:
                    if not taken:
                        return
                    row, problem = None, "unexpected end of file inside a quoted field"
                except csv.Error as err:
                    row, problem = None, str(err)
                if row is not None and not row and len(taken) == 1 and not taken[0][1].strip():
                    continue  # blank line
                first, last = taken[0][0], taken[-1][0]
                size = sum(len(t[1].encode(self.encoding, errors="replace")) for t in taken)
                broken = problem is not None or len(row) != len(self.columns)
                if broken and len(taken) > 1:
                    # A stray quote can swallow the following lines into one "record". Reject only
                    # its first line and read the others again, so one bad quote costs one record.
                    pending.extendleft(reversed(taken[1:]))
                    yield RawItem(first, taken[0][1], first,
                                  (MALFORMED_CSV, f"malformed CSV row: {problem or 'unbalanced quotes'}"),
                                  len(taken[0][1]))
                    reader = csv.reader(feed(), strict=True)
                    continue
                if problem is not None:
                    yield RawItem(first, taken[0][1], last, (MALFORMED_CSV, f"malformed CSV row: {problem}"), size)
                elif not all(t[2] for t in taken):
                    yield RawItem(first, "".join(t[1] for t in taken), last,
                                  (UNDECODABLE, f"bytes are not valid {self.encoding}; fix: pass the right --encoding"),
                                  size)
                else:
                    yield RawItem(first, row, last, None, size)

    # -- Parquet -------------------------------------------------------------------------------
    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        try:
            self._parquet = pq.ParquetFile(self.path)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise InputError(f"{self.path}: cannot be read as Parquet ({err})") from err
        self.columns = list(self._parquet.schema_arrow.names)
        self._check_columns(self.columns)

    def _iter_parquet(self) -> Iterator[RawItem]:
        wanted = [c for c in (self.fields.body, self.fields.title, *self.fields.passthrough())
                  if c and c in self.columns]
        wanted = list(dict.fromkeys(wanted))
        row_no = 0
        for batch in self._parquet.iter_batches(batch_size=1024, columns=wanted):
            for row in batch.to_pylist():
                row_no += 1
                self._rows_read = row_no
                size = sum(len(v.encode("utf-8")) if isinstance(v, str) else 0
                           for v in (row.get(self.fields.body), row.get(self.fields.title)))
                yield RawItem(row_no, row, row_no, None, size)

    def _check_columns(self, columns: list[str]) -> None:
        f = self.fields
        missing = [c for c in (f.body, *f.keep) if c not in columns]
        if missing:
            raise InputError(f"{self.path}: no column(s) {missing}; found {columns}. "
                             "fix: pass --body-column / --keep with names from the file")
