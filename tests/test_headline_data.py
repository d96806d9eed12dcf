"""Headline pairs: filters with logged counts, near-duplicates within and across splits, files."""
from __future__ import annotations

import logging

import pytest
from tiny_models import write_jsonl
from tiny_seq2seq import headline_records

from xinwen.training.config.sections import HeadlineDataSection
from xinwen.training.data.files import DataError
from xinwen.training.data.headline import DuplicateIndex, PairFilters, build_pairs, load_headline_splits

BODY = "海关总署10月13日发布数据,前三季度我国货物贸易进出口总值同比增长,其中出口增长较快,进口保持稳定。"


def test_each_filter_drops_what_it_should_and_counts_are_logged(caplog):
    recs = [
        {"id": "ok", "title": "前三季度货物贸易进出口增长_新浪网", "body": BODY},
        {"id": "empty", "title": "  ", "body": BODY},
        {"id": "short", "title": "gdp数据", "body": BODY},
        {"id": "spam", "title": "威尼斯人娱乐app:前三季度进出口增长", "body": BODY},
        {"id": "phone", "title": "前三季度货物出口增长快", "body": "联系13912345678。" + BODY},
        {"id": "body", "title": "前三季度货物贸易进出口增长", "body": "前三季度货物贸易进出口增长"},
        {"id": "unrelated", "title": "明星婚礼现场曝光网友热议", "body": BODY},
    ]
    with caplog.at_level(logging.INFO, logger="xinwen.training.data.headline"):
        pairs = build_pairs(recs, PairFilters(), "unit")
    assert [p["id"] for p in pairs] == ["ok"]
    assert pairs[0]["target"] == "前三季度货物贸易进出口增长"
    log = caplog.text
    assert "unit: kept 1 of 7 pairs" in log
    for reason in ("empty title", "Chinese characters", "spam", "unrelated"):
        assert reason in log


def test_near_duplicates_are_removed_inside_and_across_splits():
    base = {"title": "前三季度货物贸易进出口增长", "body": BODY}
    near_title = {"title": "前三季度货物贸易进出口增长!", "body": "另据统计," + BODY}
    same_body = {"title": "海关发布前三季度外贸数据", "body": BODY}
    seen = DuplicateIndex()
    train = build_pairs([base, near_title, same_body], PairFilters(), "train", seen)
    assert len(train) == 1
    fresh = {"title": "铁路运输企业发展加快", "body": "铁路运输企业发展加快推进,高铁列车开行数量增加,物流运输更加通畅。" * 2}
    dev = build_pairs([dict(base), fresh], PairFilters(), "dev", seen)
    assert [p["target"] for p in dev] == [fresh["title"]]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_user_files_with_custom_columns(tmp_path, suffix):
    import pandas as pd

    def write(path, recs):
        frame = pd.DataFrame([{"headline": r["title"], "text": r["body"], "id": r["id"]} for r in recs])
        if suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        elif suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
        return path

    train = write(tmp_path / f"train{suffix}", headline_records(20))
    dev = write(tmp_path / f"dev{suffix}", headline_records(6, offset=20) + headline_records(2))
    data = HeadlineDataSection(train=str(train), dev=str(dev), title_column="headline", body_column="text")
    train_pairs, dev_pairs, _ = load_headline_splits(data)
    assert len(train_pairs) == 20
    assert len(dev_pairs) == 6  # the two copies of training items are gone
    assert not {p["target"] for p in dev_pairs} & {p["target"] for p in train_pairs}


def test_missing_title_column_is_a_clear_error(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"body": r["body"]} for r in headline_records(3)])
    data = HeadlineDataSection(train=str(path), dev=str(path))
    with pytest.raises(DataError, match="title"):
        load_headline_splits(data)
