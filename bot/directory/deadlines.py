"""Service levels: a ticket's severity and its deadlines in working time.

A ticket must be accepted within `accept_hours[severity]` working hours of filing and resolved
by the end of the `resolve_days[severity]`-th working day after the day of filing (see
`WorkingCalendar.add_working_days` for the rule citizens are told). Both come from `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import (
    DEFAULT_ACCEPT_HOURS,
    DEFAULT_RESOLVE_DAYS,
    Settings,
    SeverityName,
    settings,
)
from bot.directory.calendar import WorkingCalendar
from storage.models import Severity

# Mid-sentence forms ("17:00 thứ Sáu, 27/11/2026"), Monday first as `date.weekday()`.
WEEKDAY_NAMES = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")


@dataclass(frozen=True)
class Deadlines:
    """What filing a ticket sets: its severity and both deadlines (aware UTC)."""

    severity: Severity
    accept_by: datetime
    resolve_by: datetime


def severity_for(category: str | None, config: Settings = settings) -> Severity:
    """The severity of a category; unknown or missing categories get the default."""
    name = config.severity_by_category.get(category or "", config.default_severity)
    return Severity(name)


def deadlines_for(
    *,
    category: str | None,
    filed_at: datetime,
    calendar: WorkingCalendar,
    config: Settings = settings,
) -> Deadlines:
    """The severity and the accept/resolve deadlines of a ticket filed at `filed_at`."""
    severity = severity_for(category, config)
    name: SeverityName = severity.value
    hours = config.accept_hours.get(name, DEFAULT_ACCEPT_HOURS[name])
    days = config.resolve_days.get(name, DEFAULT_RESOLVE_DAYS[name])
    accept_by = calendar.add_working_hours(filed_at, hours)
    # A resolution cannot be due before acceptance, whatever the settings say.
    resolve_by = max(calendar.add_working_days(filed_at, days), accept_by)
    return Deadlines(severity=severity, accept_by=accept_by, resolve_by=resolve_by)


def format_expected(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as citizens read it in local time: "17:00 thứ Sáu, 27/11/2026"."""
    local = moment.astimezone(tz)
    return f"{local:%H:%M} {WEEKDAY_NAMES[local.weekday()]}, {local:%d/%m/%Y}"
