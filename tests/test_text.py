import pytest

from xinwen.inference.text import as_article, chunk_ids, classifier_text, clean_body, clean_title, head_tail_ids


@pytest.mark.parametrize("raw,clean", [
    ("苏州银行票据案更新:追索权获法院支持_江苏频道_凤凰网", "苏州银行票据案更新:追索权获法院支持"),
    ("今后，西安人要向奇葩证明说拜拜啦!_..._搜狐", "今后,西安人要向奇葩证明说拜拜啦!"),
    ("南宁的友仔们有谁知道_百度贴吧", "南宁的友仔们有谁知道"),
    ("高铁新线开通-东方新闻网", "高铁新线开通"),
    ("[转载]创富汇通资质造假涉嫌集资诈骗_1", "创富汇通资质造假涉嫌集资诈骗"),
    ("新沂市一男子酒后辱骂110接线员被行政拘留", "新沂市一男子酒后辱骂110接线员被行政拘留"),
])
def test_clean_title_strips_site_suffixes_only(raw, clean):
    assert clean_title(raw) == clean


def test_clean_body_drops_leading_title_copy_and_literal_newlines():
    body = "原标题:大霞浦要人工增雨了\\n　　记者获悉，明天开始作业。"
    assert clean_body(body, "大霞浦要人工增雨了") == "记者获悉,明天开始作业。"


def test_as_article_accepts_str_and_mapping_and_names_bad_fields():
    assert as_article("正文").body == "正文"
    art = as_article({"title": "标题_搜狐网", "body": "正文"})
    assert (art.title, art.body) == ("标题", "正文")
    with pytest.raises(TypeError, match="index 3"):
        as_article(42, 3)
    with pytest.raises(TypeError, match="'body'"):
        as_article({"title": "t", "body": 5}, 0)
    with pytest.raises(ValueError, match="non-empty"):
        as_article({"title": "", "body": ""}, 1)


def test_classifier_text_joins_title_and_body():
    assert classifier_text(as_article({"title": "标题", "body": "正文"}), "query: ") == "query: 标题。正文"


def test_head_tail_and_chunks_cover_long_sequences():
    ids = list(range(100))
    kept = head_tail_ids(ids, 20, 0.25)
    assert kept == list(range(15)) + list(range(95, 100))
    chunks = chunk_ids(ids, 30, 10, 8)
    assert chunks[0][0] == 0 and chunks[-1][-1] == 99
    assert all(len(c) <= 30 for c in chunks)
    assert chunk_ids(ids, 30, 10, 2) == [ids[0:30], ids[20:50]]
    # a stride as large as the window must not degenerate into one-token steps
    assert len(chunk_ids(ids, 30, 30, 0)) <= 2 * len(ids) // 30 + 1


def test_normalise_text_drops_every_control_and_format_character_and_nothing_else():
    import unicodedata

    from xinwen.inference.text import normalise_text

    def reference(text: str) -> str:
        t = unicodedata.normalize("NFKC", text).replace("\\n", "\n").replace("\\t", " ").replace("\r", "\n")
        t = "".join(ch for ch in t if ch == "\n" or unicodedata.category(ch)[0] != "C")
        return t

    samples = ["海关总署发布数据。\n进出口增长", "零宽\u200b空格\ufeff与\x07响铃", "软\u00ad连字符",
               "私用区\ue000字符", "全角\u3000空格\xa0和\t制表", "纯文本没有控制字符"]
    for text in samples:
        got = normalise_text(text)
        assert not any(unicodedata.category(ch)[0] == "C" and ch != "\n" for ch in got), text
        kept = [ch for ch in reference(text) if not ch.isspace()]
        assert [ch for ch in got if not ch.isspace()] == kept, text
