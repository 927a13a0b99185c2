"""Filing a complaint, the same for the chat and the Open311 API.

"Một việc – một đầu mối": the ticket is routed to exactly one unit, gets its working-time
deadlines, and that unit's officials are notified, all in one transaction with the ticket.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.config import settings
from bot.conversation.messages import Button, OutgoingFile, Reply
from bot.conversation.texts import CATEGORY_NAMES, CHANNEL_NAMES, say
from bot.directory.calendar import WorkingCalendar
from bot.directory.deadlines import deadlines_for, format_expected
from bot.directory.routing import route
from bot.directory.store import ensure_directory, intake_unit
from bot.tickets.notices import notify_officials
from storage import queries
from storage.db import begin_write
from storage.models import (
    Attachment,
    Channel,
    HumanRequest,
    Ticket,
    TicketCreate,
    TicketStatus,
)


@cache
def calendar() -> WorkingCalendar:
    """The working-time calendar of CIVICBOT_TIMEZONE."""
    return WorkingCalendar.from_settings(settings)


def expected(moment: datetime | None, language: str = "vi") -> str:
    """A deadline as citizens and officials read it, in local time (and a chat's language)."""
    if moment is None:
        return "—"
    return format_expected(moment, ZoneInfo(settings.timezone), language)


class DailyCapReached(Exception):
    """A citizen reached today's cap of tickets or person requests (CIVICBOT_MAX_*_PER_DAY);
    nothing was filed. The dialogue answers with `reply_text`."""

    def __init__(self, kind: Literal["tickets", "person_requests"], cap: int) -> None:
        super().__init__(f"Daily cap of {cap} {kind} reached")
        self.kind = kind
        self.cap = cap

    @property
    def reply_text(self) -> str:
        """What the citizen reads."""
        if self.kind == "tickets":
            return say("utter_daily_ticket_cap", cap=self.cap)
        return say("utter_daily_person_cap", cap=self.cap)


def check_daily_cap(
    *,
    session: Session,
    kind: Literal["tickets", "person_requests"],
    now: datetime,
    citizen_id: int | None,
    channel: Channel | None,
    chat_id: str | None,
) -> None:
    """Raises `DailyCapReached` when the citizen (or, without one, the chat) already filed
    today's cap of `kind` (today: the local day of CIVICBOT_TIMEZONE)."""
    cap = (
        settings.max_tickets_per_day if kind == "tickets" else settings.max_person_requests_per_day
    )
    zone = ZoneInfo(settings.timezone)
    midnight = datetime.combine(now.astimezone(zone).date(), time(), zone)
    done = queries.count_filed_since(
        session=session,
        kind=kind,
        since=midnight,
        citizen_id=citizen_id,
        channel=channel,
        chat_id=chat_id,
    )
    if done >= cap:
        raise DailyCapReached(kind, cap)


def file_ticket(
    *,
    session: Session,
    ticket_in: TicketCreate,
    now: datetime,
    actor: str,
    photo_file_ids: tuple[str, ...] = (),
    source_message_id: int | None = None,
) -> Ticket:
    """Create, route, set deadlines and notify the lead unit's officials; returns the ticket.
    The photos are attached (to the ticket and the message `source_message_id`) with it.

    Filed from a chat, `source_message_id` is the message whose turn files it: a turn replayed
    after a crash between this commit and the turn's own gets the ticket filed then, not a
    second one (nor second notices). Raises `DailyCapReached` (before writing anything) over
    the citizen's daily cap."""
    if source_message_id is not None:
        filed = queries.ticket_filed_from(session=session, message_id=source_message_id)
        if filed is not None:
            return filed
    check_daily_cap(
        session=session,
        kind="tickets",
        now=now,
        citizen_id=ticket_in.citizen_id,
        channel=ticket_in.channel,
        chat_id=ticket_in.chat_id,
    )
    ensure_directory(session=session)
    decision = route(session=session, category=ticket_in.category, ward_code=ticket_in.ward_code)
    deadlines = deadlines_for(
        category=ticket_in.category,
        filed_at=now,
        calendar=calendar(),
        text=ticket_in.description,
    )
    routed = ticket_in.model_copy(
        update={
            "lead_unit_id": decision.unit_id,
            "unrouted": decision.unrouted,
            "severity": deadlines.severity,
            "accept_by": deadlines.accept_by,
            "resolve_by": deadlines.resolve_by,
            "source_message_id": source_message_id,
        }
    )
    begin_write(session)
    ticket = queries.create_ticket(
        timezone=settings.timezone,
        session=session,
        ticket_in=routed,
        actor=actor,
        now=now,
        commit=False,
    )
    officials = queries.officials_of_unit(session=session, unit_id=decision.unit_id)
    notify_officials(
        session=session,
        officials=officials,
        reply=new_ticket_notice(
            ticket,
            tuple(OutgoingFile("photo", file_id=f, channel=ticket.channel) for f in photo_file_ids),
        ),
        key=f"ticket:{ticket.code}:new",
    )
    for file_id in photo_file_ids:
        if ticket.channel is None:
            raise ValueError("Photos need the channel whose file ids they are.")
        session.add(
            Attachment(
                ticket_id=ticket.id,
                message_id=source_message_id,
                channel=ticket.channel,
                file_id=file_id,
                kind="photo",
            )
        )
    session.commit()
    session.refresh(ticket)
    return ticket


def official_buttons(code: str, status: TicketStatus = TicketStatus.received) -> tuple[Button, ...]:
    """What an official can do with a ticket in `status` (data read by bot/officials/desk.py)."""
    if status not in (TicketStatus.received, TicketStatus.accepted, TicketStatus.need_info):
        return ()
    accept = (Button("Tiếp nhận", f"t:acc:{code}"),) if status == TicketStatus.received else ()
    return (
        *accept,
        Button("Hỏi thêm người dân", f"t:ask:{code}"),
        Button("Chuyển đơn vị", f"t:tra:{code}"),
        Button("Đã giải quyết", f"t:res:{code}"),
        Button("Không tiếp nhận", f"t:rej:{code}"),
    )


def place_text(ticket: Ticket) -> str:
    """Where the problem is, as officials read it: the place as written, and its ward."""
    place = ticket.location_text or "—"
    return f"{place} ({ticket.ward_name})" if ticket.ward_name else place


def contact_text(ticket: Ticket) -> str:
    """How to reach the citizen, as officials read it."""
    return "Ẩn danh" if ticket.anonymous else (ticket.contact_phone or "Không để lại")


def new_ticket_notice(ticket: Ticket, photos: tuple[OutgoingFile, ...] = ()) -> Reply:
    """The message a unit's officials get for a new (or transferred-in) ticket."""
    place, contact = place_text(ticket), contact_text(ticket)
    text = say(
        "utter_official_new_ticket",
        code=ticket.code,
        category=CATEGORY_NAMES.get(ticket.category or "other", "Khác"),
        place=place,
        description=ticket.description,
        photos=(
            say("utter_photos_count", count=len(photos)) if photos else say("utter_photos_none")
        ),
        contact=contact,
        accept_by=expected(ticket.accept_by),
        resolve_by=expected(ticket.resolve_by),
        flag=say("utter_official_unrouted_flag") if ticket.unrouted else "",
    )
    return Reply(text=text, buttons=official_buttons(ticket.code), files=photos)


def request_person(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    citizen_id: int | None,
    text: str,
    message_id: int | None,
    now: datetime,
) -> HumanRequest:
    """A citizen asks for a person: stored, and the unit on duty (city intake) is told.

    Asked again by the same `message_id` (a turn replayed after a crash), the request made
    then. Raises `DailyCapReached` (before writing anything) over the citizen's daily cap."""
    if message_id is not None:
        made = session.exec(select(HumanRequest).where(HumanRequest.message_id == message_id))
        found = made.first()
        if found is not None:
            return found
    check_daily_cap(
        session=session,
        kind="person_requests",
        now=now,
        citizen_id=citizen_id,
        channel=channel,
        chat_id=chat_id,
    )
    ensure_directory(session=session)
    unit = intake_unit(session=session)
    begin_write(session)
    request = HumanRequest(
        citizen_id=citizen_id, channel=channel, chat_id=chat_id, unit_id=unit.id,
        text=text[:2000], message_id=message_id, created_at=now,
    )  # fmt: skip
    session.add(request)
    session.flush()
    notify_officials(
        session=session,
        officials=queries.officials_of_unit(session=session, unit_id=unit.id),
        key=f"human:{request.id}:new",
        reply=Reply(
            say("utter_official_human_request", id=request.id,
                channel=CHANNEL_NAMES[channel.value], text=text[:1000]),
            (Button("Trả lời", f"h:reply:{request.id}"),),
        ),
    )  # fmt: skip
    session.commit()
    session.refresh(request)
    return request
