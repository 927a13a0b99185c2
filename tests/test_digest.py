"""Weekly digests (issue 5): a hand-built fortnight of tickets with every figure worked out by
hand, on SQLite and PostgreSQL; week boundaries in local time; no citizen data in any output;
the command line; Monday's outbox messages; the chart; and generated data giving the same
digests on both databases.

The week is 2026-W47: Monday 16 to Sunday 22 November 2026 in Asia/Ho_Chi_Minh (UTC+7), so
from 2026-11-15 17:00 UTC to 2026-11-22 17:00 UTC. Ticket n has code PA-2026-00000n.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pg
import pytest
from matplotlib.image import imread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import cli
from bot.config import settings
from bot.conversation.messages import reply_from_payload
from bot.digest.aggregate import (
    Digest,
    IsoWeek,
    LeagueStanding,
    UnknownUnit,
    parse_iso_week,
    weekly_digest,
)
from bot.digest.render import (
    FORMATS,
    chart_png,
    csv_bytes,
    message_text,
    moment,
    render,
    week_title,
)
from bot.digest.schedule import due_week, enqueue_weekly_digests
from bot.digest.scorecard import digest_with_league, league_standings
from storage.db import create_db_engine
from storage.models import (
    Channel,
    Citizen,
    Direction,
    Message,
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
    Unit,
    UnitKind,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
W46, W47, W48 = IsoWeek(2026, 46), IsoWeek(2026, 47), IsoWeek(2026, 48)
A, B, CITY_BODY = "phuong-ba-dinh", "phuong-hoan-kiem", "ubnd-thanh-pho"
WARDS = {A: ("00004", "Phường Ba Đình"), B: ("00070", "Phường Hoàn Kiếm")}
# Citizen data that must never appear in a digest.
SECRET_NAME = "Trần Thị Bí Mật"
SECRET_PHONES = ("0912345678", "0912 345 678", "+84912345678")
SECRET_TEXT = "ngõ Bí Mật số 9"
ROOT = Path(__file__).resolve().parent.parent


def local(text: str) -> datetime:
    """'2026-11-16 09:00' in Hà Nội time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


@dataclass(frozen=True)
class Spec:
    """One ticket: its unit, category, filing time, deadlines and what happened to it."""

    number: int
    unit: str | None
    category: str | None
    created: str
    accept_by: str | None = None
    resolve_by: str | None = None
    steps: tuple[tuple[str, ...], ...] = ()
    ward_of: str | None = "unit"  # "unit": the ward of `unit`; None: no ward


