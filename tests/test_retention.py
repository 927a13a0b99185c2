"""Issue 12: `civicbot purge` blanks message texts and phone numbers past the retention
period, on SQLite and PostgreSQL, keeping every record (the digests do not change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from seed import two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.cli import main as cli_main
from bot.config import settings
from bot.digest.aggregate import IsoWeek, weekly_digest
from bot.digest.render import csv_bytes
from bot.retention import purge
from storage import queries
from storage.models import (
    Channel,
    Citizen,
    Direction,
    Message,
    OutboxMessage,
    OutboxMessageCreate,
    OutboxStatus,
    Ticket,
    TicketStatus,
    TicketUpdate,
)

OLD = datetime(2025, 3, 10, 3, 0, tzinfo=UTC)  # a Monday, long ago
NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
PHONE = "0912345678"


def _message(
    session: Session,
    citizen: int | None,
    text: str,
    at: datetime,
    nlu: dict | None,
    payload: dict | None = None,
) -> None:
    session.add(
        Message(
            direction=Direction.incoming,
            channel=Channel.telegram,
            chat_id=f"c{citizen}",
            user_id=f"c{citizen}",
            text=text,
            citizen_id=citizen,
            nlu=nlu,
            payload=payload or {},
            created_at=at,
        )
    )


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    with Session(engine) as session:
        two_wards_and_city(session)
        old_citizen = Citizen(display_name="Nguyễn Văn Cũ", phone=PHONE, created_at=OLD)
        active_citizen = Citizen(display_name="Trần Thị Mới", phone="0987654321", created_at=OLD)
        session.add_all([old_citizen, active_citizen])
        session.commit()
        nlu = {
            "intent": "ask_procedure",
            "procedure": "khai_sinh",
            "text": f"khai sinh {PHONE}",
            "phone": PHONE,
            "confidence": 0.9,
        }
        _message(session, old_citizen.id, f"làm khai sinh thế nào, sđt {PHONE}", OLD, nlu)
        location = {"button": None, "location": {"lat": 21.0285, "lon": 105.8542}}
        _message(session, old_citizen.id, "", OLD, None, location)
        _message(session, active_citizen.id, "hỏi lại", NOW - timedelta(days=2), nlu)
        session.commit()
        old = waste_ticket(session, "ward-a", now=OLD, chat="c1")
        queries.update_ticket(
            session=session,
            db_ticket=old,
            ticket_in=TicketUpdate(
                status=TicketStatus.closed, contact_phone=PHONE, resolved_at=OLD
            ),
            actor="test",
            at=OLD,
        )
        open_old = waste_ticket(session, "ward-a", now=OLD, chat="c1")
        queries.update_ticket(
            session=session,
            db_ticket=open_old,
            ticket_in=TicketUpdate(contact_phone=PHONE),
            actor="test",
            at=OLD,
        )
        row = queries.enqueue_outbox(
            session=session,
            message_in=OutboxMessageCreate(
                channel=Channel.telegram,
                recipient="c1",
                payload={"text": f"Cảm ơn, sđt {PHONE}", "buttons": [], "files": []},
            ),
        )
        row.status, row.created_at = OutboxStatus.sent, OLD
        session.add(row)
        session.commit()
    return engine


def _digest(engine: Engine) -> bytes:
    with Session(engine) as session:
        week = IsoWeek.containing(OLD, UTC)
        return csv_bytes(weekly_digest(session=session, week=week, unit_id=None, tz=UTC))


def _personal(engine: Engine) -> list[str]:
    """Every place the old phone number is still found."""
    with Session(engine) as session:
        found = [
            f"message {m.id}"
            for m in session.exec(select(Message)).all()
            if PHONE in m.text or PHONE in str(m.nlu)
        ]
        found += [
            f"citizen {c.id}" for c in session.exec(select(Citizen)).all() if c.phone == PHONE
        ]
        found += [
            f"ticket {t.code}"
            for t in session.exec(select(Ticket)).all()
            if t.contact_phone == PHONE
        ]
        found += [
            f"outbox {o.id}"
            for o in session.exec(select(OutboxMessage)).all()
            if PHONE in str(o.payload)
        ]
        return found


def test_purge_blanks_old_personal_data_and_keeps_the_records(seeded: Engine) -> None:
    before = _digest(seeded)
    with Session(seeded) as session:
        counts = (
            len(session.exec(select(Message)).all()),
            len(session.exec(select(Ticket)).all()),
            len(session.exec(select(Citizen)).all()),
        )
    cutoff = NOW - timedelta(days=365)
    with Session(seeded) as session:
        dry = purge(session=session, before=cutoff, dry_run=True)
    assert (dry.messages, dry.outbox, dry.citizens, dry.tickets) == (2, 1, 1, 1)
    assert len(_personal(seeded)) == 6  # a dry run changes nothing
    with Session(seeded) as session:
        done = purge(session=session, before=cutoff)
    assert done == dry
    # Left: a message within the period, and the phone of a ticket still being handled.
    assert [p.split()[0] for p in _personal(seeded)] == ["message", "ticket"]
    with Session(seeded) as session:
        assert (
            len(session.exec(select(Message)).all()),
            len(session.exec(select(Ticket)).all()),
            len(session.exec(select(Citizen)).all()),
        ) == counts
        old, shared = session.exec(select(Message).where(Message.text == "")).all()
        assert old.nlu == {"intent": "ask_procedure", "procedure": "khai_sinh", "confidence": 0.9}
        assert shared.payload == {"button": None}  # the shared location is gone
        recent = session.exec(select(Message).where(Message.text == "hỏi lại")).one()
        assert recent.nlu is not None and recent.nlu.get("phone") == PHONE  # within retention
        kept = session.exec(select(Citizen).where(Citizen.phone == "0987654321")).one()
        assert kept.display_name == "Trần Thị Mới"  # wrote recently
    assert _digest(seeded) == before
    with Session(seeded) as session:
        again = purge(session=session, before=cutoff)
    assert (again.messages, again.outbox, again.citizens, again.tickets) == (0, 0, 0, 0)


def test_the_purge_command(
    seeded: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)
    monkeypatch.setattr(settings, "retention_days", 30)
    assert cli_main(["purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would blank" in out and "messages: 2" in out and "30 days" in out
    assert len(_personal(seeded)) == 6
    assert cli_main(["purge"]) == 0
    assert "blanked" in capsys.readouterr().out
    assert len(_personal(seeded)) == 2
    assert cli_main(["purge", "--days", "0"]) == 2


def test_an_undelivered_signin_code_is_blanked_an_hour_later(engine: Engine) -> None:
    payload = {
        "text": "Mã đăng nhập: 482913",
        "buttons": [],
        "files": [],
        queries.OUTBOX_REDACTED_TEXT: "Mã đăng nhập đã được gửi.",
    }
    with Session(engine) as session:
        for status, age in (
            (OutboxStatus.failed, 2),
            (OutboxStatus.failed, 0.5),
            (OutboxStatus.pending, 2),
        ):
            row = queries.enqueue_outbox(
                session=session,
                message_in=OutboxMessageCreate(
                    channel=Channel.telegram, recipient="o", payload=payload
                ),
            )
            row.status, row.created_at = status, NOW - timedelta(hours=age)
            session.add(row)
            session.commit()
    with Session(engine) as session:
        done = purge(session=session, before=NOW - timedelta(days=365), now=NOW)
    assert done.secrets == 1  # given up on, over an hour ago; not the recent or queued ones
    with Session(engine) as session:
        texts = [o.payload["text"] for o in session.exec(select(OutboxMessage)).all()]
    assert texts.count("Mã đăng nhập đã được gửi.") == 1 and len(texts) == 3
