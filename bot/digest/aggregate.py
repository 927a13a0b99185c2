"""Weekly complaint digests: the figures of one ISO week, per unit or city-wide, in SQL.

Definitions (the week runs from Monday 00:00 to the next Monday 00:00 in `CIVICBOT_TIMEZONE`;
"in the week" means start <= moment < end):

- received: tickets created in the week.
- accepted: tickets whose `accepted_at` is in the week. `accepted_at` is the acceptance by the
  current lead unit (a transfer clears it, the new unit's acceptance sets it again).
- resolved: tickets whose `resolved_at` is in the week. A reopened ticket has its
  `resolved_at` cleared, so it counts in the week of its last resolution only.
- rejected: tickets with a status event to `rejected` in the week (once per ticket).
- open at the week's end: created before the end and not resolved, closed or rejected at the
  end. A ticket's status at the end is its status now unless a status event came after the
  end; then it is that first later event's old status (the audit trail keeps it).
- overdue at the week's end: open then and not waiting for the citizen's answer, and past
  `resolve_by`, or past `accept_by` while not yet accepted (`accepted_at` missing or after the
  end). Deadlines as they stand now.
- on-time rate: the share of the tickets resolved in the week that have a `resolve_by` and
  were resolved by it (`resolved_at <= resolve_by`); None when there are none.
- medians in hours: created to accepted over the tickets accepted in the week, created to
  resolved over those resolved in the week. The database orders the week's durations and
  returns the middle row(s) (ORDER BY … OFFSET), the hours are computed from those rows'
  timestamps, so SQLite and PostgreSQL give identical numbers.
- satisfaction: the ratings given in the week (`rating` events), their distribution 1–5 and
  average; reopened: `reopened` events in the week.
- duplicates merged: `merged` events of the week on the duplicates (the tickets closed into
  another ticket of the same problem), with the code kept; in a unit's digest those whose
  lead unit is the unit.
- most asked procedures: incoming messages of the week understood as `ask_procedure`, by
  procedure. Messages belong to no unit, so these are city-wide in every digest.
- change against the previous week: the headline counts of this week minus the last one's.

A unit's digest counts the tickets whose lead unit is that unit now: a transferred ticket
counts, for every week including the ones before its transfer, with the unit it was
transferred to (which also starts it again as `received`, with a new acceptance deadline).
The city-wide digest counts every ticket, whatever its unit (or none).

No citizen data leaves this module: ticket codes, units, categories, wards and times only
(no phone, name, description, place text or chat).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection
from sqlmodel import Session

from bot.catalog.catalog import load_catalog
from bot.conversation.texts import CATEGORY_NAMES
from storage import queries
from storage.models import (
    Direction,
    Message,
    Ticket,
    TicketEvent,
    TicketEventKind,
    TicketStatus,
    Unit,
    utcnow,
)

TICKET: sa.Table = Ticket.__table__  # type: ignore[attr-defined]
EVENT: sa.Table = TicketEvent.__table__  # type: ignore[attr-defined]
MESSAGE: sa.Table = Message.__table__  # type: ignore[attr-defined]
UNIT: sa.Table = Unit.__table__  # type: ignore[attr-defined]

OPEN_STATUSES = tuple(s.value for s in queries.OPEN_STATUSES)
# `need_info` is not here: the resolve clock stops while the citizen is asked.
RESOLVE_CLOCK_RUNNING = tuple(s.value for s in queries.AWAITING_RESOLUTION)
CITY_NAME = "Toàn thành phố Hà Nội"
NO_CATEGORY = "Chưa phân loại"
NO_WARD = "Chưa xác định phường, xã"
TOP_WARDS = 5
TOP_PROCEDURES = 10
_WEEK = re.compile(r"^\s*(\d{4})-?W(\d{1,2})\s*$", re.IGNORECASE)


# --- Weeks --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week, e.g. 2026-W47 (Monday 16 to Sunday 22 November 2026)."""

    year: int
    week: int

    def __post_init__(self) -> None:
        date.fromisocalendar(self.year, self.week, 1)  # ValueError for a week that does not exist

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def monday(self) -> date:
        """The week's first day."""
        return date.fromisocalendar(self.year, self.week, 1)

    def start(self, tz: tzinfo) -> datetime:
        """Monday 00:00 local time (aware)."""
        return datetime.combine(self.monday, time(0), tzinfo=tz)

    def end(self, tz: tzinfo) -> datetime:
        """The next Monday 00:00 local time (aware): the end is not in the week."""
        return datetime.combine(self.monday + timedelta(days=7), time(0), tzinfo=tz)

    def previous(self) -> IsoWeek:
        """The week before."""
        return IsoWeek.of(self.monday - timedelta(days=7))

    def next(self) -> IsoWeek:
        """The week after."""
        return IsoWeek.of(self.monday + timedelta(days=7))

    @classmethod
    def of(cls, day: date) -> IsoWeek:
        """The week a day is in."""
        year, week, _ = day.isocalendar()
        return cls(year, week)

    @classmethod
    def containing(cls, moment: datetime, tz: tzinfo) -> IsoWeek:
        """The week an aware moment falls in, in local time."""
        return cls.of(moment.astimezone(tz).date())

    @classmethod
    def last_complete(cls, now: datetime, tz: tzinfo) -> IsoWeek:
        """The last week that has ended at `now`."""
        return cls.containing(now, tz).previous()


