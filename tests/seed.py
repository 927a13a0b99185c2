"""Small directories, linked officials and tickets that several test modules seed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.config import settings
from bot.conversation.messages import reply_from_payload
from bot.officials.invites import invite_official, link_official
from storage import queries
from storage.models import (
    Channel,
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketCreate,
    Unit,
    UnitKind,
)


def two_wards_and_city(session: Session) -> None:
    """The city and two wards under it: ward-a (code 00001) and ward-b (00002)."""
    session.add(Unit(id="city", name="UBND Thành phố", kind=UnitKind.city))
    for unit_id, letter, ward_code in (("ward-a", "A", "00001"), ("ward-b", "B", "00002")):
        session.add(
            Unit(
                id=unit_id,
                name=f"UBND Phường {letter}",
                kind=UnitKind.ward,
                parent_id="city",
                ward_code=ward_code,
            )
        )
    session.commit()


def linked_official(
    session: Session,
    unit: str,
    chat: str,
    role: OfficialRole,
    *,
    now: datetime,
    name: str | None = None,
) -> Official:
    """An official of `unit`, invited and linked to the Telegram chat `chat`."""
    invited, code = invite_official(
        session=session, unit_id=unit, name=name or f"Cán bộ {chat}", role=role, now=now
    )
    linked = link_official(
        session=session,
        code=code,
        channel=Channel.telegram,
        external_user_id=chat,
        chat_id=chat,
        now=now,
    )
    assert linked is not None and linked.id == invited.id
    return linked


def waste_ticket(
    session: Session,
    unit: str,
    *,
    now: datetime,
    category: str = "waste",
    description: str = "Rác đổ trộm đầu ngõ",
    ward: tuple[str, str | None] = ("00001", None),
    location_text: str | None = None,
    chat: str = "citizen-chat",
    resolve_in: timedelta = timedelta(days=7),
) -> Ticket:
    """A Telegram citizen's ticket led by `unit`, accept within 8 hours."""
    return queries.create_ticket(
        timezone=settings.timezone,
        session=session,
        ticket_in=TicketCreate(
            category=category,
            description=description,
            ward_code=ward[0],
            ward_name=ward[1],
            location_text=location_text,
            channel=Channel.telegram,
            chat_id=chat,
            lead_unit_id=unit,
            accept_by=now + timedelta(hours=8),
            resolve_by=now + resolve_in,
        ),
        now=now,
    )


def kim_lien_with_a_handler(engine: Engine, now: datetime) -> str:
    """The bundled directory, a handler of UBND Phường Kim Liên linked as chat "handler", and
    a waste ticket of that ward led by it; the ticket's code."""
    from bot.directory.store import ensure_directory

    with Session(engine) as session:
        ensure_directory(session=session)
        linked_official(session, "ubnd-00229", "handler", OfficialRole.handler, now=now)
        ward = ("00229", "Phường Kim Liên")
        return waste_ticket(session, "ubnd-00229", now=now, ward=ward).code


def outbox_to(session: Session, recipient: str) -> list[str]:
    """The texts queued for `recipient`, oldest first."""
    rows = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.recipient == recipient)
        .order_by(col(OutboxMessage.id))
        .execution_options(populate_existing=True)
    ).all()
    return [reply_from_payload(r.payload).text for r in rows]
