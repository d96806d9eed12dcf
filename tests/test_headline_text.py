"""Headline text preparation: spacing, title copies at the start of bodies, targets, lead baseline."""
from __future__ import annotations

from xinwen.inference.headline.text import (
    encoder_text, headline_source, headline_target, lead_headline, strip_title_copy, tighten_spaces,
)
from xinwen.inference.text import as_article


def test_no_spaces_between_chinese_characters_but_latin_words_keep_theirs():
    assert tighten_spaces("海 关 总 署 发 布 数 据") == "海关总署发布数据"
    assert tighten_spaces("至少13人 在加州酒吧") == "至少13人在加州酒吧"
    assert tighten_spaces("苹果 iPhone X 发布 , 售价 999 元") == "苹果iPhone X发布,售价999元"
    assert tighten_spaces("“ 让 美国 ” , 引 轩然 大波") == "“让美国”,引轩然大波"


def test_leading_verbatim_copy_of_the_title_is_removed():
    title = "六盘水一煤矿发生透水事故"
    assert strip_title_copy(f"{title}\n记者从贵州省应急管理厅获悉", title) == "记者从贵州省应急管理厅获悉"
    # With different punctuation/spacing, behind a short tag, or repeated.
    assert strip_title_copy("[转载]六盘水一煤矿 发生透水事故!记者获悉", title) == "记者获悉"
    assert strip_title_copy(f"{title}{title}。记者获悉", title) == "记者获悉"


def test_near_copy_as_first_sentence_is_removed_but_real_leads_stay():
    title = "歧义、无签名、假印章,这种裁判书我不认可!"
    body = "歧义、颠倒黑白、无签名、假印章,这种裁判书我不认可!\n(本文以纯法律的视角进行分析)"
    assert strip_title_copy(body, title).startswith("(本文以纯法律")
    lead = "10月14日凌晨2时许,六盘水市水城区某煤矿井下发生透水事故,3人被困。救援正在进行。"
    assert strip_title_copy(lead, "六盘水一煤矿发生透水事故") == lead


def test_source_never_starts_with_its_target():
    article = as_article({"title": "走私象牙获刑15年_新浪网", "body": "走私象牙获刑15年\\n据法新社19日报道,绰号象牙女王"})
    target, source = headline_target("走私象牙获刑15年_新浪网"), headline_source(article)
    assert target == "走私象牙获刑15年"
    assert not source.startswith(target) and source.startswith("据法新社")


def test_targets_lose_site_suffixes_and_cut_marks():
    assert headline_target("户口上的不平等_百度贴吧") == "户口上的不平等"
    assert headline_target("...安全监督站圆满完成应急演习评估工作") == "安全监督站圆满完成应急演习评估工作"


def test_lead_baseline_is_the_first_real_sentence_clipped():
    source = "..\n10日清晨,在镇江九华山路上,一名环卫工不幸在雨中被撞身亡!记者从交警部门获悉"
    assert lead_headline(source, 12) == "10日清晨,在镇江九华山"
    assert lead_headline("短。", 10) == "短"


def test_encoder_text_puts_paragraphs_on_one_line():
    assert encoder_text("第一段\n第二段", "passage: ") == "passage: 第一段 第二段"