def parse_iso_week(text: str) -> IsoWeek:
    """ "2026-W47" (or "2026W47", any case) as an IsoWeek; ValueError otherwise."""
    match = _WEEK.match(text)
    if match is None:
        raise ValueError(f"Not an ISO week (expected e.g. 2026-W47): {text!r}")
    try:
        return IsoWeek(int(match[1]), int(match[2]))
    except ValueError as error:
        raise ValueError(f"Year {match[1]} has no week {int(match[2])}.") from error


def as_tz(tz: tzinfo | str) -> tzinfo:
    """A time zone from its name or itself."""
    return ZoneInfo(tz) if isinstance(tz, str) else tz


# --- The digest ---------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Counts(_Frozen):
    """The headline counts of a week (or their change)."""

    received: int = 0
    accepted: int = 0
    resolved: int = 0
    rejected: int = 0
    open: int = 0
    overdue: int = 0

    def minus(self, other: Counts) -> Counts:
        """Field by field difference."""
        return Counts(**{k: v - getattr(other, k) for k, v in self.model_dump().items()})


class Breakdown(Counts):
    """The counts of one category or one ward; `key` None means none was set."""

    key: str | None
    name: str


class Satisfaction(_Frozen):
    """Ratings given in the week: how many, their average and how many of each 1–5."""

    ratings: int
    average: float | None
    distribution: dict[str, int]


class ProcedureCount(_Frozen):
    """How often a procedure was asked about."""

    procedure: str
    name: str
    questions: int


class OverdueTicket(_Frozen):
    """A ticket overdue at the week's end: which deadline it missed and by how long."""

    code: str
    unit_id: str | None
    unit_name: str
    category: str | None
    category_name: str
    ward_code: str | None
    ward_name: str
    created_at: datetime
    missed: Literal["accept", "resolve"]
    deadline: datetime
    hours_overdue: float


class MergedDuplicate(_Frozen):
    """A duplicate merged in the week into the ticket of the same problem."""

    code: str
    into: str
    category_name: str
    ward_name: str
    merged_at: datetime


class LeagueStanding(_Frozen):
    """A ward's place in the league of wards (`bot.digest.scorecard`) over the `weeks` weeks
    ending with the digest's week, and over the same number of weeks before (its trend)."""

    weeks: int
    place: int | None  # None: not ranked (too few tickets resolved with a deadline)
    ranked: int  # how many wards have a place
    previous_place: int | None
    previous_ranked: int
    on_time_rate: float | None
    previous_on_time_rate: float | None
    satisfaction: float | None
    previous_satisfaction: float | None


