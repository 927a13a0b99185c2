"""The ticket workflow as one table (bot/tickets/statuses.py): it holds every status and
action of PRODUCT.md §6, and each action, called from a status the table does not allow it
in, is refused with nothing changed — on both databases."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine, func
from sqlmodel import Session, select
from test_contract import PRODUCT

from bot.conversation.dialogue.tickets import await_answer
from bot.duplicates.merge import merge
from bot.tickets import workflow
from bot.tickets.statuses import (
    INITIAL_STATUS,
    TRANSITIONS,
    Action,
    IllegalTransition,
    Transition,
    next_status,
)
from bot.tickets.workflow import ActionRefused
from storage.models import (
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
    TicketUpdate,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội


def status_bullet() -> str:
    """PRODUCT.md §6's bullet on statuses, without its Open311 sentence."""
    if not PRODUCT.exists():
        pytest.skip(f"{PRODUCT} is not beside the repository")
    section = PRODUCT.read_text(encoding="utf-8").split("## 6.", 1)[1].split("\n## ", 1)[0]
    bullet = section.split("- Status:", 1)[1].split("\n- ", 1)[0]
    return bullet.split("Open311", 1)[0]


def test_the_table_holds_every_status_of_the_product() -> None:
    named = set(re.findall(r"`([a-z_]+)`", status_bullet()))
    assert named == {s.value for s in TicketStatus}
    reached = {INITIAL_STATUS} | {t.target for t in TRANSITIONS.values()}
    left = set().union(*(t.sources for t in TRANSITIONS.values()))
    assert reached == set(TicketStatus)  # every status can be reached ...
    assert left | {TicketStatus.closed, TicketStatus.rejected} == set(TicketStatus)  # ... left


def test_the_table_holds_every_move_the_product_names() -> None:
    bullet = status_bullet()
    chain = re.findall(r"`([a-z_]+)`", bullet.split(";", 1)[0].split("also", 1)[0])
    moves = set(itertools.pairwise(chain))
    assert moves == {("received", "accepted"), ("accepted", "resolved"), ("resolved", "closed")}
    for source, target in moves:
        assert any(
            TicketStatus(source) in t.sources and t.target == TicketStatus(target)
            for t in TRANSITIONS.values()
        ), (source, target)
    # "also `need_info` (waiting for the citizen) and `rejected` (reason required)"
    assert TRANSITIONS[Action.ask].target == TicketStatus.need_info
    assert TRANSITIONS[Action.answer].sources == {TicketStatus.need_info}
    assert TRANSITIONS[Action.reject].target == TicketStatus.rejected
    # "Reopening a resolved ticket sets it back to `accepted`."
    assert "Reopening a resolved ticket sets it back to `accepted`" in " ".join(bullet.split())
    assert TRANSITIONS[Action.reopen] == Transition(
        frozenset({TicketStatus.resolved}), TicketStatus.accepted
    )
    assert set(TRANSITIONS) == set(Action)


def test_next_status_refuses_what_the_table_does_not_hold() -> None:
    assert next_status(Action.accept, TicketStatus.received) == TicketStatus.accepted
    with pytest.raises(IllegalTransition, match="accept is not allowed on a closed ticket"):
        next_status(Action.accept, TicketStatus.closed)
    with pytest.raises(IllegalTransition):
        next_status(Action.rate, TicketStatus.accepted)


# --- every action from every status, through the workflow's own functions --------------------

Call = Callable[[Session, Ticket, Official, Ticket], None]  # the last: another open ticket

CALLS: dict[Action, Call] = {
    Action.accept: lambda s, t, o, _: workflow.accept(session=s, ticket=t, official=o, now=NOW),
    Action.ask: lambda s, t, o, _: workflow.ask_info(
        session=s, ticket=t, official=o, question="Ngõ số mấy?", now=NOW, await_answer=await_answer
    ),
    Action.answer: lambda s, t, o, _: workflow.citizen_answer(
        session=s, ticket=t, text="Ngõ 5", now=NOW
    ),
    Action.transfer: lambda s, t, o, _: workflow.transfer(
        session=s, ticket=t, official=o, to_unit_id="ward-b", reason="Không ở đây", now=NOW
    ),
    Action.resolve: lambda s, t, o, _: workflow.resolve(
        session=s, ticket=t, official=o, note="Đã thu gom", now=NOW
    ),
    Action.reject: lambda s, t, o, _: workflow.reject(
        session=s, ticket=t, official=o, reason="Trùng lặp", now=NOW
    ),
    Action.rate: lambda s, t, o, _: workflow.rate(session=s, ticket=t, rating=4, now=NOW),
    Action.reopen: lambda s, t, o, _: workflow.reopen(session=s, ticket=t, now=NOW),
    Action.merge: lambda s, t, o, into: merge(
        session=s, duplicate=t, into=into, official=o, now=NOW
    ),
}


def _count(session: Session, table: type[TicketEvent] | type[OutboxMessage]) -> int:
    return session.exec(select(func.count()).select_from(table)).one()


def test_each_action_moves_as_the_table_says_and_is_refused_elsewhere(engine: Engine) -> None:
    assert set(CALLS) == set(Action)
    with Session(engine) as session:
        two_wards_and_city(session)
        handler = linked_official(session, "ward-a", "a1", OfficialRole.handler, now=NOW)
        for action, call in CALLS.items():
            for status in TicketStatus:
                other = waste_ticket(session, "ward-a", now=NOW)
                ticket = waste_ticket(session, "ward-a", now=NOW)
                ticket.status = status  # placed there directly: only the move is under test
                session.add(ticket)
                session.commit()
                events, outbox = _count(session, TicketEvent), _count(session, OutboxMessage)
                if status in TRANSITIONS[action].sources:
                    call(session, ticket, handler, other)
                    session.refresh(ticket)
                    assert ticket.status == TRANSITIONS[action].target, (action, status)
                    continue
                with pytest.raises(ActionRefused):
                    call(session, ticket, handler, other)
                session.rollback()
                session.refresh(ticket)
                assert ticket.status == status, (action, status)
                assert _count(session, TicketEvent) == events, (action, status)
                assert _count(session, OutboxMessage) == outbox, (action, status)


def test_a_status_is_never_set_outside_the_table(engine: Engine) -> None:
    """`_change` takes no status but an action's: a hand-made status update is an error."""
    with Session(engine) as session:
        two_wards_and_city(session)
        ticket = waste_ticket(session, "ward-a", now=NOW)
        with pytest.raises(ValueError, match="only by an action"):
            workflow._change(
                session,
                ticket,
                TicketUpdate(status=TicketStatus.closed),
                actor="test",
                note=None,
                now=NOW,
            )
        session.rollback()
        session.refresh(ticket)
        assert ticket.status == TicketStatus.received
