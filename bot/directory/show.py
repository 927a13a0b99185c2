"""`civicbot units show`: the units as a tree by parent, and the routing rules as a table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlmodel import Session, col, select

from bot.directory.store import intake_unit, routing_rules, units
from storage.models import Official, RoutingRule, Unit, UnitKind

_KIND_ORDER = {UnitKind.city: 0, UnitKind.company: 1, UnitKind.ward: 2}


def _label(unit: Unit, counts: dict[str, tuple[int, int]]) -> str:
    tags = [UnitKind(unit.kind).value]
    if unit.ward_code:
        tags[0] += f" {unit.ward_code}"
    if unit.intake:
        tags.append("intake")
    if not unit.active:
        tags.append("inactive")
    linked, total = counts.get(unit.id, (0, 0))
    return f"{unit.id}  {unit.name}  [{', '.join(tags)}]  officials {linked}/{total}"


def _official_counts(session: Session) -> dict[str, tuple[int, int]]:
    """unit id → (linked, total) active officials."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for official in session.exec(select(Official).where(col(Official.active))).all():
        counts[official.unit_id][1] += 1
        if official.chat_id is not None:
            counts[official.unit_id][0] += 1
    return {unit_id: (pair[0], pair[1]) for unit_id, pair in counts.items()}


def unit_tree(*, session: Session, root_id: str | None = None) -> list[str]:
    """The units (or the subtree under `root_id`) indented by parent; raises KeyError for an
    unknown `root_id`."""
    every = units(session=session, active_only=False)
    by_id = {u.id: u for u in every}
    if root_id is not None and root_id not in by_id:
        raise KeyError(root_id)
    children: dict[str | None, list[Unit]] = defaultdict(list)
    for unit in every:
        parent = unit.parent_id if unit.parent_id in by_id else None
        children[parent].append(unit)
    for siblings in children.values():
        siblings.sort(key=lambda u: (_KIND_ORDER[UnitKind(u.kind)], u.id))
    counts = _official_counts(session)
    lines: list[str] = []

    def walk(unit: Unit, prefix: str, branch: str, seen: set[str]) -> None:
        lines.append(f"{prefix}{branch}{_label(unit, counts)}")
        if unit.id in seen:  # a cycle in the table (a checked file has none)
            return
        below = children.get(unit.id, [])
        deeper = prefix + ("" if not branch else ("│   " if branch == "├── " else "    "))
        for index, child in enumerate(below):
            last = index == len(below) - 1
            walk(child, deeper, "└── " if last else "├── ", seen | {unit.id})

    roots = [by_id[root_id]] if root_id is not None else children[None]
    for root in roots:
        walk(root, "", "", set())
    active = sum(1 for u in every if u.active)
    header = f"Units: {active} active, {len(every) - active} inactive (officials: linked/total)"
    return [header, *lines]


def unit_officials(*, session: Session, unit_id: str) -> list[str]:
    """The officials of one unit, one line each."""
    officials = session.exec(
        select(Official).where(Official.unit_id == unit_id).order_by(col(Official.id))
    ).all()
    lines = [f"Officials of {unit_id}: {len(officials)}"]
    for o in officials:
        linked = f"linked ({o.channel.value})" if o.chat_id and o.channel else "not linked"
        state = "" if o.active else ", inactive"
        lines.append(f"  #{o.id}  {o.name}  [{o.role.value}{state}]  {linked}")
    return lines


def _grouped(rules: Sequence[RoutingRule]) -> list[tuple[int, list[str], list[str], RoutingRule]]:
    """Rows of one file rule (same position) back together: categories and wards."""
    out: list[tuple[int, list[str], list[str], RoutingRule]] = []
    for rule in rules:
        if not out or out[-1][0] != rule.position:
            out.append((rule.position, [], [], rule))
        _, categories, wards, _ = out[-1]
        for value, into in ((rule.category, categories), (rule.ward_code, wards)):
            text = value if value is not None else "any"
            if text not in into:
                into.append(text)
    return out


def rules_table(*, session: Session) -> list[str]:
    """The routing rules in the order they are tried, and where unmatched tickets go."""
    names = {u.id: u.name for u in units(session=session, active_only=False)}
    rows = [("#", "category", "ward", "unit")]
    for position, categories, wards, rule in _grouped(routing_rules(session=session)):
        if rule.to_ward_unit:
            target = "ward  (the ticket's ward's People's Committee)"
        else:
            unit_id = rule.unit_id or "?"
            target = f"{unit_id}  {names.get(unit_id, '(unknown unit)')}"
        rows.append((str(position), ", ".join(categories), ", ".join(wards), target))
    try:
        intake = intake_unit(session=session)
        rows.append(("-", "no match", "", f"{intake.id}  {intake.name}  (flagged unrouted)"))
    except RuntimeError as error:
        rows.append(("-", "no match", "", f"ERROR: {error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["Routing rules (first match wins):"]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        lines.append(f"  {'  '.join(cells)}  {row[3]}")
    return lines
