"""Working-time calendar and service levels: weekends, Vietnamese public holidays, office hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.directory.calendar import WorkingCalendar
from bot.directory.deadlines import deadlines_for, format_expected, handled_by, severity_for
from storage.models import Severity

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HANOI)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    """Every holiday `holidays.Vietnam` lists, 24/11 included: the arithmetic's examples."""
    return WorkingCalendar(HANOI, unconfirmed_holidays=())


@pytest.fixture(scope="module")
def app_calendar() -> WorkingCalendar:
    """The calendar of the default settings (24/11 a working day)."""
    return WorkingCalendar.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


# --- Working days ----------------------------------------------------------------------------


def test_vietnamese_public_holidays_of_2026(app_calendar: WorkingCalendar) -> None:
    calendar = app_calendar
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    holidays_2026 = {d: calendar.holiday_name(d) for d in days if calendar.holiday_name(d)}
    print("\nholidays.Vietnam, 2026:")
    for day, name in holidays_2026.items():
        working = "làm việc" if calendar.is_working_day(day) else "nghỉ"
        print(f"  {day} {day:%a} {name} ({working})")
    assert sorted(holidays_2026) == [
        date(2026, 1, 1),
        *(date(2026, 2, d) for d in range(16, 21)),  # Tết: giao thừa to mùng bốn
        date(2026, 4, 26),  # Giỗ Tổ Hùng Vương, a Sunday ...
        date(2026, 4, 27),  # ... and its substitute Monday
        date(2026, 4, 30),
        date(2026, 5, 1),
        date(2026, 8, 31),  # swapped with Saturday 22/8
        date(2026, 9, 1),
        date(2026, 9, 2),
        date(2026, 11, 24),  # Ngày Văn hóa Việt Nam: listed, but unconfirmed by law
    ]
    days_off = [d for d in holidays_2026 if d != date(2026, 11, 24)]
    assert not any(calendar.is_working_day(d) for d in days_off)
    assert calendar.is_working_day(date(2026, 11, 24))


def test_the_24_november_holiday_is_left_out_by_configuration() -> None:
    """Bộ luật Lao động 2019, Điều 112 (as found here) does not list 24/11: a working day
    unless the operator says the law now does (CIVICBOT_UNCONFIRMED_HOLIDAYS='[]')."""
    assert Settings(_env_file=None).unconfirmed_holidays == ("Ngày Văn hóa Việt Nam",)  # type: ignore[call-arg]
    for year in (2026, 2027, 2028):
        assert WorkingCalendar(HANOI).is_working_day(date(year, 11, 24))
    confirmed = WorkingCalendar.from_settings(
        Settings(unconfirmed_holidays=(), _env_file=None)  # type: ignore[call-arg]
    )
    assert not confirmed.is_working_day(date(2026, 11, 24))
    # 2029: 24/11 is a Saturday and the package gives Monday 26/11 off for it
    assert not confirmed.is_working_day(date(2029, 11, 26))
    assert WorkingCalendar(HANOI).is_working_day(date(2029, 11, 26))
    # a real holiday is never dropped by the default
    assert not WorkingCalendar(HANOI).is_working_day(date(2026, 9, 2))


def test_working_days(calendar: WorkingCalendar) -> None:
    assert calendar.is_working_day(date(2026, 11, 23))  # Monday
    assert not calendar.is_working_day(date(2026, 11, 21))  # Saturday
    assert not calendar.is_working_day(date(2026, 11, 22))  # Sunday
    assert not calendar.is_working_day(date(2026, 11, 24))  # Tuesday, as the package lists it
    assert not calendar.is_working_day(date(2026, 9, 2))
    assert not calendar.is_working_day(date(2026, 2, 18))  # mùng hai Tết
    assert calendar.is_working_day(date(2026, 8, 22))  # a Saturday worked for 31/8
    assert calendar.working_hours_between(local(2026, 8, 22, 0), local(2026, 8, 23, 0)) == 8.0


def test_extra_holidays_and_workdays_win_over_the_package() -> None:
    custom = WorkingCalendar(
        HANOI, extra_holidays=[date(2026, 11, 23)], extra_workdays=[date(2026, 9, 1)]
    )
    assert not custom.is_working_day(date(2026, 11, 23))
    assert custom.is_working_day(date(2026, 9, 1))
    settings = Settings(extra_holidays=(date(2026, 12, 31),), _env_file=None)  # type: ignore[call-arg]
    assert not WorkingCalendar.from_settings(settings).is_working_day(date(2026, 12, 31))


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(HANOI, periods=())
    with pytest.raises(ValueError):
        WorkingCalendar(HANOI, periods=[(time(12), time(8))])
    with pytest.raises(ValueError):
        WorkingCalendar(HANOI, periods=[(time(8), time(12)), (time(11), time(17))])


