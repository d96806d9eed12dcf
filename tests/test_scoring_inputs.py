"""xinwen score input handling: every bad-input class becomes a reject with its line and reason;
encodings; JSONL/CSV/Parquet in and out; pass-through columns; nothing lost or duplicated."""
from __future__ import annotations

import csv
import io
import json

import pytest
from scoring_helpers import articles, jsonl_lines, read_jsonl, score, single_thread  # noqa: F401  (autouse fixture)

from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.inference.records.readers import Fields, InputError


@pytest.fixture(scope="module")
def analyzer(tiny_classifier_dir):
    return NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"))


def test_every_bad_jsonl_record_is_rejected_with_line_and_reason(tmp_path, analyzer, tiny_classifier_dir):
    good = jsonl_lines(articles(4))
    lines = [
        good[0],                                                  # 1
        '{"id": "broken", "body": "海关',                         # 2 malformed JSON
        '{"id": "nobody", "text": "铁路运输"}',                    # 3 missing field (neither title nor body)
        '{"id": "nullbody", "body": null}',                       # 4 missing field (null)
        '{"id": "empty", "title": " ", "body": "  \\u3000 "}',   # 5 empty article after cleaning
        '{"id": "number", "body": 42}',                           # 6 non-text body
        '{"id": "list", "body": ["铁路"]}',                        # 7 non-text body
        '["not", "an", "object"]',                                # 8 not an object
        good[1],                                                  # 9
        json.dumps({"id": "huge", "body": "铁路" * 400}, ensure_ascii=False),  # 10 oversize (> 1000 bytes)
        "",                                                       # 11 blank: not a record
        good[2],                                                  # 12
        '{"id": "titlenum", "title": 7, "body": "铁路运输"}',       # 13 non-text title
    ]
    data = "\n".join(lines).encode("utf-8") + b"\n" + b'{"id": "badbytes", "body": "\xff\xfe"}\n' + good[3].encode() + b"\n"
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)  # line 14: bytes that are not UTF-8; line 15: good
    out = tmp_path / "out.jsonl"
    summary = score(analyzer, tiny_classifier_dir, path, out, fields=Fields(max_record_bytes=1000), chunk_size=4)

    rejects = {r["line"]: r for r in read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")}
    assert {line: r["kind"] for line, r in rejects.items()} == {
        2: "malformed_json", 3: "missing_field", 4: "missing_field", 5: "empty_article", 6: "non_text",
        7: "non_text", 8: "not_an_object", 10: "oversize", 13: "non_text", 14: "undecodable"}
    assert "column" in rejects[2]["reason"] and "'body'" in rejects[3]["reason"]
    assert "int" in rejects[6]["reason"] and "over --max-record-bytes 1000" in rejects[10]["reason"]
    assert rejects[3]["id"] == "nobody"
    scored = [r["id"] for r in read_jsonl(out)]
    assert scored == ["a0000", "a0001", "a0002", "a0003"]
    # Every record exactly once, in output or rejects; the blank line is neither.
    assert summary.records == len(scored) + len(rejects) == 14
    assert summary.scored == 4 and summary.rejected == 10


def test_oversize_line_is_skipped_without_reading_it_whole(tmp_path, analyzer, tiny_classifier_dir):
    path = tmp_path / "in.jsonl"
    big = json.dumps({"id": "big", "body": "铁" * 5000}, ensure_ascii=False)
    path.write_text("\n".join([big, *jsonl_lines(articles(2))]) + "\n", encoding="utf-8")
    score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl", fields=Fields(max_record_bytes=2000))
    (reject,) = read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")
    assert reject["line"] == 1 and reject["kind"] == "oversize" and "15" in reject["reason"]
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["a0000", "a0001"]


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def test_malformed_csv_rows_are_rejected_and_a_stray_quote_costs_one_row(tmp_path, analyzer, tiny_classifier_dir):
    recs = articles(5)
    text = _csv_text([["id", "title", "body"]] + [[r["id"], r["title"], r["body"]] for r in recs[:2]])
    text += 'short,only two\n'                                  # line 4: too few fields
    text += 'long,a,b,c\n'                                      # line 5: too many fields
    text += 'quote,"unclosed title,铁路\n'                       # line 6: stray quote swallowing what follows
    text += _csv_text([[r["id"], r["title"], r["body"]] for r in recs[2:4]])   # lines 7-8 must survive
    text += 'blank,,\n'                                         # line 9: neither title nor body
    text += _csv_text([["multi", "标题", "铁路运输\n港口物流"]])   # lines 10-11: a legal multi-line field
    text += _csv_text([[recs[4]["id"], recs[4]["title"], recs[4]["body"]]])  # line 12
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out.csv"
    summary = score(analyzer, tiny_classifier_dir, path, out, chunk_size=3)

    rejects = {r["line"]: r["kind"] for r in read_jsonl(tmp_path / "out.csv.rejects.jsonl")}
    assert rejects == {4: "malformed_csv", 5: "malformed_csv", 6: "malformed_csv", 9: "empty_article"}
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == ["a0000", "a0001", "a0002", "a0003", "multi", "a0004"]
    assert set(rows[0]) == {"id", "label", "score", "scores"}
    assert json.loads(rows[0]["scores"])[rows[0]["label"]] == pytest.approx(float(rows[0]["score"]))
    assert summary.records == 10


def test_csv_without_the_body_column_fails_before_scoring(tmp_path, analyzer, tiny_classifier_dir):
    path = tmp_path / "in.csv"
    path.write_text("id,title,text\n1,标题,正文\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no column\(s\) \['body'\].*--body-column"):
        score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl")


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_gbk_gb18030_and_bom_input_is_detected(tmp_path, analyzer, tiny_classifier_dir, encoding, suffix):
    recs = articles(6)
    recs[1]["title"] = "鐵路運輸"  # traditional characters: in GBK and GB18030, not in GB2312
    if encoding == "gb18030":
        recs[2]["title"] = "海关𠀀"  # CJK extension B: GB18030 only
    if suffix == ".jsonl":
        text = "\n".join(jsonl_lines(recs)) + "\n"
    else:
        text = _csv_text([["id", "title", "body"]] + [[r["id"], r["title"], r["body"]] for r in recs])
    utf8 = tmp_path / f"utf8{suffix}"
    utf8.write_text(text, encoding="utf-8")
    encoded = tmp_path / f"encoded{suffix}"
    encoded.write_bytes(text.encode(encoding))
    score(analyzer, tiny_classifier_dir, utf8, tmp_path / "a.jsonl", fields=Fields(keep=("title",)))
    score(analyzer, tiny_classifier_dir, encoded, tmp_path / "b.jsonl", fields=Fields(keep=("title",)))
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [r["title"] for r in read_jsonl(tmp_path / "b.jsonl")][1] == "鐵路運輸"


def test_explicit_encoding_wins_and_wrong_bytes_are_rejected_not_fatal(tmp_path, analyzer, tiny_classifier_dir):
    recs = articles(3)
    path = tmp_path / "in.jsonl"
    # Valid GBK throughout, so auto-detection would pick GB18030; forcing UTF-8 must reject, not crash.
    path.write_bytes(("\n".join(jsonl_lines(recs)) + "\n").encode("gbk"))
    summary = score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl", encoding="utf-8")
    assert summary.scored == 0 and summary.rejected_by_kind == {"undecodable": 3}
    summary = score(analyzer, tiny_classifier_dir, path, tmp_path / "out2.jsonl", encoding="gbk")
    assert summary.scored == 3


def test_parquet_in_and_out_with_pass_through_columns(tmp_path, analyzer, tiny_classifier_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = articles(7)
    table = pa.table({
        "id": list(range(7)), "title": [r["title"] if i != 3 else None for i, r in enumerate(recs)],
        "body": [r["body"] for r in recs[:3]] + [None] + [r["body"] for r in recs[4:]],
        "label": [r["label"] for r in recs], "source": ["x"] * 7,
    })
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=3)
    out = tmp_path / "out.parquet"
    summary = score(analyzer, tiny_classifier_dir, path, out, fields=Fields(keep=("label", "source")), chunk_size=2)
    result = pq.read_table(out)
    assert result.column_names == ["id", "input_label", "source", "label", "score", "scores"]
    assert result.schema.field("id").type == pa.int64()
    assert result.column("id").to_pylist() == [0, 1, 2, 4, 5, 6]
    assert result.column("input_label").to_pylist() == [r["label"] for i, r in enumerate(recs) if i != 3]
    first = result.slice(0, 1).to_pylist()[0]
    assert first["scores"][first["label"]] == pytest.approx(first["score"])
    (reject,) = read_jsonl(tmp_path / "out.parquet.rejects.jsonl")
    assert reject["line"] == 4 and reject["kind"] == "missing_field" and reject["id"] == 3
    assert summary.records == 7

    int_body = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "body": [1, 2]}), int_body)
    summary = score(analyzer, tiny_classifier_dir, int_body, tmp_path / "ints.jsonl")
    assert summary.rejected_by_kind == {"non_text": 2}


