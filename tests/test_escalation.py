"""Escalation of missed deadlines with a controllable clock, on SQLite and PostgreSQL.

The clock runs from a Friday afternoon over a weekend and Tuesday 24/11/2026 (Vietnam
Cultural Day, a public holiday) into the next week; the job is run again and again at each
moment, and once on a new engine (a restart), and must take each step exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import Settings, settings
from bot.conversation.dialogue.tickets import await_answer
from bot.directory.calendar import WorkingCalendar
from bot.directory.deadlines import deadlines_for
from bot.tickets import workflow
from bot.tickets.escalation import (
    EscalationStep,
    escalate_overdue,
    remind_unanswered,
    run_escalations,
)
from bot.tickets.notices import notify_officials
from storage import queries
from storage.db import create_db_engine
from storage.models import (
    Channel,
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketCreate,
    TicketEvent,
    TicketEventKind,
    TicketStatus,
    TicketUpdate,
    Unit,
    UnitKind,
)

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CALENDAR = WorkingCalendar(HANOI, unconfirmed_holidays=())  # 24/11 off: a holiday to cross
CONFIG = Settings(_env_file=None)  # type: ignore[call-arg]
FILED = datetime(2026, 11, 20, 14, tzinfo=HANOI)  # Friday 14:00
STEP = timedelta(hours=CONFIG.escalation_step_hours)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HANOI)


# --- Directory and tickets, inserted directly ------------------------------------------------


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


def official(unit_id: str, role: OfficialRole, chat_id: str | None) -> Official:
    return Official(
        name=f"Cán bộ {chat_id or 'chưa liên kết'}",
        unit_id=unit_id,
        role=role,
        channel=Channel.telegram if chat_id else None,
        external_user_id=chat_id,
        chat_id=chat_id,
    )


@pytest.fixture
def directory(session: Session) -> None:
    """A ward under the city, a ward without supervisors, a company without a parent unit,
    the city intake desk and the city's leaders."""
    session.add_all(
        [
            Unit(id="hanoi", name="UBND thành phố Hà Nội", kind=UnitKind.city),
            Unit(id="intake", name="Trung tâm tiếp nhận", kind=UnitKind.city, intake=True),
            Unit(id="ba_dinh", name="UBND phường Ba Đình", kind=UnitKind.ward, parent_id="hanoi"),
            Unit(
                id="hoan_kiem", name="UBND phường Hoàn Kiếm", kind=UnitKind.ward, parent_id="hanoi"
            ),
            Unit(id="water_co", name="Công ty Nước sạch Hà Nội", kind=UnitKind.company),
        ]
    )
    session.add_all(
        [
            official("ba_dinh", OfficialRole.handler, "bd-handler"),
            official("ba_dinh", OfficialRole.supervisor, "bd-chief"),
            official("ba_dinh", OfficialRole.supervisor, None),  # not linked: told nothing
            official("hoan_kiem", OfficialRole.handler, "hk-handler"),
            official("hoan_kiem", OfficialRole.supervisor, None),
            official("hanoi", OfficialRole.supervisor, "hn-chief"),
            official("hanoi", OfficialRole.handler, "hn-handler"),
            official("hanoi", OfficialRole.leader, "hn-leader"),
            official("water_co", OfficialRole.supervisor, "wc-chief"),
            official("intake", OfficialRole.handler, "in-handler"),
            official("intake", OfficialRole.supervisor, "in-chief"),
        ]
    )
    session.commit()


def file_ticket(
    session: Session, *, unit: str = "ba_dinh", category: str = "sidewalk", filed: datetime = FILED
) -> Ticket:
    deadlines = deadlines_for(category=category, filed_at=filed, calendar=CALENDAR, config=CONFIG)
    return queries.create_ticket(
        timezone=settings.timezone,
        session=session,
        ticket_in=TicketCreate(
            category=category,
            description="Vỉa hè phố Quán Thánh bị lấn chiếm",
            lead_unit_id=unit,
            severity=deadlines.severity,
            accept_by=deadlines.accept_by,
            resolve_by=deadlines.resolve_by,
        ),
        now=filed,
    )


