"""A complaint from its first message to its ticket: what the first message already says,
the summary (naming the 2025 ward and the unit it will go to), and the filing."""

from __future__ import annotations

import re

from civicbot_nlu.normalize import normalize, raw_words

from bot.categories import CATEGORIES
from bot.conversation.dialogue import places, reading, tickets
from bot.conversation.dialogue.context import Context
from bot.conversation.dialogue.form import Form
from bot.conversation.dialogue.steps import MIN_DESCRIPTION_WORDS, next_step, take_place
from bot.conversation.texts import category_name, say, status_name
from bot.directory.routing import route
from bot.directory.store import ensure_directory
from bot.duplicates import follow
from bot.duplicates.matcher import Report
from bot.nlu import fallback
from bot.nlu.result import NluResult
from bot.tickets import workflow
from bot.tickets.intake import DailyCapReached, expected, file_ticket
from storage import followers, queries
from storage.models import Ticket, TicketCreate

MAX_SUMMARY_DESCRIPTION = 300


def start_report(ctx: Context, nlu: NluResult) -> None:
    """A new form with what the first message says: category, place, description, phone."""
    ctx.reset("idle")
    form = ctx.form
    form.category = nlu.category
    place = places.read_message(nlu.text, nlu.location.text if nlu.location else None)
    if place is not None:
        take_place(form, place)
    said = reading.content_words(nlu.text, without=place.text if place else None)
    if said >= MIN_DESCRIPTION_WORDS and (nlu.category is not None or len(nlu.text.split()) >= 6):
        form.description = nlu.text
    form.phone = nlu.phone
    photos = [a.file_id for a in ctx.turn.message.attachments if a.kind == "photo"]
    form.photos = photos
    next_step(ctx)


