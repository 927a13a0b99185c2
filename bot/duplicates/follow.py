"""Following a ticket instead of filing the same problem again.

`find_covering` looks for the open ticket that covers a report being filed (the matcher,
bot/duplicates/matcher.py, on the candidates the database gives); `follow` records the
citizen as a follower of it, with what they wrote as a note on the ticket and their photos
on it, so nothing they sent is lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from bot.config import settings
from bot.duplicates.matcher import Limits, Report, score
from storage import followers
from storage.db import begin_write
from storage.models import (
    Attachment,
    Channel,
    Ticket,
    TicketEvent,
    TicketEventKind,
    TicketStatus,
)

ACTOR_FOLLOWER = "follower"


def limits() -> Limits:
    """The configured bounds (CIVICBOT_DUPLICATE_RADIUS_M, CIVICBOT_DUPLICATE_DAYS)."""
    return Limits(radius_m=settings.duplicate_radius_m, days=settings.duplicate_days)


def report_of(ticket: Ticket) -> Report:
    """A ticket as the matcher compares it."""
    return Report(
        category=ticket.category,
        text=ticket.description,
        at=ticket.created_at,
        place=ticket.location_text,
        ward_code=ticket.ward_code,
        ward_name=ticket.ward_name,
        lat=ticket.latitude,
        lon=ticket.longitude,
    )


def find_covering(
    *, session: Session, report: Report, citizen_id: int | None, channel: Channel, chat_id: str
) -> Ticket | None:
    """The open ticket that best covers `report`, if any; never one the citizen filed or
    already follows (they hear of it already)."""
    if report.category is None:
        return None
    bounds = limits()
    candidates = followers.open_tickets_near(
        session=session,
        category=report.category,
        since=report.at - timedelta(days=bounds.days),
        ward_code=report.ward_code,
        lat=report.lat,
        lon=report.lon,
        radius_m=bounds.radius_m,
    )
    best: tuple[float, Ticket] | None = None
    for ticket in candidates:
        if citizen_id is not None and ticket.citizen_id == citizen_id:
            continue
        if ticket.channel == channel and ticket.chat_id == chat_id:
            continue
        assert ticket.id is not None
        if followers.get_follower(
            session=session, ticket_id=ticket.id, channel=channel, chat_id=chat_id
        ):
            continue
        found = score(report_of(ticket), report, bounds)
        if found is not None and found >= bounds.threshold and (best is None or found > best[0]):
            best = (found, ticket)
    return best[1] if best else None


def follow(
    *,
    session: Session,
    ticket: Ticket,
    citizen_id: int | None,
    channel: Channel,
    chat_id: str,
    note: str | None,
    photos: tuple[str, ...],
    message_id: int | None,
    now: datetime,
) -> bool:
    """The chat follows `ticket`: a follower row, a `followed` event with what the citizen
    wrote, their photos on the ticket; one transaction. False when it already followed."""
    assert ticket.id is not None
    begin_write(session)
    added = followers.add_follower(
        session=session,
        ticket_id=ticket.id,
        citizen_id=citizen_id,
        channel=channel,
        chat_id=chat_id,
        via="follow",
        now=now,
    )
    if added:
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                kind=TicketEventKind.followed,
                actor=ACTOR_FOLLOWER,
                note=note,
                at=now,
            )
        )
        for file_id in photos:
            session.add(
                Attachment(
                    ticket_id=ticket.id,
                    message_id=message_id,
                    channel=channel,
                    file_id=file_id,
                    kind="photo",
                    created_at=now,
                )
            )
    session.commit()
    return added


class NotRateable(Exception):
    """A follower's rating that cannot be taken: not resolved yet, or rated already."""


def rate_as_follower(
    *, session: Session, ticket: Ticket, channel: Channel, chat_id: str, rating: int, now: datetime
) -> None:
    """A follower's 1–5 rating of a resolved (or since closed) ticket: kept on their follower
    row and as a `follower_rating` event; the ticket's own rating stays its reporter's."""
    if not 1 <= rating <= 5:
        raise ValueError("A rating is 1 to 5.")
    assert ticket.id is not None
    begin_write(session)
    follower = followers.get_follower(
        session=session, ticket_id=ticket.id, channel=channel, chat_id=chat_id
    )
    done = (TicketStatus.resolved, TicketStatus.closed)
    if follower is None or follower.rating is not None or ticket.status not in done:
        session.rollback()
        raise NotRateable(ticket.code)
    follower.rating, follower.rated_at = rating, now
    session.add(follower)
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=TicketEventKind.follower_rating,
            actor=ACTOR_FOLLOWER,
            note=f"{rating}/5",
            new_value={"rating": rating},
            at=now,
        )
    )
    session.commit()