def run(session: Session, now: datetime, config: Settings = CONFIG) -> list[EscalationStep]:
    return escalate_overdue(session=session, now=now, calendar=CALENDAR, config=config)


def escalation_events(session: Session, ticket: Ticket) -> list[TicketEvent]:
    assert ticket.id is not None
    events = queries.ticket_events(session=session, ticket_id=ticket.id)
    return [e for e in events if e.kind == TicketEventKind.escalation]


def outbox(session: Session) -> list[OutboxMessage]:
    session.commit()  # a fresh snapshot: SQLite readers keep theirs until the transaction ends
    return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def recipients(messages: list[OutboxMessage]) -> list[str]:
    return sorted(m.recipient for m in messages)


# --- The accept deadline over a weekend and a holiday ----------------------------------------


@pytest.mark.usefixtures("directory")
def test_accept_deadline_escalates_each_level_once(
    session: Session, engine: Engine, database_url: str
) -> None:
    ticket = file_ticket(session)
    # Filed Friday 14:00: 8 working hours is Monday 14:00; the parent unit is told 8 working
    # hours later, Wednesday 14:00 (Tuesday 24/11 is a holiday).
    assert ticket.accept_by == local(2026, 11, 23, 14)
    for now in (
        local(2026, 11, 20, 17),
        local(2026, 11, 21, 10),  # Saturday
        local(2026, 11, 22, 23, 59),  # Sunday
        local(2026, 11, 23, 13, 59),
    ):
        assert run(session, now) == []
    assert escalation_events(session, ticket) == []
    assert outbox(session) == []

    steps = run(session, local(2026, 11, 23, 14))
    assert [(s.ticket_code, s.stage, s.level, s.unit_id, s.notified) for s in steps] == [
        (ticket.code, "accept", 1, "ba_dinh", 1)
    ]
    assert steps[0].late_hours == 0
    messages = outbox(session)
    assert recipients(messages) == ["bd-chief"]  # the supervisor only, not the handler
    chief = session.exec(select(Official).where(Official.chat_id == "bd-chief")).one()
    deadline = f"{ticket.accept_by:%Y%m%dT%H%M}"
    assert messages[0].dedupe_key == (
        f"escalation:{ticket.code}:accept:1:{deadline}:official:{chief.id}"
    )
    payload = messages[0].payload
    assert ticket.code in payload["text"]
    assert "Lấn chiếm vỉa hè, lòng đường" in payload["text"]
    assert "UBND phường Ba Đình" in payload["text"]
    assert "quá hạn tiếp nhận" in payload["text"]
    assert "14:00 thứ Hai, 23/11/2026" in payload["text"]
    assert payload["buttons"] == [{"label": "Xem phản ánh", "data": f"t:view:{ticket.code}"}]

    # Again and again, through the holiday (26 clock hours but 3 working hours late).
    for now in (
        local(2026, 11, 23, 14),
        local(2026, 11, 23, 16, 30),
        local(2026, 11, 24, 16),
        local(2026, 11, 25, 13, 59),
    ):
        assert run(session, now) == []
    assert len(outbox(session)) == 1

    # A restart: a new engine and session see the stored level.
    restarted = create_db_engine(database_url)
    try:
        with Session(restarted) as fresh:
            assert run(fresh, local(2026, 11, 25, 13, 59)) == []
            steps = run(fresh, local(2026, 11, 25, 14))
            assert [(s.stage, s.level, s.unit_id, s.notified) for s in steps] == [
                ("accept", 2, "hanoi", 2)
            ]
            assert steps[0].late_hours == 8
            for now in (local(2026, 11, 25, 14), local(2026, 11, 26, 9)):
                assert run(fresh, now) == []
    finally:
        restarted.dispose()
    for now in (local(2026, 11, 25, 14, 1), local(2026, 11, 27, 16)):
        assert run(session, now) == []

    messages = outbox(session)
    assert recipients(messages) == ["bd-chief", "hn-chief", "hn-handler"]
    upper = next(m for m in messages if m.recipient == "hn-chief")
    assert "cấp 2" in upper.payload["text"] and "8 giờ làm việc" in upper.payload["text"]
    session.expire_all()
    events = escalation_events(session, ticket)
    assert [(e.actor, e.old_value, e.new_value) for e in events] == [
        ("system", {"accept_escalation": 0}, {"accept_escalation": 1}),
        ("system", {"accept_escalation": 1}, {"accept_escalation": 2}),
    ]
    assert [e.at for e in events] == [local(2026, 11, 23, 14), local(2026, 11, 25, 14)]
    assert all("hạn 14:00 thứ Hai, 23/11/2026" in (e.note or "") for e in events)
    assert "quá hạn tiếp nhận" in (events[0].note or "").lower()
    assert "cấp 1" in (events[0].note or "") and "UBND phường Ba Đình" in (events[0].note or "")
    assert "cấp 2" in (events[1].note or "") and "UBND thành phố Hà Nội" in (events[1].note or "")
    refreshed = session.get_one(Ticket, ticket.id, populate_existing=True)
    assert (refreshed.accept_escalation, refreshed.resolve_escalation) == (2, 0)