def _clip(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def description_of(form: Form) -> str:
    """The ticket's description; about an official, with when and who first."""
    what = form.description or ""
    if form.misconduct and (form.when or form.who):
        return say(
            "utter_description_misconduct", when=form.when or "—", who=form.who or "—", what=what
        )
    return what


def summary(ctx: Context, form: Form) -> str:
    session = ctx.turn.session
    ensure_directory(session=session)  # as filing does: the unit is named before filing
    unit_id = route(session=session, category=form.category, ward_code=form.ward_code).unit_id
    unit = workflow.unit_name(session, unit_id)
    place = form.place or "—"
    if form.ward_name and normalize(form.ward_name) not in normalize(place):
        place = ctx.say("utter_place_wards", place=place, ward=form.ward_name)
    routing = ctx.say(
        "utter_routing_ward" if form.ward_code else "utter_routing_no_ward", unit=unit
    )
    photos = (
        ctx.say("utter_photos_count", count=len(form.photos))
        if form.photos
        else ctx.say("utter_photos_none")
    )
    if form.anonymous:
        contact = ctx.say("utter_contact_anonymous")
    else:
        contact = form.phone or ctx.say("utter_contact_none")
    description = _clip(form.description or "", MAX_SUMMARY_DESCRIPTION)
    if form.misconduct:
        description += ctx.say("utter_summary_when", when=form.when or "—")
        description += ctx.say("utter_summary_who", who=form.who or "—")
    return ctx.say(
        "utter_summary",
        category=category_name(form.category, ctx.lang),
        place=place,
        description=description,
        photos=photos,
        contact=contact,
        routing=routing,
    )


def submit(ctx: Context) -> None:
    from bot.conversation.dialogue.flow import menu  # the menu lives with the idle dialogue

    form = ctx.form
    turn = ctx.turn
    photos = tuple(form.photos)
    try:
        ticket = file_ticket(
            session=turn.session,
            photo_file_ids=photos,
            actor="citizen",
            ticket_in=TicketCreate(
                category=form.category,
                description=description_of(form),
                location_text=form.place,
                ward_code=form.ward_code,
                ward_name=form.ward_name,
                latitude=form.lat,
                longitude=form.lon,
                anonymous=bool(form.anonymous),
                contact_phone=None if form.anonymous else form.phone,
                citizen_id=turn.citizen_id,
                channel=turn.channel,
                chat_id=turn.message.chat_id,
            ),
            now=turn.clock(),
            source_message_id=turn.stored_id,
        )
    except DailyCapReached as cap:  # over the day's cap: nothing filed, polite reply
        ctx.reset("idle")
        ctx.reply(cap.reply_text, menu(ctx))
        return
    ctx.reset("idle")
    ctx.reply(
        ctx.say(
            "utter_ticket_created",
            code=ticket.code,
            unit=workflow.unit_name(turn.session, ticket.lead_unit_id),
            accept_by=expected(ticket.accept_by, ctx.lang),
            resolve_by=expected(ticket.resolve_by, ctx.lang),
        ),
        menu(ctx),
    )
    _offer_second_problem(ctx, form)
    tickets.pending_question(ctx)


# Words that bring in another problem in the same message: "quán karaoke hát đến 1h sáng,
# ngoài ra đầu ngõ còn có bãi rác tự phát".
_ANOTHER = (
    ("ngoai", "ra"),
    ("them", "nua"),
    ("ben", "canh", "do"),
    ("con", "nua"),
    ("mat", "khac"),
    ("also",),
    ("besides",),
)
MIN_SECOND_PROBLEM_WORDS = 4


def second_problem(form: Form) -> tuple[str, str] | None:
    """A second problem told after "ngoài ra" in the form's description, of another
    category than the form's (read by keywords): its words and its category."""
    text = form.description or ""
    found = raw_words(text)
    folded = [w.text for w in found]
    for i in range(len(found)):
        for cue in _ANOTHER:
            if tuple(folded[i : i + len(cue)]) != cue or i + len(cue) >= len(found):
                continue
            rest = text[found[i + len(cue)].start :].strip()
            category = fallback.classify(rest).category
            if (
                category not in (None, form.category, "other")
                and len(found) - i - len(cue) >= MIN_SECOND_PROBLEM_WORDS
                and _cues(rest, category) > _cues(rest, form.category)
            ):
                return rest, category
    return None


def _cues(text: str, category: str | None) -> int:
    """How many of the category's own words `text` names: "ngoài ra rác còn bị vứt ra lòng
    đường" tells of waste as much as of the road, so it is more of a waste report."""
    cues = next((c.cues for c in CATEGORIES if c.code == category), ())
    folded = f" {normalize(text)} "
    return sum(f" {cue} " in folded for cue in cues)


def _offer_second_problem(ctx: Context, form: Form) -> None:
    """The ticket holds the whole message; a second problem of another kind may need its own
    unit: offered as a report of its own, with one press."""
    from bot.conversation.dialogue.flow import REPORT_HELD

    found = second_problem(form)
    if found is None:
        return
    rest, category = found
    ctx.chat.held = rest
    ctx.reply(
        ctx.say("utter_second_problem", category=category_name(category, ctx.lang)),
        [ctx.button("report_this", REPORT_HELD)],
    )


# --- One problem, one ticket: an open ticket that covers this one ------------------------


def covering_ticket(ctx: Context, form: Form) -> Ticket | None:
    """The open ticket that covers the form's problem (bot/duplicates), if any."""
    turn = ctx.turn
    report = Report(
        category=form.category,
        text=description_of(form),
        at=turn.clock(),
        place=form.place,
        ward_code=form.ward_code,
        ward_name=form.ward_name,
        lat=form.lat,
        lon=form.lon,
    )
    return follow.find_covering(
        session=turn.session,
        report=report,
        citizen_id=turn.citizen_id,
        channel=turn.channel,
        chat_id=turn.message.chat_id,
    )


def duplicate_notice(ctx: Context, form: Form) -> str:
    """ "Phản ánh PA-… về … đang được xử lý": the ticket, never its reporter's words."""
    session = ctx.turn.session
    ticket = queries.get_ticket_by_code(session=session, code=form.duplicate or "")
    assert ticket is not None and ticket.id is not None
    count = followers.citizens_behind(session=session, tickets=[ticket])[ticket.id]
    return ctx.say(
        "utter_duplicate_found",
        code=ticket.code,
        category=category_name(ticket.category, ctx.lang),
        ward=ticket.ward_name or ctx.say("utter_duplicate_nearby"),
        filed=expected(ticket.created_at, ctx.lang),
        status=status_name(ticket.status.value, ctx.lang),
        unit=workflow.unit_name(session, ticket.lead_unit_id),
        count=max(count, 1),
    )


def follow_instead(ctx: Context, form: Form) -> bool:
    """The citizen follows the open ticket instead of filing; False (and said) when it is no
    longer open, and the form goes on to be filed."""
    from bot.conversation.dialogue.flow import menu

    turn = ctx.turn
    ticket = queries.get_ticket_by_code(session=turn.session, code=form.duplicate or "")
    if ticket is None or ticket.status not in tickets.OPEN:
        form.file_anyway = True
        ctx.reply(ctx.say("utter_duplicate_closed_meanwhile"))
        return False
    follow.follow(
        session=turn.session,
        ticket=ticket,
        citizen_id=turn.citizen_id,
        channel=turn.channel,
        chat_id=turn.message.chat_id,
        note=description_of(form) or None,
        photos=tuple(form.photos),
        message_id=turn.stored_id,
        now=turn.clock(),
    )
    ctx.reset("idle")
    ctx.reply(
        ctx.say(
            "utter_following",
            code=ticket.code,
            unit=workflow.unit_name(turn.session, ticket.lead_unit_id),
            resolve_by=expected(ticket.resolve_by, ctx.lang),
        ),
        menu(ctx),
    )
    tickets.pending_question(ctx)
    return True