class Digest(_Frozen):
    """Everything in one weekly digest; `model_dump(mode="json")` is its JSON form."""

    week: str
    timezone: str
    period_start: datetime
    period_end: datetime
    unit_id: str | None
    unit_name: str
    counts: Counts
    previous: Counts
    change: Counts
    resolved_with_deadline: int
    resolved_on_time: int
    on_time_rate: float | None
    median_hours_to_accept: float | None
    median_hours_to_resolve: float | None
    satisfaction: Satisfaction
    reopened: int
    by_category: tuple[Breakdown, ...]
    by_ward: tuple[Breakdown, ...]
    top_wards: tuple[Breakdown, ...]
    procedure_questions: int
    top_procedures: tuple[ProcedureCount, ...]
    overdue_tickets: tuple[OverdueTicket, ...]
    merged_duplicates: tuple[MergedDuplicate, ...] = ()
    # A ward's place in the league and its trend (None for the city, city bodies, or when
    # the caller did not ask for it).
    league: LeagueStanding | None = None


class UnknownUnit(LookupError):
    """The unit asked for is not in the directory."""


# --- Queries ------------------------------------------------------------------------------


# A cell: counts of one group, e.g. one (category, ward) pair: at most categories × wards rows.
@dataclass
class _Cell:
    ward_name: str | None = None
    received: int = 0
    accepted: int = 0
    resolved: int = 0
    rejected: int = 0
    open: int = 0
    overdue: int = 0
    with_deadline: int = 0
    on_time: int = 0
    # Acceptances in the period that had an acceptance deadline, and those made by it.
    accepted_with_deadline: int = 0
    accepted_on_time: int = 0


def _rows(conn: Connection, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(statement)]


def _scope(unit_id: str | None) -> list[sa.ColumnElement[bool]]:
    return [] if unit_id is None else [TICKET.c.lead_unit_id == unit_id]


def _within(column: sa.ColumnElement[Any], start: datetime, end: datetime) -> list[Any]:
    return [column >= start, column < end]


# What the cells are keyed by: the digest's (category, ward) or the scorecard's unit.
Grouping = tuple[str, ...]
BY_CATEGORY_AND_WARD: Grouping = ("category", "ward_code")
BY_UNIT: Grouping = ("lead_unit_id",)


def _grouped(
    conn: Connection,
    *aggregates: sa.ColumnElement[Any],
    where: Iterable[Any],
    join: Any = None,
    by: Grouping = BY_CATEGORY_AND_WARD,
) -> list[tuple[Any, ...]]:
    """(*key, ward_name, *aggregates) per group (`by`) of the tickets."""
    group = [TICKET.c[name] for name in by]
    statement = sa.select(*group, sa.func.max(TICKET.c.ward_name), *aggregates)
    if join is not None:
        statement = statement.select_from(join)
    return _rows(conn, statement.where(*where).group_by(*group))