# --- Working hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (local(2026, 11, 23, 8), 4, local(2026, 11, 23, 12)),  # ends at the period's end
        (local(2026, 11, 23, 10), 4, local(2026, 11, 23, 15)),  # lunch does not count
        (local(2026, 11, 23, 12, 30), 1, local(2026, 11, 23, 14)),  # filed at lunch
        (local(2026, 11, 23, 6), 8, local(2026, 11, 23, 17)),  # filed before opening
        (local(2026, 11, 20, 15), 4, local(2026, 11, 23, 10)),  # Friday, over the weekend
        (local(2026, 11, 20, 15), 8, local(2026, 11, 23, 15)),
        # Friday 15:00 + 12 h: Monday, then Tuesday 24/11 is a holiday, then Wednesday.
        (local(2026, 11, 20, 15), 12, local(2026, 11, 25, 10)),
        (local(2026, 11, 23, 18), 4, local(2026, 11, 25, 12)),  # after hours, before a holiday
        (local(2026, 11, 22, 10), 4, local(2026, 11, 23, 12)),  # on a Sunday
        (local(2026, 2, 13, 16), 8, local(2026, 2, 23, 16)),  # Friday before Tết
        (local(2026, 8, 28, 16), 2, local(2026, 9, 3, 9)),  # 31/8, 1/9, 2/9 off
        (local(2026, 11, 23, 9, 15), 0.5, local(2026, 11, 23, 9, 45)),
        (local(2026, 11, 21, 9), 0, local(2026, 11, 23, 8)),  # zero hours: next opening
    ],
)
def test_add_working_hours(
    calendar: WorkingCalendar, start: datetime, hours: float, expected: datetime
) -> None:
    result = calendar.add_working_hours(start, hours)
    assert result == expected
    assert result.tzinfo is UTC
    if calendar.is_working_day(start.date()) and time(8) <= start.time() <= time(11):
        assert calendar.working_hours_between(start, result) == pytest.approx(hours)


def test_add_working_hours_accepts_any_timezone(calendar: WorkingCalendar) -> None:
    start_utc = local(2026, 11, 20, 15).astimezone(UTC)  # 08:00 UTC
    assert calendar.add_working_hours(start_utc, 8) == local(2026, 11, 23, 15)


def test_naive_datetimes_are_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError):
        calendar.add_working_hours(datetime(2026, 11, 23, 9), 1)
    with pytest.raises(ValueError):
        calendar.add_working_days(datetime(2026, 11, 23, 9), 1)
    with pytest.raises(ValueError):
        calendar.add_working_hours(local(2026, 11, 23, 9), -1)


def test_working_hours_between(calendar: WorkingCalendar) -> None:
    friday = local(2026, 11, 20, 15)
    # Friday 2 h, Monday 8 h, Tuesday (holiday) 0, Wednesday 08:00-09:30 1.5 h.
    assert calendar.working_hours_between(friday, local(2026, 11, 25, 9, 30)) == 11.5
    assert calendar.working_hours_between(local(2026, 11, 25, 9, 30), friday) == -11.5
    assert calendar.working_hours_between(local(2026, 11, 21, 8), local(2026, 11, 22, 20)) == 0
    assert calendar.working_hours_between(local(2026, 11, 23, 12), local(2026, 11, 23, 13)) == 0


def test_custom_work_periods() -> None:
    short = WorkingCalendar(HANOI, periods=[(time(7, 30), time(11, 30))], unconfirmed_holidays=())
    assert short.add_working_hours(local(2026, 11, 23, 11), 1) == local(2026, 11, 25, 8)
    assert short.add_working_days(local(2026, 11, 23, 11), 1) == local(2026, 11, 25, 11, 30)


# --- Working days as deadlines ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (local(2026, 11, 23, 10), 1, local(2026, 11, 25, 17)),  # Monday; Tuesday is a holiday
        (local(2026, 11, 25, 10), 1, local(2026, 11, 26, 17)),  # the filing day never counts
        (local(2026, 11, 25, 20), 1, local(2026, 11, 26, 17)),  # nor after hours
        (local(2026, 11, 25, 6), 1, local(2026, 11, 26, 17)),  # nor before opening
        (local(2026, 11, 22, 10), 1, local(2026, 11, 23, 17)),  # Sunday: Monday is day 1
        (local(2026, 11, 19, 10), 5, local(2026, 11, 27, 17)),  # Thursday, over both
        (local(2026, 11, 20, 10), 5, local(2026, 11, 30, 17)),
        (local(2026, 11, 20, 10), 15, local(2026, 12, 14, 17)),
        (local(2026, 2, 13, 10), 1, local(2026, 2, 23, 17)),  # over Tết
        (local(2026, 8, 21, 10), 1, local(2026, 8, 22, 17)),  # the Saturday worked
    ],
)
def test_add_working_days(
    calendar: WorkingCalendar, start: datetime, days: int, expected: datetime
) -> None:
    result = calendar.add_working_days(start, days)
    assert result == expected
    assert result.tzinfo is UTC


