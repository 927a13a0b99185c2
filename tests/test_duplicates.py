"""One problem, one ticket: the duplicate matcher on the hand-written pairs, finding the open
ticket that covers a report in the database, following it, and what followers hear and rate
(on both databases)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from seed import linked_official, outbox_to, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.conversation.dialogue.tickets import await_answer
from bot.duplicates import follow
from bot.duplicates.matcher import Limits, Report, covers, distance_m, similarity
from bot.tickets import workflow
from storage import followers, queries
from storage.models import (
    Channel,
    OfficialRole,
    Ticket,
    TicketEvent,
    TicketStatus,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import duplicate_eval

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội
LIMITS = Limits(radius_m=150, days=28)


# --- the matcher on the pairs (scripts/duplicate_eval.py) ----------------------------------


def test_the_pairs_are_many_with_positives_and_hard_negatives() -> None:
    pairs = duplicate_eval.load_pairs()
    assert len(pairs) >= 80
    kinds = {p.kind for p in pairs if not p.duplicate}
    assert {"place", "problem", "category", "ward", "old"} <= kinds
    assert sum(p.duplicate for p in pairs) >= 40 and sum(not p.duplicate for p in pairs) >= 40
    assert {p.split for p in pairs} == {"tune", "test"}


def test_precision_and_recall_on_the_pairs() -> None:
    """As docs/duplicates.md reports them (a regression makes this fail)."""
    pairs = duplicate_eval.load_pairs()
    bounds = duplicate_eval.limits()
    overall = duplicate_eval.measure(pairs, bounds)
    held_out = duplicate_eval.measure([p for p in pairs if p.split == "test"], bounds)
    assert overall.precision >= 0.95 and overall.recall >= 0.95, overall
    assert held_out.precision >= 0.9 and held_out.recall >= 0.9, held_out


def report(text: str, **fields: object) -> Report:
    values: dict[str, object] = {"category": "waste", "ward_code": "00001", "at": NOW}
    values.update(fields)
    return Report(text=text, **values)  # type: ignore[arg-type]


def test_words_are_compared_without_diacritics() -> None:
    marked = report("Rác thải đổ trộm đầu ngõ không ai dọn, bốc mùi")
    plain = report("rac thai do trom dau ngo khong ai don, boc mui", at=NOW + timedelta(days=1))
    assert similarity(marked, plain) == pytest.approx(1.0)
    assert covers(marked, plain, LIMITS)


def test_category_ward_pin_and_window_bound_a_match() -> None:
    ticket = report("Rác thải đổ trộm đầu ngõ không ai dọn", lat=21.0065, lon=105.8361)
    same = "rac do trom dau ngo khong ai don"
    later = NOW + timedelta(days=2)
    assert covers(ticket, report(same, at=later), LIMITS)
    assert not covers(ticket, report(same, at=later, category="pollution"), LIMITS)
    assert not covers(ticket, report(same, at=later, ward_code="00002"), LIMITS)
    assert not covers(ticket, report(same, at=NOW + timedelta(days=29)), LIMITS)
    assert covers(ticket, report(same, at=NOW + timedelta(days=29)), Limits(150, days=30))
    # Two pins: the distance decides, not the ward.
    near_pin = report(same, at=later, ward_code=None, lat=21.0070, lon=105.8358)
    assert distance_m(21.0065, 105.8361, 21.0070, 105.8358) < 150
    assert covers(ticket, near_pin, LIMITS)
    far_pin = report(same, at=later, lat=21.0165, lon=105.8361)
    assert not covers(ticket, far_pin, LIMITS)
    assert covers(ticket, far_pin, Limits(radius_m=1500, days=28))


def test_another_house_or_street_is_another_problem() -> None:
    ticket = report("Quán ăn bày bàn ghế chiếm hết vỉa hè", place="số 40 phố Huế")
    later = NOW + timedelta(days=1)
    text = "quan an bay ban ghe chiem het via he"
    assert covers(ticket, report(text, place="40 pho Hue", at=later), LIMITS)
    assert not covers(ticket, report(text, place="số 112 phố Huế", at=later), LIMITS)
    assert not covers(ticket, report(text, place="phố Bà Triệu", at=later), LIMITS)


# --- in the database ------------------------------------------------------------------------


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        two_wards_and_city(session)
        yield session


def filed(session: Session, chat: str = "reporter", **fields: object) -> Ticket:
    values: dict[str, object] = {
        "description": "Rác thải đổ trộm đầu ngõ 5 cả tuần không ai dọn, bốc mùi",
        "ward": ("00001", "Phường A"),
        "chat": chat,
    }
    values.update(fields)
    return waste_ticket(session, "ward-a", now=NOW, **values)  # type: ignore[arg-type]


def new_report(at: datetime = NOW + timedelta(days=1), **fields: object) -> Report:
    values: dict[str, object] = {
        "category": "waste",
        "text": "rac do trom dau ngo 5 khong ai don, hoi lam",
        "at": at,
        "ward_code": "00001",
        "ward_name": "Phường A",
    }
    values.update(fields)
    return Report(**values)  # type: ignore[arg-type]


def follow_as(
    session: Session, ticket: Ticket, chat: str, channel: Channel = Channel.telegram
) -> bool:
    return follow.follow(
        session=session,
        ticket=ticket,
        citizen_id=None,
        channel=channel,
        chat_id=chat,
        note=None,
        photos=(),
        message_id=None,
        now=NOW,
    )


def covering(session: Session, report_: Report, chat: str = "neighbour") -> Ticket | None:
    return follow.find_covering(
        session=session, report=report_, citizen_id=None, channel=Channel.telegram, chat_id=chat
    )


def test_the_open_ticket_covering_a_report_is_found(session: Session) -> None:
    ticket = filed(session)
    filed(session, chat="other", description="Xe rác không đến thu gom ở phố Huế 3 ngày nay")
    found = covering(session, new_report())
    assert found is not None and found.code == ticket.code
    assert covering(session, new_report(category="pollution")) is None
    assert covering(session, new_report(ward_code="00002", ward_name="Phường B")) is None
    assert covering(session, new_report(at=NOW + timedelta(days=40))) is None
    assert covering(session, new_report(), chat="reporter") is None  # their own ticket


def test_a_concluded_or_followed_ticket_is_not_offered(session: Session) -> None:
    ticket = filed(session)
    follow_as(session, ticket, "neighbour")
    assert covering(session, new_report(), chat="neighbour") is None
    assert covering(session, new_report(), chat="third") is not None
    ticket.status = TicketStatus.rejected
    session.add(ticket)
    session.commit()
    assert covering(session, new_report(), chat="third") is None


def test_following_keeps_what_the_citizen_sent_and_counts_them(session: Session) -> None:
    ticket = filed(session)
    assert ticket.id is not None
    assert followers.citizens_behind(session=session, tickets=[ticket]) == {ticket.id: 1}
    args = {
        "session": session,
        "ticket": ticket,
        "citizen_id": None,
        "channel": Channel.zalo,
        "chat_id": "z-1",
        "note": "rác đầu ngõ 5 bốc mùi",
        "photos": ("photo-1",),
        "message_id": None,
        "now": NOW,
    }
    assert follow.follow(**args)  # type: ignore[arg-type]
    assert not follow.follow(**args)  # type: ignore[arg-type]  # once
    assert followers.citizens_behind(session=session, tickets=[ticket]) == {ticket.id: 2}
    events = queries.ticket_events(session=session, ticket_id=ticket.id)
    assert [e.note for e in events if e.kind == "followed"] == ["rác đầu ngõ 5 bốc mùi"]
    photos = queries.attachments_of_ticket(session=session, ticket_id=ticket.id)
    assert [(p.file_id, p.channel) for p in photos] == [("photo-1", Channel.zalo)]


def test_followers_hear_every_step_but_not_the_reporters_question(session: Session) -> None:
    ticket = filed(session)
    handler = linked_official(session, "ward-a", "handler-1", OfficialRole.handler, now=NOW)
    follow_as(session, ticket, "neighbour")
    workflow.accept(session=session, ticket=ticket, official=handler, now=NOW)
    workflow.ask_info(
        session=session,
        ticket=ticket,
        official=handler,
        question="Số nhà cụ thể?",
        now=NOW,
        await_answer=await_answer,
    )
    workflow.citizen_answer(session=session, ticket=ticket, text="Số 12", now=NOW)
    workflow.resolve(session=session, ticket=ticket, official=handler, note="Đã dọn", now=NOW)
    reporter, neighbour = outbox_to(session, "reporter"), outbox_to(session, "neighbour")
    assert len(reporter) == 3 and len(neighbour) == 2
    assert "tiếp nhận" in neighbour[0] and "Đã dọn" in neighbour[1]
    assert not any("Số nhà cụ thể" in text for text in neighbour)


def test_a_followers_rating_is_theirs_and_once(session: Session) -> None:
    ticket = filed(session)
    handler = linked_official(session, "ward-a", "handler-1", OfficialRole.handler, now=NOW)
    follow_as(session, ticket, "w-1", Channel.web)
    rate = {
        "session": session,
        "ticket": ticket,
        "channel": Channel.web,
        "chat_id": "w-1",
        "rating": 4,
        "now": NOW,
    }
    with pytest.raises(follow.NotRateable):
        follow.rate_as_follower(**rate)  # type: ignore[arg-type]  # not resolved yet
    workflow.resolve(session=session, ticket=ticket, official=handler, note="Đã dọn", now=NOW)
    follow.rate_as_follower(**rate)  # type: ignore[arg-type]
    with pytest.raises(follow.NotRateable):
        follow.rate_as_follower(**rate)  # type: ignore[arg-type]
    session.refresh(ticket)
    assert ticket.status == TicketStatus.resolved and ticket.rating is None  # the reporter's
    kinds = session.exec(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all()
    assert "follower_rating" in kinds
    with pytest.raises(follow.NotRateable):  # not a follower
        follow.rate_as_follower(**{**rate, "chat_id": "w-2"})  # type: ignore[arg-type]
