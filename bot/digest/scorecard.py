"""The public scorecard: each ward's and city body's record per month or quarter, and the
league table of wards. Aggregates only, from the digest's queries (`bot.digest.aggregate`).

Figures of one unit over one period (local time, `CIVICBOT_TIMEZONE`; a unit's figures are
those of the tickets whose lead unit it is now, as in the digest):

- received: tickets filed in the period;
- on-time acceptance: of the acceptances in the period that had an acceptance deadline, the
  share made by it (`accepted_at <= accept_by`);
- on-time resolution: of the tickets resolved in the period that had a resolution deadline,
  the share resolved by it;
- median hours to resolve: filing to (last) resolution, over the tickets resolved in the
  period;
- satisfaction: the ratings given in the period: how many, their average and the count of
  each 1–5;
- reopen rate: of the resolutions in the period (changes of status to `resolved`), the share
  the citizen reopened afterwards.

Privacy: no text, no code, no place finer than the ward (a ward unit's code). Every figure
says how many tickets (or ratings) it is computed over, its `base`; a figure whose base is
above 0 and below `CIVICBOT_SCORECARD_MIN_TICKETS` is suppressed: no value, no base, only the
reason. No city-wide total is published, so a suppressed cell cannot be had by subtraction.

The league table ranks the wards whose on-time resolution rate is published: by that rate,
then the average satisfaction, then the on-time acceptance rate (highest first; a figure not
published counts as lowest), then the median time to resolve (shortest first), then the name.
Wards without a published on-time resolution rate are listed after, without a place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session

from bot.digest.aggregate import (
    BY_UNIT,
    NO_RATINGS,
    TICKET,
    UNIT,
    Digest,
    IsoWeek,
    LeagueStanding,
    ProcedureQuestions,
    _cells,
    _Frozen,
    _median_hours,
    _ratings,
    _resolutions,
    as_tz,
    weekly_digest,
)
from storage.models import Unit, UnitKind, utcnow

PeriodKind = Literal["month", "quarter"]
_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")
_QUARTER = re.compile(r"^\s*(\d{4})-?Q([1-4])\s*$", re.IGNORECASE)
ROMAN = ("I", "II", "III", "IV")
FEW_TICKETS = "few_tickets"
PUBLISHED_KINDS = (UnitKind.ward.value, UnitKind.city.value, UnitKind.company.value)


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month ("2026-11") or quarter ("2026-Q4") in local time."""

    kind: PeriodKind
    year: int
    number: int  # the month 1–12 or the quarter 1–4

    def __post_init__(self) -> None:
        if not 1 <= self.number <= (12 if self.kind == "month" else 4):
            raise ValueError(f"No {self.kind} {self.number}.")
        if not 2000 <= self.year <= 9998:
            raise ValueError(f"Year out of range: {self.year}.")

    def __str__(self) -> str:
        if self.kind == "month":
            return f"{self.year}-{self.number:02d}"
        return f"{self.year}-Q{self.number}"

    @property
    def title(self) -> str:
        """In Vietnamese: "Tháng 11/2026", "Quý IV/2026"."""
        if self.kind == "month":
            return f"Tháng {self.number}/{self.year}"
        return f"Quý {ROMAN[self.number - 1]}/{self.year}"

    @property
    def first_day(self) -> date:
        month = self.number if self.kind == "month" else 3 * self.number - 2
        return date(self.year, month, 1)

    def next(self) -> Period:
        last = 12 if self.kind == "month" else 4
        if self.number == last:
            return Period(self.kind, self.year + 1, 1)
        return Period(self.kind, self.year, self.number + 1)

    def previous(self) -> Period:
        if self.number == 1:
            return Period(self.kind, self.year - 1, 12 if self.kind == "month" else 4)
        return Period(self.kind, self.year, self.number - 1)

    def bounds(self, tz: Any) -> tuple[datetime, datetime]:
        """Its first moment and the first moment after it, local time (aware)."""
        zone = as_tz(tz)
        return (
            datetime.combine(self.first_day, time(0), tzinfo=zone),
            datetime.combine(self.next().first_day, time(0), tzinfo=zone),
        )

    @classmethod
    def containing(cls, moment: datetime, kind: PeriodKind, tz: Any) -> Period:
        day = moment.astimezone(as_tz(tz)).date()
        number = day.month if kind == "month" else (day.month - 1) // 3 + 1
        return cls(kind, day.year, number)

    def recent(self, count: int) -> list[Period]:
        """The `count` periods ending with this one, oldest first."""
        periods = [self]
        while len(periods) < count:
            periods.append(periods[-1].previous())
        return periods[::-1]