# --- Service levels ---------------------------------------------------------------------------


def test_severity_by_category() -> None:
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    assert severity_for("fire_safety", config) is Severity.urgent
    assert severity_for("water", config) is Severity.urgent
    assert severity_for("construction", config) is Severity.complex
    assert severity_for("misconduct", config) is Severity.complex
    assert severity_for("sidewalk", config) is Severity.normal
    assert severity_for(None, config) is Severity.normal
    assert severity_for("no_such_category", config) is Severity.normal


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("traffic", "Có tai nạn giao thông ở ngã tư Sở, hai xe máy đâm nhau"),
        ("infrastructure", "cay do chan ngang duong Lang, rat nguy hiem"),
        ("infrastructure", "Dây điện đứt rơi xuống vỉa hè phố Huế"),
        ("other", "Có nhóm người đánh nhau trước cổng chợ"),
        ("sidewalk", "Nắp hố ga mất nắp cống, trẻ con đi qua rất nguy hiểm"),
        ("construction", "Công trình có nguy cơ sập giàn giáo ra đường"),
        ("other", "Cướp giật điện thoại liên tục ở đầu ngõ"),
    ],
)
def test_accidents_and_dangers_are_urgent_whatever_the_category(category: str, text: str) -> None:
    """1207/QĐ-UBND: urgent covers accidents and dangers to safety, security and order."""
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    assert severity_for(category, config) is not Severity.urgent
    assert severity_for(category, config, text) is Severity.urgent


ORDINARY = (
    "Đổ rác bừa bãi ở đầu ngõ",
    "Vỉa hè bị lấn chiếm bán hàng",
    "Đèn đường hỏng ba hôm nay",
    "ổ gà trên đường Giải Phóng",
    "hàng xóm hát karaoke đến 12 giờ đêm",
)


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_reports_stay_at_their_category_level(text: str) -> None:
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    assert severity_for("sidewalk", config, text) is Severity.normal
    no_words = Settings(urgent_words=(), _env_file=None)  # type: ignore[call-arg]
    assert severity_for("sidewalk", no_words, "tai nạn nguy hiểm") is Severity.normal


def test_deadlines_across_a_weekend(app_calendar: WorkingCalendar) -> None:
    calendar = app_calendar
    """1207/QĐ-UBND: every level accepted within 8 working hours; urgent handled within 4
    working hours after acceptance (counted from the latest acceptance allowed)."""
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    filed = local(2026, 11, 20, 14)  # Friday
    urgent = deadlines_for(category="water", filed_at=filed, calendar=calendar, config=config)
    assert urgent.severity is Severity.urgent
    assert urgent.accept_by == local(2026, 11, 23, 14)  # 3 h Friday + 5 h Monday (lunch off)
    assert urgent.resolve_by == local(2026, 11, 24, 9)  # + 3 h Monday + 1 h Tuesday
    normal = deadlines_for(category="sidewalk", filed_at=filed, calendar=calendar, config=config)
    assert normal.accept_by == local(2026, 11, 23, 14)
    assert normal.resolve_by == local(2026, 11, 27, 17)  # Tuesday 24/11 counted
    complex_ = deadlines_for(
        category="construction", filed_at=filed, calendar=calendar, config=config
    )
    assert (complex_.accept_by, complex_.resolve_by) == (
        local(2026, 11, 23, 14),
        local(2026, 12, 11, 17),
    )
    sign = "Tấm biển quảng cáo sắp đổ, có nguy cơ sập xuống vỉa hè"
    danger = deadlines_for(
        category="sidewalk", filed_at=filed, calendar=calendar, config=config, text=sign
    )
    assert (danger.severity, danger.resolve_by) == (Severity.urgent, urgent.resolve_by)


def test_deadlines_across_a_holiday(app_calendar: WorkingCalendar) -> None:
    calendar = app_calendar
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    filed = local(2026, 8, 28, 16)  # Friday; Sat 22/8 worked, Mon 31/8 to Wed 2/9 off
    urgent = deadlines_for(category="fire_safety", filed_at=filed, calendar=calendar, config=config)
    assert urgent.accept_by == local(2026, 9, 3, 16)  # 1 h Friday + 7 h Thursday
    assert urgent.resolve_by == local(2026, 9, 4, 11)  # 1 h Thursday + 3 h Friday
    normal = deadlines_for(category="waste", filed_at=filed, calendar=calendar, config=config)
    assert normal.resolve_by == local(2026, 9, 9, 17)  # Thu 3, Fri 4, Mon 7, Tue 8, Wed 9