@pytest.mark.usefixtures("directory")
def test_a_late_job_takes_both_levels_in_order(session: Session) -> None:
    ticket = file_ticket(session)
    steps = run(session, local(2026, 11, 26, 10))  # down since before the deadline
    assert [(s.stage, s.level) for s in steps] == [("accept", 1), ("accept", 2)]
    assert [e.new_value for e in escalation_events(session, ticket)] == [
        {"accept_escalation": 1},
        {"accept_escalation": 2},
    ]
    assert recipients(outbox(session)) == ["bd-chief", "hn-chief", "hn-handler"]
    assert run(session, local(2026, 11, 26, 10)) == []


# --- The resolve deadline -------------------------------------------------------------------


@pytest.mark.usefixtures("directory")
def test_resolve_deadline_after_acceptance(session: Session) -> None:
    ticket = file_ticket(session)
    queries.update_ticket(
        session=session,
        db_ticket=ticket,
        ticket_in=TicketUpdate(status=TicketStatus.accepted, accepted_at=local(2026, 11, 23, 9)),
        actor="official:1",
        at=local(2026, 11, 23, 9),
    )
    # Accepted in time: the accept deadline never escalates.
    assert run(session, local(2026, 11, 26, 9)) == []
    # Five working days after Friday, Tuesday 24/11 not counted: Monday 30/11 17:00.
    assert ticket.resolve_by == local(2026, 11, 30, 17)
    assert run(session, local(2026, 11, 30, 16, 59)) == []
    steps = run(session, local(2026, 11, 30, 17))
    assert [(s.stage, s.level, s.unit_id) for s in steps] == [("resolve", 1, "ba_dinh")]
    assert run(session, local(2026, 12, 1, 16, 59)) == []
    steps = run(session, local(2026, 12, 1, 17))
    assert [(s.stage, s.level, s.unit_id) for s in steps] == [("resolve", 2, "hanoi")]
    for _ in range(3):
        assert run(session, local(2026, 12, 10, 9)) == []
    keys = [m.dedupe_key or "" for m in outbox(session)]
    assert all(":resolve:" in k for k in keys) and len(keys) == 3
    assert "quá hạn giải quyết" in outbox(session)[0].payload["text"]
    events = escalation_events(session, ticket)
    assert [e.new_value for e in events] == [{"resolve_escalation": 1}, {"resolve_escalation": 2}]
    assert "Quá hạn giải quyết (hạn 17:00 thứ Hai, 30/11/2026" in (events[0].note or "")


