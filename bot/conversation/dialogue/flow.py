"""One message through the dialogue: the cross-cutting checks first, in one place —
emergency, commands, typed button labels, cancel, a new request in the middle of a form,
the language — then the step the chat is at, or what the message asks for when idle."""

from __future__ import annotations

import re

from civicbot_nlu.normalize import has_diacritics, normalize, words
from civicbot_nlu.patterns import find_ticket_codes

from bot.catalog.catalog import load_catalog
from bot.conversation.dialogue import complaints, emergency, places, procedures, reading, tickets
from bot.conversation.dialogue.context import ANSWER_INFO, IDLE, Context, Turn
from bot.conversation.dialogue.steps import (
    BY_STATE,
    CANCEL,
    FORM_STATES,
    MIN_DESCRIPTION_WORDS,
    Outcome,
    cancel_button,
    next_step,
    recent_ticket,
)
from bot.conversation.messages import Button
from bot.conversation.texts import CATEGORY_NAMES, CATEGORY_NAMES_EN
from bot.nlu.result import NluResult
from bot.tickets.intake import DailyCapReached, request_person
from storage import queries
from storage.models import Ticket

ASIDE = "ask_aside"  # a new request typed mid-form: put the form aside?
DIALOGUE_STATES = FORM_STATES | {ASIDE}

MENU_REPORT, MENU_ASK, MENU_STATUS, MENU_HUMAN = (
    "menu:report",
    "menu:ask",
    "menu:status",
    "menu:human",
)
ASIDE_NEW, ASIDE_KEEP = "aside:new", "aside:keep"
REPORT_HELD = "emergency:report"
CONFIDENT = 0.5  # below this an intent is not acted upon outside a form
SURE = 0.8  # a request mid-form must be this clear to interrupt the form
COMMANDS = {"/start": "utter_greet", "/help": "utter_help", "/menu": "utter_help"}
_BARE_RATING_WORDS = 3  # "5", "5 sao", "rất hài lòng": a rating, not a step's answer
_SHORT_ANSWER_WORDS = 10  # longer, an answer to "how was it" may carry a new request
_CANCEL_WORDS = frozenset(("huy", "huy di", "thoi huy", "thoi huy di", "cancel", "huy bo"))
# Steps whose answer is free text: a long message there is the answer, not a new request.
_FREE_TEXT_STEPS = frozenset(("ask_description", "ask_when", "ask_who", "ask_category"))
# English words that say what a complaint is about.
_EN_CATEGORIES: tuple[tuple[str, str], ...] = (
    (r"garbage|trash|rubbish|litter|waste", "waste"),
    (r"sidewalk|pavement", "sidewalk"),
    (r"nois|smoke|smell|pollut|karaoke", "pollution"),
    (r"pothole|drain|street ?light|flood", "infrastructure"),
    (r"construction|illegal building", "construction"),
    (r"traffic", "traffic"),
    (r"parking", "parking"),
    (r"no water|water supply|tap water", "water"),
    (r"bribe|official|rude", "misconduct"),
)
_EN_REPORT = re.compile(r"\b(report|complain|complaint|there is|there's|problem)\b")
_EN_STATUS = re.compile(
    r"\b(status|progress|any news|news on|update on|what happened (to|with)|has anyone|"
    r"been (fixed|handled|resolved)|pa-?\s?\d{4})\b"
)
_EN_GREET = re.compile(r"\b(hello|hi|hey|good (morning|afternoon|evening)|help)\b")


def menu(ctx: Context) -> tuple[Button, ...]:
    return (
        ctx.button("menu_report", MENU_REPORT),
        ctx.button("menu_ask", MENU_ASK),
        ctx.button("menu_status", MENU_STATUS),
    )


async def respond(turn: Turn) -> None:
    """Answer one message; the chat's data is written back to the turn whatever happens."""
    ctx = Context(turn)
    try:
        await _respond(ctx)
    finally:
        ctx.save()


async def _respond(ctx: Context) -> None:
    m = ctx.turn.message
    if m.edited:
        return  # an edit of a message already answered: stored, not answered again
    if m.button is not None:
        await on_button(ctx, m.button)
        return
    if _answered_as_media(ctx):
        return
    _set_language(ctx)
    if _answered_at_once(ctx):
        return
    typed = _typed_button(ctx)
    if typed is not None:
        await on_button(ctx, typed)
        return
    if ctx.state == ANSWER_INFO and not tickets.question_open(ctx):
        ctx.reset(IDLE)  # concluded without the answer: read as any message
    nlu = await ctx.parse()
    if _cancels(ctx, nlu):
        cancel(ctx)
    elif ctx.state == ANSWER_INFO:
        tickets.answer_question(ctx)
    elif ctx.state == ASIDE:
        await on_aside_text(ctx)
    elif ctx.state in FORM_STATES:
        await on_form_text(ctx, nlu)
    else:
        await on_idle_text(ctx, nlu)