def test_handled_by_counts_from_the_acceptance(app_calendar: WorkingCalendar) -> None:
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    days_only = Settings(handle_hours={"urgent": None}, _env_file=None)  # type: ignore[call-arg]
    accepted = local(2026, 11, 27, 15)  # Friday 15:00: 2 h Friday, 2 h Monday
    due = local(2026, 11, 30, 10)
    later = local(2026, 12, 1, 9)

    def after(
        severity: Severity | None, current: datetime | None, cfg: Settings = config
    ) -> datetime | None:
        return handled_by(
            severity=severity,
            accepted_at=accepted,
            current=current,
            calendar=app_calendar,
            config=cfg,
        )

    assert after(Severity.urgent, None) == due
    assert after(Severity.urgent, later) == due
    assert after(Severity.urgent, due) is None  # never later than the filing deadline
    assert [after(s, later) for s in (Severity.normal, Severity.complex, None)] == [None] * 3
    assert after(Severity.urgent, later, days_only) is None


def test_config_overrides_merge_over_the_defaults(
    monkeypatch: pytest.MonkeyPatch, calendar: WorkingCalendar
) -> None:
    monkeypatch.setenv("CIVICBOT_SEVERITY_BY_CATEGORY", '{"traffic": "urgent"}')
    monkeypatch.setenv("CIVICBOT_ACCEPT_HOURS", '{"normal": 2}')
    monkeypatch.setenv("CIVICBOT_RESOLVE_DAYS", '{"urgent": 3}')
    monkeypatch.setenv("CIVICBOT_HANDLE_HOURS", '{"urgent": null}')  # urgent in days again
    monkeypatch.setenv("CIVICBOT_ESCALATION_STEP_HOURS", "4")
    monkeypatch.setenv("CIVICBOT_WORK_PERIODS", '[["07:30", "11:30"], ["13:30", "17:00"]]')
    config = Settings(_env_file=None)  # type: ignore[call-arg]
    assert config.severity_by_category["traffic"] == "urgent"
    assert config.severity_by_category["water"] == "urgent"  # default kept
    assert config.accept_hours == {"urgent": 8, "normal": 2, "complex": 8}
    assert config.handle_hours == {"urgent": None, "normal": None, "complex": None}
    assert config.resolve_days == {"urgent": 3, "normal": 5, "complex": 15}
    assert config.escalation_step_hours == 4
    assert config.work_periods == ((time(7, 30), time(11, 30)), (time(13, 30), time(17)))
    filed = local(2026, 11, 20, 14)
    traffic = deadlines_for(category="traffic", filed_at=filed, calendar=calendar, config=config)
    assert traffic.severity is Severity.urgent
    assert traffic.resolve_by == local(2026, 11, 26, 17)  # Mon, Wed, Thu
    sidewalk = deadlines_for(category="sidewalk", filed_at=filed, calendar=calendar, config=config)
    assert sidewalk.accept_by == local(2026, 11, 20, 16)
    own_hours = WorkingCalendar.from_settings(config)
    assert own_hours.add_working_hours(local(2026, 11, 23, 7), 4) == local(2026, 11, 23, 11, 30)


def test_bad_severity_in_config_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBOT_SEVERITY_BY_CATEGORY", '{"water": "very_urgent"}')
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_resolution_is_never_due_before_acceptance(calendar: WorkingCalendar) -> None:
    config = Settings(  # type: ignore[call-arg]
        accept_hours={"normal": 16}, resolve_days={"normal": 1}, _env_file=None
    )
    deadlines = deadlines_for(
        category="sidewalk", filed_at=local(2026, 11, 23, 9), calendar=calendar, config=config
    )
    assert deadlines.accept_by == local(2026, 11, 26, 9)
    assert deadlines.resolve_by == deadlines.accept_by


# --- What citizens read -----------------------------------------------------------------------


def test_format_expected() -> None:
    assert format_expected(local(2026, 11, 27, 17), HANOI) == "17:00 thứ Sáu, 27/11/2026"
    assert format_expected(local(2026, 11, 23, 9, 5), HANOI) == "09:05 thứ Hai, 23/11/2026"
    assert format_expected(local(2026, 11, 22, 8), HANOI) == "08:00 Chủ nhật, 22/11/2026"
    # Stored deadlines are UTC: shown in local time, on the local date.
    assert format_expected(datetime(2026, 11, 26, 23, 0, tzinfo=UTC), HANOI) == (
        "06:00 thứ Sáu, 27/11/2026"
    )