def parse_period(text: str) -> Period:
    """ "2026-11" (a month) or "2026-Q4" (a quarter); ValueError otherwise."""
    if match := _MONTH.match(text):
        return Period("month", int(match[1]), int(match[2]))
    if match := _QUARTER.match(text):
        return Period("quarter", int(match[1]), int(match[2]))
    raise ValueError(f"Not a month or quarter (expected e.g. 2026-11 or 2026-Q4): {text!r}")


# --- Figures ------------------------------------------------------------------------------


class Figure(_Frozen):
    """One published number and the count it is computed over; when suppressed, neither."""

    value: int | float | None
    base: int | None
    suppressed: str | None = None  # why it is not published: "few_tickets"


class UnitScore(_Frozen):
    """One unit's figures over one period; `rank` is its place among the wards (or None)."""

    unit_id: str
    name: str
    kind: str
    ward_code: str | None
    rank: int | None = None
    received: Figure
    on_time_acceptance: Figure
    on_time_resolution: Figure
    median_hours_to_resolve: Figure
    ratings: Figure
    satisfaction: Figure
    distribution: dict[str, int] | None
    reopen_rate: Figure


class Scorecard(_Frozen):
    """The scorecard of one period; `model_dump(mode="json")` is its JSON."""

    period: str
    kind: PeriodKind
    title: str
    timezone: str
    period_start: datetime
    period_end: datetime
    complete: bool  # False while the period runs (figures up to `period_end`, now)
    min_tickets: int
    wards: tuple[UnitScore, ...]  # the league: ranked wards first, in order
    city_bodies: tuple[UnitScore, ...]


class UnitHistory(_Frozen):
    """One unit's scores over recent months and quarters (for its page and chart)."""

    unit_id: str
    name: str
    kind: str
    timezone: str
    min_tickets: int
    months: tuple[tuple[str, str, UnitScore], ...]  # (period, title, score)
    quarters: tuple[tuple[str, str, UnitScore], ...]


def figure(value: float | None, base: int, min_tickets: int) -> Figure:
    """`value` over `base` tickets, suppressed when 0 < base < min_tickets."""
    if 0 < base < min_tickets:
        return Figure(value=None, base=None, suppressed=FEW_TICKETS)
    return Figure(value=value, base=base)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class _UnitRow:
    id: str
    name: str
    kind: str
    ward_code: str | None


def _units(session: Session, unit_id: str | None = None) -> list[_UnitRow]:
    statement = sa.select(UNIT.c.id, UNIT.c.name, UNIT.c.kind, UNIT.c.ward_code).where(
        UNIT.c.active, UNIT.c.kind.in_(PUBLISHED_KINDS)
    )
    if unit_id is not None:
        statement = statement.where(UNIT.c.id == unit_id)
    return [_UnitRow(*row) for row in session.connection().execute(statement.order_by(UNIT.c.id))]