def _cancels(ctx: Context, nlu: NluResult) -> bool:
    """ "hủy", or the NLU's cancel — unless the step asked reads the message as its answer
    ("không có ảnh" at the photo step is no photo, not a cancelled complaint)."""
    if normalize(ctx.text).strip(" .!") in _CANCEL_WORDS:
        return True
    if nlu.intent != "cancel" or nlu.confidence < CONFIDENT:
        return False
    return ctx.state not in FORM_STATES or not BY_STATE[ctx.state].takes(ctx, ctx.form)


def _answered_as_media(ctx: Context) -> bool:
    """Photos are kept, a pin is read, a message without text is answered: True when that
    is the whole answer."""
    m = ctx.turn.message
    photos = [a.file_id for a in m.attachments if a.kind == "photo"]
    if photos and _took_photos(ctx, photos):
        return True
    if m.location is not None:
        on_pin(ctx)
        return True
    if not ctx.text:
        ctx.reply(ctx.say("utter_unsupported_media" if m.attachments else "utter_empty_message"))
        return True
    return False


def _answered_at_once(ctx: Context) -> bool:
    """An emergency, or a command (Telegram's /start and friends), whatever the state."""
    danger = emergency.detect(ctx.text)
    if danger is not None:
        on_emergency(ctx, danger)
        return True
    command = ctx.text.split(maxsplit=1)[0].lower()
    if command in COMMANDS:
        ctx.reset(IDLE)
        ctx.chat.topic = None
        ctx.reply(ctx.say(COMMANDS[command]), menu(ctx))
        return True
    return False


# --- cross-cutting -------------------------------------------------------------------------


def _set_language(ctx: Context) -> None:
    """English when the citizen writes English; Vietnamese again when they write Vietnamese."""
    if reading.is_english(ctx.text):
        ctx.chat.lang = "en"
    elif has_diacritics(ctx.text) or (ctx.state == IDLE and len(words(ctx.text)) >= 3):
        ctx.chat.lang = "vi"


def _typed_button(ctx: Context) -> str | None:
    """The data of the offered button whose label was typed, marks or not ("bo qua")."""
    offered = ctx.chat.plumbing.get("typed_buttons") or {}
    if ctx.state not in DIALOGUE_STATES or not isinstance(offered, dict):
        return None
    data = offered.get(normalize(ctx.text))
    return data if isinstance(data, str) else None


def on_emergency(ctx: Context, danger: emergency.Emergency) -> None:
    """The number to call, before anything else; a form being filled in is kept."""
    ctx.reply(ctx.say(f"utter_emergency_{danger.kind}"))
    if ctx.state in DIALOGUE_STATES:
        ctx.reply(ctx.say("utter_emergency_form_kept"))
    else:  # what they wrote can still become a complaint, with one press
        ctx.chat.held = ctx.text
        ctx.reply(ctx.say("utter_emergency_after"), [ctx.button("report_this", REPORT_HELD)])


def cancel(ctx: Context) -> None:
    if ctx.state == ANSWER_INFO or ctx.state in DIALOGUE_STATES:
        in_form = ctx.state != ANSWER_INFO
        ctx.reset(IDLE)
        ctx.reply(ctx.say("utter_cancelled"), menu(ctx))
        if in_form:
            tickets.pending_question(ctx)
    else:
        ctx.reply(ctx.say("utter_nothing_to_cancel"), menu(ctx))


def _took_photos(ctx: Context, photos: list[str]) -> bool:
    """Photos answer an official's open question, or are kept for a complaint; True when
    nothing is left of the message to read (no caption, or the caption went with them)."""
    if ctx.state == ANSWER_INFO and tickets.question_open(ctx):
        tickets.answer_question(ctx, photos)  # the official asked; a photo answers
        return True
    if ctx.state in FORM_STATES or not ctx.text:
        _keep_photos(ctx, photos)
        return not ctx.text
    return False


def _keep_photos(ctx: Context, photos: list[str]) -> None:
    """Photos are never lost: kept on the form (a form is started for them when idle)."""
    started = ctx.state not in FORM_STATES
    form = ctx.form
    form.photos = [*form.photos, *photos]
    if ctx.state == "ask_photos" and not ctx.text:
        ctx.reply(
            ctx.say("utter_photo_received", count=len(form.photos)),
            [ctx.button("done", "form:done"), cancel_button(ctx)],
        )
    elif started and not ctx.text:
        next_step(ctx)
    elif not ctx.text:  # a photo at another step: kept, and the step asked again
        ctx.reply(ctx.say("utter_photo_kept", count=len(form.photos)))
        BY_STATE[ctx.state].ask(ctx, form)


