"""xinwen suggest: the least sure, mutually different articles, written as a CSV to fill in that
loads as training data once labelled; the user's files are never overwritten unasked."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from xinwen.training.cli import main
from xinwen.training.data.builtin import TOPIC_LABELS
from xinwen.training.data.files import load_labelled
from xinwen.training.topic.suggest import diverse_pick, margins


def test_margins_are_top1_minus_top2():
    probs = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(margins(probs), [0.2, 0.01, 1.0])


def test_near_copies_are_not_picked_twice_while_different_uncertain_articles_are():
    copy = "海关总署发布进出口数据，一季度外贸出口同比增长" * 3
    texts = [copy, copy + "。", copy + "！", "铁路部门春运加开列车，旅客发送量创新高" * 3,
             "国务院常务会议部署制造业升级和中小企业扶持" * 3, "体育比赛" * 10]
    uncertainty = np.array([0.9, 0.9, 0.9, 0.8, 0.7, 0.05])
    picked = diverse_pick(texts, uncertainty, n=3, pool_factor=2)
    assert picked[0] == 0  # the most uncertain first
    assert sorted(picked) == [0, 3, 4]  # not the copies of text 0, not the sure one
    assert diverse_pick(texts, uncertainty, n=10) == diverse_pick(texts, uncertainty, n=6)  # n capped at the input
    assert len(set(diverse_pick(texts, uncertainty, n=6))) == 6


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
    assert "line 8 skipped" in caplog.text
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6 and "u7" not in {r["id"] for r in rows}
    assert all(r["label"] == "" and r["model_label"] in TOPIC_LABELS for r in rows)
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