@pytest.mark.usefixtures("directory")
def test_waiting_for_the_citizen_stops_the_resolve_clock(session: Session) -> None:
    ticket = file_ticket(session, category="water")  # urgent: resolve by Wednesday 09:00
    queries.update_ticket(
        session=session,
        db_ticket=ticket,
        ticket_in=TicketUpdate(status=TicketStatus.need_info),
        actor="official:1",
    )
    assert run(session, local(2026, 11, 23, 17)) == []  # the citizen is asked: no delay
    assert run(session, local(2026, 11, 30, 17)) == []
    queries.update_ticket(
        session=session,
        db_ticket=ticket,
        ticket_in=TicketUpdate(status=TicketStatus.accepted),
        actor="citizen",
    )
    steps = run(session, local(2026, 11, 30, 17))
    # running again (answered without moving the deadline here): a week late, both levels
    assert [(s.stage, s.level) for s in steps] == [("resolve", 1), ("resolve", 2)]


@pytest.mark.usefixtures("directory")
def test_both_deadlines_of_an_unaccepted_ticket(session: Session) -> None:
    # 1207/QĐ-UBND: accepted within 8 working hours (Mon 14:00), handled within 4 more
    # (Mon 14:00-17:00, then Wed 08:00-09:00 as Tuesday 24/11 is off in this calendar)
    ticket = file_ticket(session, category="water")
    assert (ticket.accept_by, ticket.resolve_by) == (
        local(2026, 11, 23, 14),
        local(2026, 11, 25, 9),
    )
    assert run(session, local(2026, 11, 23, 13, 59)) == []
    assert [(s.stage, s.level) for s in run(session, local(2026, 11, 23, 14))] == [("accept", 1)]
    assert run(session, local(2026, 11, 25, 8, 59)) == []
    steps = run(session, local(2026, 11, 25, 9))
    assert [(s.stage, s.level) for s in steps] == [("resolve", 1)]
    steps = run(session, local(2026, 11, 25, 14))  # 8 working hours after Monday 14:00
    assert [(s.stage, s.level) for s in steps] == [("accept", 2)]
    steps = run(session, local(2026, 11, 26, 9))  # 8 working hours after Wednesday 09:00
    assert [(s.stage, s.level) for s in steps] == [("resolve", 2)]
    assert len(escalation_events(session, ticket)) == 4
    assert len(outbox(session)) == 1 + 1 + 2 + 2


# --- Who is told ----------------------------------------------------------------------------


@pytest.mark.usefixtures("directory")
def test_unit_without_linked_supervisors_goes_to_the_parent_at_once(session: Session) -> None:
    ticket = file_ticket(session, unit="hoan_kiem")
    steps = run(session, local(2026, 11, 23, 14))
    assert [(s.stage, s.level, s.unit_id, s.skipped_supervisors) for s in steps] == [
        ("accept", 2, "hanoi", True)
    ]
    assert recipients(outbox(session)) == ["hn-chief", "hn-handler"]
    (event,) = escalation_events(session, ticket)
    assert (event.old_value, event.new_value) == (
        {"accept_escalation": 0},
        {"accept_escalation": 2},
    )
    assert "chưa có lãnh đạo" in (event.note or "")
    assert "chưa có lãnh đạo" in outbox(session)[0].payload["text"]
    for now in (local(2026, 11, 25, 14), local(2026, 11, 30, 16, 59)):  # until resolve_by
        assert run(session, now) == []


@pytest.mark.usefixtures("directory")
def test_unit_without_parent_goes_to_the_intake_unit(session: Session) -> None:
    file_ticket(session, unit="water_co")
    assert [s.unit_id for s in run(session, local(2026, 11, 23, 14))] == ["water_co"]
    steps = run(session, local(2026, 11, 25, 14))
    assert [(s.stage, s.level, s.unit_id) for s in steps] == [("accept", 2, "intake")]
    assert recipients(outbox(session)) == ["in-chief", "in-handler", "wc-chief"]