# The fortnight (W46, W47 and a little of W48). Comments give what each ticket tests.
# fmt: off
SPECS = (
    # 1: accepted 2 h, resolved 48 h on time, rated 5.
    Spec(1, A, "sidewalk", "2026-11-16 09:00", "2026-11-16 17:00", "2026-11-20 17:00",
         (("2026-11-16 11:00", "accept"), ("2026-11-18 09:00", "resolve"),
          ("2026-11-19 10:00", "rate", "5"))),
    # 2: accepted 6 h, resolved 108 h, late.
    Spec(2, A, "waste", "2026-11-17 08:00", "2026-11-17 16:00", "2026-11-20 17:00",
         (("2026-11-17 14:00", "accept"), ("2026-11-21 20:00", "resolve"))),
    # 3: accepted 24 h, open at the end, not overdue.
    Spec(3, A, "sidewalk", "2026-11-18 10:00", "2026-11-18 18:00", "2026-11-23 17:00",
         (("2026-11-19 10:00", "accept"),)),
    # 4: never accepted: overdue (acceptance, 79 h).
    Spec(4, A, "construction", "2026-11-19 09:00", "2026-11-19 17:00", "2026-11-25 17:00"),
    # 5: Sunday 23:30 local: in W47; open, not overdue.
    Spec(5, A, "sidewalk", "2026-11-22 23:30", "2026-11-23 16:00", "2026-11-27 17:00"),
    # 6: Monday 00:30 local (Sunday 17:30 UTC, ISO week 46 in UTC): in W47; rejected.
    Spec(6, A, "sidewalk", "2026-11-16 00:30", "2026-11-16 17:00", "2026-11-20 17:00",
         (("2026-11-16 10:00", "reject"),)),
    # 7: Monday 06:30 local of W48 (Sunday 23:30 UTC, still ISO week 47 in UTC): not in W47.
    Spec(7, A, "sidewalk", "2026-11-23 06:30", "2026-11-23 16:00", "2026-11-27 17:00"),
    # 8: filed and accepted in W46; overdue at the end of W47 (resolution, 151 h).
    Spec(8, A, "waste", "2026-11-10 09:00", "2026-11-10 17:00", "2026-11-16 17:00",
         (("2026-11-10 15:00", "accept"),)),
    # 9: resolved in W46, reopened in W47 (new deadline), resolved again (173 h), rated 2.
    Spec(9, A, "pollution", "2026-11-11 10:00", "2026-11-11 18:00", "2026-11-17 17:00",
         (("2026-11-11 12:00", "accept"), ("2026-11-13 10:00", "resolve"),
          ("2026-11-16 09:00", "reopen", "2026-11-20 17:00"), ("2026-11-18 15:00", "resolve"),
          ("2026-11-19 09:00", "rate", "2"))),
    # 10: asked for information (accepted 1 h), waiting past its deadline: not overdue, the
    # resolve clock stops while the citizen is asked.
    Spec(10, A, "sidewalk", "2026-11-17 09:00", "2026-11-17 17:00", "2026-11-21 17:00",
         (("2026-11-17 10:00", "ask"),)),
    # 11: accepted only after the week: received at the end, overdue (acceptance, 56 h).
    Spec(11, A, "sidewalk", "2026-11-20 08:00", "2026-11-20 16:00", "2026-11-26 17:00",
         (("2026-11-23 09:00", "accept"),)),
    # 12: accepted 1 h, resolved after the week: open and overdue (resolution, 79 h).
    Spec(12, A, "fire_safety", "2026-11-18 08:00", "2026-11-18 12:00", "2026-11-19 17:00",
         (("2026-11-18 09:00", "accept"), ("2026-11-23 08:00", "resolve"))),
    # 13: filed to B, accepted by B, transferred to A, accepted by A after 21 h in all.
    Spec(13, B, "sidewalk", "2026-11-16 14:00", "2026-11-16 22:00", "2026-11-23 12:00",
         (("2026-11-16 15:00", "accept"), ("2026-11-17 09:00", "transfer", A, "2026-11-17 17:00"),
          ("2026-11-17 11:00", "accept")), ward_of=A),
    # 14: B, accepted 1 h, resolved 25 h on time, rated 4.
    Spec(14, B, "traffic", "2026-11-19 10:00", "2026-11-19 18:00", "2026-11-23 17:00",
         (("2026-11-19 11:00", "accept"), ("2026-11-20 11:00", "resolve"),
          ("2026-11-21 09:00", "rate", "4"))),
    # 15: B, never accepted: overdue (acceptance, 54 h).
    Spec(15, B, "traffic", "2026-11-20 10:00", "2026-11-20 18:00", "2026-11-26 17:00"),
    # 16: no unit, no category, no ward, no deadlines: city-wide only, open, not overdue.
    Spec(16, None, None, "2026-11-21 10:00", ward_of=None),
    # 17: B, W46, rejected in W46.
    Spec(17, B, "water", "2026-11-12 09:00", "2026-11-12 17:00", "2026-11-13 17:00",
         (("2026-11-12 10:00", "reject"),)),
    # 19: B, no deadlines: accepted 0.5 h, resolved 4 h (not in the on-time rate).
    Spec(19, B, "other", "2026-11-16 08:00", None, None,
         (("2026-11-16 08:30", "accept"), ("2026-11-16 12:00", "resolve"))),
    # 20: B, W46, accepted 1 h, overdue at the end of W46, resolved late in W47 (97 h).
    Spec(20, B, "traffic", "2026-11-13 09:00", "2026-11-13 17:00", "2026-11-14 17:00",
         (("2026-11-13 10:00", "accept"), ("2026-11-17 10:00", "resolve"))),
)
# fmt: on

STATUS_OF = {"accept": "accepted", "ask": "need_info", "resolve": "resolved", "reject": "rejected"}


