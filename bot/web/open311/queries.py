"""What the API reads from the database: keyword-only functions on a Session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlmodel import Session, col, or_, select

from storage.models import OPEN311_CLOSED, Attachment, Ticket, TicketEvent, Unit

MAX_RESULTS = 1000


@dataclass(frozen=True)
class RequestQuery:
    """What `GET requests` asks for."""

    codes: tuple[str, ...] | None = None  # ticket codes: when set, no other filter applies
    service_codes: tuple[str, ...] = ()
    closed: bool | None = None  # None: open and closed
    start: datetime | None = None
    end: datetime | None = None


# --- Queries --------------------------------------------------------------------------------

# Complaints about officials' conduct name people and are offered anonymity: they can be
# filed through the API but are never listed publicly.
NOT_PUBLIC = ("misconduct",)


def find_tickets(
    *, session: Session, query: RequestQuery, limit: int = MAX_RESULTS
) -> list[Ticket]:
    """The tickets `query` asks for, newest first; never the `NOT_PUBLIC` categories."""
    statement = select(Ticket).where(
        or_(col(Ticket.category).is_(None), col(Ticket.category).not_in(NOT_PUBLIC))
    )
    if query.codes is not None:
        statement = statement.where(col(Ticket.code).in_(query.codes))
    else:
        if query.service_codes:
            matches: sa.ColumnElement[bool] = col(Ticket.category).in_(query.service_codes)
            if "other" in query.service_codes:
                matches = or_(matches, col(Ticket.category).is_(None))
            statement = statement.where(matches)
        if query.closed is not None:
            closed = col(Ticket.status).in_(list(OPEN311_CLOSED))
            statement = statement.where(closed if query.closed else ~closed)
        if query.start is not None:
            statement = statement.where(col(Ticket.created_at) >= query.start)
        if query.end is not None:
            statement = statement.where(col(Ticket.created_at) <= query.end)
    statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return list(session.exec(statement.limit(limit)).all())


def unit_names(*, session: Session, unit_ids: Iterable[str]) -> dict[str, str]:
    """Unit id → name for the units given."""
    wanted = sorted(set(unit_ids))
    if not wanted:
        return {}
    units = session.exec(select(Unit).where(col(Unit.id).in_(wanted))).all()
    return {unit.id: unit.name for unit in units}


def latest_public_notes(*, session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Ticket id → the latest note an official marked public (`TicketEvent.public`)."""
    if not ticket_ids:
        return {}
    events = session.exec(
        select(TicketEvent)
        .where(
            col(TicketEvent.ticket_id).in_(ticket_ids),
            col(TicketEvent.public).is_(True),
            col(TicketEvent.note).is_not(None),
        )
        .order_by(col(TicketEvent.at).desc(), col(TicketEvent.id).desc())
    ).all()
    notes: dict[int, str] = {}
    for event in events:
        if event.note and event.note.strip():
            notes.setdefault(event.ticket_id, event.note.strip())
    return notes


def _url_of(attachment: Attachment) -> str | None:
    url = attachment.meta.get("url") if attachment.meta else None
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def first_media_urls(*, session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Ticket id → the URL of its first photo that has one (channel file ids are not URLs)."""
    if not ticket_ids:
        return {}
    attachments = session.exec(
        select(Attachment)
        .where(col(Attachment.ticket_id).in_(ticket_ids), Attachment.kind == "photo")
        .order_by(col(Attachment.id))
    ).all()
    urls: dict[int, str] = {}
    for attachment in attachments:
        url = _url_of(attachment)
        if url is not None and attachment.ticket_id is not None:
            urls.setdefault(attachment.ticket_id, url)
    return urls
