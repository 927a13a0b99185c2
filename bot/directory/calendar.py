"""Working time in Hà Nội: working days, office hours, and deadlines counted in them.

Working days are Monday to Friday, minus Vietnam's public holidays as the `holidays` package
(`holidays.Vietnam`) lists them, plus the Saturdays the government swaps in as working days.
For 2026 (holidays 0.109) that is: 1/1 (Tết Dương lịch); Tết Nguyên Đán 16–20/2 (giao thừa to
mùng bốn); Giỗ Tổ Hùng Vương 26/4 (a Sunday) with its substitute day 27/4; 30/4 and 1/5;
31/8 (a day off swapped with Saturday 22/8, which becomes a working day); Quốc khánh 1–2/9;
and Ngày Văn hóa Việt Nam 24/11. Days the package does not know yet (a late government
decision) go in `extra_holidays` / `extra_workdays`, which win over the package.

24/11 (Ngày Văn hóa Việt Nam) is NOT a day off here by default (`unconfirmed_holidays`):
the package cites only the Politburo's Nghị quyết 80-NQ/TW, which states the intent; the
public holidays are those of Bộ luật Lao động 2019, Điều 112, and as of what is reachable here
(Nghị quyết 30/NQ-CP of February 2026 asks for that article to be amended; no amending law
found) the article lists 11 days without 24/11. Set CIVICBOT_UNCONFIRMED_HOLIDAYS='[]' once
the amended article is in force (docs/service-levels.md).

Working hours are the office periods of each working day in local time, 08:00–12:00 and
13:00–17:00 by default (the lunch break does not count).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from bot.config import DEFAULT_UNCONFIRMED_HOLIDAYS, Settings

DEFAULT_PERIODS: tuple[tuple[time, time], ...] = (
    (time(8, 0), time(12, 0)),
    (time(13, 0), time(17, 0)),
)

# No calendar has a year without working days; this only stops a misconfigured one looping.
_MAX_DAYS_SEARCHED = 3660


class WorkingCalendar:
    """Working days and office periods in one time zone."""

    def __init__(
        self,
        tz: ZoneInfo,
        periods: Sequence[tuple[time, time]] = DEFAULT_PERIODS,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        unconfirmed_holidays: Iterable[str] = DEFAULT_UNCONFIRMED_HOLIDAYS,
    ) -> None:
        self.tz = tz
        self.periods = tuple(sorted(periods))
        if not self.periods:
            raise ValueError("A working calendar needs at least one working period.")
        for (start, end), following in zip(self.periods, (*self.periods[1:], None), strict=True):
            if start >= end:
                raise ValueError(f"Working period {start}–{end} ends before it starts.")
            if following is not None and following[0] < end:
                raise ValueError(f"Working periods overlap at {following[0]}.")
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        self.unconfirmed_holidays = tuple(unconfirmed_holidays)
        self._vietnam = holidays.country_holidays("VN", language="vi")
        self._cache: dict[date, bool] = {}

    @classmethod
    def from_settings(cls, config: Settings) -> WorkingCalendar:
        """The calendar CIVICBOT_TIMEZONE and the work-period settings describe."""
        return cls(
            ZoneInfo(config.timezone),
            periods=config.work_periods,
            extra_holidays=config.extra_holidays,
            extra_workdays=config.extra_workdays,
            unconfirmed_holidays=config.unconfirmed_holidays,
        )

    def holiday_name(self, day: date) -> str | None:
        """The public holiday on `day` per `holidays.Vietnam`, or None."""
        name: str | None = self._vietnam.get(day)
        return name

    def is_working_day(self, day: date) -> bool:
        """Whether offices work on `day` (a local date)."""
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        if day in self.extra_holidays:
            working = False
        elif day in self.extra_workdays:
            working = True
        elif self._only_unconfirmed(day):
            working = day.weekday() < 5
        else:
            _ = day in self._vietnam  # fills the year first, swapped Saturdays included
            working = self._vietnam.is_working_day(day)
        self._cache[day] = working
        return working

    def _only_unconfirmed(self, day: date) -> bool:
        """Whether every holiday the package lists on `day` is unconfirmed (or its day off)."""
        names = self._vietnam.get_list(day)
        return bool(names) and all(
            any(name.startswith(u) for u in self.unconfirmed_holidays) for name in names
        )

    def _intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working intervals (local, aware) that end after `start`, in order."""
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(_MAX_DAYS_SEARCHED):
            if self.is_working_day(day):
                for begin, end in self.periods:
                    interval = (
                        datetime.combine(day, begin, tzinfo=self.tz),
                        datetime.combine(day, end, tzinfo=self.tz),
                    )
                    if interval[1] > local:
                        yield interval
            day += timedelta(days=1)
        raise ValueError("No working day within ten years: check the calendar's settings.")

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` working hours after `start` (aware UTC).

        Outside working time the count starts with the next working period; a count that ends
        exactly at the end of a period ends there (08:00 + 4 h is 12:00, not 13:00).
        """
        _require_aware(start)
        if hours < 0:
            raise ValueError("Working hours to add must not be negative.")
        remaining = timedelta(hours=hours)
        for begin, end in self._intervals(start):
            begin = max(begin, start)
            if remaining <= end - begin:
                return (begin + remaining).astimezone(UTC)
            remaining -= end - begin
        raise AssertionError("unreachable: _intervals raises when it runs out")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end of the working time of the `days`-th working day after `start` (aware UTC).

        The rule citizens are told: the day of filing is not counted, whatever the hour (as
        in Bộ luật Dân sự 2015, Điều 147: a period in days starts the next day), so day 1 is
        the first working day after the local date of `start`; the period ends when that
        day's last working period ends (17:00). Filed Monday 10:00 or Monday 20:00 or Sunday,
        one working day ends Tuesday 17:00 (Monday 17:00 for the Sunday).
        """
        _require_aware(start)
        if days < 1:
            raise ValueError("A period in working days is at least one day.")
        day = start.astimezone(self.tz).date()
        counted = 0
        for _ in range(_MAX_DAYS_SEARCHED * max(1, days)):
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    closing = datetime.combine(day, self.periods[-1][1], tzinfo=self.tz)
                    return closing.astimezone(UTC)
        raise ValueError("No working day within ten years: check the calendar's settings.")

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working hours from `a` to `b` (negative when `b` is earlier)."""
        _require_aware(a)
        _require_aware(b)
        if b < a:
            return -self.working_hours_between(b, a)
        total = timedelta()
        for begin, end in self._intervals(a):
            if begin >= b:
                break
            total += min(end, b) - max(begin, a)
        return total / timedelta(hours=1)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"A timezone-aware datetime is needed, not {moment!r}.")