def add_ticket(session: Session, spec: Spec, citizen_id: int) -> None:
    """Insert a ticket and its audit trail as the workflow would have left them."""
    created = local(spec.created)
    ward = WARDS[spec.unit if spec.ward_of == "unit" else spec.ward_of] if spec.ward_of else None
    ticket = Ticket(
        code=f"PA-2026-{spec.number:06d}",
        description=f"{SECRET_NAME} ({SECRET_PHONES[1]}) phản ánh ở {SECRET_TEXT}",
        location_text=SECRET_TEXT,
        contact_phone=SECRET_PHONES[0],
        citizen_id=citizen_id,
        channel=Channel.telegram,
        chat_id="424242",
        category=spec.category,
        ward_code=ward[0] if ward else None,
        ward_name=ward[1] if ward else None,
        lead_unit_id=spec.unit,
        accept_by=local(spec.accept_by) if spec.accept_by else None,
        resolve_by=local(spec.resolve_by) if spec.resolve_by else None,
        created_at=created,
        updated_at=created,
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    events = [
        TicketEvent(
            ticket_id=ticket.id,
            kind="created",
            actor="citizen",
            at=created,
            new_value={"status": "received", "code": ticket.code, "lead_unit_id": spec.unit},
        )
    ]
    status = "received"

    def event(kind: str, at: datetime, old: dict[str, Any], new: dict[str, Any]) -> None:
        events.append(
            TicketEvent(
                ticket_id=ticket.id or 0,
                kind=kind,
                actor="test",
                at=at,
                old_value=old,
                new_value=new,
                note=f"gọi {SECRET_PHONES[2]}",
            )
        )

    def move(to: str, at: datetime) -> None:
        nonlocal status
        event("status", at, {"status": status}, {"status": to})
        status = to

    for at_text, action, *args in spec.steps:
        at = local(at_text)
        if action == "transfer":
            event("unit", at, {"lead_unit_id": ticket.lead_unit_id}, {"lead_unit_id": args[0]})
            move("received", at)
            ticket.lead_unit_id, ticket.accept_by, ticket.accepted_at = (
                args[0],
                local(args[1]),
                None,
            )
        elif action == "rate":
            event("rating", at, {"rating": None}, {"rating": int(args[0])})
            move("closed", at)
            ticket.rating = int(args[0])
        elif action == "reopen":
            move("accepted", at)
            event(
                "reopened",
                at,
                {"reopen_count": ticket.reopen_count},
                {"reopen_count": ticket.reopen_count + 1},
            )
            ticket.reopen_count += 1
            ticket.resolve_by, ticket.resolved_at = local(args[0]), None
        else:
            move(STATUS_OF[action], at)
            if action in ("accept", "ask", "resolve"):
                ticket.accepted_at = ticket.accepted_at or at
            if action == "resolve":
                ticket.resolved_at = at
        ticket.updated_at = at
    ticket.status = TicketStatus(status)
    session.add(ticket)
    session.add_all(events)


def add_messages(session: Session, citizen_id: int) -> None:
    """Procedure questions: in W47 khai_sinh 3, ket_hon 2, can_cuoc 2, unknown 1."""
    asked = [
        ("2026-11-16 09:00", "khai_sinh"),
        ("2026-11-18 10:00", "khai_sinh"),
        ("2026-11-22 23:30", "khai_sinh"),
        ("2026-11-17 11:00", "ket_hon"),
        ("2026-11-19 11:00", "ket_hon"),
        ("2026-11-20 12:00", "can_cuoc"),
        ("2026-11-21 12:00", "can_cuoc"),
        ("2026-11-21 13:00", None),
        ("2026-11-15 23:30", "khai_sinh"),  # W46
        ("2026-11-23 06:30", "ho_chieu"),  # W48
    ]
    for i, (at, procedure) in enumerate(asked):
        session.add(
            Message(
                direction=Direction.incoming,
                channel=Channel.telegram,
                chat_id="424242",
                channel_message_id=str(i),
                text=f"tôi là {SECRET_NAME}, sdt {SECRET_PHONES[0]}",
                nlu={"intent": "ask_procedure", "procedure": procedure, "phone": SECRET_PHONES[0]},
                citizen_id=citizen_id,
                created_at=local(at),
            )
        )
    session.add(
        Message(
            direction=Direction.incoming,
            channel=Channel.telegram,
            chat_id="424242",
            channel_message_id="complaint",
            text="vỉa hè bị lấn chiếm",
            nlu={"intent": "report_problem", "procedure": "khai_sinh"},
            created_at=local("2026-11-18 10:00"),
        )
    )
    session.add(
        Message(
            direction=Direction.outgoing,
            channel=Channel.telegram,
            chat_id="424242",
            text="trả lời",
            nlu={"intent": "ask_procedure", "procedure": "khai_sinh"},
            created_at=local("2026-11-18 10:01"),
        )
    )


def fill(engine: Engine) -> None:
    """The whole hand-built data set."""
    with Session(engine) as session:
        session.add(Unit(id=A, name="UBND phường Ba Đình", kind=UnitKind.ward, ward_code="00004"))
        session.add(Unit(id=B, name="UBND phường Hoàn Kiếm", kind=UnitKind.ward, ward_code="00070"))
        session.add(Unit(id=CITY_BODY, name="UBND thành phố Hà Nội", kind=UnitKind.city))
        citizen = Citizen(display_name=SECRET_NAME, phone=SECRET_PHONES[0])
        session.add(citizen)
        session.flush()
        assert citizen.id is not None
        for spec in SPECS:
            add_ticket(session, spec, citizen.id)
        add_messages(session, citizen.id)
        session.commit()


@pytest.fixture
def filled(engine: Engine) -> Engine:
    fill(engine)
    return engine


def digest_of(engine: Engine, week: IsoWeek, unit_id: str | None = None) -> Digest:
    with Session(engine) as session:
        return weekly_digest(session=session, week=week, unit_id=unit_id, tz=TZ)


def counts(
    received: int, accepted: int, resolved: int, rejected: int, open_: int, overdue: int
) -> dict[str, int]:
    return dict(
        received=received,
        accepted=accepted,
        resolved=resolved,
        rejected=rejected,
        open=open_,
        overdue=overdue,
    )


# --- Weeks ----------------------------------------------------------------------------------


def test_iso_weeks_parse_and_bound_in_local_time() -> None:
    assert parse_iso_week("2026-W47") == W47
    assert parse_iso_week(" 2026w47 ") == W47
    assert parse_iso_week("2026-W7") == IsoWeek(2026, 7)
    assert str(IsoWeek(2026, 7)) == "2026-W07"
    assert parse_iso_week("2026-W53") == IsoWeek(2026, 53)  # 2026 has 53 ISO weeks
    for bad in ("2025-W53", "2026-W00", "2026-47", "W47", "2026-W47-1", ""):
        with pytest.raises(ValueError):
            parse_iso_week(bad)
    assert W47.start(TZ) == datetime(2026, 11, 15, 17, tzinfo=UTC)
    assert W47.end(TZ) == datetime(2026, 11, 22, 17, tzinfo=UTC)
    assert W47.previous() == W46 and W47.next() == W48
    assert IsoWeek(2026, 1).previous() == IsoWeek(2025, 52)
    assert IsoWeek(2026, 53).next() == IsoWeek(2027, 1)
    # Sunday 23:30 UTC is Monday 06:30 in Hà Nội: the next week there.
    assert IsoWeek.containing(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), TZ) == W48
    assert IsoWeek.containing(datetime(2026, 11, 22, 16, 59, tzinfo=UTC), TZ) == W47
    assert IsoWeek.last_complete(local("2026-11-23 00:00"), TZ) == W47
    assert IsoWeek.last_complete(local("2026-11-22 23:59"), TZ) == W46


