"""xinwen suggest: the least sure, mutually different articles, written as a CSV to fill in that
loads as training data once labelled; the user's files are never overwritten unasked."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from xinwen.training.cli import main
from xinwen.training.data.builtin import TOPIC_LABELS
from xinwen.training.data.files import load_labelled
from xinwen.training.topic.suggest import diverse_pick, margins


def test_margins_are_top1_minus_top2():
    probs = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(margins(probs), [0.2, 0.01, 1.0])


def test_near_copies_are_not_picked_twice_while_different_uncertain_articles_are():
    copy = "海关总署发布进出口数据，一季度外贸出口同比增长" * 3
    texts = ["体育比赛" * 10, copy + "。", "国务院常务会议部署制造业升级和中小企业扶持" * 3, copy,
             "铁路部门春运加开列车，旅客发送量创新高" * 3, copy + "！", "文艺演出" * 10, "天气晴朗" * 10]
    uncertainty = np.array([0.05, 0.9, 0.7, 0.95, 0.8, 0.9, 0.06, 0.04])
    picked = diverse_pick(texts, uncertainty, n=3, pool_factor=2)  # pool: the 6 most uncertain
    assert picked[0] == 3  # the most uncertain first
    assert sorted(picked) == [2, 3, 4]  # not the copies of text 3; not the sure ones, however different
    assert sorted(diverse_pick(texts, uncertainty, n=2, pool_factor=1)) == [1, 3]  # a pool of 2: both, copies or not
    assert sorted(diverse_pick(texts, uncertainty, n=20)) == list(range(8))  # n capped at the input
    assert len(set(diverse_pick(["同一篇"] * 5, np.full(5, 0.5), n=5))) == 5  # identical texts: each once


class FixedClassifier:
    """A stand-in with fixed probabilities per article and the real decision rule's shape."""
    labels = ["trade", "transport", "other"]

    def __init__(self, probs):
        self.probs = torch.tensor(probs)

    def probabilities(self, articles, batch_size=32):
        return self.probs[: len(articles)]

    def decide(self, row):
        label = self.labels[int(row.argmax())]
        return type("P", (), {"label": label if float(row.max()) >= 0.5 else "other"})()


def test_suggest_picks_the_least_sure_and_reports_the_models_answer():
    from xinwen.inference.records.readers import InputRecord
    from xinwen.inference.text import ArticleText
    from xinwen.training.topic.suggest import suggest

    bodies = ["海关出口数据发布", "铁路春运客流高峰", "港口集装箱吞吐量", "足球联赛开幕"]
    records = [InputRecord(i + 1, ArticleText("", b), {"title": "", "body": b}) for i, b in enumerate(bodies)]
    probs = [[0.90, 0.05, 0.05], [0.40, 0.35, 0.25], [0.10, 0.85, 0.05], [0.45, 0.44, 0.11]]
    picked = suggest(FixedClassifier(probs), records, n=2)
    assert [s.record.line for s in picked] == [4, 2]  # margins 0.01 and 0.05; the sure ones stay
    assert [s.model_label for s in picked] == ["other", "other"]  # below the threshold: the fallback
    assert [round(s.margin, 2) for s in picked] == [0.01, 0.05] and picked[0].top_probability == pytest.approx(0.45)


