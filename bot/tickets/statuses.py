"""The ticket workflow as a table (PRODUCT.md §6): which action moves a ticket from which
statuses to which one. Every status change of a ticket goes through `next_status`.

    received ──accept──▶ accepted ──resolve──▶ resolved ──rate──▶ closed
       any open ──ask──▶ need_info ──answer──▶ accepted
       any open ──transfer──▶ received (at another unit)
       any open ──reject──▶ rejected (reason required)
       resolved ──reopen──▶ accepted
       any open ──merge──▶ closed (a duplicate merged into the ticket of the same problem)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from storage import queries
from storage.models import TicketStatus

OPEN_STATUSES = queries.OPEN_STATUSES  # the unit still has work to do (deadlines run)

INITIAL_STATUS = TicketStatus.received  # a filed ticket, and one transferred to another unit


class Action(StrEnum):
    """What officials (accept … reject, merge) and citizens (answer, rate, reopen) do."""

    accept = "accept"
    ask = "ask"
    answer = "answer"
    transfer = "transfer"
    resolve = "resolve"
    reject = "reject"
    rate = "rate"
    reopen = "reopen"
    merge = "merge"


@dataclass(frozen=True)
class Transition:
    sources: frozenset[TicketStatus]
    target: TicketStatus


def _from(*sources: TicketStatus) -> frozenset[TicketStatus]:
    return frozenset(sources)


TRANSITIONS: dict[Action, Transition] = {
    Action.accept: Transition(_from(TicketStatus.received), TicketStatus.accepted),
    Action.ask: Transition(_from(*OPEN_STATUSES), TicketStatus.need_info),
    Action.answer: Transition(_from(TicketStatus.need_info), TicketStatus.accepted),
    Action.transfer: Transition(_from(*OPEN_STATUSES), TicketStatus.received),
    Action.resolve: Transition(_from(*OPEN_STATUSES), TicketStatus.resolved),
    Action.reject: Transition(_from(*OPEN_STATUSES), TicketStatus.rejected),
    Action.rate: Transition(_from(TicketStatus.resolved), TicketStatus.closed),
    Action.reopen: Transition(_from(TicketStatus.resolved), TicketStatus.accepted),
    Action.merge: Transition(_from(*OPEN_STATUSES), TicketStatus.closed),
}


class IllegalTransition(Exception):
    """`action` is not allowed on a ticket in `status`; nothing is changed."""

    def __init__(self, action: Action, status: TicketStatus) -> None:
        super().__init__(f"{action.value} is not allowed on a {status.value} ticket")
        self.action = action
        self.status = status


def allowed(action: Action, status: TicketStatus) -> bool:
    return status in TRANSITIONS[action].sources


def next_status(action: Action, status: TicketStatus) -> TicketStatus:
    """The status `action` leads to from `status`; IllegalTransition when the table has none."""
    if not allowed(action, status):
        raise IllegalTransition(action, status)
    return TRANSITIONS[action].target