# --- The hand-built fortnight ---------------------------------------------------------------


def test_city_wide_digest_matches_hand_computed_figures(filled: Engine) -> None:
    d = digest_of(filled, W47)
    assert d.week == "2026-W47" and d.unit_id is None and d.unit_name == "Toàn thành phố Hà Nội"
    assert d.period_start == local("2026-11-16 00:00")
    assert d.period_end == local("2026-11-23 00:00")
    assert d.counts.model_dump() == counts(14, 8, 6, 1, 10, 5)
    assert d.previous.model_dump() == counts(4, 3, 0, 1, 2, 1)
    assert d.change.model_dump() == counts(10, 5, 6, 0, 8, 4)
    # Resolved with a deadline: 1, 2, 9, 14, 20 (19 has none); on time: 1, 9, 14.
    assert (d.resolved_with_deadline, d.resolved_on_time, d.on_time_rate) == (5, 3, 0.6)
    # Accepted: 0.5 1 1 1 | 2 6 21 24 hours; resolved: 4 25 48 | 97 108 173 hours.
    assert d.median_hours_to_accept == 1.5
    assert d.median_hours_to_resolve == 72.5
    assert d.satisfaction.ratings == 3
    assert d.satisfaction.average == round(11 / 3, 2)
    assert d.satisfaction.distribution == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}
    assert d.reopened == 1
    by_category = {
        r.key: (r.received, r.accepted, r.resolved, r.rejected, r.open, r.overdue)
        for r in d.by_category
    }
    assert by_category == {
        "sidewalk": (7, 4, 1, 1, 5, 1),
        "construction": (1, 0, 0, 0, 1, 1),
        "waste": (1, 1, 1, 0, 1, 1),
        "pollution": (0, 0, 1, 0, 0, 0),
        "traffic": (2, 1, 2, 0, 1, 1),
        "fire_safety": (1, 1, 0, 0, 1, 1),
        "other": (1, 1, 1, 0, 0, 0),
        None: (1, 0, 0, 0, 1, 0),
    }
    assert [r.key for r in d.by_category] == [
        "sidewalk",
        "construction",
        "waste",
        "pollution",
        "traffic",
        "fire_safety",
        "other",
        None,
    ]
    assert d.by_category[0].name == "Lấn chiếm vỉa hè, lòng đường"
    assert d.by_category[-1].name == "Chưa phân loại"
    by_ward = [
        (r.key, r.name, r.received, r.accepted, r.resolved, r.rejected, r.open, r.overdue)
        for r in d.by_ward
    ]
    assert by_ward == [
        ("00004", "Phường Ba Đình", 10, 6, 3, 1, 8, 4),
        ("00070", "Phường Hoàn Kiếm", 3, 2, 3, 0, 1, 1),
        (None, "Chưa xác định phường, xã", 1, 0, 0, 0, 1, 0),
    ]
    assert [w.key for w in d.top_wards] == ["00004", "00070"]
    assert d.procedure_questions == 8
    assert [(p.procedure, p.name, p.questions) for p in d.top_procedures] == [
        ("khai_sinh", "Đăng ký khai sinh", 3),
        ("can_cuoc", "Cấp, cấp đổi, cấp lại thẻ căn cước", 2),
        ("ket_hon", "Đăng ký kết hôn", 2),
    ]
    overdue = [
        (t.code[-2:], t.unit_id, t.missed, t.deadline, t.hours_overdue) for t in d.overdue_tickets
    ]
    assert overdue == [
        ("08", A, "resolve", local("2026-11-16 17:00"), 151.0),
        ("04", A, "accept", local("2026-11-19 17:00"), 79.0),
        ("12", A, "resolve", local("2026-11-19 17:00"), 79.0),
        ("11", A, "accept", local("2026-11-20 16:00"), 56.0),
        ("15", B, "accept", local("2026-11-20 18:00"), 54.0),
    ]
    first = d.overdue_tickets[0]
    assert (first.unit_name, first.ward_name, first.category_name) == (
        "UBND phường Ba Đình",
        "Phường Ba Đình",
        "Rác thải, vệ sinh môi trường",
    )
    assert first.created_at == local("2026-11-10 09:00")