@pytest.fixture
def unlabelled(tmp_path):
    topics = ["海关出口贸易增长", "铁路列车春运客流", "工厂安全生产检查", "产业园区政策扶持", "足球比赛结果"]
    rows = [json.dumps({"id": f"u{i}", "title": f"{topics[i % 5]}{i}", "body": f"{topics[i % 5]}，记者报道第{i}条消息。" * (1 + i % 4)},
                       ensure_ascii=False) for i in range(40)]
    rows[7] = json.dumps({"id": "u7", "body": 5})  # not text: skipped with a warning
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_cli_writes_n_distinct_articles_to_label_that_load_as_training_data(tmp_path, unlabelled,
                                                                            tiny_classifier_dir, caplog):
    out = tmp_path / "to_label.csv"
    assert main(["suggest", str(tiny_classifier_dir), "--input", str(unlabelled), "--n", "6", "--output", str(out)]) == 0
    assert "skipped 1 record(s) that cannot be scored: non_text 1 (first at line 8)" in caplog.text
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6 and "u7" not in {r["id"] for r in rows}
    assert all(r["label"] == "" and r["model_label"] in TOPIC_LABELS for r in rows)
    assert [float(r["margin"]) for r in rows][0] == min(float(r["margin"]) for r in rows)  # least sure first
    source = {json.loads(line)["id"]: json.loads(line) for line in unlabelled.read_text(encoding="utf-8").splitlines()}
    assert all(r["title"] == source[r["id"]]["title"] and r["body"] == source[r["id"]]["body"] for r in rows)

    for row in rows:  # the user fills in the labels ...
        row["label"] = "other"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    loaded = load_labelled(out, "title", "body", "label", "id", list(TOPIC_LABELS))  # ... and trains on them
    assert [r["id"] for r in loaded] == [r["id"] for r in rows]


def test_cli_never_overwrites_unasked(tmp_path, unlabelled, tiny_classifier_dir, caplog):
    out = tmp_path / "to_label.csv"
    out.write_text("mine\n", encoding="utf-8")
    command = ["suggest", str(tiny_classifier_dir), "--input", str(unlabelled), "--n", "3", "--output"]
    assert main([*command, str(out)]) == 2
    assert "exists" in caplog.text and "--overwrite" in caplog.text and out.read_text(encoding="utf-8") == "mine\n"
    assert main([*command, str(unlabelled), "--overwrite"]) == 2  # the input itself: never
    assert "is the --input file" in caplog.text
    assert main([*command, str(out), "--overwrite"]) == 0 and out.read_text(encoding="utf-8").startswith("id,")


@pytest.mark.parametrize("n", ["0", "-3", "many"])
def test_cli_refuses_a_count_below_one(tmp_path, unlabelled, tiny_classifier_dir, capsys, n):
    with pytest.raises(SystemExit) as done:
        main(["suggest", str(tiny_classifier_dir), "--input", str(unlabelled), "--n", n, "--output",
              str(tmp_path / "x.csv")])
    assert done.value.code == 2 and f"argument --n: expected an integer >= 1, got '{n}'" in capsys.readouterr().err


def test_cli_names_what_is_wrong_before_any_work(tmp_path, unlabelled, tiny_classifier_dir, caplog):
    def run(*extra, output="x.csv", model=tiny_classifier_dir):
        caplog.clear()
        return main(["suggest", str(model), "--input", str(unlabelled), "--output", str(tmp_path / output), *extra])

    assert run(output="x.jsonl") == 2 and "expected a .csv file" in caplog.text
    (tmp_path / "folder.csv").mkdir()
    assert run("--overwrite", output="folder.csv") == 2 and "is a folder" in caplog.text
    assert run(output="missing/x.csv") == 2 and "does not exist" in caplog.text
    assert run("--id-column", "doc_id") == 2 and "doc_id" in caplog.text  # named on purpose: must exist
    assert run(model=tmp_path / "no_model") == 2 and "no_model" in caplog.text
    assert not (tmp_path / "x.csv").exists()


def test_records_without_ids_are_named_by_file_and_line(tmp_path, tiny_classifier_dir, caplog):
    source = tmp_path / "no_ids.jsonl"
    source.write_text("".join(json.dumps({"body": f"海关出口第{i}批货物，铁路运输。" * (i + 1)}, ensure_ascii=False) + "\n"
                              for i in range(4)), encoding="utf-8")
    out = tmp_path / "picks.csv"
    assert main(["suggest", str(tiny_classifier_dir), "--input", str(source), "--n", "9", "--output", str(out)]) == 0
    assert "the input has 4 usable articles" in caplog.text
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert sorted(r["id"] for r in rows) == [f"no_ids.jsonl:{i}" for i in range(1, 5)]
    assert all(r["id"] == f"no_ids.jsonl:{r['line']}" for r in rows)
