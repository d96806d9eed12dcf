"""The one record reader of the project: JSONL, CSV and Parquet, for ``xinwen score`` and training.

Readers hold one record at a time (plus, for CSV, the lines of one broken record while they are
re-read), so memory does not grow with the file. Reading is split in two steps so a job can skip
records cheaply (on ``--resume``, or records another process scores):

- iterating a reader yields ``RawItem``: where a record is (1-based line; for Parquet the 1-based
  row) and its undecoded payload, or the problem that stopped it from being a record at all;
- ``reader.parse(raw)`` turns one into an ``InputRecord`` or a ``Reject`` (line + kind + reason).

``xinwen score`` writes rejects to a file and goes on; training (training/data/files.py) reports
them as errors. Both therefore accept exactly the same files and the same articles.

An article is a title and/or a body: a record with only a title is read, one whose title and
body are both empty after cleaning is rejected (``empty_article``).

Which columns must exist is checked when the reader opens, before any work: the body column
(unless ``Fields.body`` is None), every ``keep`` column and every column in ``Fields.required``.
CSV and Parquet show their columns in the header; for JSONL "exists" means some record has it, so
the reader reads until it has seen each one (usually in the first record).

Text encodings: UTF-8 (with or without BOM), GB18030 and GBK, detected from the first MiB or
given. GB18030 reads nearly every GBK file (and the characters GBK lacks); GBK is tried last for
the cp936 extras GB18030 refuses (0x80 for €). Files are split on the byte ``\\n`` before
decoding, which is safe for all three: no multi-byte character contains 0x0A. UTF-16 files are
refused with the command that converts them (split on ``\\n`` they would decode as garbage).
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

from xinwen.inference.text import EMPTY_ARTICLE, ArticleText, clean_article, is_empty_article

logger = logging.getLogger(__name__)

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gbk", "gb18030")
# Reject kinds, stable names for scripts that post-process the rejects file.
MALFORMED_JSON, MALFORMED_CSV, NOT_AN_OBJECT = "malformed_json", "malformed_csv", "not_an_object"
MISSING_FIELD, EMPTY_ARTICLE_KIND, NON_TEXT, OVERSIZE, UNDECODABLE, INVALID_TEXT = (
    "missing_field", "empty_article", "non_text", "oversize", "undecodable", "invalid_text")
_SNIFF_BYTES = 1 << 20
_SCORE_COLUMN_FIX = "pass --body-column / --title-column / --id-column / --keep with names from the file"
_EXCERPT_CHARS = 120


class InputError(ValueError):
    """A problem with the whole input (not one record): the job cannot start."""


@dataclass(frozen=True)
class Fields:
    """Which columns hold the text, which pass through to the output, and the size limit."""

    body: str | None = "body"  # None: the file has titles only
    title: str | None = "title"
    id: str | None = "id"
    keep: tuple[str, ...] = ()
    # Columns the user named on purpose (``--title-column x``): a file without them is refused
    # before any work. The defaults are optional: many files have no title or no id.
    required: tuple[str, ...] = ()
    # A record larger than this (raw bytes) is rejected, not read: one runaway record must not
    # take the job's memory. 1 MiB is ~300k Chinese characters, far beyond any news article.
    max_record_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        problems = []
        if not self.body and not self.title:
            problems.append("--body-column and --title-column are both empty; name at least one text column")
        names = [c for c in (self.body, self.title, self.id, *self.keep, *self.required) if c is not None]
        if any(not isinstance(c, str) or not c or _invalid_text(c) for c in names):
            problems.append(f"column names must be non-empty text, got {names!r}")
        if not isinstance(self.max_record_bytes, int) or self.max_record_bytes < 1:
            problems.append(f"--max-record-bytes: expected a positive number of bytes, got {self.max_record_bytes!r}")
        if problems:
            raise InputError("; ".join(problems))

    @classmethod
    def from_column_flags(cls, body: str | None, title: str | None, id: str | None, keep: tuple[str, ...] = (),
                          max_record_bytes: int = 1 << 20) -> "Fields":
        """The ``--body/--title/--id-column`` flags as Fields: None takes the default column (used
        when the file has it), '' turns a column off, and a column named on purpose must exist."""
        def chosen(value: str | None, default: str) -> str | None:
            return default if value is None else (value or None)

        return cls(body=body or None, title=chosen(title, "title"), id=chosen(id, "id"), keep=keep,
                   required=tuple(c for c in (title, id) if c), max_record_bytes=max_record_bytes)

    def passthrough(self) -> list[str]:
        names = ([self.id] if self.id else []) + [k for k in self.keep if k != self.id]
        return list(dict.fromkeys(names))

    def must_exist(self) -> list[str]:
        return list(dict.fromkeys(c for c in (self.body, *self.keep, *self.required) if c))


@dataclass(frozen=True)
class RawItem:
    line: int
    payload: Any = None  # JSONL: bytes; CSV: list of fields; Parquet: dict
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
        # The reject row is written as UTF-8: a lone surrogate in the id (the very reason for an
        # invalid_text reject) or in a key named in the reason is shown as its \\udXXX escape.
        return _printable(row)


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
        valid[encoding] = sum(_decodes(line, encoding) for line in lines)
    best = max(valid, key=lambda e: valid[e])  # max keeps the first of equals: utf-8 first
    if valid[best] == 0:
        raise InputError(f"{path}: no line of the first MiB is UTF-8, GB18030 or GBK text; "
                         "fix: convert the file to UTF-8 or pass --encoding")
    return best


def _decodes(line: bytes, encoding: str) -> bool:
    try:
        line.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _check_not_utf16(path: Path) -> None:
    # Windows "Unicode" text is UTF-16: split on the byte \n it decodes as GB18030 garbage, which
    # would be scored (or trained on) without a word of warning.
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head:
        raise InputError(f"{path}: looks like UTF-16 text (a UTF-16 byte-order mark or NUL bytes); expected "
                         f"UTF-8, GB18030 or GBK. fix: `iconv -f UTF-16 -t UTF-8 {path} > converted{path.suffix}`")


def _excerpt(text: str) -> str:
    return text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else "")


def _invalid_text(value: Any, name: str = "") -> str | None:
    """Where ``value`` (a string, or text nested in lists/dicts) holds something that is not
    Unicode text, or None. JSON's ``\\ud800`` escape decodes to a lone surrogate, which no UTF-8
    writer and no tokenizer accepts: such a record must become a reject, not a crash."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            bad = value[err.start:err.end].encode("utf-8", "backslashreplace").decode("ascii")
            return f"field {name!r} holds {bad} at character {err.start}, half of a UTF-16 surrogate pair"
        return None
    if isinstance(value, dict):
        items = list(value.items())
        return next((p for k, v in items for p in (_invalid_text(str(k), f"{name}.<key>"),
                                                   _invalid_text(v, f"{name}.{k}")) if p), None)
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := _invalid_text(v, f"{name}[{i}]"))), None)
    return None


