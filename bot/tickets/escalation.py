"""Escalation of missed deadlines: a periodic job, safe to run anywhere, any number of times.

Each deadline (accept, resolve) climbs at most two levels, each once:

- level 1, at the deadline: the lead unit's supervisors. A unit with no linked supervisor
  goes straight to level 2 (one event, whose note says so);
- level 2, `escalation_step_hours` working hours after the deadline: the supervisors and
  handlers of the parent unit; for a unit without one (a city body), the city intake unit;
  for the intake unit itself, the city's leaders (role `leader`). When the first of these
  has no linked official, the next that has one is told (never nobody while someone could
  be).

A step is one transaction per ticket: the ticket's level (an `escalation` event, actor
"system") and the notifications are committed together, so a crash leaves both or neither,
and the level stored in the ticket is what stops a step from being taken twice. The outbox
keys `escalation:{code}:{stage}:{level}` make even a repeat after a crash harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.config import Settings, settings
from bot.conversation.messages import Button, Reply
from bot.conversation.texts import CATEGORY_NAMES, say, say_in
from bot.directory.calendar import WorkingCalendar
from bot.directory.deadlines import format_expected
from bot.tickets.intake import official_buttons
from bot.tickets.notices import Notice, notify_citizen, notify_officials
from bot.tickets.workflow import ACTOR_SYSTEM, answer_button, question_asked, unit_name
from storage import queries
from storage.db import begin_write, get_session
from storage.models import (
    Official,
    OfficialRole,
    Ticket,
    TicketEvent,
    TicketEventKind,
    TicketStatus,
    TicketUpdate,
    Unit,
    utcnow,
)

logger = logging.getLogger(__name__)

Stage = Literal["accept", "resolve"]
STAGES: tuple[Stage, ...] = ("accept", "resolve")

_STAGE_WORDS: dict[Stage, str] = {"accept": "tiếp nhận", "resolve": "giải quyết"}
# Past the deadline by no working hour yet (a step taken at once, or over a weekend): "trễ 0
# giờ làm việc" read as if nothing were late.
JUST_LATE = "vừa quá hạn, chưa qua giờ làm việc nào"


@dataclass(frozen=True)
class EscalationStep:
    """One step taken: which ticket and deadline, the level reached, who was told."""

    ticket_code: str
    stage: Stage
    level: int  # 1 supervisors of the lead unit, 2 the unit above
    deadline: datetime
    late_hours: float  # working hours past the deadline
    unit_id: str | None  # the unit whose officials were told (None: the city's leaders)
    notified: int  # outbox messages queued
    skipped_supervisors: bool = False  # level 2 at once: the lead unit has no supervisor


@dataclass(frozen=True)
class _Target:
    unit: Unit | None
    label: str  # how notes and messages name who is told
    officials: Sequence[Official]


def _deadline(ticket: Ticket, stage: Stage) -> datetime | None:
    if stage == "accept":
        waiting = ticket.status in queries.AWAITING_ACCEPTANCE
        return ticket.accept_by if waiting else None
    return ticket.resolve_by if ticket.status in queries.AWAITING_RESOLUTION else None


def _level(ticket: Ticket, stage: Stage) -> int:
    return ticket.accept_escalation if stage == "accept" else ticket.resolve_escalation


def _due_level(
    deadline: datetime, now: datetime, calendar: WorkingCalendar, config: Settings
) -> int:
    if now < deadline:
        return 0
    if now < calendar.add_working_hours(deadline, config.escalation_step_hours):
        return 1
    return 2


def _is_due(ticket: Ticket, now: datetime, calendar: WorkingCalendar, config: Settings) -> bool:
    for stage in STAGES:
        deadline = _deadline(ticket, stage)
        if deadline is not None and _level(ticket, stage) < _due_level(
            deadline, now, calendar, config
        ):
            return True
    return False


def _unit_name(unit: Unit | None, unit_id: str | None) -> str:
    if unit is not None:
        return unit.name
    return unit_id or "chưa xác định"


def _upper_target(session: Session, lead: Unit | None) -> _Target:
    """Level 2: the parent unit, else the city intake unit, else the city's leaders; the
    first of them with a linked official (a parent whose only linked officials are leaders,
    as UBND Thành phố is, told nobody), or the first of them when none has one."""
    targets = list(_upper_targets(session, lead))
    return next((t for t in targets if t.officials), targets[0])


def _upper_targets(session: Session, lead: Unit | None) -> Iterator[_Target]:
    roles = [OfficialRole.supervisor, OfficialRole.handler]
    parent = session.get(Unit, lead.parent_id) if lead and lead.parent_id else None
    if parent is not None and parent.active:
        officials = queries.officials_of_unit(session=session, unit_id=parent.id, roles=roles)
        yield _Target(parent, f"đơn vị cấp trên {parent.name}", officials)
    intake = queries.city_intake_unit(session=session)
    if intake is not None and (lead is None or intake.id != lead.id):
        officials = queries.officials_of_unit(session=session, unit_id=intake.id, roles=roles)
        yield _Target(intake, f"đầu mối tiếp nhận {intake.name}", officials)
    yield _Target(None, "lãnh đạo Thành phố", queries.city_leaders(session=session))


def _hours_text(hours: float) -> str:
    """Working hours as Vietnamese write them: "2", "1,5"."""
    rounded = round(hours, 1)
    text = f"{rounded:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def _notice(
    ticket: Ticket,
    stage: Stage,
    level: int,
    lead_name: str,
    deadline_text: str,
    late: str,
    skipped: bool,
) -> Reply:
    """The message officials get for one escalation step."""
    category = CATEGORY_NAMES.get(ticket.category or "other", "Khác")
    if level == 1:
        heading = f"⚠️ Phản ánh {ticket.code} đã quá hạn {_STAGE_WORDS[stage]}."
        ask = "Đề nghị anh/chị đôn đốc đơn vị xử lý ngay."
    else:
        heading = (
            f"🚨 Phản ánh {ticket.code} đã quá hạn {_STAGE_WORDS[stage]} "
            "và được chuyển lên cấp trên (cảnh báo cấp 2)."
        )
        ask = "Đề nghị anh/chị chỉ đạo đơn vị chủ trì xử lý."
        if skipped:
            ask = f"Đơn vị chủ trì chưa có lãnh đạo nào nhận thông báo trên hệ thống. {ask}"
    text = "\n".join(
        (
            heading,
            f"Lĩnh vực: {category}",
            f"Đơn vị chủ trì: {lead_name}",
            f"Hạn {_STAGE_WORDS[stage]}: {deadline_text}",
            f"Đã {late}" if late != JUST_LATE else late.capitalize(),
            ask,
        )
    )
    return Reply(text=text, buttons=(Button("Xem phản ánh", f"t:view:{ticket.code}"),))


def _escalation_key(ticket: Ticket, stage: Stage, level: int) -> str:
    # A new deadline (reopened, transferred) is escalated again: its messages are new ones.
    deadline = ticket.accept_by if stage == "accept" else ticket.resolve_by
    stamp = f"{deadline:%Y%m%dT%H%M}" if deadline else "none"
    return f"escalation:{ticket.code}:{stage}:{level}:{stamp}"


def _take_step(
    *,
    session: Session,
    ticket: Ticket,
    stage: Stage,
    deadline: datetime,
    now: datetime,
    calendar: WorkingCalendar,
) -> EscalationStep:
    """Move one deadline up one level (or two, without supervisors), within the caller's
    write transaction."""
    current = _level(ticket, stage)
    lead = session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
    lead_name = _unit_name(lead, ticket.lead_unit_id)
    skipped = False
    target: _Target
    if current == 0:
        supervisors = (
            queries.officials_of_unit(
                session=session, unit_id=ticket.lead_unit_id, roles=[OfficialRole.supervisor]
            )
            if ticket.lead_unit_id
            else []
        )
        if supervisors:
            target = _Target(lead, f"lãnh đạo đơn vị {lead_name}", supervisors)
        else:
            skipped = True
            target = _upper_target(session, lead)
    else:
        target = _upper_target(session, lead)
    level = 1 if current == 0 and not skipped else 2

    tz = calendar.tz
    deadline_text = format_expected(deadline, tz)
    late_hours = calendar.working_hours_between(deadline, now)
    late = _hours_text(late_hours)
    late_words = f"trễ {late} giờ làm việc" if late != "0" else JUST_LATE
    reached = f"đã báo {target.label} (cấp {level}, {len(target.officials)} cán bộ nhận tin)"
    if skipped:
        reached = f"đơn vị {lead_name} chưa có lãnh đạo nào liên kết nên {reached}"
    note = f"Quá hạn {_STAGE_WORDS[stage]} (hạn {deadline_text}, {late_words}): {reached}."
    field = "accept_escalation" if stage == "accept" else "resolve_escalation"
    queries.update_ticket(
        session=session,
        db_ticket=ticket,
        ticket_in=TicketUpdate.model_validate({field: level}),
        actor=ACTOR_SYSTEM,
        note=note,
        at=now,
        commit=False,
    )
    reply = _notice(ticket, stage, level, lead_name, deadline_text, late_words, skipped)
    notified = notify_officials(
        session=session,
        officials=target.officials,
        reply=reply,
        key=_escalation_key(ticket, stage, level),
    )
    return EscalationStep(
        ticket_code=ticket.code,
        stage=stage,
        level=level,
        deadline=deadline,
        late_hours=late_hours,
        unit_id=target.unit.id if target.unit is not None else None,
        notified=notified,
        skipped_supervisors=skipped,
    )


def _escalate_ticket(
    *,
    session: Session,
    ticket_id: int,
    now: datetime,
    calendar: WorkingCalendar,
    config: Settings,
) -> list[EscalationStep]:
    """Every step due for one ticket, in one transaction, on the locked, fresh row."""
    begin_write(session)
    ticket = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    steps: list[EscalationStep] = []
    if ticket is None:
        session.rollback()
        return steps
    for stage in STAGES:
        deadline = _deadline(ticket, stage)
        if deadline is None:
            continue
        due = _due_level(deadline, now, calendar, config)
        while (level := _level(ticket, stage)) < due:
            steps.append(
                _take_step(
                    session=session,
                    ticket=ticket,
                    stage=stage,
                    deadline=deadline,
                    now=now,
                    calendar=calendar,
                )
            )
            if _level(ticket, stage) <= level:
                raise AssertionError(f"Escalation of {ticket.code} did not move on")
    session.commit()
    return steps


def escalate_overdue(
    *,
    session: Session,
    now: datetime,
    calendar: WorkingCalendar,
    config: Settings = settings,
) -> list[EscalationStep]:
    """Take every escalation step due at `now`; returns the steps taken."""
    candidates = queries.overdue_tickets(
        session=session, now=now, step_at_least=timedelta(hours=config.escalation_step_hours)
    )
    # Decided on the rows just read, before any commit expires them; re-checked under lock.
    due_ids = [t.id for t in candidates if t.id is not None and _is_due(t, now, calendar, config)]
    if session.in_transaction():
        session.commit()
    steps: list[EscalationStep] = []
    for ticket_id in due_ids:
        try:
            steps.extend(
                _escalate_ticket(
                    session=session, ticket_id=ticket_id, now=now, calendar=calendar, config=config
                )
            )
        except Exception:
            # One broken ticket must not hold back the others; it is tried again next run.
            session.rollback()
            logger.exception("Escalating ticket %s failed", ticket_id)
    return steps


def remind_unanswered(
    *,
    session: Session,
    now: datetime,
    calendar: WorkingCalendar,
    config: Settings = settings,
) -> list[str]:
    """Questions unanswered for `citizen_answer_days` working days: the citizen is reminded
    and the lead unit told it may conclude the ticket, once per question (the reminder is a
    note event after the question's). Returns the codes."""
    waiting = session.exec(
        select(Ticket).where(Ticket.status == TicketStatus.need_info).order_by(col(Ticket.id))
    ).all()
    # Decided on a read first, so that the write lock is taken only for a reminder to send.
    due_ids = [t.id for t in waiting if _reminder_due(session, t, now, calendar, config)]
    if session.in_transaction():
        session.commit()
    reminded: list[str] = []
    for ticket_id in due_ids:
        begin_write(session)  # checked again under the lock (SQLite's, the row's): one reminder
        ticket = session.get_one(Ticket, ticket_id, with_for_update=True, populate_existing=True)
        asked = _reminder_due(session, ticket, now, calendar, config)
        if asked is None:
            session.rollback()
            continue
        key = f"unanswered:{ticket.code}:{asked.id}"
        notify_citizen(
            session=session, ticket=ticket, key=key, followers=False,
            reply=_question_reminder(
                ticket.code, unit_name(session, ticket.lead_unit_id), asked.note or ""
            ),
        )  # fmt: skip
        assert ticket.lead_unit_id is not None
        notify_officials(
            session=session,
            officials=queries.officials_of_unit(session=session, unit_id=ticket.lead_unit_id),
            key=key,
            reply=Reply(
                say("utter_official_unanswered", code=ticket.code,
                    days=config.citizen_answer_days),
                official_buttons(ticket.code, ticket.status),
            ),
        )  # fmt: skip
        session.add(
            TicketEvent(
                ticket_id=asked.ticket_id, kind=TicketEventKind.note, actor=ACTOR_SYSTEM,
                note=say("utter_reminded_note"), at=now,
            )
        )  # fmt: skip
        session.commit()
        reminded.append(ticket.code)
    return reminded


def _question_reminder(code: str, unit: str, question: str) -> Notice:
    """The citizen's reminder of an unanswered question, in their chat's language."""

    def reply(lang: str) -> Reply:
        text = say_in(
            lang, "utter_ticket_question_reminder", code=code, unit=unit, question=question
        )
        return Reply(text, (answer_button(code, lang),))

    return reply


def _reminder_due(
    session: Session, ticket: Ticket, now: datetime, calendar: WorkingCalendar, config: Settings
) -> TicketEvent | None:
    """The question a reminder is due for: still waiting, unanswered for
    `citizen_answer_days` working days and not reminded yet."""
    if ticket.status != TicketStatus.need_info:
        return None
    asked = question_asked(session, ticket)
    if asked is None or calendar.add_working_days(asked.at, config.citizen_answer_days) > now:
        return None
    return None if _reminded(session, asked) else asked


def _reminded(session: Session, asked: TicketEvent) -> bool:
    """Whether the system has noted a reminder since the question `asked`."""
    return (
        session.exec(
            select(TicketEvent.id).where(
                TicketEvent.ticket_id == asked.ticket_id,
                col(TicketEvent.id) > asked.id,
                TicketEvent.kind == TicketEventKind.note,
                TicketEvent.actor == ACTOR_SYSTEM,
            )
        ).first()
        is not None
    )


def _run_once(
    engine: Engine | None, now: datetime, calendar: WorkingCalendar, config: Settings
) -> list[EscalationStep]:
    with get_session(engine) as session:
        steps = escalate_overdue(session=session, now=now, calendar=calendar, config=config)
        for code in remind_unanswered(session=session, now=now, calendar=calendar, config=config):
            logger.info("Reminded the citizen of the unanswered question on %s", code)
        return steps


async def run_escalations(
    stop: asyncio.Event,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    interval: float = 60.0,
    calendar: WorkingCalendar | None = None,
    config: Settings = settings,
) -> None:
    """Escalate overdue tickets every `interval` seconds until `stop` is set."""
    calendar = calendar or WorkingCalendar.from_settings(config)
    while not stop.is_set():
        try:
            steps = await asyncio.to_thread(_run_once, engine, clock(), calendar, config)
        except Exception:
            logger.exception("Escalation run failed; trying again in %s s", interval)
        else:
            for step in steps:
                logger.info(
                    "Escalated %s (%s) to level %s: %s officials told",
                    step.ticket_code, step.stage, step.level, step.notified,
                )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
