"""The storage layer, run on both databases: SQLite (a temp file) and a real PostgreSQL server.

The PostgreSQL server (tests/pg.py) is started once per test session, on 127.0.0.1, when the
first PostgreSQL test needs it. Migration tests get a new, empty database; the others share
one migrated database that is emptied (TRUNCATE) before each test. SQLite tests get a new
file each. If no PostgreSQL server can be had, those tests fail with the reason: they are
never skipped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, func, select

from bot.config import settings
from bot.conversation.messages import Reply, reply_to_payload
from storage import migrate, queries
from storage.db import SQLITE_BUSY_TIMEOUT_MS, create_db_engine, get_session, normalize_url
from storage.models import (
    AttachmentCreate,
    Channel,
    Citizen,
    Direction,
    Message,
    OutboxMessage,
    OutboxMessageCreate,
    OutboxStatus,
    Ticket,
    TicketCreate,
    TicketEvent,
    TicketEventCreate,
    TicketStatus,
    TicketUpdate,
)

T = TypeVar("T")

# --- Fixtures (postgres, database_url, engine: tests/conftest.py) ----------------------


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run `work(i)` for i in range(count) at once in `count` threads (behind a barrier)."""
    barrier = threading.Barrier(count)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def count(session: Session, model: Any, *where: Any) -> int:
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def a_ticket(**fields: Any) -> TicketCreate:
    values: dict[str, Any] = {
        "category": "sidewalk",
        "description": "Vỉa hè phố Huế bị lấn chiếm",
        "location_text": "phố Huế",
        "ward_code": "00001",
        "ward_name": "Phường Hai Bà Trưng",
        "latitude": 21.0123,
        "longitude": 105.8512,
        "contact_phone": "0912345678",
    }
    values.update(fields)
    return TicketCreate(**values)


# --- Engines and migrations ------------------------------------------------------------------


def test_migrations_build_exactly_the_models(empty_database_url: str) -> None:
    database_url = empty_database_url
    assert migrate.current_revision(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()
    migrate.check(database_url)  # `alembic check`: raises when autogenerate finds a change
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            tables = set(sa.inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert set(SQLModel.metadata.tables) <= tables


def test_migrations_downgrade_and_upgrade_again(empty_database_url: str) -> None:
    database_url = empty_database_url
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)  # at head already: nothing to do
    from alembic import command

    command.downgrade(migrate.alembic_config(database_url), "base")
    assert migrate.current_revision(database_url) is None
    migrate.upgrade(database_url)
    migrate.check(database_url)


def test_upgrade_defaults_to_the_configured_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'var' / 'civicbot.db'}"
    monkeypatch.setattr(settings, "database_url", url)
    migrate.upgrade()
    assert (tmp_path / "nested" / "var" / "civicbot.db").exists()
    assert migrate.current_revision(url) == migrate.head_revision()


def test_default_database_is_a_sqlite_file_under_var() -> None:
    default = type(settings).model_fields["database_url"].default
    assert default.startswith("sqlite:///")
    assert default.endswith("/var/civicbot.db")