def _printable(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by its visible ``\\udXXX`` escape."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8") if _invalid_text(value) else value
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def validate_row(obj: dict[str, Any], fields: Fields = Fields(), line: int = 0,
                 size: int | None = None) -> InputRecord | Reject:
    """One record (a mapping of columns) as an ``InputRecord``, or the ``Reject`` saying why not:
    the checks every format and engine share (``RecordReader.parse`` calls it; so does the Ray
    engine on the rows of a batch). ``size``: the record's raw bytes (default: the UTF-8 bytes of
    its title and body, as for a Parquet row)."""
    f = fields
    rid = obj.get(f.id) if f.id else None
    body = obj.get(f.body) if f.body else None
    title = obj.get(f.title) if f.title else None
    if size is None:
        size = sum(len(v.encode("utf-8", "surrogatepass")) for v in (body, title) if isinstance(v, str))
    if size > f.max_record_bytes:
        return Reject(line, OVERSIZE, f"record is {size} bytes, over --max-record-bytes {f.max_record_bytes}", id=rid)
    if body is None and title is None:
        named = " or ".join(repr(c) for c in (f.body, f.title) if c)
        return Reject(line, MISSING_FIELD, f"missing field {named} (found {sorted(map(str, obj))[:12]}); "
                      "fix: add it or pass --body-column / --title-column", id=rid)
    for name, value in ((f.body, body), (f.title, title)):
        if value is not None and not isinstance(value, str):
            return Reject(line, NON_TEXT, f"field {name!r} must be text, got {type(value).__name__} "
                          f"{_excerpt(repr(value))}", id=rid)
    passthrough = {k: obj.get(k) for k in f.passthrough()}
    checked = {f.body: body, f.title: title, **passthrough}
    bad = next((p for name, value in checked.items() if name and (p := _invalid_text(value, name))), None)
    if bad:
        return Reject(line, INVALID_TEXT, f"{bad}, which is not text; fix: repair or drop the escape in the record",
                      id=rid)
    article = clean_article(title, body)
    if is_empty_article(article):
        named = " and ".join(repr(c) for c in (f.title, f.body) if c)
        return Reject(line, EMPTY_ARTICLE_KIND, f"article {EMPTY_ARTICLE} (fields {named})", id=rid)
    return InputRecord(line, article, {"title": title or "", "body": body or ""}, passthrough)


