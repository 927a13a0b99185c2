"""Choosing a ticket's lead unit from the routing rules in the database.

Rules are tried by position; the first that matches the ticket's category and ward and whose
target is an active unit wins. A rule to "the ward's unit" is passed over for a ticket without
a ward, or whose ward has no active unit. When nothing matches, the city intake unit gets the
ticket, flagged `unrouted`: a ticket is never dropped.
A complaint about officials (`misconduct`) never goes to the unit of its own ward, the
accused's (`bot.categories.accused_ward`, as `bot.tickets.access`): such a rule is passed over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session

from bot.categories import accused_ward
from bot.directory.store import get_unit, intake_unit, routing_rules, ward_unit
from storage.models import Unit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteDecision:
    """The lead unit chosen for a ticket, and by which rule (None: no rule, intake)."""

    unit_id: str
    unit_name: str
    unrouted: bool
    rule_position: int | None


def route(*, session: Session, category: str | None, ward_code: str | None) -> RouteDecision:
    """The lead unit for a ticket; raises `DirectoryEmptyError` if there is no intake unit."""
    ward: Unit | None = None
    ward_looked_up = False
    for rule in routing_rules(session=session):
        if rule.category is not None and rule.category != category:
            continue
        if rule.ward_code is not None and rule.ward_code != ward_code:
            continue
        target: Unit | None
        if rule.to_ward_unit:
            if ward_code is None:
                continue
            if not ward_looked_up:
                ward, ward_looked_up = ward_unit(session=session, ward_code=ward_code), True
            target = ward
        else:
            target = get_unit(session=session, unit_id=rule.unit_id) if rule.unit_id else None
            if target is None or not target.active:
                logger.warning("Routing rule %s names an unknown or inactive unit: %s",
                               rule.position, rule.unit_id)  # fmt: skip
        accused = accused_ward(category, ward_code)
        if target is not None and accused is not None and accused == target.ward_code:
            logger.warning(
                "Routing rule %s would send a complaint about officials to their own "
                "unit %s: passed over.",
                rule.position,
                target.id,
            )
            continue
        if target is not None and target.active:
            return RouteDecision(target.id, target.name, False, rule.position)
    intake = intake_unit(session=session)
    return RouteDecision(intake.id, intake.name, True, None)
