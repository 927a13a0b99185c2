"""What the dashboard reads from the database beyond `storage.queries`: keyword-only
functions on a Session. They live here, not in `storage/`, because they apply the desk's
rules (who may read what, what is overdue), and `storage/` imports nothing from `bot/`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.conversation.texts import CATEGORY_NAMES
from bot.officials.desk import overdue_clause
from bot.tickets import access, workflow
from storage.models import Ticket, TicketStatus, Unit, UnitKind

MAX_LISTED = 200


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as in the page's query string."""

    status: str = "open"  # open | all | a TicketStatus value
    category: str = ""
    ward: str = ""
    overdue: bool = False
    unit: str = ""  # leaders only

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilters:
        """Filters from a query string; unknown values fall back to "no filter"."""
        status = query.get("status", "open")
        if status not in ("open", "all") and status not in TicketStatus.__members__:
            status = "open"
        category = query.get("category", "")
        return cls(
            status=status,
            category=category if category in CATEGORY_NAMES else "",
            ward=query.get("ward", "").strip()[:16],
            overdue=query.get("overdue", "") in ("1", "on", "true"),
            unit=query.get("unit", "").strip()[:64],
        )

    def statuses(self) -> tuple[TicketStatus, ...]:
        """The statuses shown (empty: all)."""
        if self.status == "open":
            return workflow.OPEN_STATUSES
        if self.status == "all":
            return ()
        return (TicketStatus(self.status),)


def queue_tickets(
    *,
    session: Session,
    unit_id: str | None,
    filters: QueueFilters,
    now: datetime,
    limit: int = MAX_LISTED,
    reader: access.Reader | None = None,
) -> tuple[list[Ticket], int]:
    """Tickets of a unit (all units: None) matching `filters`, and how many match in all.

    Open tickets come by deadline (soonest first, none last); lists that include finished
    tickets come newest first. Overdue is `desk.is_overdue`, in SQL.
    """
    conditions: list[Any] = []
    statuses = filters.statuses()
    if statuses:
        conditions.append(col(Ticket.status).in_(list(statuses)))
    if unit_id is not None:
        conditions.append(Ticket.lead_unit_id == unit_id)
    if filters.category:
        conditions.append(Ticket.category == filters.category)
    if filters.ward:
        conditions.append(Ticket.ward_code == filters.ward)
    if filters.overdue:
        conditions.append(overdue_clause(now))
    if reader is not None:
        conditions.append(access.readable_clause(reader))
    total = session.exec(
        select(sa.func.count()).select_from(Ticket).where(sa.true(), *conditions)
    ).one()
    statement = select(Ticket).where(sa.true(), *conditions)
    if statuses and set(statuses) <= set(workflow.OPEN_STATUSES):
        statement = statement.order_by(
            col(Ticket.resolve_by).is_(None), col(Ticket.resolve_by), col(Ticket.id)
        )
    else:
        statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return list(session.exec(statement.limit(limit))), total


def queue_wards(
    *, session: Session, unit_id: str | None, reader: access.Reader
) -> list[tuple[str, str]]:
    """(ward code, ward name) of the wards the unit's tickets (all: None) are in, by name."""
    statement = select(Ticket.ward_code, Ticket.ward_name).where(
        col(Ticket.ward_code).is_not(None), access.readable_clause(reader)
    )
    if unit_id is not None:
        statement = statement.where(Ticket.lead_unit_id == unit_id)
    names: dict[str, str] = {}
    for code, name in session.exec(statement.distinct()):
        if code is not None:
            names.setdefault(code, name or code)
    return sorted(names.items(), key=lambda item: (item[1], item[0]))


def all_units(*, session: Session) -> list[Unit]:
    """Every unit, for a leader's choice of unit: by kind, then name."""
    return list(session.exec(select(Unit).order_by(col(Unit.kind), col(Unit.name))))


def transfer_choices(*, session: Session, ticket: Ticket) -> list[tuple[str, str]]:
    """Units a ticket may go to: the parent unit and the ticket's ward first, then the city
    bodies and companies, then every ward."""
    units = [
        u
        for u in session.exec(select(Unit).order_by(col(Unit.name)))
        if access.may_receive(u, ticket)
    ]
    current = session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
    first = [
        u
        for u in units
        if (current is not None and u.id == current.parent_id)
        or (ticket.ward_code is not None and u.ward_code == ticket.ward_code)
    ]
    others = [u for u in units if u not in first and u.kind != UnitKind.ward]
    wards = [u for u in units if u not in first and u.kind == UnitKind.ward]
    return [(u.id, u.name) for u in (*first, *others, *wards)]