def _scores(
    session: Session,
    units: Iterable[_UnitRow],
    start: datetime,
    end: datetime,
    min_tickets: int,
    unit_id: str | None = None,
) -> list[UnitScore]:
    """Every unit's score over [start, end): four grouped queries for all units together."""
    conn = session.connection()
    cells = _cells(conn, start, end, unit_id, by=BY_UNIT, with_open=False)
    medians = _median_hours(conn, TICKET.c.resolved_at, start, end, unit_id, by=BY_UNIT)
    ratings = _ratings(conn, start, end, unit_id, by=BY_UNIT)
    resolutions = _resolutions(conn, start, end, unit_id, by=BY_UNIT)
    scores = []
    for unit in units:
        key = (unit.id,)
        cell = cells.get(key)
        received = cell.received if cell else 0
        accept_base = cell.accepted_with_deadline if cell else 0
        resolve_base = cell.with_deadline if cell else 0
        resolved = cell.resolved if cell else 0
        rated = ratings.get(key, NO_RATINGS)
        resolutions_made, reopened = resolutions.get(key, (0, 0))
        satisfaction = figure(rated.average, rated.ratings, min_tickets)
        scores.append(
            UnitScore(
                unit_id=unit.id,
                name=unit.name,
                kind=unit.kind,
                ward_code=unit.ward_code if unit.kind == UnitKind.ward.value else None,
                received=figure(received, received, min_tickets),
                on_time_acceptance=figure(
                    _rate(cell.accepted_on_time if cell else 0, accept_base),
                    accept_base,
                    min_tickets,
                ),
                on_time_resolution=figure(
                    _rate(cell.on_time if cell else 0, resolve_base), resolve_base, min_tickets
                ),
                median_hours_to_resolve=figure(medians.get(key), resolved, min_tickets),
                ratings=figure(rated.ratings, rated.ratings, min_tickets),
                satisfaction=satisfaction,
                distribution=None if satisfaction.suppressed else dict(rated.distribution),
                reopen_rate=figure(
                    _rate(reopened, resolutions_made), resolutions_made, min_tickets
                ),
            )
        )
    return scores


def _league_key(score: UnitScore) -> tuple[float, float, float, float, str, str]:
    def high(f: Figure) -> float:
        return -(f.value if f.value is not None else -1.0)

    def low(f: Figure) -> float:
        return f.value if f.value is not None else float("inf")

    return (
        high(score.on_time_resolution),
        high(score.satisfaction),
        high(score.on_time_acceptance),
        low(score.median_hours_to_resolve),
        score.name,
        score.unit_id,
    )


def league(scores: Iterable[UnitScore]) -> list[UnitScore]:
    """Wards in league order with their places; those that cannot be ranked after, by name."""
    wards = [s for s in scores if s.kind == UnitKind.ward.value]
    ranked = sorted((s for s in wards if s.on_time_resolution.value is not None), key=_league_key)
    unranked = sorted(
        (s for s in wards if s.on_time_resolution.value is None), key=lambda s: (s.name, s.unit_id)
    )
    places = [s.model_copy(update={"rank": i}) for i, s in enumerate(ranked, start=1)]
    return [*places, *unranked]


def league_between(
    *, session: Session, start: datetime, end: datetime, min_tickets: int
) -> list[UnitScore]:
    """The league table of wards over [start, end) (for the digest's weeks too)."""
    units = [u for u in _units(session) if u.kind == UnitKind.ward.value]
    return league(_scores(session, units, start, end, min_tickets))


def _period_end(period: Period, tz: Any, now: datetime | None) -> tuple[datetime, datetime, bool]:
    start, end = period.bounds(tz)
    moment = (now or utcnow()).astimezone(as_tz(tz))
    return start, min(end, moment), moment >= end


def scorecard(
    *,
    session: Session,
    period: Period,
    tz: Any,
    min_tickets: int,
    now: datetime | None = None,
) -> Scorecard:
    """The public scorecard of `period` (a period still running: up to `now`)."""
    start, end, complete = _period_end(period, tz, now)
    units = _units(session)
    scores = _scores(session, units, start, end, min_tickets)
    bodies = sorted((s for s in scores if s.kind != UnitKind.ward.value), key=lambda s: s.name)
    return Scorecard(
        period=str(period),
        kind=period.kind,
        title=period.title,
        timezone=str(as_tz(tz)),
        period_start=start,
        period_end=end,
        complete=complete,
        min_tickets=min_tickets,
        wards=tuple(league(scores)),
        city_bodies=tuple(bodies),
    )


