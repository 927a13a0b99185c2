"""Officials merge a duplicate filed anyway into the ticket of the same problem (issue 19),
from the chat desk (`/gop`), on both databases: history on both tickets, the duplicate closed,
its reporter told and following the other ticket; the access rule applies."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from seed import linked_official, outbox_to, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session
from test_access import NOW, Chat
from test_dashboard import NoConversation

from bot.conversation.texts import say
from bot.officials.desk import Desk
from bot.tickets import workflow
from storage import followers, queries
from storage.models import (
    Official,
    OfficialRole,
    OutboxMessage,
    OutboxStatus,
    Severity,
    Ticket,
    TicketStatus,
)


@pytest.fixture
def desk(engine: Engine) -> Desk:
    return Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.fixture
def codes(engine: Engine) -> tuple[str, str, str]:
    """ward-a's ticket, its duplicate filed by a neighbour, and ward-b's ticket."""
    with Session(engine) as session:
        two_wards_and_city(session)
        for name, unit, role in (
            ("handler-a", "ward-a", OfficialRole.handler),
            ("leader", "city", OfficialRole.leader),
            ("handler-b", "ward-b", OfficialRole.handler),
        ):
            linked_official(session, unit, name, role, now=NOW)
        first = waste_ticket(session, "ward-a", now=NOW, chat="citizen-1").code
        duplicate = waste_ticket(session, "ward-a", now=NOW, chat="citizen-2").code
        other = waste_ticket(session, "ward-b", now=NOW, chat="citizen-3").code
        session.execute(sa.update(OutboxMessage).values(status=OutboxStatus.sent))
        session.commit()
    return first, duplicate, other


def ticket(engine: Engine, code: str) -> Ticket:
    with Session(engine) as session:
        found = queries.get_ticket_by_code(session=session, code=code)
        assert found is not None
        return found


async def test_a_handler_merges_a_duplicate_into_the_ticket_of_its_unit(
    engine: Engine, codes: tuple[str, str, str], desk: Desk
) -> None:
    first, duplicate, _ = codes
    chat = Chat(engine, desk, "handler-a")
    reply = await chat.send(f"/gop {duplicate} {first.replace('-', '').lower()}")
    assert f"Đã gộp phản ánh {duplicate} vào {first}" in reply and "2 người dân" in reply
    merged, kept = ticket(engine, duplicate), ticket(engine, first)
    assert merged.status == TicketStatus.closed and merged.merged_into_id == kept.id
    assert kept.status == TicketStatus.received
    with Session(engine) as session:
        assert kept.id is not None and merged.id is not None
        kept_events = queries.ticket_events(session=session, ticket_id=kept.id)
        merged_events = queries.ticket_events(session=session, ticket_id=merged.id)
        assert [e.new_value for e in kept_events if e.kind == "merged"] == [
            {"merged_from": duplicate}
        ]
        assert [e.new_value for e in merged_events if e.kind == "merged"] == [
            {"merged_into": first}
        ]
        assert [f.chat_id for f in followers.followers_of(session=session, ticket_id=kept.id)] == [
            "citizen-2"
        ]
        told = outbox_to(session, "citizen-2")
        assert len(told) == 1 and f"đã được gộp vào {first}" in told[0]
        assert outbox_to(session, "citizen-1") == []
    shown = await chat.send(first)
    assert "Người dân phản ánh: 2" in shown and "Gộp phản ánh trùng" in shown
    assert f"{first} — Rác thải" in await chat.send("/hangdoi")
    assert "2 người dân" in await chat.send("/hangdoi")

    # The duplicate's reporter now hears of every step of the ticket kept.
    with Session(engine) as session:
        kept = session.get(Ticket, kept.id)
        official = session.exec(sa.select(Official)).scalars().first()
        assert kept is not None
        workflow.accept(session=session, ticket=kept, official=official, now=NOW)
        assert "tiếp nhận xử lý" in outbox_to(session, "citizen-2")[-1]
        assert "tiếp nhận xử lý" in outbox_to(session, "citizen-1")[-1]


async def test_merging_is_refused_outside_the_rule(
    engine: Engine, codes: tuple[str, str, str], desk: Desk
) -> None:
    first, duplicate, other = codes
    owner = Chat(engine, desk, "handler-a")
    not_found = say("utter_official_ticket_not_found", code=other)
    assert await owner.send(f"/gop {duplicate} {other}") == not_found  # another unit's
    assert await Chat(engine, desk, "handler-b").send(f"/gop {other} {first}") == say(
        "utter_official_ticket_not_found", code=first
    )
    assert "không thuộc đơn vị" in await Chat(engine, desk, "leader").send(
        f"/gop {duplicate} {first}"
    )  # leaders read, they do not act
    assert "chính nó" in await owner.send(f"/gop {first} {first}")
    assert "/gop <mã phản ánh trùng>" in await owner.send(f"/gop {first}")
    assert ticket(engine, duplicate).status == TicketStatus.received
    await owner.send(f"/gop {duplicate} {first}")
    assert "đã kết thúc" in await owner.send(f"/gop {duplicate} {first}")  # once


async def test_an_urgent_duplicate_merged_keeps_its_dates_and_severity(
    engine: Engine, desk: Desk
) -> None:
    """Found trying the product (docs/usability-review.md #5): an urgent report merged into
    a normal one lost its urgency and the earlier date its reporter had been promised."""
    with Session(engine) as session:
        two_wards_and_city(session)
        linked_official(session, "ward-a", "handler-a", OfficialRole.handler, now=NOW)
        kept = waste_ticket(session, "ward-a", now=NOW, chat="citizen-1")
        urgent = waste_ticket(
            session, "ward-a", now=NOW, chat="citizen-2", resolve_in=timedelta(hours=4)
        )
        kept.severity, urgent.severity = Severity.normal, Severity.urgent
        session.add_all([kept, urgent])
        session.commit()
        first, duplicate, promised = kept.code, urgent.code, urgent.resolve_by
    handler = Chat(engine, desk, "handler-a")
    await handler.send(f"/gop {duplicate} {first}")
    # The filing is no acceptance: the history said "tiếp nhận" of a ticket not accepted.
    shown = await handler.send(first)
    assert "người dân gửi phản ánh" in shown and "— tiếp nhận phản ánh" not in shown
    merged_into = ticket(engine, first)
    assert merged_into.severity == Severity.urgent
    assert merged_into.resolve_by == promised
    with Session(engine) as session:
        assert merged_into.id is not None
        events = queries.ticket_events(session=session, ticket_id=merged_into.id)
        assert any(duplicate in (e.note or "") and e.kind == "deadline" for e in events)


async def test_a_stricter_kept_ticket_keeps_its_own_dates(engine: Engine, desk: Desk) -> None:
    with Session(engine) as session:
        two_wards_and_city(session)
        linked_official(session, "ward-a", "handler-a", OfficialRole.handler, now=NOW)
        kept = waste_ticket(session, "ward-a", now=NOW, chat="citizen-1", resolve_in=timedelta(1))
        later = waste_ticket(session, "ward-a", now=NOW, chat="citizen-2")
        first, duplicate, due = kept.code, later.code, kept.resolve_by
    await Chat(engine, desk, "handler-a").send(f"/gop {duplicate} {first}")
    assert ticket(engine, first).resolve_by == due