def on_pin(ctx: Context) -> None:
    if ctx.state not in FORM_STATES:
        ctx.reset("ask_place")  # a pin when idle starts a complaint there
    step = BY_STATE[ctx.state]
    pin = ctx.turn.message.location
    assert pin is not None
    apply(ctx, step.read_location(ctx, ctx.form, pin))


def apply(ctx: Context, outcome: Outcome) -> None:
    if outcome is Outcome.ADVANCE:
        next_step(ctx)
    elif outcome is Outcome.SUBMIT:
        complaints.submit(ctx)
    elif outcome is Outcome.CANCEL:
        cancel(ctx)
    # STAY and DONE: the step has replied


# --- buttons ---------------------------------------------------------------------------


async def on_button(ctx: Context, data: str) -> None:
    if _on_menu_button(ctx, data):
        return
    kind, _, value = data.partition(":")
    if data == REPORT_HELD and ctx.state == IDLE and ctx.chat.held:
        complaints.start_report(ctx, await ctx.parse(ctx.chat.held))
    elif kind == "proc" and load_catalog().get(value):
        procedures.reply_procedure(ctx, value, [])
    elif kind == "more" and procedures.reply_details(ctx, value):
        pass
    elif kind in ("rate", "reopen", "ans"):
        tickets.ticket_button(ctx, kind, value)
    elif data in (ASIDE_NEW, ASIDE_KEEP) and ctx.state == ASIDE:
        await on_aside(ctx, new=data == ASIDE_NEW)
    elif ctx.state in FORM_STATES and (
        outcome := BY_STATE[ctx.state].read_button(ctx, ctx.form, data)
    ):
        apply(ctx, outcome)
    else:
        ctx.reply(ctx.say("utter_button_expired"))


def _on_menu_button(ctx: Context, data: str) -> bool:
    """Cancel and the menu's buttons, whatever the state: True when `data` is one."""
    if data == CANCEL:
        cancel(ctx)
    elif data == MENU_REPORT:
        ctx.reset(IDLE)
        next_step(ctx)
    elif data == MENU_ASK:
        ctx.reply(ctx.say("utter_procedure_unknown"))
    elif data == MENU_STATUS:
        tickets.check_status(ctx, None)
    elif data == MENU_HUMAN:
        request_human(ctx)
    else:
        return False
    return True


# --- a form being filled in ------------------------------------------------------------


async def on_form_text(ctx: Context, nlu: NluResult) -> None:
    """The step's own reader first: an answer it can use is its answer, whatever the NLU's
    intent and category ("UBND phường Giảng Võ" at "ở đâu?" is a place). Only an answer it
    cannot use may be something else: a rating, a status question, a new complaint stated
    in full, a procedure question; else the step reads it as best it can."""
    step = BY_STATE[ctx.state]
    if step.takes(ctx, ctx.form):
        apply(ctx, await step.read_text(ctx, ctx.form))
        return
    if _rates_mid_form(ctx) or _status_mid_form(ctx, nlu):
        return
    if _is_new_request(ctx, nlu):
        ctx.chat.held, ctx.chat.held_state = ctx.text, ctx.state
        ctx.state = ASIDE
        _ask_aside(ctx)
        return
    if (
        nlu.intent == "ask_procedure"
        and nlu.confidence >= SURE
        and ctx.state not in _FREE_TEXT_STEPS
        and procedures.named_procedure(ctx, nlu)
    ):
        procedures.answer_question(ctx, nlu)
        _back_to_the_step(ctx)
        return
    apply(ctx, await BY_STATE[ctx.state].read_text(ctx, ctx.form))


def _rates_mid_form(ctx: Context) -> bool:
    """ "5" sent right after a resolution's rating request reached a chat filling in a form
    (the place step took it for an address): the rating, then the step asked again."""
    if len(words(ctx.text)) > _BARE_RATING_WORDS:
        return False
    stars = reading.rating(ctx.text)
    waiting = tickets.awaiting_rating(ctx) if stars is not None else None
    if stars is None or waiting is None or not tickets.resolved_since_last_message(ctx, waiting):
        return False
    tickets.rate(ctx, waiting, stars)
    _back_to_the_step(ctx)
    return True


