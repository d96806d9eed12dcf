"""User data from JSONL, CSV or Parquet (through ``datasets``), checked record by record.

Every problem names the file, the row (1-based line for JSONL/CSV, 0-based row for Parquet), the
field, what was expected and how to fix it.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(ValueError):
    pass


def _quiet_datasets() -> None:
    # Local files only: no hub lookups, no download-counter pings.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")


def _check_jsonl(path: Path) -> int:
    """Validate every line; return the number of records."""
    n = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: malformed JSON ({err.msg}); each line must be one JSON object") from err
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object per line, got {type(obj).__name__}")
            n += 1
    return n


def read_table(path: str | Path) -> list[dict]:
    """Rows of a JSONL/CSV/Parquet file as dicts, through ``datasets``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; give a JSONL, CSV or Parquet path")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported extension {path.suffix!r}; expected one of {sorted(FORMATS)}")
    if path.stat().st_size == 0 or (fmt == "json" and _check_jsonl(path) == 0):
        return []  # the caller reports the empty split with its name
    _quiet_datasets()
    import datasets

    datasets.disable_progress_bars()
    try:
        kwargs = {"keep_default_na": False} if fmt == "csv" else {}
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train", **kwargs)
    except Exception as err:  # datasets wraps parser errors in several exception types
        raise DataError(f"{path}: could not be read as {fmt.upper()}: {err}") from err
    return ds.to_list()


def _row_name(path: Path, i: int) -> str:
    # JSONL/CSV rows map to file lines (CSV has a header line); Parquet rows are 0-based.
    if path.suffix.lower() == ".parquet":
        return f"{path} row {i}"
    return f"{path}:{i + (2 if path.suffix.lower() == '.csv' else 1)}"


def load_labelled(path: str | Path, title_column: str, body_column: str, label_column: str | None,
                  id_column: str | None, labels: list[str] | None) -> list[dict]:
    """Records ``{id, title, body, label}``; ``label_column=None`` for unlabelled data."""
    path = Path(path)
    rows = read_table(path)
    if not rows:
        raise DataError(f"{path}: no rows; the split must contain at least one record")
    columns = set(rows[0])
    wanted = [c for c in (title_column, body_column, label_column) if c]
    missing = [c for c in wanted if c not in columns and not (c == title_column and body_column in columns)]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {sorted(columns)}. "
            f"Set data.title_column / data.body_column / data.label_column to the right names"
        )
    out = []
    for i, row in enumerate(rows):
        title = row.get(title_column) if title_column in columns else ""
        body = row.get(body_column)
        for name, value in ((title_column, title), (body_column, body)):
            if value is not None and not isinstance(value, str):
                raise DataError(f"{_row_name(path, i)}: field {name!r} must be text, got {value!r}")
        if not (title or "").strip() and not (body or "").strip():
            raise DataError(f"{_row_name(path, i)}: both {title_column!r} and {body_column!r} are empty")
        rec = {"id": str(row.get(id_column)) if id_column and row.get(id_column) is not None else f"{path.name}:{i}",
               "title": title or "", "body": body or ""}
        if label_column:
            label = row.get(label_column)
            if labels is not None and label not in labels:
                raise DataError(
                    f"{_row_name(path, i)}: label {label!r} is not in data.labels {labels}; "
                    "fix the row or add the label to data.labels in the config"
                )
            rec["label"] = label
        out.append(rec)
    return out