def _week_events(
    name: str, kind: TicketEventKind, start: datetime, end: datetime, *where: Any
) -> sa.CTE:
    """The events of one kind in [start, end), as a MATERIALIZED common table expression.

    Materialized, so that a unit's digest starts from the week's events (index on kind and
    time) and joins their tickets, rather than walking all the unit's tickets ever filed:
    its cost follows the week, not the table."""
    return (
        sa.select(EVENT.c.ticket_id, EVENT.c.new_value)
        .where(EVENT.c.kind == kind.value, *_within(EVENT.c.at, start, end), *where)
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


def _open_at(end: datetime, unit_id: str | None) -> sa.Subquery:
    """The tickets open at `end` (see the module docstring), with an `overdue` flag."""
    later = (
        sa.select(
            EVENT.c.ticket_id,
            EVENT.c.old_value["status"].as_string().label("status_then"),
            sa.func.row_number()
            .over(partition_by=EVENT.c.ticket_id, order_by=(EVENT.c.at, EVENT.c.id))
            .label("position"),
        )
        .where(EVENT.c.kind == TicketEventKind.status.value, EVENT.c.at >= end)
        .subquery("later")
    )
    first_later = (
        sa.select(later.c.ticket_id, later.c.status_then)
        .where(later.c.position == 1)
        .cte("first_later")
        .prefix_with("MATERIALIZED")
    )
    columns = (
        TICKET.c.id,
        TICKET.c.code,
        TICKET.c.lead_unit_id,
        TICKET.c.category,
        TICKET.c.ward_code,
        TICKET.c.ward_name,
        TICKET.c.created_at,
        TICKET.c.accept_by,
        TICKET.c.resolve_by,
        TICKET.c.accepted_at,
    )
    status_now = sa.type_coerce(TICKET.c.status, sa.String)
    unchanged = sa.select(*columns, status_now.label("status_then")).where(
        status_now.in_(OPEN_STATUSES),
        TICKET.c.created_at < end,
        TICKET.c.id.not_in(sa.select(first_later.c.ticket_id)),
        *_scope(unit_id),
    )
    changed = (
        sa.select(*columns, sa.func.coalesce(first_later.c.status_then, status_now))
        .select_from(TICKET.join(first_later, first_later.c.ticket_id == TICKET.c.id))
        .where(TICKET.c.created_at < end, *_scope(unit_id))
    )
    both = sa.union_all(unchanged, changed).subquery("at_end")
    not_accepted = sa.or_(both.c.accepted_at.is_(None), both.c.accepted_at >= end)
    overdue = sa.and_(
        both.c.status_then.in_(RESOLVE_CLOCK_RUNNING),
        sa.or_(sa.and_(not_accepted, both.c.accept_by < end), both.c.resolve_by < end),
    )
    return (
        sa.select(*(c for c in both.c if c.key != "status_then"), overdue.label("overdue"))
        .where(both.c.status_then.in_(OPEN_STATUSES))
        .subquery("open_at_end")
    )


def _cells(
    conn: Connection,
    start: datetime,
    end: datetime,
    unit_id: str | None,
    by: Grouping = BY_CATEGORY_AND_WARD,
    with_open: bool = True,
) -> dict[tuple[Any, ...], _Cell]:
    """The period's counts per group (`by`): one GROUP BY query per measure. `with_open`:
    also what is open and overdue at `end` (the costliest query)."""
    cells: dict[tuple[Any, ...], _Cell] = {}
    width = len(by)

    def cell(row: tuple[Any, ...]) -> tuple[_Cell, tuple[Any, ...]]:
        found = cells.setdefault(tuple(row[:width]), _Cell())
        found.ward_name = found.ward_name or row[width]
        return found, row[width + 1 :]

    def grouped(*aggregates: sa.ColumnElement[Any], where: Iterable[Any], join: Any = None) -> Any:
        return (cell(row) for row in _grouped(conn, *aggregates, where=where, join=join, by=by))

    count = sa.func.count()
    scope = _scope(unit_id)
    for found, (received,) in grouped(
        count, where=[*_within(TICKET.c.created_at, start, end), *scope]
    ):
        found.received = received
    accepted_on_time = sa.func.sum(
        sa.case((TICKET.c.accepted_at <= TICKET.c.accept_by, 1), else_=0)
    )
    for found, (accepted, with_deadline, on_time) in grouped(
        count,
        sa.func.count(TICKET.c.accept_by),
        accepted_on_time,
        where=[*_within(TICKET.c.accepted_at, start, end), *scope],
    ):
        found.accepted, found.accepted_with_deadline = accepted, with_deadline
        found.accepted_on_time = int(on_time or 0)
    on_time = sa.func.sum(sa.case((TICKET.c.resolved_at <= TICKET.c.resolve_by, 1), else_=0))
    has_deadline = sa.func.count(TICKET.c.resolve_by)
    for found, (resolved, with_deadline, resolved_on_time) in grouped(
        count, has_deadline, on_time, where=[*_within(TICKET.c.resolved_at, start, end), *scope]
    ):
        found.resolved, found.with_deadline = resolved, with_deadline
        found.on_time = int(resolved_on_time or 0)
    rejections = _week_events(
        "rejections",
        TicketEventKind.status,
        start,
        end,
        EVENT.c.new_value["status"].as_string() == TicketStatus.rejected.value,
    )
    for found, (rejected,) in grouped(
        sa.func.count(sa.distinct(TICKET.c.id)),
        join=rejections.join(TICKET, TICKET.c.id == rejections.c.ticket_id),
        where=scope,
    ):
        found.rejected = rejected
    if not with_open:
        return cells
    opened = _open_at(end, unit_id)
    group = [opened.c[name] for name in by]
    for row in _rows(
        conn,
        sa.select(
            *group,
            sa.func.max(opened.c.ward_name),
            count,
            sa.func.sum(sa.case((opened.c.overdue, 1), else_=0)),
        ).group_by(*group),
    ):
        found, (open_, overdue) = cell(row)
        found.open, found.overdue = open_, int(overdue or 0)
    return cells


def _total(cells: Iterable[_Cell]) -> Counts:
    cells = list(cells)
    return Counts(**{field: sum(getattr(c, field) for c in cells) for field in Counts.model_fields})


def _rollup(
    cells: dict[tuple[Any, ...], _Cell], index: Literal[0, 1], names: dict[str | None, str]
) -> list[Breakdown]:
    """Cells summed by category (index 0) or ward (index 1)."""
    groups: dict[str | None, list[_Cell]] = {}
    for key, value in cells.items():
        groups.setdefault(key[index], []).append(value)
        if index == 1 and key[1] not in names and value.ward_name:
            names[key[1]] = value.ward_name
    rows = []
    for group, members in groups.items():
        totals = _total(members)
        if totals == Counts():
            continue
        name = names.get(group) or (group if group is not None else "")
        rows.append(Breakdown(key=group, name=name, **totals.model_dump()))
    return rows


def _duration_key(
    conn: Connection, later: sa.ColumnElement[Any], earlier: sa.ColumnElement[Any]
) -> sa.ColumnElement[Any]:
    """An expression that orders rows by `later - earlier` on this database."""
    if conn.dialect.name == "sqlite":
        return sa.func.julianday(later) - sa.func.julianday(earlier)
    return sa.type_coerce(later, sa.DateTime) - sa.type_coerce(earlier, sa.DateTime)


def _median_hours(
    conn: Connection,
    column: sa.ColumnElement[Any],
    start: datetime,
    end: datetime,
    unit_id: str | None,
    by: Grouping = (),
) -> dict[tuple[Any, ...], float]:
    """The median of `column - created_at` in hours over the rows with `column` in the period,
    per group (`by`; () gives one group, the key ()). The database numbers each group's rows
    in order of duration and returns the middle one(s); the hours are computed here from their
    timestamps, so SQLite and PostgreSQL give identical numbers."""
    group = [TICKET.c[name] for name in by]
    order = (_duration_key(conn, column, TICKET.c.created_at), TICKET.c.id)
    ranked = (
        sa.select(
            *group,
            TICKET.c.created_at,
            column.label("later"),
            sa.func.row_number().over(partition_by=group or None, order_by=order).label("pos"),
            sa.func.count().over(partition_by=group or None).label("n"),
        )
        .where(*_within(column, start, end), *_scope(unit_id))
        .subquery("ranked")
    )
    middle = sa.or_(ranked.c.pos == (ranked.c.n + 1) // 2, ranked.c.pos == (ranked.c.n + 2) // 2)
    keys = [ranked.c[name] for name in by]
    found: dict[tuple[Any, ...], list[float]] = {}
    for row in conn.execute(sa.select(*keys, ranked.c.created_at, ranked.c.later).where(middle)):
        earlier, later = row[-2], row[-1]
        found.setdefault(tuple(row[:-2]), []).append((later - earlier) / timedelta(hours=1))
    return {key: round(sum(hours) / len(hours), 2) for key, hours in found.items()}


def _ratings(
    conn: Connection, start: datetime, end: datetime, unit_id: str | None, by: Grouping = ()
) -> dict[tuple[Any, ...], Satisfaction]:
    """The ratings given in the period per group (`by` on the rated ticket)."""
    ratings_given = _week_events("ratings", TicketEventKind.rating, start, end)
    rating = ratings_given.c.new_value["rating"].as_integer()
    group = [TICKET.c[name] for name in by]
    rows = conn.execute(
        sa.select(*group, rating, sa.func.count())
        .select_from(ratings_given.join(TICKET, TICKET.c.id == ratings_given.c.ticket_id))
        .where(*_scope(unit_id))
        .group_by(*group, rating)
    )
    distributions: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        distribution = distributions.setdefault(
            tuple(row[:-2]), {str(stars): 0 for stars in range(1, 6)}
        )
        stars, how_many = row[-2], row[-1]
        if stars is not None and str(stars) in distribution:
            distribution[str(stars)] += how_many
    return {key: satisfaction_of(distribution) for key, distribution in distributions.items()}


def satisfaction_of(distribution: dict[str, int]) -> Satisfaction:
    """How many ratings, their average (2 decimals) and the distribution 1–5."""
    ratings = sum(distribution.values())
    average = (
        round(sum(int(k) * v for k, v in distribution.items()) / ratings, 2) if ratings else None
    )
    return Satisfaction(ratings=ratings, average=average, distribution=distribution)


NO_RATINGS = satisfaction_of({str(stars): 0 for stars in range(1, 6)})


def _reopenings(
    conn: Connection, start: datetime, end: datetime, unit_id: str | None, by: Grouping = ()
) -> dict[tuple[Any, ...], int]:
    """The `reopened` events in the period per group (`by` on the ticket)."""
    reopenings = _week_events("reopenings", TicketEventKind.reopened, start, end)
    group = [TICKET.c[name] for name in by]
    rows = conn.execute(
        sa.select(*group, sa.func.count())
        .select_from(reopenings.join(TICKET, TICKET.c.id == reopenings.c.ticket_id))
        .where(*_scope(unit_id))
        .group_by(*group)
    )
    return {tuple(row[:-1]): row[-1] for row in rows}


def _resolutions(
    conn: Connection, start: datetime, end: datetime, unit_id: str | None, by: Grouping = ()
) -> dict[tuple[Any, ...], tuple[int, int]]:
    """Per group: the resolutions in the period (status events to `resolved`) and how many of
    them the citizen reopened afterwards (a `reopened` event of the ticket after it)."""
    later = EVENT.alias("later")
    resolution = EVENT.alias("resolution")
    reopened_after = (
        sa.select(later.c.id)
        .where(
            later.c.ticket_id == resolution.c.ticket_id,
            later.c.kind == TicketEventKind.reopened.value,
            later.c.at >= resolution.c.at,
        )
        .exists()
    )
    group = [TICKET.c[name] for name in by]
    rows = conn.execute(
        sa.select(*group, sa.func.count(), sa.func.sum(sa.case((reopened_after, 1), else_=0)))
        .select_from(resolution.join(TICKET, TICKET.c.id == resolution.c.ticket_id))
        .where(
            resolution.c.kind == TicketEventKind.status.value,
            *_within(resolution.c.at, start, end),
            resolution.c.new_value["status"].as_string() == TicketStatus.resolved.value,
            *_scope(unit_id),
        )
        .group_by(*group)
    )
    return {tuple(row[:-2]): (row[-2], int(row[-1] or 0)) for row in rows}


def _procedures(
    conn: Connection, start: datetime, end: datetime
) -> tuple[int, list[ProcedureCount]]:
    """Procedure questions in the week (city-wide) and the most asked procedures."""
    procedure = MESSAGE.c.nlu["procedure"].as_string()
    rows = conn.execute(
        sa.select(procedure, sa.func.count())
        .where(
            MESSAGE.c.direction == Direction.incoming.value,
            *_within(MESSAGE.c.created_at, start, end),
            MESSAGE.c.nlu["intent"].as_string() == "ask_procedure",
        )
        .group_by(procedure)
    ).all()
    total = sum(n for _p, n in rows)
    catalog = load_catalog()
    asked = sorted(((p, n) for p, n in rows if p), key=lambda pn: (-pn[1], pn[0]))
    top = []
    for procedure_id, questions in asked[:TOP_PROCEDURES]:
        entry = catalog.get(procedure_id)
        name = entry.name if entry is not None else procedure_id
        top.append(ProcedureCount(procedure=procedure_id, name=name, questions=questions))
    return total, top


def _overdue_tickets(
    conn: Connection, end: datetime, unit_id: str | None, tz: tzinfo
) -> list[OverdueTicket]:
    """The tickets overdue at `end`, the longest overdue first."""
    opened = _open_at(end, unit_id)
    rows = conn.execute(
        sa.select(opened, UNIT.c.name)
        .select_from(opened.outerjoin(UNIT, UNIT.c.id == opened.c.lead_unit_id))
        .where(opened.c.overdue)
    ).mappings()
    tickets = []
    for row in rows:
        missed_resolve = row["resolve_by"] is not None and row["resolve_by"] < end
        deadline: datetime = row["resolve_by"] if missed_resolve else row["accept_by"]
        tickets.append(
            OverdueTicket(
                code=row["code"],
                unit_id=row["lead_unit_id"],
                unit_name=row["name"] or row["lead_unit_id"] or "—",
                category=row["category"],
                category_name=_category_name(row["category"]),
                ward_code=row["ward_code"],
                ward_name=row["ward_name"] or NO_WARD,
                created_at=row["created_at"].astimezone(tz),
                missed="resolve" if missed_resolve else "accept",
                deadline=deadline.astimezone(tz),
                hours_overdue=round((end - deadline) / timedelta(hours=1), 2),
            )
        )
    tickets.sort(key=lambda t: (t.deadline, t.code))
    return tickets


def _merged_duplicates(
    conn: Connection, start: datetime, end: datetime, unit_id: str | None, tz: tzinfo
) -> list[MergedDuplicate]:
    """The duplicates merged in the week (their `merged` events name the ticket kept)."""
    into = EVENT.c.new_value["merged_into"].as_string()
    rows = conn.execute(
        sa.select(TICKET.c.code, into, TICKET.c.category, TICKET.c.ward_name, EVENT.c.at)
        .select_from(EVENT.join(TICKET, TICKET.c.id == EVENT.c.ticket_id))
        .where(
            EVENT.c.kind == TicketEventKind.merged.value,
            *_within(EVENT.c.at, start, end),
            into.is_not(None),
            *_scope(unit_id),
        )
        .order_by(EVENT.c.at, TICKET.c.code)
    )
    return [
        MergedDuplicate(
            code=code,
            into=kept,
            category_name=_category_name(category),
            ward_name=ward_name or NO_WARD,
            merged_at=at.astimezone(tz),
        )
        for code, kept, category, ward_name, at in rows
    ]


def _category_name(category: str | None) -> str:
    if category is None:
        return NO_CATEGORY
    return CATEGORY_NAMES.get(category, category)


def _category_order(row: Breakdown) -> tuple[int, str]:
    order = list(CATEGORY_NAMES)
    if row.key in CATEGORY_NAMES:
        return order.index(row.key), ""
    return len(order) + (row.key is None), row.key or ""


ProcedureQuestions = tuple[int, list[ProcedureCount]]


def city_procedure_questions(
    *, session: Session, week: IsoWeek, tz: tzinfo | str, now: datetime | None = None
) -> ProcedureQuestions:
    """The week's procedure questions, city-wide: the same in every unit's digest, so a run
    over many units reads them once and passes them to `weekly_digest`."""
    return _procedures(session.connection(), *_period(week, as_tz(tz), now))


def _period(week: IsoWeek, zone: tzinfo, now: datetime | None) -> tuple[datetime, datetime]:
    """The week's start and its end, or `now` while it runs; both in the week's time zone."""
    return week.start(zone), min(week.end(zone), (now or utcnow()).astimezone(zone))


def weekly_digest(
    *,
    session: Session,
    week: IsoWeek,
    unit_id: str | None,
    tz: tzinfo | str,
    now: datetime | None = None,
    procedures: ProcedureQuestions | None = None,
    standings: Mapping[str, LeagueStanding] | None = None,
) -> Digest:
    """The digest of `week` for one unit (`unit_id`) or the whole city (None).

    A week still running ends at `now` (default: the clock): what is open and overdue is
    counted as of now, not at a week's end that has not come yet. `procedures`: the week's
    `city_procedure_questions`, when already read. `standings`: the wards' places in the
    league (`bot.digest.scorecard.league_standings`), for a ward's digest."""
    zone = as_tz(tz)
    conn = session.connection()
    unit_name = CITY_NAME
    if unit_id is not None:
        found = conn.execute(sa.select(UNIT.c.name).where(UNIT.c.id == unit_id)).scalar()
        if found is None:
            raise UnknownUnit(unit_id)
        unit_name = found
    start, end = _period(week, zone, now)
    cells = _cells(conn, start, end, unit_id)
    before = week.previous()
    previous = _total(_cells(conn, before.start(zone), before.end(zone), unit_id).values())
    counts = _total(cells.values())
    with_deadline = sum(c.with_deadline for c in cells.values())
    on_time = sum(c.on_time for c in cells.values())
    satisfaction = _ratings(conn, start, end, unit_id).get((), NO_RATINGS)
    reopened = _reopenings(conn, start, end, unit_id).get((), 0)
    questions, top_procedures = (
        procedures if procedures is not None else _procedures(conn, start, end)
    )
    category_names: dict[str | None, str] = {key: _category_name(key) for key in CATEGORY_NAMES}
    category_names[None] = NO_CATEGORY
    by_category = sorted(_rollup(cells, 0, category_names), key=_category_order)
    by_ward = sorted(
        _rollup(cells, 1, {None: NO_WARD}), key=lambda r: (-r.received, r.key is None, r.key or "")
    )
    return Digest(
        week=str(week),
        timezone=str(zone),
        period_start=start,
        period_end=end,
        unit_id=unit_id,
        unit_name=unit_name,
        counts=counts,
        previous=previous,
        change=counts.minus(previous),
        resolved_with_deadline=with_deadline,
        resolved_on_time=on_time,
        on_time_rate=round(on_time / with_deadline, 4) if with_deadline else None,
        median_hours_to_accept=_median_hours(conn, TICKET.c.accepted_at, start, end, unit_id).get(
            ()
        ),
        median_hours_to_resolve=_median_hours(conn, TICKET.c.resolved_at, start, end, unit_id).get(
            ()
        ),
        satisfaction=satisfaction,
        reopened=reopened,
        by_category=tuple(by_category),
        by_ward=tuple(by_ward),
        top_wards=tuple(r for r in by_ward if r.received > 0 and r.key is not None)[:TOP_WARDS],
        procedure_questions=questions,
        top_procedures=tuple(top_procedures),
        overdue_tickets=tuple(_overdue_tickets(conn, end, unit_id, zone)),
        merged_duplicates=tuple(_merged_duplicates(conn, start, end, unit_id, zone)),
        league=standings.get(unit_id) if standings is not None and unit_id else None,
    )