@pytest.mark.usefixtures("directory")
def test_intake_unit_itself_goes_to_the_city_leaders(session: Session) -> None:
    file_ticket(session, unit="intake")
    assert [s.unit_id for s in run(session, local(2026, 11, 23, 14))] == ["intake"]
    steps = run(session, local(2026, 11, 25, 14))
    assert [(s.level, s.unit_id, s.notified) for s in steps] == [(2, None, 1)]
    assert [m.recipient for m in outbox(session)][-1] == "hn-leader"


@pytest.mark.usefixtures("directory")
def test_escalation_step_hours_is_configurable(session: Session) -> None:
    file_ticket(session)
    config = CONFIG.model_copy(update={"escalation_step_hours": 2.0})
    assert [s.level for s in run(session, local(2026, 11, 23, 14), config)] == [1]
    assert run(session, local(2026, 11, 23, 15, 59), config) == []
    assert [s.level for s in run(session, local(2026, 11, 23, 16), config)] == [2]


# --- What never escalates -------------------------------------------------------------------


@pytest.mark.usefixtures("directory")
@pytest.mark.parametrize("status", [TicketStatus.resolved, TicketStatus.closed])
def test_finished_tickets_never_escalate(session: Session, status: TicketStatus) -> None:
    ticket = file_ticket(session)
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(status=status), actor="x"
    )
    rejected = file_ticket(session)
    queries.update_ticket(
        session=session,
        db_ticket=rejected,
        ticket_in=TicketUpdate(status=TicketStatus.rejected),
        actor="x",
        note="Không thuộc thẩm quyền",
    )
    for now in (local(2026, 11, 23, 14), local(2026, 12, 1, 17), local(2027, 6, 1, 9)):
        assert run(session, now) == []
        assert queries.overdue_tickets(session=session, now=now, step_at_least=STEP) == []
    assert outbox(session) == []
    assert escalation_events(session, ticket) == escalation_events(session, rejected) == []


@pytest.mark.usefixtures("directory")
def test_only_candidates_are_loaded(session: Session) -> None:
    due = file_ticket(session)
    later = file_ticket(session, filed=local(2026, 11, 23, 14))  # accept by Wed 25/11 14:00
    done = file_ticket(session)
    session.exec(sa.update(Ticket).where(col(Ticket.id) == done.id).values(accept_escalation=2))
    session.commit()
    now = local(2026, 11, 23, 15)
    candidates = queries.overdue_tickets(session=session, now=now, step_at_least=STEP)
    assert [t.code for t in candidates] == [due.code]
    assert later.code not in {s.ticket_code for s in run(session, now)}


# --- Crashes --------------------------------------------------------------------------------


