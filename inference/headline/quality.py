"""What an editor checks in a headline before keeping it, as rules a machine can apply.

ROUGE rewards overlap with one reference; it does not see a headline that bends a fact or
stutters. These checks do, for any headline (model, lead baseline or reference) against its body:

- **faithful**: every number in the headline, with its magnitude and unit (``17年``, ``110万美元``,
  ``3.5%``), and every quoted or Latin-script span (``“一带一路”``, ``《意见》``, ``G20``) appears in the
  body as written. Strict on purpose: a number the body writes another way (``1100000`` for
  ``110万``) counts as unfaithful, because that is what a reader cannot check at a glance.
- **echo**: a span of two or more characters, with a Chinese one among them, repeated back to
  back (``寿光寿光``); ``1111``, ``……`` and ``Mississippi`` are not echoes.
- **unbalanced**: a quote or bracket opened and not closed, or closed and never opened.
- **cut off**: the headline ends inside a phrase: on a comma-like mark, an opening bracket, or a
  word that needs something after it (``的``, ``和``, ``对``, ``将`` ...).

Both sides are normalised first (NFKC: full-width digits and punctuation compare equal).

Known limits, by design: Chinese numerals (三人, 一成) are not checked; an abbreviation the
body spells out (GDP for 国内生产总值) counts as unfaithful; quotations over 30 characters and
‘single’ quotes are not checked; a cut inside a word (国务院常务会议今) passes; reduplication
(研究研究, 哔哩哔哩) counts as an echo, so compare with the references' rate.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from xinwen.inference.headline.text import cjk_count
from xinwen.inference.text import normalise_text

# Magnitude words change a number's size; a unit after them changes its meaning (17年 vs 17万).
_MAGNITUDE = "十百千万亿兆"
# Units a Chinese news number carries, longest first so 万元 wins over 万 and 个月 over 个.
_UNITS = sorted(set("""年 月 日 号 时 点 分 秒 岁 天 周 小时 分钟 个月 季度 世纪 届 期 次 起 例 人 名 位 户 家 所
    座 个 项 件 条 台 辆 架 艘 列 只 头 株 棵 吨 公斤 千克 克 斤 公里 千米 米 厘米 毫米 平方米 平方公里 亩 公顷
    升 立方米 元 美元 美金 欧元 日元 英镑 港元 港币 人民币 块 角 % ‰ 倍 度 级 层 楼 路 版 集 部 种 批 轮
    场 票 国 省 市 县 区 强 GB G MB KB K M mm cm km kg""".split()), key=len, reverse=True)
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:[.,]\d+)*)([" + _MAGNITUDE + r"]*)("
                     + "|".join(re.escape(u) for u in _UNITS) + r")?")
# Spans a headline may only copy: quoted titles, quotations, and Latin-script names or codes.
_QUOTED = re.compile(r"《[^》]{1,30}》|“[^”]{1,30}”|「[^」]{1,30}」|\"[^\"]{1,30}\"")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9&.+\-]*")
_ECHO = re.compile(r"(\S{2,}?)\1")
_PAIRS = {"“": "”", "《": "》", "(": ")", "[": "]", "【": "】", "「": "」", "『": "』", "〈": "〉", "‘": "’"}
# An apostrophe inside a Latin word (McDonald’s) is not a closing quote.
_APOSTROPHE = re.compile(r"(?<=[A-Za-z])’(?=[A-Za-z])")
# Endings that leave a phrase open: marks announcing more text, and function characters that
# need something after them (出口增长的, 中美两国将). NFKC has turned … into "...".
_OPEN_END = re.compile(r"([,、:;\-—(\[“《「『‘]|[的之和与及或在对从向把被将于给让为而但若跟同])$")
# Words that end in one of those characters and end a phrase too (缓和, 参与, 反对, 名将, 炼成的).
_CLOSED_WORDS = set("""缓和 温和 平和 柔和 调和 总和 饱和 言和 议和 共和 参与 普及 涉及 波及 危及 顾及 存在 所在
    现在 实在 自在 何在 反对 应对 面对 核对 比对 相对 绝对 名将 老将 大将 主将 干将 转让 出让 退让 礼让 谦让
    认同 赞同 协同 合同 相同 不同 共同 混同 雷同 目的 成的 是的 似的 真的 有的 别的 来的 去的 从 何去何从
    关于 在于 属于 等于 处于 对于 至于 过于 终于 由于 善于 难于 大于 小于 高于 低于 为 作为 行为 认为 成为
    因为 以为 无为 有为""".split())


def numbers(text: str) -> list[str]:
    """Number mentions of ``text`` with magnitude and unit, e.g. ``['17年', '110万美元', '3.5%']``."""
    return [m.group() for m in _NUMBER.finditer(normalise_text(text))]


def copied_spans(text: str) -> list[str]:
    """Quoted spans and Latin-script tokens of ``text``: what a headline can only copy."""
    norm = normalise_text(text)
    spans = [m.group() for m in _QUOTED.finditer(norm)]
    spans += [m.group().rstrip(".-+") for m in _LATIN.finditer(norm) if len(m.group()) >= 2]
    return [s for s in spans if s]


def _number_in(mention: re.Match, body_numbers: set[tuple[str, str, str]]) -> bool:
    """The body writes this number with the same magnitude and the same unit; a headline may drop
    a unit the body has (投资1100万 for 1100万元), never change it (3个 is not 3个月, 126万 not 126万亿)."""
    value, magnitude, unit = mention.group(1), mention.group(2), mention.group(3) or ""
    return any(v == value and m == magnitude and (not unit or u == unit) for v, m, u in body_numbers)


def unfaithful_parts(headline: str, body: str) -> list[str]:
    """The numbers and copied spans of ``headline`` that ``body`` does not contain as written."""
    head, text = normalise_text(headline), normalise_text(body)
    in_body = {(m.group(1), m.group(2), m.group(3) or "") for m in _NUMBER.finditer(text)}
    missing = [m.group() for m in _NUMBER.finditer(head) if not _number_in(m, in_body)]
    # Case and spacing of a copied span are not facts: "iPhone 15" may be "IPHONE15" in the body.
    text_key = text.replace(" ", "").lower()
    for span in copied_spans(head):
        inner = span.strip("《》“”「」\"")
        if inner and inner.replace(" ", "").lower() not in text_key:
            missing.append(span)
    return missing


def echoes(headline: str) -> list[str]:
    """Spans repeated back to back (``寿光寿光`` -> ``['寿光']``); digit-only spans are exempt."""
    return [m.group(1) for m in _ECHO.finditer(normalise_text(headline).replace(" ", ""))
            if cjk_count(m.group(1))]


def is_unbalanced(headline: str) -> bool:
    """An opening quote or bracket without its closing one, or a closing one never opened."""
    text = _APOSTROPHE.sub("", normalise_text(headline))
    stack: list[str] = []
    closers = {v: k for k, v in _PAIRS.items()}
    for ch in text:
        if ch in _PAIRS:
            stack.append(ch)
        elif ch in closers:
            if not stack or stack[-1] != closers[ch]:
                return True
            stack.pop()
    return bool(stack) or text.count('"') % 2 == 1


def is_cut_off(headline: str) -> bool:
    """The headline ends where a phrase cannot end (``...的``, ``...和``, a comma, an open quote)."""
    text = normalise_text(headline)
    if not text:
        return True
    if _OPEN_END.search(text) is None:
        return False
    return not any(text.endswith(word) for word in _CLOSED_WORDS)


@dataclass
class HeadlineCheck:
    """The editor's checks for one headline against its body."""

    unfaithful: list[str] = field(default_factory=list)  # numbers / spans not in the body
    echoes: list[str] = field(default_factory=list)
    unbalanced: bool = False
    cut_off: bool = False

    @property
    def faithful(self) -> bool:
        return not self.unfaithful

    @property
    def fluent(self) -> bool:
        return not (self.echoes or self.unbalanced or self.cut_off)

    @property
    def ok(self) -> bool:
        return self.faithful and self.fluent

    def problems(self) -> list[str]:
        """Readable reasons, e.g. ``['not in the body: 17万', 'echo: 寿光']``."""
        out = [f"not in the body: {p}" for p in self.unfaithful] + [f"echo: {e}" for e in self.echoes]
        return out + ["unbalanced quote or bracket"] * self.unbalanced + ["ends mid-phrase"] * self.cut_off


def check_headline(headline: str, body: str) -> HeadlineCheck:
    return HeadlineCheck(unfaithful_parts(headline, body), echoes(headline), is_unbalanced(headline),
                         is_cut_off(headline))


QUALITY_RATES = ("faithful", "echo", "unbalanced", "cut_off")


def quality_rates(headlines: list[str], bodies: list[str]) -> dict[str, float]:
    """Share (0-1) of faithful headlines and of each fluency failure over a set of headlines."""
    return rates_of([check_headline(h, b) for h, b in zip(headlines, bodies)])


def rates_of(checks: list[HeadlineCheck]) -> dict[str, float]:
    """``quality_rates`` of headlines already checked."""
    n = max(1, len(checks))
    return {"faithful": sum(c.faithful for c in checks) / n,
            "echo": sum(bool(c.echoes) for c in checks) / n,
            "unbalanced": sum(c.unbalanced for c in checks) / n,
            "cut_off": sum(c.cut_off for c in checks) / n}
