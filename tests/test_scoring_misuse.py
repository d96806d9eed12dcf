"""xinwen score misused as a demanding new user would: every mistake is a clear error before any
work (exit 2 on the CLI, naming the flag, file or record), or a reject; nothing is lost."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from scoring_helpers import articles, jsonl_lines, read_jsonl, score, single_thread  # noqa: F401  (autouse fixture)
from tiny_seq2seq import save_tiny_bart

from xinwen.inference.analyzer import NewsAnalyzer
from xinwen.inference.records.readers import Fields, InputError
from xinwen.inference.scoring.chunk_store import OutputLock
from xinwen.inference.scoring.job import ScoringError
from xinwen.inference.text import EMPTY_ARTICLE
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.training.cli import main as xinwen


@pytest.fixture(scope="module")
def analyzer(tiny_classifier_dir):
    return NewsAnalyzer(NewsClassifier.from_pretrained(tiny_classifier_dir, device="cpu"))


@pytest.fixture()
def source(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(articles(5))) + "\n", encoding="utf-8")
    return path


def _cli(classifier, source, output, *extra) -> int:
    return xinwen(["score", "--classifier", str(classifier), "--input", str(source), "--output", str(output),
                   "--no-progress", "--threads", "1", *extra])


# -- bad text never crashes -----------------------------------------------------------------------
def test_lone_surrogates_in_any_field_are_rejects_and_the_job_finishes(tmp_path, tiny_classifier_dir):
    good = jsonl_lines(articles(3))
    lines = [
        good[0],
        '{"id": "\\ud800", "title": "海关", "body": "海关贸易出口"}',          # 2: in the id
        '{"id": "b", "title": "海关", "body": "海关\\udc00贸易"}',             # 3: in the body
        '{"id": "t", "title": "\\ud83d", "body": "海关贸易"}',                 # 4: in the title
        '{"id": "k", "body": "海关贸易", "src": {"\\udfff": ["x"]}}',          # 5: in a kept field's key
        '{"id": "pair", "title": "\\ud83d\\ude00 海关", "body": "海关贸易"}',  # 6: a valid pair: scored
        good[1],
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _cli(tiny_classifier_dir, path, out, "--keep", "src", "--chunk-size", "2") == 0
    rejects = {r["line"]: r for r in read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")}
    assert {line: r["kind"] for line, r in rejects.items()} == {2: "invalid_text", 3: "invalid_text",
                                                                4: "invalid_text", 5: "invalid_text"}
    assert rejects[2]["id"] == "\\ud800" and "field 'id' holds \\ud800" in rejects[2]["reason"]
    assert "field 'body'" in rejects[3]["reason"] and "field 'title'" in rejects[4]["reason"]
    assert "src" in rejects[5]["reason"]
    assert [r["id"] for r in read_jsonl(out)] == ["a0000", "pair", "a0001"]


# -- the output never destroys an input -----------------------------------------------------------
def test_inputs_that_are_the_outputs_own_files_are_refused(tmp_path, analyzer, tiny_classifier_dir, source):
    out = tmp_path / "out.jsonl"
    rejects = tmp_path / "out.jsonl.rejects.jsonl"
    shutil.copy(source, rejects)
    before = rejects.read_bytes()
    with pytest.raises(ScoringError, match="own rejects file.*choose another --output"):
        score(analyzer, tiny_classifier_dir, rejects, out)
    assert rejects.read_bytes() == before and not out.exists()
    (tmp_path / "out.jsonl.parts").mkdir()
    inside = tmp_path / "out.jsonl.parts" / "chunk-00000000.jsonl"
    shutil.copy(source, inside)
    with pytest.raises(ScoringError, match=r"inside this --output's chunk folder"):
        score(analyzer, tiny_classifier_dir, inside, out)
    temp = tmp_path / ".out.jsonl.tmp-123.jsonl"
    shutil.copy(source, temp)
    with pytest.raises(ScoringError, match="a temporary file of this --output"):
        score(analyzer, tiny_classifier_dir, temp, out)
    linked = tmp_path / "linked.jsonl"
    os.link(source, linked)  # another name for the same file
    with pytest.raises(ScoringError, match="the same file as --output"):
        score(analyzer, tiny_classifier_dir, source, linked, overwrite=True)
    assert linked.read_bytes() == source.read_bytes()


def test_a_finished_output_is_replaced_only_with_overwrite(tmp_path, analyzer, tiny_classifier_dir, source):
    out = tmp_path / "out.jsonl"
    score(analyzer, tiny_classifier_dir, source, out)
    first = out.read_bytes()
    for again in ({}, {"resume": True}):
        with pytest.raises(ScoringError, match=r"already exists.*--overwrite"):
            score(analyzer, tiny_classifier_dir, source, out, **again)
    assert out.read_bytes() == first
    assert score(analyzer, tiny_classifier_dir, source, out, overwrite=True).scored == 5


def test_a_second_job_on_a_locked_output_is_refused_even_with_overwrite(tmp_path, analyzer, tiny_classifier_dir,
                                                                       source):
    out = tmp_path / "out.jsonl"
    lock = tmp_path / "out.jsonl.lock"
    with OutputLock(lock, out):
        for flags in ({}, {"overwrite": True}, {"resume": True}):
            with pytest.raises(ScoringError, match=rf"being written by another xinwen score job \(pid {os.getpid()}"):
                score(analyzer, tiny_classifier_dir, source, out, **flags)
        assert not out.exists() and not (tmp_path / "out.jsonl.parts").exists()
    assert not lock.exists()  # released and removed
    assert score(analyzer, tiny_classifier_dir, source, out).scored == 5
    assert not lock.exists()


# -- output paths, checked before any work --------------------------------------------------------
def test_output_paths_are_checked_before_any_work(tmp_path, analyzer, tiny_classifier_dir, source):
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(ScoringError, match=r"--output .*results' is a folder; expected a file name"):
        score(None, tiny_classifier_dir, source, folder)  # no analyzer: nothing may be loaded
    with pytest.raises(ScoringError, match=r"unsupported extension '\.gz'"):
        score(None, tiny_classifier_dir, source, tmp_path / "out.jsonl.gz")
    with pytest.raises(ScoringError, match=r"cannot write in .*in.jsonl.*fix: choose an --output in a folder"):
        score(analyzer, tiny_classifier_dir, source, source / "out.jsonl")  # a file where a folder should be
    nested = tmp_path / "new" / "deeper" / "out.csv"  # a missing folder is created
    assert score(analyzer, tiny_classifier_dir, source, nested).scored == 5 and nested.is_file()


# -- ids any JSON can hold survive every output format --------------------------------------------
IDS = [2**70, -(2**64), 2**63 - 1, 1.5, "x", None, True, {"a": [1]}, 0]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_ids_any_json_can_hold_survive_every_format(tmp_path, analyzer, tiny_classifier_dir, suffix):
    recs = articles(len(IDS))
    for rec, rid in zip(recs, IDS):
        rec["id"] = rid
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(recs)) + "\n", encoding="utf-8")
    out = tmp_path / f"out{suffix}"
    score(analyzer, tiny_classifier_dir, path, out, chunk_size=4)
    if suffix == ".jsonl":
        assert [r["id"] for r in read_jsonl(out)] == IDS
        return
    if suffix == ".csv":
        import csv

        with open(out, encoding="utf-8", newline="") as f:
            got = [r["id"] for r in csv.DictReader(f)]
    else:
        import pyarrow.parquet as pq

        got = pq.read_table(out).column("id").to_pylist()
    # Text columns: each id as its JSON text (CSV writes a missing id as an empty cell).
    expected = [json.dumps(i) if not isinstance(i, str) else i for i in IDS]
    expected[IDS.index(None)] = "" if suffix == ".csv" else None
    if suffix == ".csv":
        expected[IDS.index(True)] = "True"  # csv writes Python's bool text
    assert got == expected


def test_parquet_keeps_numbers_numeric_only_where_every_value_survives(tmp_path, analyzer, tiny_classifier_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"small": [1, 2, 3], "wide": [2**62, 1, 2], "huge": [2**64, 1, 2], "wide_float": [2**60 + 1, 0.5, 1]}
    recs = articles(3)
    for i, rec in enumerate(recs):
        rec.update({name: values[i] for name, values in columns.items()})
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(recs)) + "\n", encoding="utf-8")
    out = tmp_path / "out.parquet"
    score(analyzer, tiny_classifier_dir, path, out, fields=Fields(keep=tuple(columns)))
    table = pq.read_table(out)
    assert table.schema.field("small").type == table.schema.field("wide").type == pa.int64()
    assert table.column("wide").to_pylist() == [2**62, 1, 2]
    assert table.column("huge").to_pylist() == [str(2**64), "1", "2"]  # beyond int64: exact text
    assert table.column("wide_float").to_pylist() == [str(2**60 + 1), "0.5", "1"]  # float64 would round it


# -- model folders, checked before any work -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_headline_dir(tmp_path_factory):
    return save_tiny_bart(tmp_path_factory.mktemp("tiny_headline"))


def _damaged(tmp_path, folder, name: str, content: bytes | None = None, cut: bool = False):
    copy = tmp_path / f"damaged-{len(list(tmp_path.glob('damaged-*')))}-{name}"
    shutil.copytree(folder, copy)
    target = copy / name
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2] if cut else content)
    return copy


def test_wrong_or_damaged_model_folders_fail_before_any_work(tmp_path, tiny_classifier_dir, tiny_encoder_dir,
                                                            tiny_headline_dir, source, caplog):
    out = tmp_path / "out.jsonl"
    cases = [
        (tiny_encoder_dir, [], "holds no trained classifier (BertModel"),
        (tiny_headline_dir, [], "holds a headline model, not a topic classifier. fix: pass it as --headline"),
        (tiny_classifier_dir, ["--headline", str(tiny_classifier_dir)], "holds a topic classifier, not a headline"),
        (tiny_classifier_dir, ["--headline", str(tiny_encoder_dir)], "holds no headline generator (BertModel"),
        (_damaged(tmp_path, tiny_classifier_dir, "config.json", b"{oops"), [], "config.json is not valid JSON"),
        (_damaged(tmp_path, tiny_classifier_dir, "xinwen.json", b"[1]"), [], "xinwen.json holds a JSON list"),
        (_damaged(tmp_path, tiny_classifier_dir, "xinwen.json", json.dumps({"text": {"max_length": 3}}).encode()),
         [], "invalid settings (text.max_length"),
        (_damaged(tmp_path, tiny_classifier_dir, "model.safetensors", cut=True), [], "model.safetensors cannot be read"),
        (tmp_path / "no-such-folder", [], "is not an existing folder"),
    ]
    for classifier, extra, message in cases:
        caplog.clear()
        assert _cli(classifier, source, out, *extra) == 2, message
        assert message in caplog.text
        assert not out.exists() and not (tmp_path / "out.jsonl.parts").exists()


# -- every flag is range-checked ------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--threshold", "5"], "--threshold: expected a probability 0..1, got 5.0"),
    (["--threshold", "nan"], "--threshold: expected a probability 0..1"),
    (["--threads", "-2"], "--threads: expected an integer 1..4096, got -2"),
    (["--device", "potato"], "--device: expected cpu, cuda, cuda:N or mps, got 'potato'"),
    (["--batch-size", "0"], "--batch-size: expected an integer 1..65536, got 0"),
    (["--headline-batch-size", "0"], "--headline-batch-size: expected an integer"),
    (["--chunk-size", "0"], "--chunk-size: expected an integer 1..10000000, got 0"),
    (["--max-batch-tokens", "3"], "--max-batch-tokens: expected an integer >= 16, got 3"),
    (["--top-k", "0"], "--top-k: expected an integer >= 1, got 0"),
    (["--max-length", "8"], "--max-length: expected an integer 16..4096, got 8"),
    (["--max-record-bytes", "0"], "--max-record-bytes: expected a positive number of bytes, got 0"),
    (["--encoding", "latin-1"], "--encoding: expected one of"),
    (["--body-column", "", "--title-column", ""], "--body-column and --title-column are both empty"),
])
def test_every_flag_is_range_checked(tmp_path, tiny_classifier_dir, source, caplog, flags, message):
    assert _cli(tiny_classifier_dir, source, tmp_path / "out.jsonl", *flags) == 2
    assert message in caplog.text


def test_a_gpu_device_is_checked_against_the_gpus_present(tmp_path, tiny_classifier_dir, source, caplog):
    import torch

    wanted, message = (("cuda:99", "only") if torch.cuda.is_available() else ("cuda", "no CUDA GPU is visible here"))
    assert _cli(tiny_classifier_dir, source, tmp_path / "out.jsonl", "--device", wanted) == 2
    assert f"--device {wanted}: {message}" in caplog.text


def test_flag_problems_are_reported_all_at_once(tmp_path, tiny_classifier_dir, source, caplog):
    assert _cli(tiny_classifier_dir, source, tmp_path / "out.jsonl", "--threshold", "5", "--top-k", "0",
                "--device", "potato") == 2
    assert "--threshold" in caplog.text and "--top-k" in caplog.text and "--device" in caplog.text


# -- columns no record has stop the job early -----------------------------------------------------
def test_a_named_column_that_no_record_has_stops_the_job_before_any_work(tmp_path, tiny_classifier_dir, caplog):
    recs = articles(50)
    recs[-1]["source"] = "only the last record has it"
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(recs)) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    for flags, message in ((["--keep", "sorce"], "no record has the column(s) ['sorce']"),
                           (["--id-column", "doc_id"], "no record has the column(s) ['doc_id']"),
                           (["--title-column", "headline"], "no record has the column(s) ['headline']"),
                           (["--body-column", "text"], "no record has the column(s) ['text']; found ['body', 'id'")):
        caplog.clear()
        assert _cli(tiny_classifier_dir, path, out, *flags) == 2
        assert message in caplog.text and "fix: pass --body-column" in caplog.text
        assert not (tmp_path / "out.jsonl.parts").exists()
    assert _cli(tiny_classifier_dir, path, out, "--keep", "source") == 0  # the last record has it: fine
    assert read_jsonl(out)[-1]["source"] == "only the last record has it"


# -- one definition of an article -----------------------------------------------------------------
def test_title_only_is_scored_like_predict_and_an_empty_article_is_a_reject(tmp_path, analyzer, tiny_classifier_dir):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(['{"id": "t", "title": "海关贸易出口进口"}', '{"id": "tb", "title": "海关贸易", "body": " "}',
                               '{"id": "none", "title": "\\u3000", "body": "\\n"}']) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = score(analyzer, tiny_classifier_dir, path, out)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["t", "tb"] and summary.rejected_by_kind == {"empty_article": 1}
    expected = analyzer.classifier.predict({"title": "海关贸易出口进口"})
    assert rows[0]["label"] == expected.label and rows[0]["score"] == pytest.approx(expected.score, abs=1e-6)
    (reject,) = read_jsonl(tmp_path / "out.jsonl.rejects.jsonl")
    assert reject["line"] == 3 and EMPTY_ARTICLE in reject["reason"]  # the words of the Python error
    with pytest.raises(ValueError, match=EMPTY_ARTICLE[:30]):
        analyzer.classifier.predict({"title": "\u3000", "body": "\n"})


# -- the bar moves per batch, not per chunk -------------------------------------------------------
def test_the_progress_bar_advances_per_batch_within_a_chunk(tmp_path, analyzer, tiny_classifier_dir, source,
                                                            monkeypatch):
    import tqdm.auto

    updates = []

    class Recorder:
        def __init__(self, total, **_):
            self.total, self.n = total, 0

        def update(self, amount):
            self.n += amount
            updates.append(amount)

        def set_postfix_str(self, *_, **__):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(jsonl_lines(articles(12))) + "\n", encoding="utf-8")
    score(analyzer, tiny_classifier_dir, path, tmp_path / "out.jsonl", chunk_size=12, batch_size=2, progress=True)
    assert len([u for u in updates if u > 0]) >= 6  # one chunk, at least 6 batches of 2
    assert sum(updates) == path.stat().st_size


# -- a wider kit of ordinary mistakes -------------------------------------------------------------
def test_bom_and_crlf_read_like_plain_utf8(tmp_path, analyzer, tiny_classifier_dir):
    recs = articles(4)
    text = "\n".join(jsonl_lines(recs)) + "\n"
    plain, odd = tmp_path / "plain.jsonl", tmp_path / "odd.jsonl"
    plain.write_text(text, encoding="utf-8")
    odd.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    score(analyzer, tiny_classifier_dir, plain, tmp_path / "a.jsonl")
    score(analyzer, tiny_classifier_dir, odd, tmp_path / "b.jsonl", encoding="utf-8")  # BOM with an explicit utf-8
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    csv_odd = tmp_path / "odd.csv"
    rows = ["id,title,body"] + [f'{r["id"]},{r["title"]},"{r["body"]}"' for r in recs]
    csv_odd.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8") + b"\r\n")
    score(analyzer, tiny_classifier_dir, csv_odd, tmp_path / "c.jsonl", encoding="utf-8")
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_empty_and_header_only_files_give_empty_outputs(tmp_path, analyzer, tiny_classifier_dir):
    for name, content in (("empty.jsonl", b""), ("empty.csv", b""), ("header.csv", b"id,title,body\n")):
        path = tmp_path / name
        path.write_bytes(content)
        out = tmp_path / f"out-{name}.jsonl"
        assert score(analyzer, tiny_classifier_dir, path, out).records == 0
        assert out.read_text() == ""


@pytest.mark.parametrize("name, content, message", [
    ("in.txt", b'{"body": "x"}\n', "unsupported extension '.txt'"),
    ("in.json", json.dumps([{"body": "海关"}], ensure_ascii=False).encode(), "is one JSON array; expected JSON Lines"),
    ("pretty.json", b'[\n  {"body": "x"}\n]\n', "is one JSON array"),
    ("utf16.jsonl", '{"body": "海关贸易"}\n'.encode("utf-16"), "looks like UTF-16 text"),
    ("broken.parquet", b"PAR1 not really", "cannot be read as Parquet"),
    ("folder.jsonl", None, "is a folder; expected a JSONL, CSV or Parquet file"),
    ("missing.jsonl", "absent", "does not exist"),
])
def test_unreadable_inputs_are_clear_errors_before_any_work(tmp_path, tiny_classifier_dir, name, content, message,
                                                           caplog):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    elif content != "absent":
        path.write_bytes(content)
    assert _cli(tiny_classifier_dir, path, tmp_path / "out.jsonl") == 2
    assert message in caplog.text and not (tmp_path / "out.jsonl.parts").exists()


def test_parquet_with_non_string_columns(tmp_path, analyzer, tiny_classifier_dir):
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = articles(3)
    when = [datetime.datetime(2024, 1, d) for d in (1, 2, 3)]
    pq.write_table(pa.table({"id": [1, 2, 3], "title": [r["title"] for r in recs], "body": [7, None, 9],
                             "when": when}), tmp_path / "in.parquet")
    summary = score(analyzer, tiny_classifier_dir, tmp_path / "in.parquet", tmp_path / "out.jsonl",
                    fields=Fields(keep=("when",)))
    assert summary.rejected_by_kind == {"non_text": 2}  # an int body is not text; a null one leaves the title
    (row,) = read_jsonl(tmp_path / "out.jsonl")
    assert row["id"] == 2 and row["when"] == "2024-01-02 00:00:00"


def test_fields_themselves_are_checked(tmp_path):
    with pytest.raises(InputError, match="column names must be non-empty text"):
        Fields(keep=("",))
    with pytest.raises(InputError, match="--max-record-bytes"):
        Fields(max_record_bytes=-1)