def test_sqlite_engine_uses_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()
    assert (tmp_path / "a" / "b" / "x.db").exists()


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(TicketEvent(ticket_id=999_999, kind="note", actor="system"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_get_session_commits_nothing_on_error(engine: Engine) -> None:
    with pytest.raises(RuntimeError), get_session(engine) as session:
        session.add(
            Message(direction=Direction.incoming, channel=Channel.web, chat_id="c", text="x")
        )
        session.flush()
        raise RuntimeError("boom")
    with get_session(engine) as session:
        assert count(session, Message) == 0


# --- Messages -------------------------------------------------------------------------------


def test_incoming_message_is_stored_once(session: Session) -> None:
    payload = {"update_id": 1, "message": {"text": "vỉa hè phố Huế bị lấn chiếm"}}
    first, new = queries.store_incoming(
        session=session,
        channel=Channel.telegram,
        chat_id="42",
        channel_message_id="7",
        text="vỉa hè phố Huế bị lấn chiếm",
        payload=payload,
        user_id="42",
    )
    assert new and first.id is not None
    again, new_again = queries.store_incoming(
        session=session,
        channel=Channel.telegram,
        chat_id="42",
        channel_message_id="7",
        text="vỉa hè phố Huế bị lấn chiếm",
        payload=payload,
    )
    assert not new_again
    assert again.id == first.id
    assert again.payload == payload
    assert again.created_at.tzinfo is not None
    assert count(session, Message) == 1

    # The same id in another chat or on another channel is another message.
    _, other_chat = queries.store_incoming(
        session=session, channel=Channel.telegram, chat_id="43", channel_message_id="7",
        text="", payload={},
    )  # fmt: skip
    _, other_channel = queries.store_incoming(
        session=session, channel=Channel.zalo, chat_id="42", channel_message_id="7",
        text="", payload={},
    )  # fmt: skip
    assert other_chat and other_channel
    # Outgoing messages neither clash with incoming ids nor need one.
    queries.store_outgoing(session=session, channel=Channel.telegram, chat_id="42", text="Dạ")
    queries.store_outgoing(session=session, channel=Channel.telegram, chat_id="42", text="Dạ")
    out = queries.store_outgoing(
        session=session, channel=Channel.telegram, chat_id="42", text="ok", channel_message_id="7"
    )
    assert out.direction == "out"
    assert count(session, Message) == 6


def test_a_redelivery_racing_the_first_delivery_is_stored_once(engine: Engine) -> None:
    def deliver(_: int) -> tuple[int | None, bool]:
        with Session(engine) as session:
            message, new = queries.store_incoming(
                session=session, channel=Channel.zalo, chat_id="u1", channel_message_id="m1",
                text="alo", payload={"n": 1},
            )  # fmt: skip
            return message.id, new

    results = in_threads(8, deliver)
    assert sum(new for _, new in results) == 1
    assert len({message_id for message_id, _ in results}) == 1
    with Session(engine) as session:
        assert count(session, Message) == 1


def test_a_turn_keeps_the_message_its_nlu_result_state_and_handled_time(session: Session) -> None:
    def start() -> queries.TurnStart:
        return queries.start_turn(
            session=session, channel=Channel.web, chat_id="s1", user_id="s1", display_name="Lan",
            channel_message_id="1", text="đơn PA-2026-000001 xử lý đến đâu rồi", payload={},
        )  # fmt: skip

    first = start()
    assert first.new and first.state is None and first.data == {}
    stored = session.get_one(Message, first.message_id)
    assert stored.citizen_id == first.citizen_id and stored.nlu is None
    assert stored.handled_at is None
    nlu = {"intent": "check_status", "confidence": 0.93, "ticket_code": "PA-2026-000001"}
    queued = queries.finish_turn(
        session=session, message_id=first.message_id, nlu=nlu, channel=Channel.web,
        chat_id="s1", state="ask_place", data={"category": "waste"}, citizen_id=first.citizen_id,
        replies=[reply_to_payload(Reply("Dạ"))],
    )  # fmt: skip
    assert len(queued) == 1
    assert queries.replies_to(session=session, message_id=first.message_id) == [
        reply_to_payload(Reply("Dạ"))
    ]
    session.expire_all()
    stored = session.get_one(Message, first.message_id)
    assert stored.nlu == nlu
    assert stored.handled_at is not None and stored.handled_at.tzinfo is not None
    again = start()  # the channel delivers the same message again
    assert not again.new and again.message_id == first.message_id
    assert again.citizen_id == first.citizen_id
    assert (again.state, again.data) == ("ask_place", {"category": "waste"})


# --- Citizens -------------------------------------------------------------------------------


def first_contact(session: Session, channel: Channel, user: str, message: str = "1") -> int:
    """The citizen id a first message from this account gets."""
    return queries.start_turn(
        session=session, channel=channel, chat_id=user, user_id=user, display_name="Lan",
        channel_message_id=message, text="alo", payload={},
    ).citizen_id  # fmt: skip


def test_citizen_is_created_once_per_channel_account(engine: Engine) -> None:
    def contact(n: int) -> int:
        with Session(engine) as session:
            return first_contact(session, Channel.telegram, "777", message=str(n))

    ids = in_threads(12, contact)
    assert len(set(ids)) == 1
    with Session(engine) as session:
        assert count(session, Citizen) == 1
        other = first_contact(session, Channel.zalo, "777")
        assert other != ids[0]


# --- Conversations --------------------------------------------------------------------------


def test_conversation_state_survives_a_restart(database_url: str, engine: Engine) -> None:
    form = {"category": "waste", "location": {"text": "ngõ 12 Kim Mã"}, "photos": ["f1"]}
    with Session(engine) as session:
        assert queries.get_conversation(session=session, channel=Channel.web, chat_id="w1") is None
        first_id = queries.save_conversation(
            session=session, channel=Channel.web, chat_id="w1", state="report.ask_phone", data=form
        )
    engine.dispose()  # the process stops…

    restarted = create_db_engine(database_url)  # …and starts again
    try:
        with Session(restarted) as session:
            found = queries.get_conversation(session=session, channel=Channel.web, chat_id="w1")
            assert found is not None
            assert (found.state, found.data) == ("report.ask_phone", form)
            assert found.updated_at.tzinfo is not None
            updated_id = queries.save_conversation(
                session=session, channel=Channel.web, chat_id="w1", state="idle", data={}
            )
            assert updated_id == first_id
            updated = queries.get_conversation(session=session, channel=Channel.web, chat_id="w1")
            assert updated is not None
            assert (updated.state, updated.data) == ("idle", {})
            assert updated.updated_at >= found.updated_at
    finally:
        restarted.dispose()


# --- Tickets --------------------------------------------------------------------------------


def test_ticket_codes_are_sequential_within_each_year(session: Session) -> None:
    def filed(at: datetime) -> str:
        return queries.create_ticket(
            timezone=settings.timezone, session=session, ticket_in=a_ticket(), now=at
        ).code

    march = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert [filed(march) for _ in range(3)] == [
        "PA-2026-000001",
        "PA-2026-000002",
        "PA-2026-000003",
    ]
    assert filed(datetime(2027, 2, 1, tzinfo=UTC)) == "PA-2027-000001"
    assert filed(march) == "PA-2026-000004"
    # 31 Dec 2026 18:00 UTC is already 1 Jan 2027 in Hà Nội (UTC+7): the year of filing is local.
    assert filed(datetime(2026, 12, 31, 18, tzinfo=UTC)) == "PA-2027-000002"


def test_ticket_codes_are_unique_under_concurrency(database_url: str, engine: Engine) -> None:
    busy = create_db_engine(database_url, pool_size=20, max_overflow=0)
    try:

        def file(i: int) -> str:
            with Session(busy) as session:
                ticket_in = a_ticket(description=f"phản ánh {i}")
                return queries.create_ticket(
                    timezone=settings.timezone, session=session, ticket_in=ticket_in
                ).code

        codes = in_threads(20, file)
    finally:
        busy.dispose()
    year = datetime.now(ZoneInfo(settings.timezone)).year
    assert sorted(codes) == [f"PA-{year}-{n:06d}" for n in range(1, 21)]
    with Session(engine) as session:
        assert count(session, Ticket) == 20
        assert count(session, TicketEvent) == 20


@pytest.mark.parametrize(
    "typed",
    ["PA-2026-000123", "pa-2026-000123", "pa2026000123", "PA2026000123", " Pa 2026 000123 ",
     "pa-2026-123", "PA.2026.000123"],
)  # fmt: skip
def test_ticket_code_lookup_accepts_any_case_and_dashes(session: Session, typed: str) -> None:
    ticket = queries.create_ticket(
        timezone=settings.timezone, session=session, ticket_in=a_ticket()
    )
    # Give it the code of the example, as if 122 tickets had been filed before.
    ticket.code = "PA-2026-000123"
    session.add(ticket)
    session.commit()
    found = queries.get_ticket_by_code(session=session, code=typed)
    assert found is not None and found.id == ticket.id


def test_ticket_code_normalization() -> None:
    assert queries.normalize_ticket_code("pa2026000123") == "PA-2026-000123"
    assert queries.normalize_ticket_code("PA-2026-7") == "PA-2026-000007"
    for not_a_code in ["", "PA", "PA-26-000123", "XX-2026-000123", "PA-2026-", "2026000123"]:
        assert queries.normalize_ticket_code(not_a_code) is None


def test_unknown_code_finds_nothing(session: Session) -> None:
    queries.create_ticket(timezone=settings.timezone, session=session, ticket_in=a_ticket())
    assert queries.get_ticket_by_code(session=session, code="PA-1999-000001") is None
    assert queries.get_ticket_by_code(session=session, code="hello") is None


def test_tickets_of_a_citizen_newest_first(session: Session) -> None:
    citizen_id = first_contact(session, Channel.telegram, "1")
    stranger_id = first_contact(session, Channel.telegram, "2")
    base = datetime(2026, 5, 1, tzinfo=UTC)
    codes = [
        queries.create_ticket(
            timezone=settings.timezone,
            session=session,
            ticket_in=a_ticket(citizen_id=citizen_id),
            now=base + timedelta(days=i),
        ).code
        for i in range(3)
    ]
    queries.create_ticket(
        timezone=settings.timezone,
        session=session,
        ticket_in=a_ticket(citizen_id=stranger_id),
        now=base,
    )
    mine = queries.tickets_of_citizen(session=session, citizen_id=citizen_id)
    assert [t.code for t in mine] == list(reversed(codes))
    oldest = queries.get_ticket_by_code(session=session, code=codes[0])
    assert oldest is not None
    queries.update_ticket(
        session=session,
        db_ticket=oldest,
        ticket_in=TicketUpdate(status=TicketStatus.resolved),
        actor="x",
    )
    still_open = queries.tickets_of_citizen(
        session=session, citizen_id=citizen_id, statuses=[TicketStatus.received]
    )
    assert [t.code for t in still_open] == list(reversed(codes[1:]))


def test_ticket_events_are_kept_in_order(session: Session) -> None:
    ticket = queries.create_ticket(
        timezone=settings.timezone, session=session, ticket_in=a_ticket(), actor="citizen:1"
    )
    assert ticket.status == TicketStatus.received
    assert ticket.created_at.tzinfo is not None
    deadline = datetime(2026, 6, 1, 10, tzinfo=UTC)
    queries.update_ticket(
        session=session,
        db_ticket=ticket,
        ticket_in=TicketUpdate(status=TicketStatus.accepted, lead_unit_id="ubnd-hbt"),
        actor="official:an",
        note="Tiếp nhận",
    )
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(resolve_by=deadline),
        actor="system",
    )  # fmt: skip
    queries.add_ticket_event(
        session=session,
        ticket=ticket,
        event_in=TicketEventCreate(kind="note", actor="official:an", note="Đã cử cán bộ"),
    )
    unchanged = queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(lead_unit_id="ubnd-hbt"),
        actor="x",
    )  # fmt: skip
    assert unchanged.lead_unit_id == "ubnd-hbt"
    with pytest.raises(ValueError, match="reason"):
        queries.update_ticket(
            session=session,
            db_ticket=ticket,
            ticket_in=TicketUpdate(status=TicketStatus.rejected),
            actor="x",
        )
    assert ticket.id is not None
    events = queries.ticket_events(session=session, ticket_id=ticket.id)
    assert [(e.kind, e.actor) for e in events] == [
        ("created", "citizen:1"),
        ("status", "official:an"),
        ("unit", "official:an"),
        ("deadline", "system"),
        ("note", "official:an"),
    ]
    assert events[1].old_value == {"status": "received"}
    assert events[1].new_value == {"status": "accepted"}
    assert events[1].note == "Tiếp nhận"
    assert events[3].new_value == {"resolve_by": deadline.isoformat()}
    assert all(e.at.tzinfo is not None for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    stored = session.get_one(Ticket, ticket.id, populate_existing=True)
    assert stored.status == TicketStatus.accepted
    assert stored.resolve_by == deadline
    assert stored.updated_at == events[-1].at


def test_concurrent_changes_to_a_ticket_chain_their_events(engine: Engine) -> None:
    with Session(engine) as session:
        code = queries.create_ticket(
            timezone=settings.timezone, session=session, ticket_in=a_ticket()
        ).code

    def assign(i: int) -> None:
        with Session(engine) as session:
            ticket = queries.get_ticket_by_code(session=session, code=code)
            assert ticket is not None
            queries.update_ticket(
                session=session, db_ticket=ticket, ticket_in=TicketUpdate(lead_unit_id=f"u{i}"),
                actor=f"official:{i}",
            )  # fmt: skip

    in_threads(8, assign)
    with Session(engine) as session:
        ticket = queries.get_ticket_by_code(session=session, code=code)
        assert ticket is not None and ticket.id is not None
        events = [e for e in queries.ticket_events(session=session, ticket_id=ticket.id)]
    units = [e for e in events if e.kind == "unit"]
    assert len(units) == 8
    # Each change replaced what the one before it set: no change was lost.
    assert units[0].old_value == {"lead_unit_id": None}
    for before, after in itertools.pairwise(units):
        assert after.old_value == before.new_value
    assert units[-1].new_value == {"lead_unit_id": ticket.lead_unit_id}


def test_anonymous_ticket_without_phone(session: Session) -> None:
    ticket = queries.create_ticket(
        timezone=settings.timezone,
        session=session,
        ticket_in=a_ticket(anonymous=True, contact_phone=None),
    )
    assert ticket.anonymous and ticket.contact_phone is None and ticket.citizen_id is None


# --- Attachments ----------------------------------------------------------------------------


def test_attachments_belong_to_a_ticket_or_a_message(session: Session) -> None:
    ticket = queries.create_ticket(
        timezone=settings.timezone, session=session, ticket_in=a_ticket()
    )
    message, _ = queries.store_incoming(
        session=session, channel=Channel.telegram, chat_id="1", channel_message_id="9",
        text="", payload={},
    )  # fmt: skip
    attachment = queries.add_attachment(
        session=session,
        attachment_in=AttachmentCreate(
            channel=Channel.telegram, file_id="AgACAgUAAxkBAAIB", kind="photo",
            mime_type="image/jpeg", size=84_211, meta={"width": 1280, "height": 960},
            ticket_id=ticket.id, message_id=message.id,
        ),
    )  # fmt: skip
    assert ticket.id is not None
    stored = queries.attachments_of_ticket(session=session, ticket_id=ticket.id)
    assert [(a.id, a.file_id, a.meta) for a in stored] == [
        (attachment.id, "AgACAgUAAxkBAAIB", {"width": 1280, "height": 960})
    ]
    with pytest.raises(ValueError):
        queries.add_attachment(
            session=session, attachment_in=AttachmentCreate(channel=Channel.web, file_id="x")
        )


# --- Outbox ---------------------------------------------------------------------------------


def test_outbox_claim_sent_failed_and_backoff(session: Session) -> None:
    now = datetime.now(UTC)
    hello = queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(
            channel=Channel.telegram, recipient="42", payload={"text": "Xin chào"},
            dedupe_key="reply:1",
        ),
    )  # fmt: skip
    again = queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(
            channel=Channel.telegram, recipient="42", payload={"text": "other"},
            dedupe_key="reply:1",
        ),
    )  # fmt: skip
    assert again.id == hello.id and again.payload == {"text": "Xin chào"}
    flaky = queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(channel=Channel.zalo, recipient="u9", payload={"n": 2}),
    )
    later = queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(channel=Channel.web, recipient="s", payload={"n": 3}),
        not_before=now + timedelta(hours=2),
    )

    claimed = queries.claim_due_outbox(session=session, now=now + timedelta(seconds=1))
    assert [m.id for m in claimed] == [hello.id, flaky.id]
    assert all(m.attempts == 1 and m.status == OutboxStatus.pending for m in claimed)
    # Claimed rows are leased: not due again until the lease is over.
    assert queries.claim_due_outbox(session=session, now=now + timedelta(seconds=2)) == []

    queries.record_outbox_sent(
        session=session, message_id=claimed[0].id, text="Xin chào", payload={},
        channel_message_id="9",
    )  # fmt: skip
    sent = session.get_one(OutboxMessage, claimed[0].id)
    assert sent.status == OutboxStatus.sent and sent.sent_at is not None

    t1 = now + timedelta(seconds=3)
    failed = queries.mark_outbox_failed(session=session, message=claimed[1], error="502", now=t1)
    assert failed.status == OutboxStatus.pending and failed.last_error == "502"
    assert failed.next_attempt_at == t1 + timedelta(seconds=30)
    assert queries.claim_due_outbox(session=session, now=t1 + timedelta(seconds=29)) == []
    t2 = t1 + timedelta(seconds=31)
    (retry,) = queries.claim_due_outbox(session=session, now=t2)
    assert retry.id == flaky.id and retry.attempts == 2
    failed = queries.mark_outbox_failed(session=session, message=retry, error="timeout", now=t2)
    assert failed.next_attempt_at == t2 + timedelta(seconds=60)  # doubled

    # Attempts used up: failed for good, never claimed again.
    t3 = t2 + timedelta(minutes=5)
    (last,) = queries.claim_due_outbox(session=session, now=t3)
    gone = queries.mark_outbox_failed(
        session=session, message=last, error="403 blocked", now=t3, max_attempts=3
    )
    assert gone.status == OutboxStatus.failed and gone.attempts == 3
    tomorrow = queries.claim_due_outbox(session=session, now=now + timedelta(days=1))
    assert [m.id for m in tomorrow] == [later.id]
    assert queries.outbox_backoff(1) == timedelta(seconds=30)
    assert queries.outbox_backoff(100) == timedelta(hours=1)


def test_outbox_senders_never_claim_the_same_message(engine: Engine) -> None:
    with Session(engine) as session:
        for i in range(40):
            queries.enqueue_outbox(
                session=session,
                message_in=OutboxMessageCreate(channel=Channel.web, recipient=str(i), payload={}),
            )
    later = datetime.now(UTC) + timedelta(seconds=1)

    def sender(_: int) -> list[int]:
        got: list[int] = []
        with Session(engine) as session:
            while batch := queries.claim_due_outbox(session=session, limit=3, now=later):
                got.extend(m.id for m in batch if m.id is not None)
        return got

    claims = in_threads(4, sender)
    everything = [i for claim in claims for i in claim]
    assert len(everything) == 40 == len(set(everything))


def test_timestamps_come_back_in_utc(session: Session) -> None:
    hanoi = datetime(2026, 7, 1, 15, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    ticket = queries.create_ticket(
        timezone=settings.timezone, session=session, ticket_in=a_ticket(accept_by=hanoi)
    )
    session.expire_all()
    stored = session.exec(select(Ticket).where(col(Ticket.id) == ticket.id)).one()
    assert stored.accept_by == hanoi
    assert stored.accept_by is not None and stored.accept_by.utcoffset() == timedelta(0)