class UnknownPublicUnit(LookupError):
    """No active ward, city body or company has this id."""


def unit_history(
    *,
    session: Session,
    unit_id: str,
    tz: Any,
    min_tickets: int,
    months: int = 12,
    quarters: int = 4,
    now: datetime | None = None,
) -> UnitHistory:
    """One unit's scores over the last `months` months and `quarters` quarters (the current
    ones included, up to now). A ward's place is not here: it needs every ward's figures."""
    found = _units(session, unit_id)
    if not found:
        raise UnknownPublicUnit(unit_id)
    unit = found[0]
    moment = now or utcnow()

    def series(kind: PeriodKind, count: int) -> tuple[tuple[str, str, UnitScore], ...]:
        rows = []
        for period in Period.containing(moment, kind, tz).recent(count):
            start, end, _complete = _period_end(period, tz, moment)
            score = _scores(session, found, start, end, min_tickets, unit_id=unit_id)[0]
            rows.append((str(period), period.title, score))
        return tuple(rows)

    return UnitHistory(
        unit_id=unit.id,
        name=unit.name,
        kind=unit.kind,
        timezone=str(as_tz(tz)),
        min_tickets=min_tickets,
        months=series("month", months),
        quarters=series("quarter", quarters),
    )


# --- The weekly digest's league places ------------------------------------------------------

LEAGUE_WEEKS = 4


def league_standings(
    *,
    session: Session,
    week: IsoWeek,
    tz: Any,
    min_tickets: int,
    now: datetime | None = None,
) -> dict[str, LeagueStanding]:
    """Every ward's place over the `LEAGUE_WEEKS` weeks ending with `week` (up to `now` while
    it runs) and over the as many weeks before: two league tables for all the week's digests."""
    zone = as_tz(tz)
    first = IsoWeek.of(week.monday - timedelta(weeks=LEAGUE_WEEKS - 1))
    before = IsoWeek.of(first.monday - timedelta(weeks=LEAGUE_WEEKS))
    start = first.start(zone)
    end = min(week.end(zone), (now or utcnow()).astimezone(zone))
    current = league_between(session=session, start=start, end=end, min_tickets=min_tickets)
    previous = {
        s.unit_id: s
        for s in league_between(
            session=session, start=before.start(zone), end=start, min_tickets=min_tickets
        )
    }
    ranked = sum(1 for s in current if s.rank is not None)
    previous_ranked = sum(1 for s in previous.values() if s.rank is not None)
    standings = {}
    for score in current:
        earlier = previous.get(score.unit_id)
        standings[score.unit_id] = LeagueStanding(
            weeks=LEAGUE_WEEKS,
            place=score.rank,
            ranked=ranked,
            previous_place=earlier.rank if earlier else None,
            previous_ranked=previous_ranked,
            on_time_rate=_as_float(score.on_time_resolution.value),
            previous_on_time_rate=_as_float(earlier.on_time_resolution.value) if earlier else None,
            satisfaction=_as_float(score.satisfaction.value),
            previous_satisfaction=_as_float(earlier.satisfaction.value) if earlier else None,
        )
    return standings


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def digest_with_league(
    *,
    session: Session,
    week: IsoWeek,
    unit_id: str | None,
    tz: Any,
    min_tickets: int,
    now: datetime | None = None,
    procedures: ProcedureQuestions | None = None,
    standings: Mapping[str, LeagueStanding] | None = None,
) -> Digest:
    """The weekly digest (`weekly_digest`), with a ward's place in the league and its trend.
    `standings`: `league_standings` of the week, when already computed (a run over units)."""
    if standings is None and unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is not None and unit.kind == UnitKind.ward:
            standings = league_standings(
                session=session, week=week, tz=tz, min_tickets=min_tickets, now=now
            )
    return weekly_digest(
        session=session,
        week=week,
        unit_id=unit_id,
        tz=tz,
        now=now,
        procedures=procedures,
        standings=standings,
    )
