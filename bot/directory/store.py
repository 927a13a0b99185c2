"""The directory in the database: importing a checked file, and looking units up.

An import is a diff: units are added, changed or deactivated (never deleted: tickets and
officials may point to them), rules are replaced row by row, officials missing by (name,
unit) are added and a listed official's changed role is set. Every change is a
`DirectoryChange` row; importing the same file again changes nothing and writes no history.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.directory.loader import Directory, UnitEntry, load_directory
from storage.db import begin_write
from storage.models import (
    DirectoryChange,
    Official,
    RoutingRule,
    RoutingRuleCreate,
    Unit,
    UnitKind,
    utcnow,
)
from storage.queries import city_intake_units, officials_of_unit

__all__ = [
    "DirectoryEmptyError",
    "ImportSummary",
    "ensure_directory",
    "get_unit",
    "import_directory",
    "intake_unit",
    "officials_of_unit",
    "routing_rules",
    "units",
    "ward_unit",
]

logger = logging.getLogger(__name__)

ENSURE_ACTOR = "system:units-file"


class DirectoryEmptyError(RuntimeError):
    """The database has no (active) intake unit: nothing can be routed."""

    def __init__(self) -> None:
        super().__init__(
            "The units directory is empty (no active intake unit): run "
            "`civicbot units import FILE`, or start the app, which loads CIVICBOT_UNITS_FILE "
            "or the bundled Hà Nội directory."
        )


@dataclass(frozen=True)
class ImportSummary:
    """What an import changed (all empty when the database already matched the file)."""

    units_added: tuple[str, ...] = ()
    units_changed: tuple[str, ...] = ()
    units_deactivated: tuple[str, ...] = ()
    rules_added: int = 0
    rules_removed: int = 0
    officials_added: tuple[str, ...] = ()
    officials_changed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything changed."""
        return any(
            (
                self.units_added,
                self.units_changed,
                self.units_deactivated,
                self.rules_added,
                self.rules_removed,
                self.officials_added,
                self.officials_changed,
            )
        )

    def lines(self) -> list[str]:
        """A short report for the operator."""
        if not self.changed:
            return ["No changes: the database already matches the file."]
        out = []
        for label, ids in (
            ("Units added", self.units_added),
            ("Units changed", self.units_changed),
            ("Units deactivated", self.units_deactivated),
            ("Officials added", self.officials_added),
            ("Officials with a new role", self.officials_changed),
        ):
            if ids:
                shown = ", ".join(ids[:8]) + (", …" if len(ids) > 8 else "")
                out.append(f"{label}: {len(ids)} ({shown})")
        if self.rules_added or self.rules_removed:
            out.append(f"Routing rule rows: {self.rules_added} added, {self.rules_removed} removed")
        return out


# --- Lookups ---------------------------------------------------------------------------------


def get_unit(*, session: Session, unit_id: str) -> Unit | None:
    """The unit with this id, active or not."""
    return session.get(Unit, unit_id)


def units(*, session: Session, active_only: bool = True) -> Sequence[Unit]:
    """All units (only the active ones by default), by id."""
    statement = select(Unit)
    if active_only:
        statement = statement.where(col(Unit.active))
    return session.exec(statement.order_by(col(Unit.id))).all()


def intake_unit(*, session: Session) -> Unit:
    """The active city intake unit; raises `DirectoryEmptyError` when there is none."""
    found = city_intake_units(session=session)
    if not found:
        raise DirectoryEmptyError()
    if len(found) > 1:  # a checked file has one; the table itself does not enforce it
        logger.warning("Several intake units (%s): using %s", [u.id for u in found], found[0].id)
    return found[0]


def ward_unit(*, session: Session, ward_code: str) -> Unit | None:
    """The active People's Committee of a 2025 ward or commune, if the directory has one."""
    return session.exec(
        select(Unit)
        .where(Unit.ward_code == ward_code, Unit.kind == UnitKind.ward, col(Unit.active))
        .order_by(col(Unit.id))
    ).first()


def routing_rules(*, session: Session) -> Sequence[RoutingRule]:
    """The routing rules in the order they are tried."""
    return session.exec(
        select(RoutingRule).order_by(col(RoutingRule.position), col(RoutingRule.id))
    ).all()


# --- Import ----------------------------------------------------------------------------------


def _entry_values(entry: UnitEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "kind": entry.kind.value,
        "parent_id": entry.parent,
        "ward_code": entry.ward_code,
        "intake": entry.intake,
        "active": True,
    }


def _unit_values(unit: Unit) -> dict[str, Any]:
    return {
        "name": unit.name,
        "kind": UnitKind(unit.kind).value,
        "parent_id": unit.parent_id,
        "ward_code": unit.ward_code,
        "intake": unit.intake,
        "active": unit.active,
    }


_RuleKey = tuple[int, str | None, str | None, str | None, bool]


def _rule_key(rule: RoutingRule | RoutingRuleCreate) -> _RuleKey:
    return (rule.position, rule.category, rule.ward_code, rule.unit_id, rule.to_ward_unit)


def _rule_values(rule: RoutingRule | RoutingRuleCreate) -> dict[str, Any]:
    return RoutingRuleCreate.model_validate(rule, from_attributes=True).model_dump()


