"""Queries of one problem, one ticket (issue 19): the open tickets a new report may
duplicate, a ticket's followers, the citizens behind each ticket.

Keyword-only functions on a `Session`, as in `storage.queries`; the writers here join the
caller's transaction (they flush, they do not commit), so that following a ticket and the
event it leaves are stored together.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import Channel, Ticket, TicketFollower, TicketStatus

OPEN = (TicketStatus.received, TicketStatus.accepted, TicketStatus.need_info)
METRES_PER_DEGREE = 111_000  # of latitude; a box a little larger than the radius is enough


def open_tickets_near(
    *,
    session: Session,
    category: str,
    since: datetime,
    ward_code: str | None,
    lat: float | None,
    lon: float | None,
    radius_m: float,
    limit: int = 50,
) -> Sequence[Ticket]:
    """Open tickets of `category` filed since `since`, in the ward or pinned in a box around
    the pin (the matcher then measures the distance), newest first."""
    places: list[sa.ColumnElement[bool]] = []
    if ward_code is not None:
        places.append(col(Ticket.ward_code) == ward_code)
    if lat is not None and lon is not None:
        box = 2 * radius_m / METRES_PER_DEGREE  # wide enough for longitudes at Hà Nội's 21°N
        places.append(
            sa.and_(
                col(Ticket.latitude).between(lat - box, lat + box),
                col(Ticket.longitude).between(lon - box, lon + box),
            )
        )
    if not places:
        return ()
    statement = (
        select(Ticket)
        .where(
            Ticket.category == category,
            col(Ticket.status).in_(OPEN),
            col(Ticket.created_at) >= since,
            sa.or_(*places),
        )
        .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
        .limit(limit)
    )
    return session.exec(statement).all()


def get_follower(
    *, session: Session, ticket_id: int, channel: Channel, chat_id: str
) -> TicketFollower | None:
    return session.exec(
        select(TicketFollower).where(
            TicketFollower.ticket_id == ticket_id,
            TicketFollower.channel == channel,
            TicketFollower.chat_id == chat_id,
        )
    ).first()


def add_follower(
    *,
    session: Session,
    ticket_id: int,
    citizen_id: int | None,
    channel: Channel,
    chat_id: str,
    via: str,
    now: datetime,
) -> bool:
    """The chat follows the ticket; False when it already did. Joins the open transaction."""
    if get_follower(session=session, ticket_id=ticket_id, channel=channel, chat_id=chat_id):
        return False
    session.add(
        TicketFollower(
            ticket_id=ticket_id,
            citizen_id=citizen_id,
            channel=channel,
            chat_id=chat_id,
            via=via,
            created_at=now,
        )
    )
    session.flush()
    return True


def followers_of(*, session: Session, ticket_id: int) -> Sequence[TicketFollower]:
    """A ticket's followers, in the order they came."""
    return session.exec(
        select(TicketFollower)
        .where(TicketFollower.ticket_id == ticket_id)
        .order_by(col(TicketFollower.id))
    ).all()


def citizens_behind(*, session: Session, tickets: Collection[Ticket]) -> dict[int, int]:
    """How many citizens stand behind each ticket: its reporter (when a citizen filed it,
    not an Open311 client) and its followers."""
    ids = [t.id for t in tickets if t.id is not None]
    counts: dict[int, int] = {}
    if ids:
        rows = session.exec(
            select(TicketFollower.ticket_id, func.count())
            .where(col(TicketFollower.ticket_id).in_(ids))
            .group_by(col(TicketFollower.ticket_id))
        ).all()
        counts = {ticket_id: count for ticket_id, count in rows}
    return {
        t.id: counts.get(t.id, 0) + (1 if t.chat_id or t.citizen_id else 0)
        for t in tickets
        if t.id is not None
    }


def followed_tickets(
    *,
    session: Session,
    citizen_id: int,
    statuses: Sequence[TicketStatus] | None = None,
    unrated: bool = False,
    limit: int = 20,
) -> Sequence[Ticket]:
    """The tickets a citizen follows, newest first; with `unrated`, those they have not
    rated yet."""
    statement = (
        select(Ticket)
        .join(TicketFollower, col(TicketFollower.ticket_id) == col(Ticket.id))
        .where(TicketFollower.citizen_id == citizen_id)
    )
    if statuses:
        statement = statement.where(col(Ticket.status).in_(list(statuses)))
    if unrated:
        statement = statement.where(col(TicketFollower.rating).is_(None))
    statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return session.exec(statement.limit(limit)).all()
