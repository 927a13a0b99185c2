"""Which tickets an official may read and act on: the one rule of the chat desk
(`bot/officials/desk.py`), the workflow (`bot/tickets/workflow.py`) and the dashboard
(`bot/web/dashboard/`).

- Handlers and supervisors read and act on their own unit's tickets (the lead unit's).
- Leaders read every ticket and act on none.
- A complaint about an official (category `misconduct`: `accuses_ward` in
  bot/categories.yml) is never shown to the accused's unit,
  whatever the role, and is never transferred there. The accused's unit is the People's
  Committee of the ticket's ward (the unit whose `ward_code` is the ticket's): that is where
  the official the citizen met works. A ticket without a ward accuses no unit here; routing
  sends misconduct to the city inspectorate in any case.

Anything else is refused, logged, and answered as if the ticket did not exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col

from bot.categories import ACCUSING, accused_ward
from storage.models import Official, OfficialRole, Ticket, Unit

logger = logging.getLogger(__name__)

ACTING_ROLES = (OfficialRole.handler, OfficialRole.supervisor)


@dataclass(frozen=True)
class Reader:
    """An active official as the rule needs them: role, unit, and the ward the unit answers
    for (ward units only)."""

    official_id: int
    role: OfficialRole
    unit_id: str
    unit_ward_code: str | None

    @classmethod
    def of(cls, session: Session, official: Official | None) -> Reader | None:
        """The official as a Reader; None for no official or an inactive one."""
        if official is None or not official.active or official.id is None:
            return None
        unit = session.get(Unit, official.unit_id)
        ward_code = unit.ward_code if unit is not None else None
        return cls(official.id, official.role, official.unit_id, ward_code)

    @property
    def is_leader(self) -> bool:
        return self.role == OfficialRole.leader


def accuses(ticket: Ticket, unit_ward_code: str | None) -> bool:
    """Whether `ticket` is a complaint about the officials of the unit of `unit_ward_code`."""
    accused = accused_ward(ticket.category, ticket.ward_code)
    return unit_ward_code is not None and accused == unit_ward_code


def can_read(reader: Reader | None, ticket: Ticket) -> bool:
    """Whether the official may see the ticket at all."""
    if reader is None or accuses(ticket, reader.unit_ward_code):
        return False
    return reader.is_leader or ticket.lead_unit_id == reader.unit_id


def can_act(reader: Reader | None, ticket: Ticket) -> bool:
    """Whether the official may change the ticket (accept, ask, resolve, transfer, reject)."""
    return (
        can_read(reader, ticket)
        and reader is not None
        and reader.role in ACTING_ROLES
        and ticket.lead_unit_id == reader.unit_id
    )


def may_receive(unit: Unit, ticket: Ticket) -> bool:
    """Whether the ticket may be transferred to `unit` (never to the accused's unit)."""
    return unit.active and unit.id != ticket.lead_unit_id and not accuses(ticket, unit.ward_code)


def readable_clause(reader: Reader) -> sa.ColumnElement[bool]:
    """`can_read` in SQL, for lists of tickets."""
    conditions: list[sa.ColumnElement[bool]] = []
    if not reader.is_leader:
        conditions.append(col(Ticket.lead_unit_id) == reader.unit_id)
    if reader.unit_ward_code is not None:
        conditions.append(  # spelled out: NULLs must not hide a ticket
            sa.or_(
                col(Ticket.category).is_(None),
                col(Ticket.category).not_in(ACCUSING),
                col(Ticket.ward_code).is_(None),
                col(Ticket.ward_code) != reader.unit_ward_code,
            )
        )
    return sa.and_(sa.true(), *conditions)


def log_refusal(reader: Reader | None, what: str, ticket: Ticket | str) -> None:
    """One log line for every refused read or action."""
    code = ticket.code if isinstance(ticket, Ticket) else ticket
    if reader is None:
        logger.warning("Refused: no active official tried to %s %s.", what, code)
        return
    who = f"official {reader.official_id} ({reader.unit_id}, {reader.role.value})"
    logger.warning("Refused: %s tried to %s %s.", who, what, code)