@pytest.mark.usefixtures("directory")
def test_a_crash_leaves_neither_the_level_nor_the_messages(
    session: Session, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = file_ticket(session)
    other = file_ticket(session, unit="hoan_kiem")

    def crash_for_ba_dinh(**kwargs: Any) -> int:
        if any(o.unit_id == "ba_dinh" for o in kwargs["officials"]):
            raise RuntimeError("the process died here")
        return notify_officials(**kwargs)

    monkeypatch.setattr("bot.tickets.escalation.notify_officials", crash_for_ba_dinh)
    with caplog.at_level(logging.ERROR):
        steps = run(session, local(2026, 11, 23, 14))
    assert [s.ticket_code for s in steps] == [other.code]  # the other ticket went on
    assert "the process died here" in caplog.text
    assert escalation_events(session, ticket) == []
    session.expire_all()
    assert session.get_one(Ticket, ticket.id).accept_escalation == 0
    assert recipients(outbox(session)) == ["hn-chief", "hn-handler"]

    monkeypatch.undo()
    steps = run(session, local(2026, 11, 23, 14))
    assert [(s.ticket_code, s.level) for s in steps] == [(ticket.code, 1)]
    assert run(session, local(2026, 11, 23, 14)) == []
    assert recipients(outbox(session)) == ["bd-chief", "hn-chief", "hn-handler"]


@pytest.mark.usefixtures("directory")
def test_a_repeated_step_sends_nothing_twice(session: Session) -> None:
    ticket = file_ticket(session)
    run(session, local(2026, 11, 23, 14))
    # As if the level had been lost after the messages were queued.
    session.exec(sa.update(Ticket).where(col(Ticket.id) == ticket.id).values(accept_escalation=0))
    session.commit()
    assert [s.level for s in run(session, local(2026, 11, 23, 14))] == [1]
    assert recipients(outbox(session)) == ["bd-chief"]


# --- The periodic job -----------------------------------------------------------------------


@pytest.mark.usefixtures("directory")
async def test_run_escalations_keeps_running(
    session: Session, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = file_ticket(session)
    times = iter([None, local(2026, 11, 23, 13), local(2026, 11, 23, 14)])
    last = local(2026, 11, 23, 14)

    def clock() -> datetime:
        now = next(times, last)
        if now is None:
            raise RuntimeError("clock broken once")
        return now.astimezone(UTC)

    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(
            run_escalations(
                stop, engine=engine, clock=clock, interval=0.01, calendar=CALENDAR, config=CONFIG
            )
        )
        for _ in range(500):
            await asyncio.sleep(0.01)
            if outbox(session):
                break
        await asyncio.sleep(0.1)  # several more runs at the same moment
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert "clock broken once" in caplog.text
    assert recipients(outbox(session)) == ["bd-chief"]
    assert len(escalation_events(session, ticket)) == 1


# --- Questions the citizen leaves unanswered -------------------------------------------------


@pytest.mark.usefixtures("directory")
def test_an_unanswered_question_is_reminded_once(session: Session) -> None:
    deadlines = deadlines_for(category="sidewalk", filed_at=FILED, calendar=CALENDAR)
    ticket = queries.create_ticket(timezone=settings.timezone,
        session=session,
        ticket_in=TicketCreate(
            category="sidewalk", description="Vỉa hè bị lấn chiếm", lead_unit_id="ba_dinh",
            channel=Channel.telegram, chat_id="citizen", accept_by=deadlines.accept_by,
            resolve_by=deadlines.resolve_by,
        ),
        now=FILED,
    )  # fmt: skip
    handler = session.exec(select(Official).where(Official.chat_id == "bd-handler")).one()
    workflow.ask_info(
        session=session,
        ticket=ticket,
        official=handler,
        question="Số nhà bao nhiêu?",
        now=FILED,
        await_answer=await_answer,
    )
    due = CALENDAR.add_working_days(FILED, CONFIG.citizen_answer_days)

    def remind(now: datetime) -> list[str]:
        return remind_unanswered(session=session, now=now, calendar=CALENDAR, config=CONFIG)

    assert remind(due - timedelta(minutes=1)) == []
    assert remind(due) == [ticket.code]
    assert remind(due + timedelta(days=3)) == []  # once per question, across runs
    assert ticket.id is not None
    notes = [
        e
        for e in queries.ticket_events(session=session, ticket_id=ticket.id)
        if e.kind == TicketEventKind.note
    ]
    assert [(e.actor, e.at) for e in notes] == [("system", due)]  # in the ticket's history
    sent = {
        m.recipient: m.payload["text"]
        for m in outbox(session)
        if "unanswered" in (m.dedupe_key or "")
    }
    assert set(sent) == {"citizen", "bd-handler", "bd-chief"}
    assert "Số nhà bao nhiêu?" in sent["citizen"] and "vẫn đang chờ" in sent["citizen"]
    assert "chưa trả lời câu hỏi sau 5 ngày làm việc" in sent["bd-handler"]

    workflow.citizen_answer(session=session, ticket=ticket, text="Số 12", now=due)
    assert remind(due + timedelta(days=30)) == []  # answered: nothing to remind


@pytest.mark.usefixtures("directory")
def test_runs_at_once_remind_each_question_once(session: Session, engine: Engine) -> None:
    """Four processes' runs at the same moment: one reminder note per ticket (on PostgreSQL
    the check was made without a lock and 13-35 of 50 tickets got two)."""
    handler = session.exec(select(Official).where(Official.chat_id == "bd-handler")).one()
    codes = []
    for index in range(20):
        ticket = file_ticket(session)
        workflow.ask_info(
            session=session,
            ticket=ticket,
            official=handler,
            question=f"Số nhà {index}?",
            now=FILED,
            await_answer=await_answer,
        )
        codes.append(ticket.code)
    due = CALENDAR.add_working_days(FILED, CONFIG.citizen_answer_days)
    barrier = threading.Barrier(4)

    def one_run() -> list[str]:
        with Session(engine) as own:
            barrier.wait()
            return remind_unanswered(session=own, now=due, calendar=CALENDAR, config=CONFIG)

    with ThreadPoolExecutor(4) as pool:
        reminded = [code for run in pool.map(lambda _: one_run(), range(4)) for code in run]
    assert sorted(reminded) == sorted(codes)
    session.commit()
    notes = session.exec(
        select(TicketEvent.ticket_id).where(
            TicketEvent.kind == TicketEventKind.note, TicketEvent.actor == "system"
        )
    ).all()
    assert len(notes) == len(set(notes)) == len(codes)


@pytest.mark.usefixtures("directory")
def test_a_parent_with_only_leaders_linked_passes_to_the_next_who_can_be_told(
    session: Session,
) -> None:
    """Found trying the product (docs/usability-review.md, session 4): the bundled directory's
    wards sit under UBND Thành phố, whose linked officials are leaders; level 2 went to its
    supervisors and handlers, none, and the note said "0 cán bộ nhận tin"."""
    for chat in ("hn-chief", "hn-handler"):
        linked = session.exec(select(Official).where(Official.chat_id == chat)).one()
        linked.chat_id = linked.channel = linked.external_user_id = None
        session.add(linked)
    session.commit()
    ticket = file_ticket(session, unit="hoan_kiem")
    steps = run(session, local(2026, 11, 23, 14))
    assert [(s.level, s.unit_id, s.notified) for s in steps] == [(2, "intake", 2)]
    assert recipients(outbox(session)) == ["in-chief", "in-handler"]
    (event,) = escalation_events(session, ticket)
    assert "đầu mối tiếp nhận Trung tâm tiếp nhận" in (event.note or "")
    # Nobody at the intake desk either: the city's leaders.
    for o in session.exec(select(Official).where(Official.unit_id == "intake")).all():
        o.chat_id = o.channel = o.external_user_id = None
        session.add(o)
    session.commit()
    second = file_ticket(session, unit="hoan_kiem", filed=local(2026, 11, 25, 9))
    assert [(s.unit_id, s.notified) for s in run(session, local(2026, 11, 26, 11))] == [(None, 1)]
    assert [m.recipient for m in outbox(session)][-1] == "hn-leader"
    assert escalation_events(session, second)


@pytest.mark.usefixtures("directory")
def test_a_step_taken_with_no_working_hour_late_does_not_say_zero_hours(
    session: Session,
) -> None:
    """Found trying the product (docs/usability-review.md, session 4): a deadline missed on
    Friday 17:00 and escalated on Saturday read "Đã trễ: 0 giờ làm việc"."""
    ticket = file_ticket(session, filed=local(2026, 11, 19, 17))  # accept by Friday 17:00
    assert [s.level for s in run(session, local(2026, 11, 21, 10))] == [1]  # Saturday
    (event,) = escalation_events(session, ticket)
    assert "vừa quá hạn" in (event.note or "") and "0 giờ" not in (event.note or "")
    texts = [m.payload["text"] for m in outbox(session)]
    assert texts and all("Vừa quá hạn" in t and "0 giờ" not in t for t in texts)
    # Past working hours are still counted as before.
    assert [s.level for s in run(session, local(2026, 11, 25, 10))] == [2]  # 24/11 is off
    assert "trễ 10 giờ làm việc" in (escalation_events(session, ticket)[-1].note or "")