def test_formats_convert_and_agree(tmp_path, analyzer, tiny_classifier_dir):
    import pyarrow.parquet as pq

    recs = articles(9)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(jsonl_lines(recs)) + "\n", encoding="utf-8")
    # JSONL -> CSV -> Parquet -> JSONL, carrying the text and the gold label along.
    score(analyzer, tiny_classifier_dir, src, tmp_path / "a.csv",
          fields=Fields(keep=("title", "body", "label")), chunk_size=4)
    score(analyzer, tiny_classifier_dir, tmp_path / "a.csv", tmp_path / "b.parquet",
          fields=Fields(keep=("title", "body", "input_label")), chunk_size=4)
    score(analyzer, tiny_classifier_dir, tmp_path / "b.parquet", tmp_path / "c.jsonl",
          fields=Fields(keep=("input_label",)), chunk_size=4)
    with open(tmp_path / "a.csv", encoding="utf-8", newline="") as f:
        a = list(csv.DictReader(f))
    b = pq.read_table(tmp_path / "b.parquet").to_pylist()
    c = read_jsonl(tmp_path / "c.jsonl")
    assert list(a[0]) == ["id", "title", "body", "input_label", "label", "score", "scores"]
    assert [r["id"] for r in a] == [r["id"] for r in b] == [r["id"] for r in c] == [r["id"] for r in recs]
    # A kept column named like a result field comes through as input_<name>, not overwritten.
    assert [r["input_label"] for r in a] == [r["input_label"] for r in b] == [r["label"] for r in recs]
    assert [r["label"] for r in a] == [r["label"] for r in b] == [r["label"] for r in c]
    assert [float(r["score"]) for r in a] == [r["score"] for r in b] == [r["score"] for r in c]


def test_empty_input_gives_empty_outputs(tmp_path, analyzer, tiny_classifier_dir):
    path = tmp_path / "in.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    summary = score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl")
    assert summary.records == 0
    assert (tmp_path / "out.jsonl").read_text() == "" and (tmp_path / "out.jsonl.rejects.jsonl").read_text() == ""


def test_max_length_override_is_checked_and_applied(tmp_path, tiny_classifier_dir):
    from xinwen.inference.scoring.job import ScoreOptions, ScoringError, Shard, build_analyzer

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"body": "海关贸易"}, ensure_ascii=False) + "\n", encoding="utf-8")
    common = dict(input=src, output=tmp_path / "out.jsonl", classifier=str(tiny_classifier_dir), device="cpu")
    with pytest.raises(ScoringError, match="--max-length: expected an integer 16..4096, got 8"):
        ScoreOptions(**common, max_length=8)
    built = build_analyzer(ScoreOptions(**common, max_length=24, long_text="head"), Shard())
    assert (built.classifier.settings.text.max_length, built.classifier.settings.text.long_text) == (24, "head")
    with pytest.raises(ScoringError, match="at most 128 tokens"):  # the tiny model's position table
        build_analyzer(ScoreOptions(**common, max_length=300), Shard())