def _status_mid_form(ctx: Context, nlu: NluResult) -> bool:
    """ "PA-2026-000012 đến đâu rồi?" typed mid-form: the status, then the step again."""
    if not (nlu.ticket_code or find_ticket_codes(ctx.text)):
        return False
    if not (reading.asks_status(ctx.text) or nlu.intent == "check_status"):
        return False
    tickets.check_status(ctx, nlu)
    _back_to_the_step(ctx)
    return True


def _back_to_the_step(ctx: Context) -> None:
    """Something else was answered mid-form: the form waits where it was, its step asked again."""
    ctx.reply(ctx.say("utter_form_question_answered"))
    BY_STATE[ctx.state].ask(ctx, ctx.form)


def _is_new_request(ctx: Context, nlu: NluResult) -> bool:
    """A complaint about something else, typed where the form expects a short answer.
    Place names are no content here: an address given at the place step is the answer."""
    form = ctx.form
    if not (
        ctx.state not in _FREE_TEXT_STEPS
        and nlu.intent == "report_problem"
        and nlu.category is not None
        and form.category is not None
        and nlu.category != form.category
    ):
        return False
    tagged = nlu.location.text if nlu.location else None
    rest = places.without_places(ctx.text, tagged)
    return reading.content_words(rest) >= 2 * MIN_DESCRIPTION_WORDS


async def on_aside_text(ctx: Context) -> None:
    if reading.is_yes(ctx.text) or reading.is_no(ctx.text):
        await on_aside(ctx, new=reading.is_yes(ctx.text))
    else:
        _ask_aside(ctx)


def _ask_aside(ctx: Context) -> None:
    """Put the form being filled in aside for the new request? In the chat's language."""
    names = CATEGORY_NAMES_EN if ctx.lang == "en" else CATEGORY_NAMES
    ctx.reply(
        ctx.say("utter_aside", category=names[ctx.form.category or "other"]),
        [ctx.button("aside_new", ASIDE_NEW), ctx.button("aside_keep", ASIDE_KEEP)],
    )


async def on_aside(ctx: Context, *, new: bool) -> None:
    if new:
        held = ctx.chat.held or ""
        complaints.start_report(ctx, await ctx.parse(held))
    else:
        _resume(ctx)


def _resume(ctx: Context) -> None:
    ctx.state = ctx.chat.held_state or "ask_place"
    ctx.chat.held = ctx.chat.held_state = None
    ctx.reply(ctx.say("utter_aside_resume"))
    BY_STATE[ctx.state].ask(ctx, ctx.form)


# --- idle: what the message asks for --------------------------------------------------


async def on_idle_text(ctx: Context, nlu: NluResult) -> None:
    waiting = tickets.awaiting_rating(ctx)
    if _answered_before_intent(ctx, nlu, waiting):
        return
    intent = nlu.intent if nlu.confidence >= CONFIDENT else "not_understood"
    if intent != "not_understood":
        ctx.chat.misunderstood = 0
    if intent in _PLAIN_REPLIES:
        name, with_menu = _PLAIN_REPLIES[intent]
        ctx.reply(ctx.say(name), menu(ctx) if with_menu else ())
        return
    match intent:
        case "ask_procedure":
            procedures.answer_question(ctx, nlu)
        case "report_problem":
            ctx.chat.topic = None
            complaints.start_report(ctx, nlu)
        case "check_status":
            tickets.check_status(ctx, nlu)
        case "human":
            request_human(ctx)
        case "rate":
            if waiting is not None:
                tickets.ask_rating(ctx, waiting)
            else:
                tickets.rated_already(ctx)
        case _:  # affirm or deny out of context, or not understood
            not_understood(ctx)


# Intents answered by one text: (its name, whether the menu comes with it).
_PLAIN_REPLIES: dict[str, tuple[str, bool]] = {
    "greet": ("utter_greet", True),
    "help": ("utter_help", True),
    "goodbye": ("utter_goodbye", False),
    "thank": ("utter_thank", False),
    "out_of_scope": ("utter_out_of_scope", True),
}


def _answered_before_intent(ctx: Context, nlu: NluResult, waiting: Ticket | None) -> bool:
    """What the message is whatever its intent: an answer to a resolution, a question about
    the citizen's tickets or a follow-up on a procedure; or English."""
    if waiting is not None and _answers_resolution(ctx, waiting, nlu):
        return True
    if _answered_as_more_of_the_same(ctx, nlu):
        return True
    if reading.asks_status(ctx.text) and _has_tickets(ctx):
        tickets.check_status(ctx, nlu)
        return True
    if procedures.is_follow_up(ctx, nlu) and nlu.intent not in ("report_problem",):
        procedures.answer_question(ctx, nlu)
        return True
    if ctx.lang == "en":
        on_english(ctx, nlu)
        return True
    return False