def test_unit_digests_count_the_current_lead_unit(filled: Engine) -> None:
    a = digest_of(filled, W47, A)
    assert a.unit_name == "UBND phường Ba Đình"
    # Ticket 13 was filed to B and transferred to A: it counts with A only.
    assert a.counts.model_dump() == counts(10, 6, 3, 1, 8, 4)
    assert a.previous.model_dump() == counts(2, 2, 0, 0, 1, 0)
    assert (a.resolved_with_deadline, a.resolved_on_time, a.on_time_rate) == (3, 2, 0.6667)
    assert a.median_hours_to_accept == 4.0  # 1 1 2 | 6 21 24
    assert a.median_hours_to_resolve == 108.0  # 48 108 173
    assert (a.satisfaction.ratings, a.satisfaction.average, a.reopened) == (2, 3.5, 1)
    assert [t.code[-2:] for t in a.overdue_tickets] == ["08", "04", "12", "11"]
    assert "PA-2026-000013" not in {t.code for t in a.overdue_tickets}

    b = digest_of(filled, W47, B)
    assert b.counts.model_dump() == counts(3, 2, 3, 0, 1, 1)
    assert b.previous.model_dump() == counts(2, 1, 0, 1, 1, 1)
    assert (b.resolved_with_deadline, b.resolved_on_time, b.on_time_rate) == (2, 1, 0.5)
    assert b.median_hours_to_accept == 0.75
    assert b.median_hours_to_resolve == 25.0
    assert (b.satisfaction.ratings, b.satisfaction.average, b.reopened) == (1, 4.0, 0)
    assert [t.code for t in b.overdue_tickets] == ["PA-2026-000015"]
    # Procedure questions are city-wide in every digest.
    assert b.procedure_questions == a.procedure_questions == 8

    city = digest_of(filled, W47, CITY_BODY)
    assert city.counts.model_dump() == counts(0, 0, 0, 0, 0, 0)
    assert city.by_category == city.by_ward == city.overdue_tickets == ()
    assert city.on_time_rate is city.median_hours_to_accept is city.satisfaction.average is None
    with pytest.raises(UnknownUnit):
        digest_of(filled, W47, "no-such-unit")


def test_week_boundaries_are_local(filled: Engine) -> None:
    six = local("2026-11-16 00:30").astimezone(UTC)
    seven = local("2026-11-23 06:30").astimezone(UTC)
    assert six.isocalendar().week == 46 and seven.isocalendar().week == 47  # what UTC says
    w48 = digest_of(filled, W48)
    assert w48.counts.received == 1  # ticket 7 only
    assert w48.previous == digest_of(filled, W47).counts
    # Accepted on Monday 23 at 09:00 (11) and resolved at 08:00 (12): W48 figures.
    assert (w48.counts.accepted, w48.counts.resolved) == (1, 1)
    assert w48.procedure_questions == 1
    w46 = digest_of(filled, W46)
    assert w46.counts.received == 4 and w46.procedure_questions == 1
    assert [t.code for t in w46.overdue_tickets] == ["PA-2026-000020"]


# --- Outputs --------------------------------------------------------------------------------


def assert_no_citizen_data(text: str) -> None:
    for secret in (SECRET_NAME, "Bí Mật", SECRET_TEXT, *SECRET_PHONES, "424242"):
        assert secret not in text


def test_no_citizen_data_in_any_output(filled: Engine) -> None:
    for unit_id in (None, A, B):
        digest = digest_of(filled, W47, unit_id)
        for fmt in FORMATS:
            assert_no_citizen_data(render(digest, fmt))
        assert_no_citizen_data(message_text(digest))
        assert_no_citizen_data(csv_bytes(digest).decode("utf-8-sig"))


