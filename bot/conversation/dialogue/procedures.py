"""Questions about procedures, with the topic carried over: after "đăng ký xe máy ở đâu",
"lệ phí bao nhiêu" is about the vehicle, until the citizen names another procedure."""

from __future__ import annotations

import re

from civicbot_nlu.normalize import normalize, words
from civicbot_nlu.patterns import find_aspects

from bot.catalog.catalog import answer_aspects, details, load_catalog, suggest
from bot.conversation.dialogue.context import Context
from bot.conversation.dialogue.form import Topic
from bot.conversation.messages import Button
from bot.nlu.result import NluResult

MAX_FOLLOW_UP_WORDS = 10
# English words that name a procedure or an aspect (what is matched, not what is shown).
_EN_PROCEDURES: tuple[tuple[str, str], ...] = (
    (r"\bbirth|\bhad a baby|\bnew ?born|\bbaby (was|is) born|\bgave birth", "khai_sinh"),
    (r"\bmarr(y|iage|ied)|\bwedding", "ket_hon"),
    (
        r"\bdeath|\bpassed away|\b(father|mother|dad|mum|mom|husband|wife|grand\w+|son"
        r"|daughter|brother|sister|uncle|aunt) (has |just |recently )?died",
        "khai_tu",
    ),
    (r"\bsingle status|marital status", "xac_nhan_hon_nhan"),
    (r"\bpassport", "ho_chieu"),
    (r"\bid card|identity card|citizen id", "can_cuoc"),
    (r"\btemporary residen", "tam_tru"),
    (r"\bpermanent residen", "thuong_tru"),
    (r"\bcriminal record", "ly_lich_tu_phap"),
    (r"\bcertif(y|ied) cop", "chung_thuc"),
    (r"\bbuilding permit|construction permit", "giay_phep_xay_dung"),
    (r"\bland (title|use)|red book", "so_do"),
    (r"\btransfer .*land|land transfer", "sang_ten_dat"),
    (r"\bhousehold business", "ho_kinh_doanh"),
    (r"\b(company|enterprise)", "thanh_lap_doanh_nghiep"),
    (
        r"\b(vehicle|motorbike|car) registration|register (a |my )?(motorbike|car|vehicle)",
        "dang_ky_xe",
    ),
    (r"\bdriving licen[cs]e|driver'?s licen[cs]e", "giay_phep_lai_xe"),
)
_EN_ASPECTS: tuple[tuple[str, str], ...] = (
    (r"\bonline\b", "online"),
    (r"\bhow long|how many days|\bdays?\b", "duration"),
    (r"\bhow much|\bcost|\bfees?\b|\bprice", "fee"),
    (r"\bwhere\b", "place"),
    (r"\bdocuments?\b|\bpapers?\b|\bwhat do i need|\bbring\b", "documents"),
)

# "Làm sao", "how do I": the steps, that is the papers and where to hand them in, before
# whatever else the message asks ("làm sao, mất bao nhiêu tiền" got the fee alone). "Thế
# nào" alone asks how too ("đăng ký kết hôn thế nào"), but after an aspect it is "what
# about" ("lệ phí thế nào"). Asked online, the online answer is the how.
_HOW = re.compile(
    r"\b(?:lam sao|lm sao|lam the nao|lam nhu nao|lam ntn|cach lam|phai lam gi|can lam gi"
    r"|lam gi|how (?:do|can|to|should|does))\b"
)
_HOW_ALONE = re.compile(r"\b(?:the nao|nhu nao|ntn|ra sao)\b")
HOW_ASPECTS = ("documents", "place")


def english_procedure(text: str) -> str | None:
    lowered = text.lower()
    return next((pid for pattern, pid in _EN_PROCEDURES if re.search(pattern, lowered)), None)


def aspects_of(ctx: Context, nlu: NluResult | None) -> list[str]:
    if ctx.lang == "en":
        lowered = ctx.text.lower()
        found = [(m.start(), a) for p, a in _EN_ASPECTS if (m := re.search(p, lowered))]
        return [a for _, a in sorted(found)]
    asked = [m.value for m in sorted(find_aspects(ctx.text), key=lambda m: m.start)]
    return asked or ([nlu.aspect] if nlu and nlu.aspect else [])


def _with_how(ctx: Context, asked: list[str]) -> list[str]:
    """The aspects a question about a procedure gets: "how" adds the papers and the place."""
    folded = ctx.text.lower() if ctx.lang == "en" else normalize(ctx.text)
    how = _HOW.search(folded) or (not asked and _HOW_ALONE.search(folded))
    if not how or "online" in asked:
        return asked
    return list(dict.fromkeys([*HOW_ASPECTS, *asked]))


def named_procedure(ctx: Context, nlu: NluResult | None) -> str | None:
    """The procedure the message itself names (not one the model guessed from "lệ phí")."""
    if ctx.lang == "en":
        return english_procedure(ctx.text)
    named = [p.id for p in load_catalog().search(ctx.text)]
    if nlu and nlu.procedure in named:
        return nlu.procedure
    return named[0] if named else None


def is_follow_up(ctx: Context, nlu: NluResult | None) -> bool:
    """A short question about an aspect, naming no procedure, while one is being discussed."""
    return (
        ctx.chat.topic is not None
        and len(words(ctx.text)) <= MAX_FOLLOW_UP_WORDS
        and bool(aspects_of(ctx, nlu))
        and named_procedure(ctx, nlu) is None
    )


def answer_question(ctx: Context, nlu: NluResult | None) -> None:
    topic = ctx.chat.topic
    procedure_id = named_procedure(ctx, nlu) or (topic.procedure if topic else None)
    if procedure_id is None and ctx.lang != "en":
        procedure_id = nlu.procedure if nlu else None
    procedure = load_catalog().get(procedure_id)
    if procedure is None:
        if ctx.lang == "en":
            ctx.reply(ctx.say("utter_procedure_unknown"))
            return
        suggestion = suggest(ctx.text)
        buttons = [Button(o.label[:60], f"proc:{o.procedure_id}") for o in suggestion.options]
        ctx.reply(suggestion.text, buttons)
        return
    aspects = _with_how(ctx, aspects_of(ctx, nlu))
    ctx.chat.topic = Topic(procedure=procedure.id, aspects=aspects)
    reply_procedure(ctx, procedure.id, aspects)


def reply_procedure(ctx: Context, procedure_id: str, aspects: list[str]) -> None:
    """The short answer, one part per aspect asked, and a button for the whole entry."""
    procedure = load_catalog().get(procedure_id)
    assert procedure is not None
    text = answer_aspects(procedure, aspects).text
    if ctx.lang == "en":
        name = ctx.say(f"procedure_{procedure.id}_en")
        text = f"{ctx.say('utter_procedure_lead_en', name=name)}\n{text}"
    ctx.chat.topic = Topic(procedure=procedure.id, aspects=aspects)
    ctx.reply(text, [ctx.button("details", f"more:{procedure.id}")])


def reply_details(ctx: Context, procedure_id: str) -> bool:
    procedure = load_catalog().get(procedure_id)
    if procedure is None:
        return False
    ctx.chat.topic = Topic(procedure=procedure.id)
    ctx.reply(details(procedure))
    return True
