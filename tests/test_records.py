"""One record reader: training data goes through the reader `xinwen score` uses, so a file that
scores also trains (formats, encodings, title-only articles) and both name the same bad records."""
from __future__ import annotations

import json

import pytest
from tiny_models import topic_records

from xinwen.inference.records.readers import Fields, InputRecord, RecordReader, validate_row
from xinwen.training.data.files import DataError, load_labelled

LABELS = ["industry_policy", "transport", "trade", "safety", "other"]


def _lines(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_training_reads_the_gbk_files_score_reads(tmp_path, encoding):
    recs = topic_records(2)
    recs[0]["title"] = "鐵路運輸"  # in GBK, not in GB2312
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(_lines(recs).encode(encoding))
    csv_path = tmp_path / "t.csv"
    rows = ["id,title,body,label"] + [f'{r["id"]},{r["title"]},{r["body"]},{r["label"]}' for r in recs]
    csv_path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    for path in (jsonl, csv_path):
        loaded = load_labelled(path, "title", "body", "label", "id", LABELS)
        assert [(r["id"], r["title"], r["body"], r["label"]) for r in loaded] == [
            (r["id"], r["title"], r["body"], r["label"]) for r in recs]


def test_training_and_scoring_name_the_same_bad_records(tmp_path):
    recs = topic_records(1)
    lines = _lines(recs[:2]).splitlines() + [
        '{"id": "x", "title": "a", "body": ',             # 3 malformed
        '{"id": "y", "body": 5, "label": "other"}',       # 4 non-text
        '{"id": "z", "title": " ", "label": "other"}',   # 5 empty article
        '{"id": "\\ud800", "body": "海关", "label": "trade"}',  # 6 lone surrogate
        json.dumps({"id": "w", "title": "仅标题", "label": "trade"}, ensure_ascii=False),  # 7 title-only: fine
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reader = RecordReader(path, Fields(keep=("label",)))
    rejected = [p.line for p in map(reader.parse, reader) if not isinstance(p, InputRecord)]
    assert rejected == [3, 4, 5, 6]
    with pytest.raises(DataError) as err:
        load_labelled(path, "title", "body", "label", "id", LABELS)
    message = str(err.value)
    assert "4 record(s) cannot be used" in message
    for line in rejected:
        assert f"t.jsonl:{line}: " in message
    assert "malformed JSON" in message and "must be text" in message and "neither a title nor a body" in message
    assert "half of a UTF-16 surrogate pair" in message


def test_every_problem_of_a_file_is_reported_at_once_capped(tmp_path):
    recs = topic_records(5)  # 25 records
    for rec in recs:
        rec["label"] = "sports"
    path = tmp_path / "t.jsonl"
    path.write_text(_lines(recs), encoding="utf-8")
    with pytest.raises(DataError, match=r"25 record\(s\) cannot be used") as err:
        load_labelled(path, "title", "body", "label", "id", LABELS)
    assert "t.jsonl:20: label 'sports'" in str(err.value) and "t.jsonl:21:" not in str(err.value)
    assert "... and 5 more" in str(err.value)


def test_parquet_rows_are_named_from_one_and_title_only_records_train(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"title": ["海关贸易", "铁路"], "body": [None, "高铁"], "label": ["trade", "bogus"]}), path)
    with pytest.raises(DataError, match=r"t.parquet row 2: label 'bogus'"):
        load_labelled(path, "title", "body", "label", None, LABELS)
    pq.write_table(pa.table({"title": ["海关贸易"], "body": [None], "label": ["trade"]}), path)
    (rec,) = load_labelled(path, "title", "body", "label", None, LABELS)
    assert rec == {"id": "t.parquet:0", "title": "海关贸易", "body": "", "label": "trade"}


def test_a_missing_label_column_names_the_config_key(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(_lines([{"title": "a", "body": "b"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"no record has the column\(s\) \['label'\].*data.label_column"):
        load_labelled(path, "title", "body", "label", None, LABELS)


def test_validate_row_is_the_readers_check_for_rows_already_in_memory():
    fields = Fields(keep=("label",))
    ok = validate_row({"title": "海关", "body": "贸易", "label": "trade", "id": 7}, fields, line=3)
    assert isinstance(ok, InputRecord) and ok.passthrough == {"id": 7, "label": "trade"} and ok.line == 3
    bad = validate_row({"body": "\ud800"}, fields, line=4)
    assert bad.kind == "invalid_text" and bad.to_row()["reason"].startswith("field 'body' holds \\ud800")