def test_renderings(filled: Engine) -> None:
    digest = digest_of(filled, W47)
    assert json.loads(render(digest, "json")) == digest.model_dump(mode="json")
    assert Digest.model_validate_json(render(digest, "json")) == digest

    md = render(digest, "md")
    assert md.startswith("# Báo cáo phản ánh, kiến nghị: Tuần 47/2026 (16/11–22/11/2026)")
    assert "| Phản ánh mới tiếp nhận | 14 | 4 | +10 |" in md
    assert "Tỷ lệ giải quyết đúng hạn: 60,0% (3/5" in md
    assert "(trung vị): 1,5 giờ" in md and "(trung vị): 72,5 giờ" in md
    assert "Mức độ hài lòng: 3,67/5 (3 đánh giá)" in md
    assert "| PA-2026-000008 | UBND phường Ba Đình |" in md
    assert "1. Phường Ba Đình: 10 phản ánh" in md

    rows = list(csv.reader(io.StringIO(render(digest, "csv"))))
    assert rows[0] == ["Phần", "Mã", "Tên", "Chỉ số", "Giá trị"]
    assert all(len(r) == 5 for r in rows)
    table = {(r[0], r[1], r[3]): r[4] for r in rows}
    assert table["Tổng quan", "received", "Tuần này"] == "14"
    assert table["Tổng quan", "overdue", "Thay đổi"] == "4"
    assert table["Tổng quan", "on_time_rate", "Tuần này"] == "0.6"
    assert table["Lĩnh vực", "sidewalk", "Tiếp nhận"] == "7"
    assert table["Phường, xã", "00070", "Đã giải quyết"] == "3"
    assert table["Quá hạn", "PA-2026-000015", "Số giờ quá hạn"] == "54.0"
    assert csv_bytes(digest).startswith(b"\xef\xbb\xbf")

    page = render(digest, "html")
    assert page.startswith('<section class="civicbot-digest" lang="vi">')
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page
    assert "<td>UBND phường Ba Đình</td>" in page and "<script" not in page

    text = message_text(digest)
    assert "Tuần 47/2026" in text and "Toàn thành phố Hà Nội" in text
    assert "Tiếp nhận mới: 14 (+10 so với tuần trước)" in text
    assert "PA-2026-000008, PA-2026-000004, PA-2026-000012, PA-2026-000011, PA-2026-000015" in text
    assert "phản ánh khác" not in text  # five overdue: all named
    six = digest.model_copy(update={"overdue_tickets": digest.overdue_tickets * 2})
    assert "và 5 phản ánh khác" in message_text(six)
    assert len(text) < 1000


def test_chart_is_a_png(filled: Engine, tmp_path: Path) -> None:
    for digest in (digest_of(filled, W47), digest_of(filled, W47, CITY_BODY)):
        png = chart_png(digest)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        path = tmp_path / "chart.png"
        path.write_bytes(png)
        height, width, _channels = imread(path).shape
        assert (width, height) == (1100, 550)


# --- Command line ---------------------------------------------------------------------------