def _answers_resolution(ctx: Context, ticket: Ticket, nlu: NluResult) -> bool:
    """ "vẫn chưa dọn gì cả" reopens, "cảm ơn, 5 sao" rates — as late as they come; a
    long message the NLU reads as a new complaint ("tốt, nhưng còn vụ khác: …") is one."""
    new_place = places.read_message(ctx.text)
    if reading.is_reopen(ctx.text) and new_place is None:
        tickets.reopen(ctx, ticket)
        return True
    if len(words(ctx.text)) > _SHORT_ANSWER_WORDS and nlu.intent == "report_problem":
        return False
    stars = reading.rating(ctx.text)
    if stars is not None:
        tickets.rate(ctx, ticket, stars)
        return True
    return False


def _answered_as_more_of_the_same(ctx: Context, nlu: NluResult) -> bool:
    """One more complaint right after a ticket, or anger that nothing was done: True when
    the message was either and is answered."""
    if _follow_up_report(ctx, nlu):
        ctx.chat.topic = None
        complaints.start_report(ctx, nlu)
        return True
    if reading.is_inaction(ctx.text) and places.read_message(ctx.text) is None:
        on_inaction(ctx)
        return True
    return False


def _follow_up_report(ctx: Context, nlu: NluResult) -> bool:
    """ "còn nữa, cái cột điện cũng sắp đổ" right after a ticket: one more complaint, even when
    the NLU's best guess, a complaint, is below CONFIDENT."""
    if nlu.intent != "report_problem" or not reading.is_follow_up(ctx.text):
        return False
    return recent_ticket(ctx) is not None


def on_inaction(ctx: Context) -> None:
    """Anger that nothing was done: heard, politely; the citizen's open tickets and how they
    move on, or an offer to file one."""
    ctx.reply(ctx.say("utter_inaction_heard"))
    waiting = tickets.open_tickets(ctx)
    if not waiting:
        ctx.reply(
            ctx.say("utter_inaction_none_open"), [*menu(ctx), ctx.button("human", MENU_HUMAN)]
        )
        return
    lines = "\n".join(f"• {tickets.status_text(ctx, t)}" for t in waiting)
    ctx.reply(ctx.say("utter_inaction_open", tickets=lines), [ctx.button("human", MENU_HUMAN)])


def _has_tickets(ctx: Context) -> bool:
    return bool(
        queries.tickets_of_citizen(
            session=ctx.turn.session, citizen_id=ctx.turn.citizen_id, limit=1
        )
    )


def on_english(ctx: Context, nlu: NluResult) -> None:
    """English: the menu, procedures with an English lead, a complaint form in English."""
    lowered = ctx.text.lower()
    if procedures.english_procedure(ctx.text) or (
        ctx.chat.topic and procedures.aspects_of(ctx, nlu)
    ):
        procedures.answer_question(ctx, nlu)
        return
    if _EN_STATUS.search(lowered):  # before the categories: "status of my complaint"
        tickets.check_status(ctx, nlu)
        return
    category = next((c for p, c in _EN_CATEGORIES if re.search(p, lowered)), None)
    if category is not None or _EN_REPORT.search(lowered):
        english = nlu.model_copy(update={"category": category, "location": None})
        complaints.start_report(ctx, english)
        return
    if _EN_GREET.search(lowered):
        ctx.reply(ctx.say("utter_greet"), menu(ctx))
        ctx.reply(ctx.say("utter_help"))
        return
    ctx.reply(ctx.say("utter_not_understood"), menu(ctx))


def request_human(ctx: Context) -> None:
    """Stored, sent to the city intake unit's officials, acknowledged."""
    turn = ctx.turn
    try:
        request_person(
            session=turn.session,
            channel=turn.channel,
            chat_id=turn.message.chat_id,
            citizen_id=turn.citizen_id,
            text=turn.message.text,
            message_id=turn.stored_id,
            now=turn.clock(),
        )
    except DailyCapReached as cap:
        ctx.reply(cap.reply_text)
        return
    ctx.chat.human_requested_at = turn.clock().isoformat()
    queries.flag_message(session=turn.session, message_id=turn.stored_id, human_request=True)
    ctx.reply(ctx.say("utter_human_ack"))


def not_understood(ctx: Context) -> None:
    ctx.chat.misunderstood += 1
    if ctx.chat.misunderstood >= 2:
        ctx.chat.misunderstood = 0
        ctx.reply(ctx.say("utter_offer_menu"), [*menu(ctx), ctx.button("human", MENU_HUMAN)])
    else:
        ctx.reply(ctx.say("utter_not_understood"))