class _History:
    """The directory changes of one import, recorded as they are made."""

    def __init__(self, *, actor: str, now: datetime) -> None:
        self.actor, self.now = actor, now
        self.changes: list[DirectoryChange] = []

    def record(self, entity: str, entity_id: str, change: str, old: Any, new: Any) -> None:
        self.changes.append(
            DirectoryChange(
                at=self.now,
                actor=self.actor,
                entity=entity,
                entity_id=entity_id,
                change=change,
                old_value=old,
                new_value=new,
            )
        )


def _import_units(
    session: Session, directory: Directory, history: _History
) -> tuple[list[str], list[str], list[str]]:
    """The file's units added or changed, the others deactivated: their ids, in that order."""
    now = history.now
    existing = {u.id: u for u in session.exec(select(Unit)).all()}
    added: list[str] = []
    changed: list[str] = []
    for entry in directory.units:
        wanted = _entry_values(entry)
        unit = existing.get(entry.id)
        if unit is None:
            session.add(Unit(id=entry.id, updated_at=now, **wanted))
            history.record("unit", entry.id, "added", None, {"id": entry.id, **wanted})
            added.append(entry.id)
            continue
        current = _unit_values(unit)
        diff = sorted(key for key in wanted if wanted[key] != current[key])
        if diff:
            unit.sqlmodel_update({key: wanted[key] for key in diff})
            unit.kind = entry.kind
            unit.updated_at = now
            session.add(unit)
            old, new = {k: current[k] for k in diff}, {k: wanted[k] for k in diff}
            history.record("unit", entry.id, "changed", old, new)
            changed.append(entry.id)
    in_file = {entry.id for entry in directory.units}
    deactivated: list[str] = []
    for unit_id, unit in sorted(existing.items()):
        if unit_id not in in_file and unit.active:
            unit.active = False
            unit.updated_at = now
            session.add(unit)
            history.record("unit", unit_id, "removed", {"active": True}, {"active": False})
            deactivated.append(unit_id)
    return added, changed, deactivated


def _import_rules(
    session: Session, directory: Directory, history: _History
) -> tuple[list[RoutingRule], int]:
    """Keep the rows that stay, delete the rest, add the new ones: (the new ones, how many
    were deleted)."""
    wanted_rules = Counter(_rule_key(r) for r in directory.routing_rows())
    kept: Counter[_RuleKey] = Counter()
    removed = 0
    for row in session.exec(select(RoutingRule).order_by(col(RoutingRule.id))).all():
        key = _rule_key(row)
        if kept[key] < wanted_rules[key]:
            kept[key] += 1
            continue
        history.record("rule", str(row.id), "removed", _rule_values(row), None)
        session.delete(row)
        removed += 1
    new_rules: list[RoutingRule] = []
    for rule_in in directory.routing_rows():
        key = _rule_key(rule_in)
        if kept[key] > 0:
            kept[key] -= 1
            continue
        new_rules.append(RoutingRule.model_validate(rule_in))
    session.add_all(new_rules)
    return new_rules, removed


def _import_officials(
    session: Session, directory: Directory, history: _History
) -> tuple[list[Official], list[str]]:
    """The file's officials added, or their roles changed: (the new rows, "name (unit)" of
    the changed ones)."""
    present = {(o.name, o.unit_id): o for o in session.exec(select(Official)).all()}
    changed: list[str] = []
    for listed in directory.officials:
        official = present.get((listed.name, listed.unit))
        if official is not None and official.role != listed.role:
            old, new = {"role": official.role.value}, {"role": listed.role.value}
            history.record("official", str(official.id), "changed", old, new)
            official.role = listed.role
            session.add(official)
            changed.append(f"{official.name} ({official.unit_id})")
    new_officials = [
        Official(name=o.name, unit_id=o.unit, role=o.role)
        for o in directory.officials
        if (o.name, o.unit) not in present
    ]
    session.add_all(new_officials)
    return new_officials, changed


def import_directory(*, session: Session, directory: Directory, actor: str) -> ImportSummary:
    """Make the database's units, rules and officials match a checked file, with history."""
    begin_write(session)
    history = _History(actor=actor, now=utcnow())
    added, changed, deactivated = _import_units(session, directory, history)
    new_rules, removed = _import_rules(session, directory, history)
    new_officials, changed_officials = _import_officials(session, directory, history)
    session.flush()  # ids for the history of the new rows
    for rule in new_rules:
        history.record("rule", str(rule.id), "added", None, _rule_values(rule))
    for official in new_officials:
        new = {"name": official.name, "unit_id": official.unit_id, "role": official.role.value}
        history.record("official", str(official.id), "added", None, new)
    session.add_all(history.changes)
    session.commit()
    return ImportSummary(
        units_added=tuple(added),
        units_changed=tuple(changed),
        units_deactivated=tuple(deactivated),
        rules_added=len(new_rules),
        rules_removed=removed,
        officials_added=tuple(f"{o.name} ({o.unit_id})" for o in new_officials),
        officials_changed=tuple(changed_officials),
    )


def ensure_directory(*, session: Session, path: Path | None = None) -> None:
    """Load the directory (`path`, CIVICBOT_UNITS_FILE or the bundled file) if the database
    has no units yet; the app calls it at startup. A broken file raises `DirectoryFileError`."""
    if session.exec(select(Unit.id).limit(1)).first() is not None:
        return
    directory = load_directory(path)
    try:
        import_directory(session=session, directory=directory, actor=ENSURE_ACTOR)
    except IntegrityError:
        # Another process loaded it at the same moment (PostgreSQL); theirs is as good.
        session.rollback()
        if session.exec(select(Unit.id).limit(1)).first() is None:
            raise