def test_cli_digest(
    filled: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)
    monkeypatch.setattr(settings, "timezone", "Asia/Ho_Chi_Minh")
    with Session(filled) as session:  # a ward's digest: with its place in the league
        standings = league_standings(
            session=session, week=W47, tz=TZ, min_tickets=settings.scorecard_min_tickets
        )
    expected = digest_of(filled, W47, A).model_copy(update={"league": standings[A]})

    assert cli.main(["digest", "--week", "2026-W47", "--unit", A, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected.model_dump(mode="json")

    for fmt, marker in (("md", "# Báo cáo"), ("csv", "Phần,Mã"), ("html", "<section")):
        assert cli.main(["digest", "--week", "2026-W47", "--unit", A, "--format", fmt]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith(marker)
        if fmt != "csv":  # read by people: the zone as they say it, not its id
            assert "(giờ Việt Nam)" in shown and "Asia/Ho_Chi_Minh" not in shown

    out = tmp_path / "digest.csv"
    assert cli.main(["digest", "--week", "2026-W47", "--format", "csv", "--output", str(out)]) == 0
    assert out.read_bytes().startswith("\ufeffPhần,Mã".encode())
    assert str(out) in capsys.readouterr().err

    assert cli.main(["digest", "--format", "json"]) == 0  # default: the last complete week
    shown = json.loads(capsys.readouterr().out)
    assert shown["week"] == str(IsoWeek.last_complete(datetime.now(UTC), TZ))

    assert cli.main(["digest", "--week", "2026-W47", "--unit", "nowhere"]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert cli.main(["digest", "--week", "2026-W99"]) == 2
    assert "2026" in capsys.readouterr().err


# --- Monday's messages ----------------------------------------------------------------------


def add_officials(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Unit(id="so-xay-dung", name="Sở Xây dựng", kind=UnitKind.city, active=False))
        people = [
            ("A handler", A, OfficialRole.handler, "a1", True),
            ("A supervisor", A, OfficialRole.supervisor, "a2", True),
            ("A not linked", A, OfficialRole.handler, None, True),
            ("A gone", A, OfficialRole.handler, "a3", False),
            ("B handler", B, OfficialRole.handler, "b1", True),
            ("Leader", CITY_BODY, OfficialRole.leader, "l1", True),
            ("Leader not linked", CITY_BODY, OfficialRole.leader, None, True),
            ("Inactive unit", "so-xay-dung", OfficialRole.handler, "x1", True),
        ]
        for name, unit, role, chat, active in people:
            session.add(
                Official(
                    name=name,
                    unit_id=unit,
                    role=role,
                    active=active,
                    channel=Channel.telegram if chat else None,
                    chat_id=chat,
                    external_user_id=chat,
                )
            )
        session.commit()


def outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def test_schedule_sends_once_per_unit_week_and_official(filled: Engine) -> None:
    add_officials(filled)
    with Session(filled) as session:
        # Monday 07:59 in Hà Nội (00:59 UTC): not yet.
        assert enqueue_weekly_digests(session=session, now=local("2026-11-23 07:59"), tz=TZ) == 0
        assert outbox(filled) == []
        monday = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
        assert enqueue_weekly_digests(session=session, now=monday, tz=TZ) == 4
        assert enqueue_weekly_digests(session=session, now=monday, tz=TZ) == 0
        later = local("2026-11-24 15:00")  # a restart on Tuesday: still nothing twice
        assert enqueue_weekly_digests(session=session, now=later, tz=TZ) == 0
        ids = {o.chat_id: o.id for o in session.exec(select(Official)).all()}
    sent = outbox(filled)
    assert sorted(m.recipient for m in sent) == ["a1", "a2", "b1", "l1"]
    assert {m.recipient: m.dedupe_key for m in sent} == {
        "a1": f"digest:2026-W47:{A}:{ids['a1']}",
        "a2": f"digest:2026-W47:{A}:{ids['a2']}",
        "b1": f"digest:2026-W47:{B}:{ids['b1']}",
        "l1": f"digest:2026-W47:city:{ids['l1']}",
    }
    by_chat = {m.recipient: reply_from_payload(m.payload) for m in sent}
    assert "UBND phường Ba Đình" in by_chat["a1"].text
    assert "Tiếp nhận mới: 10" in by_chat["a1"].text
    # Fewer than 5 tickets resolved with a deadline in the 4 weeks: no place yet, and said so.
    assert "Xếp hạng trong các phường, xã (4 tuần gần nhất): chưa xếp hạng" in by_chat["a1"].text
    assert "Xếp hạng" not in by_chat["l1"].text
    assert "Toàn thành phố Hà Nội" in by_chat["l1"].text
    for reply in by_chat.values():
        photo, document = reply.files
        assert photo.kind == "photo" and photo.content and photo.content.startswith(b"\x89PNG")
        assert document.kind == "document" and document.mime_type == "text/csv"
        assert document.content and document.content.decode("utf-8-sig").startswith("Phần,")
        assert document.filename and document.filename.startswith("bao-cao-tuan-2026-W47-")
    assert_no_citizen_data(json.dumps([m.payload for m in sent], ensure_ascii=False))

    # The next Monday: the next week's digests, again once.
    with Session(filled) as session:
        assert enqueue_weekly_digests(session=session, now=local("2026-11-30 08:00"), tz=TZ) == 4
    assert len(outbox(filled)) == 8


def test_due_week() -> None:
    assert due_week(local("2026-11-23 07:59"), TZ) is None
    assert due_week(local("2026-11-23 08:00"), TZ) == W47
    assert due_week(local("2026-11-29 23:59"), TZ) == W47
    assert due_week(local("2026-11-30 00:00"), TZ) is None


# --- Generated data: the same digests on both databases -------------------------------------


def load_generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_tickets.py"
    spec = importlib.util.spec_from_file_location("generate_tickets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(
    postgres: pg.PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, Engine, ModuleType]]:
    """The same 4,000 generated tickets in a SQLite and a PostgreSQL database."""
    generator = load_generator()
    name = f"digest_{uuid.uuid4().hex[:8]}"
    urls = (
        f"sqlite:///{tmp_path_factory.mktemp('generated') / 'civicbot.db'}",
        postgres.create_database(name),
    )
    end = datetime(2026, 11, 30, tzinfo=TZ)
    stats = generator.generate_into(
        [generator.Target(url) for url in urls], tickets=4000, days=120, end=end, seed=7
    )
    assert all(s.counts["ticket"] == 4000 for s in stats.values())
    engines = [create_db_engine(url) for url in urls]
    yield engines[0], engines[1], generator
    for engine in engines:
        engine.dispose()
    postgres.drop_database(name)


def test_generated_data_gives_the_same_digests_on_both_databases(
    generated: tuple[Engine, Engine, ModuleType],
) -> None:
    sqlite_engine, pg_engine, generator = generated
    city_bodies = [unit[0] for unit in generator.CITY_UNITS]
    for week in (IsoWeek(2026, 40), IsoWeek(2026, 47), IsoWeek(2026, 48)):
        city = digest_of(sqlite_engine, week)
        assert city == digest_of(pg_engine, week)
        assert city.counts.received > 150 and city.counts.resolved > 100
        assert city.counts.open > 0 and city.counts.overdue > 0 and city.overdue_tickets
        assert city.median_hours_to_accept and city.median_hours_to_resolve
        assert city.satisfaction.ratings > 0 and city.on_time_rate
        assert city.procedure_questions > 0 and city.top_procedures
        busiest = [f"ubnd-{row.key}" for row in city.by_ward[:3] if row.key]
        for unit_id in busiest + city_bodies:
            assert digest_of(sqlite_engine, week, unit_id) == digest_of(pg_engine, week, unit_id)


def test_unit_digests_add_up_to_the_city(generated: tuple[Engine, Engine, ModuleType]) -> None:
    sqlite_engine, _pg_engine, _generator = generated
    with Session(sqlite_engine) as session:
        units = list(session.exec(select(Unit.id)).all())
    assert len(units) == 126 + 11
    city = digest_of(sqlite_engine, W47)
    total = dict.fromkeys(city.counts.model_dump(), 0)
    overdue: list[str] = []
    for unit_id in units:
        digest = digest_of(sqlite_engine, W47, unit_id)
        overdue += [t.code for t in digest.overdue_tickets]
        for key, value in digest.counts.model_dump().items():
            total[key] += value
    # Every generated ticket has a lead unit, so the units' digests add up to the city's.
    assert total == city.counts.model_dump()
    assert sorted(overdue) == sorted(t.code for t in city.overdue_tickets)


def test_a_week_still_running_is_counted_up_to_now(filled: Engine) -> None:
    now = local("2026-11-19 12:00")  # Thursday noon of W47
    with Session(filled) as session:
        d = weekly_digest(session=session, week=W47, unit_id=None, tz=TZ, now=now)
    assert d.period_end == now
    assert week_title(d) == "Tuần 47/2026 (16/11–22/11/2026)"
    codes = [t.code[-2:] for t in d.overdue_tickets]
    assert "08" in codes  # its deadline, Monday 17:00, has passed
    assert "04" not in codes  # accept by Thursday 17:00: not late yet at noon
    assert d.counts.received < digest_of(filled, W47).counts.received
    with Session(filled) as session:  # the clock's time is UTC: shown in the digest's zone
        utc = weekly_digest(session=session, week=W47, unit_id=None, tz=TZ, now=now.astimezone(UTC))
    assert utc.period_end == now and moment(utc.period_end) == "12:00 thứ Năm, 19/11/2026"


# --- The league place and trend (issue 19) ---------------------------------------------------


def test_ward_digests_carry_the_league_place_and_trend(filled: Engine) -> None:
    with Session(filled) as session:
        standings = league_standings(session=session, week=W47, tz=TZ, min_tickets=1)
        a = digest_with_league(session=session, week=W47, unit_id=A, tz=TZ, min_tickets=1)
        city = digest_with_league(session=session, week=W47, unit_id=None, tz=TZ, min_tickets=1)
        body = digest_with_league(
            session=session, week=W47, unit_id=CITY_BODY, tz=TZ, min_tickets=1
        )
        w51 = league_standings(session=session, week=IsoWeek(2026, 51), tz=TZ, min_tickets=1)
        hidden = league_standings(session=session, week=W47, tz=TZ, min_tickets=5)
    # W44–W47: A resolved 1 (on time), 2 (late), 9 (on time) with deadlines: 2/3; ratings 5, 2.
    # B: 14 (on time), 20 (late), 19 has no deadline: 1/2; rating 4. Nothing in W40–W43.
    assert standings[A] == LeagueStanding(
        weeks=4,
        place=1,
        ranked=2,
        previous_place=None,
        previous_ranked=0,
        on_time_rate=0.6667,
        previous_on_time_rate=None,
        satisfaction=3.5,
        previous_satisfaction=None,
    )
    assert (standings[B].place, standings[B].on_time_rate, standings[B].satisfaction) == (
        2,
        0.5,
        4.0,
    )
    assert a.league == standings[A]
    assert city.league is None and body.league is None  # no league for the city or its bodies
    # W48–W51: A's 12 resolved late (0/1); B resolved nothing with a deadline: unranked.
    assert (w51[A].place, w51[A].ranked, w51[A].previous_place, w51[A].previous_ranked) == (
        1,
        1,
        1,
        2,
    )
    assert (w51[A].on_time_rate, w51[A].previous_on_time_rate) == (0.0, 0.6667)
    assert (w51[B].place, w51[B].previous_place) == (None, 2)
    assert hidden[A].place is None and hidden[A].ranked == 0  # 3 resolved: under 5
    assert all(key not in standings for key in (CITY_BODY,))

    text = message_text(a)
    assert "• Xếp hạng trong các phường, xã (4 tuần gần nhất): hạng 1/2" in text
    assert "4 tuần trước đó: chưa xếp hạng" in text and "giải quyết đúng hạn 66,7%" in text
    assert "Xếp hạng trong các phường, xã" in render(a, "md")
    assert "Xếp hạng trong các phường, xã" in render(a, "html")
    assert json.loads(render(a, "json"))["league"]["place"] == 1
    assert "Xếp hạng,4,Hạng,4 tuần gần nhất,1" in render(a, "csv")
    assert "Xếp hạng" not in message_text(city)
    moved = a.model_copy(update={"league": w51[A]})
    assert "hạng 1/1 (giữ nguyên; 4 tuần trước đó: hạng 1/2)" in message_text(moved)
    unranked = a.model_copy(update={"league": w51[B]})
    assert "chưa xếp hạng (chưa đủ phản ánh được giải quyết có thời hạn)" in message_text(unranked)
