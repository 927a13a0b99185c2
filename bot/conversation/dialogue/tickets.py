"""The citizen's tickets after filing: status (by code, or told as a story), ratings and
"not fixed" in words or buttons, answers to an official's question."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from civicbot_nlu.patterns import find_ticket_codes
from sqlmodel import Session

from bot.conversation.dialogue import places
from bot.conversation.dialogue.context import ANSWER_INFO, IDLE, Context
from bot.conversation.dialogue.form import ChatData
from bot.conversation.texts import category_name, status_name
from bot.duplicates import follow
from bot.nlu.result import NluResult
from bot.tickets import workflow
from bot.tickets.intake import expected
from bot.tickets.workflow import ActionRefused
from storage import followers, queries
from storage.models import Direction, Ticket, TicketEventKind, TicketStatus

MAX_LISTED_TICKETS = 5
# Events whose notes are a follower's own words or rating: never shown to another citizen.
FOLLOWERS_OWN = (TicketEventKind.followed, TicketEventKind.follower_rating)
OPEN = (TicketStatus.received, TicketStatus.accepted, TicketStatus.need_info)


def own_ticket(ctx: Context, code: str) -> Ticket | None:
    """A ticket the citizen filed or follows; others are not found (never reveal them)."""
    ticket = queries.get_ticket_by_code(session=ctx.turn.session, code=code)
    if ticket is None or not (_is_reporter(ctx, ticket) or _follows(ctx, ticket)):
        ctx.reply(ctx.say("utter_ticket_not_found", code=code))
        return None
    return ticket


def _is_reporter(ctx: Context, ticket: Ticket) -> bool:
    return ticket.citizen_id == ctx.turn.citizen_id


def _follows(ctx: Context, ticket: Ticket) -> bool:
    assert ticket.id is not None
    found = followers.get_follower(
        session=ctx.turn.session,
        ticket_id=ticket.id,
        channel=ctx.turn.channel,
        chat_id=ctx.turn.message.chat_id,
    )
    return found is not None


def status_text(ctx: Context, ticket: Ticket) -> str:
    """Status for the citizen: unit, deadline while open, the latest note."""
    session = ctx.turn.session
    assert ticket.id is not None
    events = queries.ticket_events(session=session, ticket_id=ticket.id)
    notes = [e.note for e in events if e.note and e.kind not in FOLLOWERS_OWN]
    deadline = (
        ctx.say("utter_status_deadline", resolve_by=expected(ticket.resolve_by, ctx.lang))
        if ticket.status in OPEN and ticket.resolve_by
        else ""
    )
    return ctx.say(
        "utter_ticket_status",
        code=ticket.code,
        category=category_name(ticket.category, ctx.lang),
        status=status_name(ticket.status.value, ctx.lang),
        unit=workflow.unit_name(session, ticket.lead_unit_id),
        deadline=deadline,
        note=ctx.say("utter_status_note", note=notes[-1]) if notes else "",
    )


def check_status(ctx: Context, nlu: NluResult | None) -> None:
    """By code; else the tickets the story matches (category, place); else the list."""
    codes = find_ticket_codes(ctx.text)
    code = (nlu.ticket_code if nlu else None) or (codes[0].value if codes else None)
    if code is not None:
        ticket = own_ticket(ctx, code)
        if ticket is not None:
            ctx.reply(status_text(ctx, ticket))
        return
    session, citizen_id = ctx.turn.session, ctx.turn.citizen_id
    tickets = list(queries.tickets_of_citizen(session=session, citizen_id=citizen_id))
    followed = followers.followed_tickets(session=session, citizen_id=citizen_id)
    tickets += [t for t in followed if t not in tickets]
    if not tickets:
        from bot.conversation.dialogue.flow import menu

        ctx.reply(ctx.say("utter_no_tickets"), menu(ctx))
        return
    matching = _matching(ctx, tickets, nlu)
    if len(matching) == 1 or len(tickets) == 1:
        ctx.reply(status_text(ctx, (matching or tickets)[0]))
        return
    shown = (matching or tickets)[:MAX_LISTED_TICKETS]
    lines = "\n".join(f"• {status_text(ctx, t)}" for t in shown)
    ctx.reply(ctx.say("utter_ticket_list", tickets=lines))


def open_tickets(ctx: Context) -> list[Ticket]:
    """The open tickets the citizen filed or follows, newest first (at most a few)."""
    session, citizen_id = ctx.turn.session, ctx.turn.citizen_id
    own = queries.tickets_of_citizen(session=session, citizen_id=citizen_id, statuses=OPEN)
    followed = followers.followed_tickets(session=session, citizen_id=citizen_id, statuses=OPEN)
    return [*own, *(t for t in followed if t not in own)][:MAX_LISTED_TICKETS]


def _matching(ctx: Context, tickets: list[Ticket], nlu: NluResult | None) -> list[Ticket]:
    """The tickets a story names: by its category and its place, when it gives them."""
    category = nlu.category if nlu else None
    place = places.read_message(ctx.text, nlu.location.text if nlu and nlu.location else None)
    wards = set()
    if place is not None:
        wards = {w.code for w in place.candidates} | ({place.ward.code} if place.ward else set())
    matching = tickets
    if category:
        matching = [t for t in matching if t.category == category]
    if wards:
        matching = [t for t in matching if t.ward_code in wards]
    return matching if (category or wards) else []


def awaiting_rating(ctx: Context) -> Ticket | None:
    """The citizen's latest resolved ticket, else the latest resolved one they follow and
    have not rated: a rating or "not fixed" may come in words."""
    session, citizen_id = ctx.turn.session, ctx.turn.citizen_id
    resolved = [TicketStatus.resolved]
    waiting = queries.tickets_of_citizen(
        session=session, citizen_id=citizen_id, statuses=resolved, limit=1
    ) or followers.followed_tickets(
        session=session, citizen_id=citizen_id, statuses=resolved, unrated=True, limit=1
    )
    return waiting[0] if waiting else None


def resolved_since_last_message(ctx: Context, ticket: Ticket) -> bool:
    """Whether `ticket` was resolved (and its rating asked) after the citizen's previous
    message: then a bare "5" now answers that, whatever step a form is at."""
    if ticket.resolved_at is None:
        return False
    latest = queries.messages_of_chat(
        session=ctx.turn.session,
        channel=ctx.turn.channel,
        chat_id=ctx.turn.message.chat_id,
        limit=5,
    )
    earlier = [
        m for m in latest if m.direction == Direction.incoming and m.id != ctx.turn.stored_id
    ]
    return not earlier or _utc(earlier[-1].created_at) < _utc(ticket.resolved_at)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rate(ctx: Context, ticket: Ticket, stars: int) -> None:
    """The reporter's rating closes the ticket; a follower's is theirs alone."""
    if not _is_reporter(ctx, ticket):
        try:
            follow.rate_as_follower(
                session=ctx.turn.session,
                ticket=ticket,
                channel=ctx.turn.channel,
                chat_id=ctx.turn.message.chat_id,
                rating=stars,
                now=ctx.turn.clock(),
            )
        except follow.NotRateable:
            ctx.reply(ctx.say("utter_rating_already", code=ticket.code))
            return
        ctx.reply(ctx.say("utter_follower_rating_thanks", rating=stars, code=ticket.code))
        return
    try:
        workflow.rate(session=ctx.turn.session, ticket=ticket, rating=stars, now=ctx.turn.clock())
    except ActionRefused:
        ctx.reply(ctx.say("utter_rating_already", code=ticket.code))
        return
    ctx.reply(ctx.say("utter_rating_thanks", rating=stars, code=ticket.code))


def rated_already(ctx: Context) -> None:
    """A rating when none is awaited: say which rating stands (nothing is recorded), rather
    than thank for one as if it counted."""
    closed = queries.tickets_of_citizen(
        session=ctx.turn.session,
        citizen_id=ctx.turn.citizen_id,
        statuses=[TicketStatus.closed],
        limit=1,
    )
    if closed and closed[0].rating is not None:
        ticket = closed[0]
        ctx.reply(ctx.say("utter_rating_recorded_before", code=ticket.code, rating=ticket.rating))
    elif ctx.text.strip(" .!").isdigit():  # a choice from an old list, not a rating
        from bot.conversation.dialogue.flow import menu

        ctx.reply(ctx.say("utter_number_unclear", number=ctx.text.strip(" .!")), menu(ctx))
    else:
        ctx.reply(ctx.say("utter_rate_thanks"))


def reopen(ctx: Context, ticket: Ticket) -> None:
    """Reopened (by its reporter or a follower): the unit, the reporter and the followers
    hear through the outbox (workflow.reopen)."""
    actor = "citizen" if _is_reporter(ctx, ticket) else follow.ACTOR_FOLLOWER
    try:
        workflow.reopen(session=ctx.turn.session, ticket=ticket, now=ctx.turn.clock(), actor=actor)
    except ActionRefused:
        ctx.reply(ctx.say("utter_rating_already", code=ticket.code))


def ask_rating(ctx: Context, ticket: Ticket) -> None:
    ctx.reply(
        ctx.say("utter_ticket_resolved_ask_rating", code=ticket.code),
        workflow.rating_buttons(ticket.code, ctx.lang),
    )


def pending_question(ctx: Context) -> None:
    """A question an official asked while the citizen was filling in a form, asked again
    once the form is done: the next message is taken as the answer."""
    session = ctx.turn.session
    waiting = queries.tickets_of_citizen(
        session=session,
        citizen_id=ctx.turn.citizen_id,
        statuses=[TicketStatus.need_info],
        limit=1,
    )
    question = workflow.question_asked(session, waiting[0]) if waiting else None
    if not waiting or question is None or not question.note:
        return
    ticket = waiting[0]
    ctx.state = ANSWER_INFO
    ctx.chat.ticket = ticket.code
    ctx.reply(
        ctx.say(
            "utter_ticket_question_pending",
            code=ticket.code,
            unit=workflow.unit_name(session, ticket.lead_unit_id),
            question=question.note,
        )
    )


def await_answer(session: Session, ticket: Ticket) -> None:
    """An official asked about `ticket` (`workflow.ask_info`): the citizen's next message is
    the answer, unless they are filling in a form (then `pending_question` asks after it)."""
    if ticket.channel is None or ticket.chat_id is None:
        return
    conversation = queries.get_conversation(
        session=session, channel=ticket.channel, chat_id=ticket.chat_id
    )
    if conversation is None or conversation.state not in (IDLE, ANSWER_INFO):
        return
    conversation.state = ANSWER_INFO
    chat = ChatData.load(conversation.data)  # the chat keeps its language and topic
    conversation.data = ChatData(lang=chat.lang, topic=chat.topic, ticket=ticket.code).dump()
    session.add(conversation)


def question_open(ctx: Context) -> bool:
    """Whether the question the chat waits to answer is still asked: a unit may resolve,
    reject or transfer without the answer, and then the next text is read afresh (a typed
    rating, "vẫn chưa", a new request), not as an answer to a question no longer there."""
    code = ctx.chat.ticket or ""
    ticket = queries.get_ticket_by_code(session=ctx.turn.session, code=code)
    return ticket is not None and ticket.status == TicketStatus.need_info


def answer_question(ctx: Context, photos: Sequence[str] = ()) -> None:
    """The citizen's answer to the official's question on their ticket: text, photos or
    both (an official often asks for a photo)."""
    code = ctx.chat.ticket or ""
    ctx.reset(IDLE)
    ticket = own_ticket(ctx, code)
    if ticket is None:
        return
    if ticket.status != TicketStatus.need_info:
        ctx.reply(ctx.say("utter_button_expired"))
        return
    workflow.citizen_answer(
        session=ctx.turn.session,
        ticket=ticket,
        text=ctx.text,
        now=ctx.turn.clock(),
        photos=photos,
    )
    ctx.reply(
        ctx.say(
            "utter_answer_sent",
            code=ticket.code,
            unit=workflow.unit_name(ctx.turn.session, ticket.lead_unit_id),
        )
    )


def ticket_button(ctx: Context, kind: str, value: str) -> None:
    """ "Trả lời", the stars and "Chưa được giải quyết" under an official's message."""
    code, _, stars = value.partition(":")
    ticket = own_ticket(ctx, code)
    if ticket is None:
        return
    if kind == "ans":
        if ticket.status != TicketStatus.need_info or not _is_reporter(
            ctx, ticket
        ):  # answered already, or concluded
            ctx.reply(ctx.say("utter_button_expired"))
            return
        ctx.reset(ANSWER_INFO)
        ctx.chat.ticket = ticket.code
        from bot.conversation.dialogue.steps import cancel_button

        ctx.reply(ctx.say("utter_answer_prompt", code=ticket.code), [cancel_button(ctx)])
    elif kind == "rate" and stars.isdigit() and 1 <= int(stars) <= 5:
        rate(ctx, ticket, int(stars))
    elif kind == "reopen":
        reopen(ctx, ticket)
    else:
        ctx.reply(ctx.say("utter_button_expired"))
