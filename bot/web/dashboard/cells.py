"""How a ticket's status, deadlines and category read on the pages (the queue and a ticket)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.conversation.texts import CATEGORY_NAMES, OFFICIAL_STATUS_NAMES
from bot.officials.desk import is_overdue
from bot.tickets.intake import expected
from storage.models import Ticket


@dataclass(frozen=True)
class Deadline:
    text: str
    late: bool


@dataclass(frozen=True)
class Status:
    value: str
    name: str
    overdue: bool


def deadline(moment: datetime | None, now: datetime) -> Deadline:
    """A deadline as shown: red (late) once it has passed."""
    return Deadline(expected(moment), moment is not None and moment < now)


def status(ticket: Ticket, now: datetime) -> Status:
    value = ticket.status.value
    return Status(value, OFFICIAL_STATUS_NAMES[value], is_overdue(ticket, now))


def category(ticket: Ticket) -> str:
    return CATEGORY_NAMES.get(ticket.category or "other", "Khác")
