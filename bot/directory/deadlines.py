"""Service levels: a ticket's severity and its deadlines in working time.

Modelled on Quyết định 1207/QĐ-UBND (28/02/2025) of Hà Nội, see bot/config.py: a ticket must
be accepted within `accept_hours[severity]` working hours of filing (8 for every level). A
level with `handle_hours` (urgent: 4) must then be handled within that many working hours of
acceptance: the deadline set at filing counts them from `accept_by` (the latest acceptance
allowed), and `handled_by` brings it forward when the ticket is accepted earlier. Other levels
are resolved by the end of the `resolve_days[severity]`-th working day after the day of filing
(see `WorkingCalendar.add_working_days` for the rule citizens are told). A report whose text
names an accident or a danger (`urgent_words`) is urgent whatever its category. Every figure
comes from `Settings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from civicbot_nlu.normalize import fold

from bot.config import (
    DEFAULT_ACCEPT_HOURS,
    DEFAULT_HANDLE_HOURS,
    DEFAULT_RESOLVE_DAYS,
    Settings,
    settings,
)
from bot.directory.calendar import WorkingCalendar
from storage.models import Severity

# Mid-sentence forms ("17:00 thứ Sáu, 27/11/2026"), Monday first as `date.weekday()`.
_WORD = re.compile(r"\w+")
WEEKDAY_NAMES = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
WEEKDAY_NAMES_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Deadlines:
    """What filing a ticket sets: its severity and both deadlines (aware UTC)."""

    severity: Severity
    accept_by: datetime
    resolve_by: datetime


def severity_for(
    category: str | None, config: Settings = settings, text: str | None = None
) -> Severity:
    """The severity of a report: urgent when its text names a danger, else its category's.

    Unknown or missing categories get the default.
    """
    if text and names_a_danger(text, config):
        return Severity.urgent
    name = config.severity_by_category.get(category or "", config.default_severity)
    return Severity(name)


def names_a_danger(text: str, config: Settings = settings) -> bool:
    """Whether the text holds one of `urgent_words` as whole words ("tai nạn", "nguy hiểm")."""
    words = " " + " ".join(_WORD.findall(fold(text))) + " "
    return any(f" {' '.join(w.split())} " in words for w in config.urgent_words if w.strip())


def deadlines_for(
    *,
    category: str | None,
    filed_at: datetime,
    calendar: WorkingCalendar,
    config: Settings = settings,
    text: str | None = None,
) -> Deadlines:
    """The severity and the accept/resolve deadlines of a ticket filed at `filed_at`."""
    severity = severity_for(category, config, text)
    name = severity
    hours = config.accept_hours.get(name, DEFAULT_ACCEPT_HOURS[name])
    accept_by = calendar.add_working_hours(filed_at, hours)
    handle = config.handle_hours.get(name, DEFAULT_HANDLE_HOURS[name])
    if handle is not None:
        resolve_by = calendar.add_working_hours(accept_by, handle)
    else:
        days = config.resolve_days.get(name, DEFAULT_RESOLVE_DAYS[name])
        # A resolution cannot be due before acceptance, whatever the settings say.
        resolve_by = max(calendar.add_working_days(filed_at, days), accept_by)
    return Deadlines(severity=severity, accept_by=accept_by, resolve_by=resolve_by)


def handled_by(
    *,
    severity: Severity | None,
    accepted_at: datetime,
    current: datetime | None,
    calendar: WorkingCalendar,
    config: Settings = settings,
) -> datetime | None:
    """The earlier resolve deadline an acceptance at `accepted_at` sets, or None.

    For a level handled within working hours of acceptance (urgent: 4), acceptance plus those
    hours; never later than the deadline set at filing (a late acceptance gains no time).
    """
    if severity is None:
        return None
    name = severity
    hours = config.handle_hours.get(name, DEFAULT_HANDLE_HOURS[name])
    if hours is None:
        return None
    due = calendar.add_working_hours(accepted_at, hours)
    return due if current is None or due < current else None


def format_expected(moment: datetime, tz: ZoneInfo, language: str = "vi") -> str:
    """A moment as citizens read it in local time: "17:00 thứ Sáu, 27/11/2026" (in English
    "17:00 Friday, 27/11/2026")."""
    local = moment.astimezone(tz)
    names = WEEKDAY_NAMES_EN if language == "en" else WEEKDAY_NAMES
    return f"{local:%H:%M} {names[local.weekday()]}, {local:%d/%m/%Y}"
