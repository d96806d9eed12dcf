"""Writers for scoring output: JSONL, CSV and Parquet, chosen by the output file's extension.

Each writer takes rows (dicts) one at a time and keeps at most one Parquet row group in memory.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from xinwen.inference.records.readers import input_format


def output_format(path: Path) -> str:
    return input_format(path, what="--output")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=False)
    return value


class JsonlWriter:
    def __init__(self, path: Path, columns: list[str]):
        self._f = open(path, "w", encoding="utf-8", newline="\n")

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._f.close()


class CsvWriter:
    def __init__(self, path: Path, columns: list[str]):
        self._f = open(path, "w", encoding="utf-8", newline="")
        self._w = csv.writer(self._f, lineterminator="\n")
        self._columns = columns
        self._w.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow([_csv_cell(row.get(c)) for c in self._columns])

    def close(self) -> None:
        self._f.close()


class ParquetWriter:
    """Rows to Parquet in row groups of 4096; column types are decided before the first row
    (``arrow_types``), so every row group agrees whatever the values in it."""

    def __init__(self, path: Path, columns: list[str], types: dict[str, Any]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = pa.schema([(c, types[c]) for c in columns])
        self._writer = pq.ParquetWriter(path, self._schema)
        self._rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= 4096:
            self._flush()

    def _flush(self) -> None:
        columns = {}
        for f in self._schema:
            values = [r.get(f.name) for r in self._rows]
            if self._pa.types.is_string(f.type):
                values = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                          for v in values]
            columns[f.name] = values
        self._writer.write_table(self._pa.table(columns, schema=self._schema))
        self._rows.clear()

    def close(self) -> None:
        if self._rows:
            self._flush()
        self._writer.close()


_INT64 = 1 << 63
_FLOAT_EXACT = 1 << 53  # every int up to 2**53 is exactly a float64


def value_kind(value: Any) -> str:
    """The kind of one value as ``arrow_type`` needs it: its type name, with ints split by size
    (JSON ids can be any integer; int64 holds some, float64 fewer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return type(value).__name__
    if not -_INT64 <= value < _INT64:
        return "bigint"
    return "int" if abs(value) <= _FLOAT_EXACT else "int64"


def arrow_type(kinds: set[str]):
    """One Arrow type for a column from the value kinds seen in it (``value_kind``; None ignored).

    Numbers keep a numeric type only where every value survives it exactly: ints beyond int64, and
    ints beyond 2**53 mixed with floats, make the column text (the decimal digits), never a
    rounded or overflowing number."""
    import pyarrow as pa

    kinds = kinds - {"NoneType"}
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds and kinds <= {"int", "int64"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()  # strings, huge ints, mixed types and nested values (as JSON text)


def open_writer(path: Path, fmt: str, columns: list[str], types: dict[str, Any] | None = None):
    if fmt == "jsonl":
        return JsonlWriter(path, columns)
    if fmt == "csv":
        return CsvWriter(path, columns)
    return ParquetWriter(path, columns, types or {})
