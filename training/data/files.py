"""User data files for training, read by the record reader ``xinwen score`` uses.

Same formats (JSONL, CSV, Parquet), encodings (UTF-8, GB18030, GBK, detected), streaming and
per-record checks as scoring (inference/records/readers.py), so a file that scores also trains.
Training adds its own rule on top (a label must be one of data.labels) and, unlike scoring,
refuses a file with bad records instead of skipping them: a silently smaller training set is
worse than an error. Every problem names the file, the line (Parquet: the row), the field, what
was expected and the fix; all of a file's problems are reported at once (the first 20 shown).
"""
from __future__ import annotations

import logging
from pathlib import Path

from xinwen.inference.records.readers import Fields, InputError, InputRecord, RecordReader, Reject

logger = logging.getLogger(__name__)

MAX_REPORTED = 20
_COLUMN_FIX = "set data.title_column / data.body_column / data.label_column / data.id_column in the config"


class DataError(ValueError):
    pass


def check_saved_data(folder: str | Path, specs: dict[str, str | None], fix: str) -> None:
    """The data files a trained folder's config.yaml names (``{"data.dev": "dev.jsonl"}``) are
    there. Relative paths in it are read from the working directory, so run elsewhere they are
    missing, and "'dev.jsonl' does not exist" alone does not say where the name came from."""
    missing = [f"{key}={spec!r}" for key, spec in specs.items()
               if spec and not spec.startswith("builtin:") and not Path(spec).exists()]
    if missing:
        raise DataError(f"{Path(folder) / 'config.yaml'} names {', '.join(missing)}, not found from {Path.cwd()} "
                        f"(relative paths in it are read from the working directory). fix: {fix}")


def _where(path: Path, reader: RecordReader, line: int) -> str:
    return f"{path} row {line}" if reader.format == "parquet" else f"{path}:{line}"


def _open(path: Path, fields: Fields) -> RecordReader:
    try:
        return RecordReader(path, fields, what="data file", column_fix=_COLUMN_FIX)
    except InputError as err:
        raise DataError(str(err)) from None


def load_labelled(path: str | Path, title_column: str, body_column: str, label_column: str | None,
                  id_column: str | None, labels: list[str] | str | None) -> list[dict]:
    """Records ``{id, title, body, label}`` (title and body as written in the file; the models clean
    them); ``label_column=None`` for unlabelled data; ``labels`` is the allowed set, or
    ``ANY_TEXT_LABEL`` when any non-blank text is a label. Records without an id are named
    ``FILE:INDEX`` (0-based)."""
    path = Path(path)
    fields = Fields(body=body_column or None, title=title_column or None, id=id_column or None,
                    keep=(label_column,) if label_column else ())
    reader = _open(path, fields)
    records: list[dict] = []
    problems: list[str] = []
    for raw in reader:
        parsed = reader.parse(raw)
        problem = parsed.reason if isinstance(parsed, Reject) else _label_problem(parsed, label_column, labels)
        if problem:
            problems.append(f"{_where(path, reader, parsed.line)}: {problem}")
        elif not problems:  # after the first problem only the problems matter
            records.append(_record(parsed, path, len(records), id_column, label_column))
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise DataError(f"{path}: {len(problems)} record(s) cannot be used:\n  {shown}{more}")
    if not records:
        raise DataError(f"{path}: no rows; the split must contain at least one record")
    return records


ANY_TEXT_LABEL = "any"  # `labels` of load_labelled when the file itself defines the label set


def _label_problem(record: InputRecord, label_column: str | None, labels: list[str] | str | None) -> str | None:
    if not label_column or labels is None:
        return None
    label = record.passthrough.get(label_column)
    if label is None or (isinstance(label, str) and not label.strip()):  # the field is missing, null or blank
        expected = "a text label" if labels == ANY_TEXT_LABEL else f"one of {labels}"
        return f"no label (field {label_column!r} is missing, null or blank); expected {expected}"
    if not isinstance(label, str):
        return (f"label {label!r} is {type(label).__name__}, expected text; write it as text "
                f"(in JSONL: \"{label_column}\": \"{label}\")")
    if labels == ANY_TEXT_LABEL or label.strip() in labels:
        return None
    return (f"label {label!r} is not in data.labels {labels}; "
            "fix the row or add the label to data.labels in the config")


def _record(record: InputRecord, path: Path, index: int, id_column: str | None, label_column: str | None) -> dict:
    rid = record.passthrough.get(id_column) if id_column else None
    rec = {"id": str(rid) if rid is not None else f"{path.name}:{index}",
           "title": record.original["title"], "body": record.original["body"]}
    if label_column:
        label = record.passthrough.get(label_column)
        rec["label"] = label.strip() if isinstance(label, str) else label  # " energy" is the label "energy"
    return rec