class RecordReader:
    """Iterate ``RawItem`` over a JSONL/CSV/Parquet file; ``parse`` each one you need."""

    def __init__(self, path: str | Path, fields: Fields = Fields(), encoding: str = "auto", what: str = "--input",
                 column_fix: str = _SCORE_COLUMN_FIX):
        """``what`` names the file in errors; ``column_fix`` says how to name other columns (the
        flags of ``xinwen score`` by default; training names its config keys)."""
        self.path = Path(path)
        self.what, self.column_fix = what, column_fix
        self.format = _check_path(self.path, what)
        if encoding not in ENCODINGS:
            raise InputError(f"--encoding: expected one of {list(ENCODINGS)}, got {encoding!r}")
        self.fields = fields
        self.encoding = "utf-8" if self.format == "parquet" else self._text_encoding(encoding)
        self._file: BinaryIO | None = None
        self._rows_read = 0
        self.columns: list[str] | None = None
        if self.format == "parquet":
            self._open_parquet()
        elif self.format == "csv":
            self._read_csv_header()
        else:
            self._check_jsonl_columns()

    def _text_encoding(self, encoding: str) -> str:
        _check_not_utf16(self.path)
        if encoding == "auto":
            return detect_encoding(self.path)
        with open(self.path, "rb") as f:
            bom = f.read(3) == codecs.BOM_UTF8
        return "utf-8-sig" if bom and encoding == "utf-8" else encoding  # a BOM is not part of line 1

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
            obj = self._json_object(raw)
            return obj if isinstance(obj, Reject) else validate_row(obj, self.fields, raw.line, raw.size)
        if self.format == "csv":
            if len(raw.payload) != len(self.columns):
                return Reject(raw.line, MALFORMED_CSV,
                              f"malformed CSV row: expected {len(self.columns)} fields "
                              f"({','.join(self.columns)}), got {len(raw.payload)}",
                              _excerpt(",".join(raw.payload)))
            return validate_row(dict(zip(self.columns, raw.payload)), self.fields, raw.line, raw.size)
        return validate_row(raw.payload, self.fields, raw.line, raw.size)

    def _json_object(self, raw: RawItem) -> dict[str, Any] | Reject:
        try:
            text = raw.payload.decode(self.encoding)
        except UnicodeDecodeError as err:
            return Reject(raw.line, UNDECODABLE,
                          f"bytes {err.start}-{err.end} are not valid {self.encoding}; "
                          "fix: pass the right --encoding or repair the line")
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            where = f": {err.msg} at column {err.colno}" if isinstance(err, json.JSONDecodeError) else ": nested too deep"
            return Reject(raw.line, MALFORMED_JSON, f"malformed JSON{where}", _excerpt(text))
        if not isinstance(obj, dict):
            return Reject(raw.line, NOT_AN_OBJECT,
                          f"expected a JSON object per line, got {type(obj).__name__}", _excerpt(text))
        return obj

    def _missing_columns(self, present: set[str], how: str) -> None:
        f = self.fields
        missing = [c for c in f.must_exist() if c not in present]
        if f.title and not f.body and f.title not in present:
            missing.append(f.title)
        if missing:
            raise InputError(f"{self.path}: {how} {missing}; found {sorted(present)[:30]}. fix: {self.column_fix}")

    # -- JSONL ---------------------------------------------------------------------------------
    def _check_jsonl_columns(self) -> None:
        """Read until every needed column was seen in some record (normally just the first);
        the whole file only when one is missing, so a typo'd column stops the job before any work."""
        f = self.fields
        needed = set(f.must_exist()) | ({f.title} if f.title and not f.body else set())
        seen: set[str] = set()
        first = True
        for raw in self._iter_jsonl():
            if first:
                self._check_not_json_array(raw)
                first = False
            obj = None if raw.problem else self._json_object(raw)
            if isinstance(obj, dict):
                seen |= {str(k) for k in obj}
                if needed <= seen:
                    return
        if seen:  # no object at all: every line is a reject, which the job reports per line
            self._missing_columns(seen, "no record has the column(s)")

    def _check_not_json_array(self, raw: RawItem) -> None:
        head = raw.payload.lstrip() if isinstance(raw.payload, bytes) else b""
        if head == b"[" or head.startswith((b"[{", b"[ {")):
            raise InputError(f"{self.path}: is one JSON array; expected JSON Lines (one object per line). "
                             f"fix: `jq -c '.[]' {self.path} > {self.path.stem}.jsonl`")

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
                    yield self._skip_long_line(line, line_no, limit)
                    continue
                if line_no == 1 and self.encoding == "utf-8-sig":
                    line = line.removeprefix(codecs.BOM_UTF8)
                payload = line.rstrip(b"\r\n")
                if payload.strip():  # blank lines separate nothing and are not records
                    yield RawItem(line_no, payload, None, len(payload))

    def _skip_long_line(self, line: bytes, line_no: int, limit: int) -> RawItem:
        size = len(line)
        head = line[:_EXCERPT_CHARS * 4].decode(self.encoding, errors="replace")
        while not line.endswith(b"\n"):
            line = self._file.readline(1 << 20)
            if not line:
                break
            size += len(line)
        return RawItem(line_no, head, (OVERSIZE, f"line is {size} bytes, over --max-record-bytes {limit}"),
                       size)

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
        if not self.columns:  # no header at all: no records, nothing to check the flags against
            logger.warning("%s is empty: no header line, no records", self.path)
            return
        self._missing_columns(set(self.columns), "no column(s)")

    def _iter_csv(self) -> Iterator[RawItem]:
        if not self.columns:
            return
        # csv caps a field's size; keep the cap above our own record limit so that our check,
        # with its clear reason, is the one that fires.
        csv.field_size_limit(max(csv.field_size_limit(), 4 * self.fields.max_record_bytes))
        with open(self.path, "rb") as self._file:
            lines = self._decoded_lines(self._file)
            next(lines, None)  # header, read in __init__
            yield from self._csv_records(lines)

    def _csv_records(self, lines: Iterator[tuple[int, str, bool]]) -> Iterator[RawItem]:
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
            broken = problem is not None or len(row) != len(self.columns)
            if broken and len(taken) > 1:
                # A stray quote can swallow the following lines into one "record". Reject only
                # its first line and read the others again, so one bad quote costs one record.
                pending.extendleft(reversed(taken[1:]))
                yield RawItem(taken[0][0], taken[0][1],
                              (MALFORMED_CSV, f"malformed CSV row: {problem or 'unbalanced quotes'}"),
                              len(taken[0][1]))
                reader = csv.reader(feed(), strict=True)
                continue
            yield self._csv_item(row, problem, taken)

    def _csv_item(self, row: list[str] | None, problem: str | None, taken: list[tuple[int, str, bool]]) -> RawItem:
        first = taken[0][0]
        size = sum(len(t[1].encode(self.encoding, errors="replace")) for t in taken)
        if problem is not None:
            return RawItem(first, taken[0][1], (MALFORMED_CSV, f"malformed CSV row: {problem}"), size)
        if not all(t[2] for t in taken):
            return RawItem(first, "".join(t[1] for t in taken),
                           (UNDECODABLE, f"bytes are not valid {self.encoding}; fix: pass the right --encoding"),
                           size)
        return RawItem(first, row, None, size)

    # -- Parquet -------------------------------------------------------------------------------
    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        try:
            self._parquet = pq.ParquetFile(self.path)
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise InputError(f"{self.path}: cannot be read as Parquet ({err}); "
                             "fix: check the file is complete, or give it its real extension") from err
        self.columns = list(self._parquet.schema_arrow.names)
        self._missing_columns(set(self.columns), "no column(s)")

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
                yield RawItem(row_no, row, None, size)


def _check_path(path: Path, what: str) -> str:
    """The file's format, after the checks that need no reading: there, a file, a known extension."""
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; expected a JSONL, CSV or Parquet file")
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist; give a JSONL, CSV or Parquet file")
    fmt = input_format(path, what)
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise InputError(f"{what} {str(path)!r} cannot be read ({err.strerror}); fix: check its permissions") from err
    return fmt

