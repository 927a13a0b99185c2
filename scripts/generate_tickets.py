"""Fill a database with a realistic stretch of complaints, for the digest and its benchmark.

    .venv/bin/python scripts/generate_tickets.py URL [--tickets 1000000] [--days 365]
        [--end 2026-11-23T08:00] [--seed 1] [--questions 0.6]

URL is a SQLAlchemy URL (`postgresql+psycopg://…` or `sqlite:///…`); the database is migrated
first and must hold no tickets. What it writes:

- units: the 126 wards and communes of the 2025 map (`ubnd-<ward code>`, from the gazetteer of
  bot/nlu/location.py) and the city bodies of the bundled directory; a handler and a supervisor
  per unit and two city leaders, linked to made-up chats;
- `--tickets` tickets filed over the `--days` days before `--end`, more on weekdays and in
  office hours, more in the rainy season, fewer around Tết; wards weighted (central wards
  busier); categories in realistic shares, routed as the directory's rules do;
- each ticket's life up to `--end`, with its audit trail: acceptance (sometimes late),
  questions to the citizen, transfers, rejections, resolution by severity (urgent, normal,
  complex deadlines in working hours), ratings that close tickets, reopenings, and a few
  tickets left stuck (overdue);
- `--questions` × tickets procedure questions (incoming messages with the NLU's JSON).

The same arguments give the same rows on SQLite and PostgreSQL. PostgreSQL is loaded with COPY,
SQLite with multi-row INSERTs, in batches; PostgreSQL is vacuumed and analysed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))  # make_units_file: the bundled directory's bodies

from make_units_file import BODIES  # noqa: E402

from bot.config import (  # noqa: E402
    DEFAULT_ACCEPT_HOURS,
    DEFAULT_RESOLVE_DAYS,
    DEFAULT_SEVERITY_BY_CATEGORY,
)
from bot.nlu.location import gazetteer  # noqa: E402
from storage import migrate  # noqa: E402
from storage.db import create_db_engine  # noqa: E402
from storage.models import (  # noqa: E402
    Message,
    Official,
    Ticket,
    TicketCounter,
    TicketEvent,
    Unit,
)
from storage.queries import format_ticket_code  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
BATCH = 20_000
HOUR = 3600.0

# The city bodies of the bundled directory, as (id, name, kind, parent, intake).
CITY_UNITS = tuple((b.id, b.name, b.kind, b.parent, b.intake) for b in BODIES)

# Share of tickets per category (a category of the registry not listed here is not generated),
# and where a ticket without a ward goes.
CATEGORIES = {
    "sidewalk": 0.19,
    "construction": 0.13,
    "waste": 0.13,
    "pollution": 0.10,
    "infrastructure": 0.14,
    "traffic": 0.09,
    "parking": 0.03,
    "water": 0.05,
    "fire_safety": 0.02,
    "misconduct": 0.02,
    "procedure_delay": 0.04,
    "other": 0.06,
}
FIXED_UNIT = {
    "water": "nuoc-sach-ha-noi",
    "fire_safety": "pccc-cong-an-tp",
    "misconduct": "thanh-tra-tp",
}
NO_WARD_UNIT = {
    "sidewalk": "so-xay-dung",
    "construction": "so-xay-dung",
    "infrastructure": "so-xay-dung",
    "parking": "so-xay-dung",
    "waste": "so-nong-nghiep-moi-truong",
    "pollution": "so-nong-nghiep-moi-truong",
    "traffic": "csgt-cong-an-tp",
    "procedure_delay": "tt-phuc-vu-hcc-tp",
}
# Where a ward forwards what is beyond it.
FORWARD = {
    "traffic": "so-xay-dung",
    "pollution": "so-nong-nghiep-moi-truong",
    "infrastructure": "so-xay-dung",
    "construction": "so-xay-dung",
}
# Severities as the app sets them (bot/categories.yml; the generator had its own copy, which
# had drifted: `procedure_delay` was "complex" here and "normal" in the app).
SEVERITY = {code: level.value for code, level in DEFAULT_SEVERITY_BY_CATEGORY.items()}
ACCEPT_HOURS = DEFAULT_ACCEPT_HOURS
RESOLVE_DAYS = DEFAULT_RESOLVE_DAYS
# Median working-time hours to resolve after acceptance, by severity (log-normal).
RESOLVE_MEDIAN_HOURS = {"urgent": 5.0, "normal": 16.0, "complex": 50.0}
DESCRIPTIONS = {
    "sidewalk": "Hàng quán lấn chiếm vỉa hè, người đi bộ phải xuống lòng đường",
    "construction": "Nhà đang xây thêm tầng, nghi không có giấy phép",
    "waste": "Rác thải tập kết nhiều ngày không được thu gom, bốc mùi",
    "pollution": "Karaoke hát to sau 23 giờ, ảnh hưởng người dân xung quanh",
    "infrastructure": "Ổ gà lớn giữa đường, đèn đường hỏng cả tuần nay",
    "traffic": "Xe tải đi vào giờ cấm, ùn tắc kéo dài giờ cao điểm",
    "parking": "Bãi trông xe thu phí cao hơn quy định",
    "water": "Mất nước sinh hoạt hai ngày chưa có thông báo",
    "fire_safety": "Cửa hàng chứa nhiều bình gas trong nhà ở, không có lối thoát",
    "misconduct": "Cán bộ tiếp dân gây khó khăn, hẹn đi hẹn lại",
    "procedure_delay": "Hồ sơ đã quá hẹn trả kết quả mà chưa nhận được",
    "other": "Cây xanh đổ chắn ngang ngõ",
}
PROCEDURES = {
    "khai_sinh": 14,
    "can_cuoc": 13,
    "thuong_tru": 11,
    "tam_tru": 10,
    "ket_hon": 7,
    "chung_thuc": 7,
    "so_do": 6,
    "sang_ten_dat": 6,
    "ho_kinh_doanh": 5,
    "ho_chieu": 5,
    "xac_nhan_hon_nhan": 4,
    "ly_lich_tu_phap": 4,
    "dang_ky_xe": 4,
    "giay_phep_lai_xe": 4,
    "giay_phep_xay_dung": 3,
    "khai_tu": 2,
    "cai_chinh_ho_tich": 2,
    "thanh_lap_doanh_nghiep": 2,
}
# Filing by hour of day (local), and by weekday (Monday first).
HOURS = (
    0.2,
    0.1,
    0.1,
    0.1,
    0.2,
    0.6,
    1.5,
    3.0,
    5.0,
    6.0,
    6.0,
    5.0,
    3.5,
    4.0,
    5.0,
    5.0,
    4.5,
    4.0,
    3.5,
    3.5,
    3.5,
    3.0,
    2.0,
    0.8,
)
WEEKDAYS = (1.15, 1.05, 1.0, 1.0, 0.95, 0.7, 0.6)
TET = (date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6))
WORK_PERIODS = ((clock(8), clock(12)), (clock(13), clock(17)))
CHANNELS = ("telegram", "zalo", "web")
CATEGORY_NAMES = list(CATEGORIES)
assert set(CATEGORY_NAMES) <= set(SEVERITY), "a category missing from bot/categories.yml"
CATEGORY_WEIGHTS = list(itertools.accumulate(CATEGORIES.values()))
PROCEDURE_IDS = list(PROCEDURES)
PROCEDURE_WEIGHTS = list(itertools.accumulate(PROCEDURES.values()))
STARS_ON_TIME = list(itertools.accumulate((2, 4, 10, 34, 50)))
STARS_LATE = list(itertools.accumulate((14, 16, 26, 26, 18)))
STATUSES = ("received", "accepted", "need_info", "resolved", "closed", "rejected")
STATUS_JSON = {status: json.dumps({"status": status}) for status in STATUSES}


# --- Working time (weekdays 8–12 and 13–17; public holidays left out) ---------------------
# Times in the simulation are local wall-clock seconds since 1970-01-01 00:00 (floats): fast
# arithmetic; a ticket's offset from UTC is taken at filing (Hà Nội has no daylight saving).

DAY = 86_400.0
PERIODS = ((8 * HOUR, 12 * HOUR), (13 * HOUR, 17 * HOUR))
WORK_DAY = sum(end - start for start, end in PERIODS)


def _weekday(day: int) -> int:
    return (day + 3) % 7  # 1970-01-01 was a Thursday


def add_working_hours(moment: float, hours: float) -> float:
    """Local `moment` plus `hours` of working time."""
    remaining = hours * HOUR
    day = int(moment // DAY)
    clock_now = moment - day * DAY
    while True:
        if _weekday(day) < 5:
            for start, end in PERIODS:
                if clock_now >= end:
                    continue
                begin = max(clock_now, start)
                if begin + remaining <= end:
                    return day * DAY + begin + remaining
                remaining -= end - begin
                clock_now = end
        day += 1
        clock_now = 0.0
        while remaining > 5 * WORK_DAY and _weekday(day) == 0:
            day, remaining = day + 7, remaining - 5 * WORK_DAY  # a whole working week


def end_of_working_day(moment: float, days: int) -> float:
    """17:00 on the `days`-th working day after the day of local `moment`."""
    day = int(moment // DAY)
    while days > 0:
        day += 1
        if _weekday(day) < 5:
            days -= 1
    return day * DAY + PERIODS[-1][1]


def at_work(moment: float, rng: random.Random) -> float:
    """The first working moment at or after `moment`, plus up to half an hour."""
    return add_working_hours(moment, 0.0) + rng.uniform(0, 1800)


# --- The simulation ------------------------------------------------------------------------

TIME_FIELDS = ("created_at", "updated_at", "accept_by", "resolve_by", "accepted_at", "resolved_at")


@dataclass
class Life:
    """One ticket's state and audit trail as its simulation goes (times: local seconds)."""

    row: dict[str, Any]
    now: float
    offset: float  # local minus UTC, seconds
    events: list[dict[str, Any]] = field(default_factory=list)

    def utc(self, moment: float) -> datetime:
        return datetime.fromtimestamp(moment - self.offset, UTC)

    def iso(self, moment: float) -> str:
        return self.utc(moment).isoformat()

    def event(
        self,
        kind: str,
        at: float,
        old: dict[str, Any] | str | None,
        new: dict[str, Any] | str,
        actor: str = "official",
        note: str | None = None,
    ) -> None:
        self.events.append(
            {
                "ticket_id": self.row["id"],
                "kind": kind,
                "actor": actor,
                "note": note,
                "old_value": old,
                "new_value": new,
                "at": at,
            }
        )
        self.row["updated_at"] = at

    def status(self, to: str, at: float, actor: str = "official", note: str | None = None) -> None:
        old, new = STATUS_JSON[self.row["status"]], STATUS_JSON[to]
        self.event("status", at, old, new, actor, note)
        self.row["status"] = to

    def happened(self, at: float) -> bool:
        return at <= self.now

    def rows(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The ticket and its events with aware UTC datetimes."""
        for name in TIME_FIELDS:
            if self.row[name] is not None:
                self.row[name] = self.utc(self.row[name])
        for event in self.events:
            event["at"] = self.utc(event["at"])
            for name in ("old_value", "new_value"):
                if isinstance(event[name], dict):
                    event[name] = json.dumps(event[name], ensure_ascii=False)
        return self.row, self.events


@dataclass
class World:
    """Units, their wards and the random sources."""

    wards: list[tuple[str, str]]  # (code, name)
    ward_weights: list[float]  # cumulative
    rng: random.Random

    def ward_unit(self, code: str) -> str:
        return f"ubnd-{code}"


def _lognormal_hours(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _rate(life: Life, rng: random.Random, resolved: float) -> None:
    """Most citizens rate, which closes the ticket; satisfaction follows timeliness."""
    if rng.random() >= 0.55:
        return
    rated = resolved + _lognormal_hours(rng, 5, 1.2) * HOUR
    if not life.happened(rated):
        return
    row = life.row
    on_time = row["resolve_by"] is None or resolved <= row["resolve_by"]
    stars = rng.choices((1, 2, 3, 4, 5), cum_weights=STARS_ON_TIME if on_time else STARS_LATE)[0]
    life.event("rating", rated, {"rating": None}, {"rating": stars}, actor="citizen")
    life.status("closed", rated, actor="citizen")
    row["rating"] = stars


def _transfer(life: Life, world: World, at: float) -> None:
    """A ward forwards what is beyond it (or what belongs to another ward)."""
    row = life.row
    target = FORWARD.get(row["category"]) or world.ward_unit(world.rng.choice(world.wards)[0])
    if target == row["lead_unit_id"]:
        target = "so-xay-dung"
    accept_by = add_working_hours(at, ACCEPT_HOURS[row["severity"]])
    life.event(
        "unit",
        at,
        {"lead_unit_id": row["lead_unit_id"]},
        {"lead_unit_id": target},
        note="Chuyển đơn vị có thẩm quyền",
    )
    life.event(
        "deadline",
        at,
        {"accept_by": life.iso(row["accept_by"])},
        {"accept_by": life.iso(accept_by)},
    )
    row["lead_unit_id"], row["accept_by"] = target, accept_by


def _transferred(life: Life, world: World, start: float, fate: float) -> float | None:
    """A few tickets filed with a ward go to another unit first: when (`start` for the
    others), or None when that has not happened yet."""
    if fate >= 0.03 or not life.row["lead_unit_id"].startswith("ubnd-"):
        return start
    at = at_work(start + world.rng.uniform(1, 20) * HOUR, world.rng)
    if not life.happened(at):
        return None
    _transfer(life, world, at)
    return at


def _reject(life: Life, at: float, note: str) -> None:
    if life.happened(at):
        life.status("rejected", at, note=note)


def _info_given(life: Life, rng: random.Random, accepted: float) -> float | None:
    """Information asked for at acceptance: when the citizen gave it, or None (not yet, or
    never: the ticket is closed after ten working days)."""
    life.status("need_info", accepted, note="Đề nghị cung cấp vị trí cụ thể")
    answered = accepted + _lognormal_hours(rng, 10, 1.0) * HOUR
    if rng.random() < 0.05:
        _reject(life, add_working_hours(accepted, 80), "Người dân không bổ sung thông tin")
        return None
    if not life.happened(answered):
        return None
    life.status("accepted", answered, actor="citizen", note="Đã bổ sung")
    return answered


def _accepted(life: Life, rng: random.Random, start: float, fate: float) -> float | None:
    """When work on the ticket starts, or None when it has not (yet).

    Accepted, late now and then; a few only after weeks (escalated), a very few never."""
    delay = _lognormal_hours(rng, 10 if rng.random() < 0.12 else 2, 0.6)
    if 0.93 < fate <= 0.94:
        if rng.random() < 0.05:
            return None
        delay = _lognormal_hours(rng, 60, 0.5)
    accepted = add_working_hours(start, delay)
    if not life.happened(accepted):
        return None
    life.row["accepted_at"] = accepted
    if rng.random() < 0.08:
        return _info_given(life, rng, accepted)
    life.status("accepted", accepted)
    return accepted


def _reopened(life: Life, rng: random.Random, resolved: float) -> float | None:
    """Reopened as "not fixed", with a new deadline, and resolved again: when, or None."""
    row = life.row
    reopened = resolved + rng.uniform(2, 48) * HOUR
    if not life.happened(reopened):
        return None
    deadline = end_of_working_day(reopened, RESOLVE_DAYS[row["severity"]])
    life.status("accepted", reopened, actor="citizen", note="Chưa được giải quyết")
    life.event(
        "deadline",
        reopened,
        {"resolve_by": life.iso(row["resolve_by"])},
        {"resolve_by": life.iso(deadline)},
        actor="citizen",
    )
    life.event("reopened", reopened, {"reopen_count": 0}, {"reopen_count": 1}, actor="citizen")
    row.update(reopen_count=1, resolve_by=deadline, resolved_at=None)
    resolved = add_working_hours(reopened, _lognormal_hours(rng, 16, 0.8))
    if not life.happened(resolved):
        return None
    life.status("resolved", resolved, note="Đã xử lý lại")
    row["resolved_at"] = resolved
    return resolved


def _resolved(life: Life, rng: random.Random, start: float) -> float | None:
    """When the ticket was resolved for good, or None when it has not been (yet)."""
    median = RESOLVE_MEDIAN_HOURS[life.row["severity"]]
    if rng.random() < 0.01:  # stuck for weeks until escalation moves it, a few for good
        if rng.random() < 0.05:
            return None
        median *= 8
    resolved = add_working_hours(start, _lognormal_hours(rng, median, 0.9))
    if not life.happened(resolved):
        return None
    life.status("resolved", resolved, note="Đã xử lý, đề nghị người dân đánh giá")
    life.row["resolved_at"] = resolved
    if rng.random() < 0.04:
        return _reopened(life, rng, resolved)
    return resolved


def simulate(life: Life, world: World) -> None:
    """Play a ticket's life forward from filing, stopping at `life.now`."""
    rng, row = world.rng, life.row
    filed: float = row["created_at"]
    # JSON written directly: the same text json.dumps gives, at a fraction of the cost.
    code, unit = row["code"], row["lead_unit_id"]
    new = f'{{"status": "received", "code": "{code}", "lead_unit_id": "{unit}"}}'
    life.event("created", filed, None, new, actor="citizen")
    fate = rng.random()
    start = _transferred(life, world, filed, fate)
    if start is None:
        return
    if fate > 0.94:  # rejected before acceptance: duplicates, not the city's business
        at = at_work(start + _lognormal_hours(rng, 4, 0.8) * HOUR, rng)
        _reject(life, at, "Nội dung không thuộc thẩm quyền giải quyết")
        return
    start = _accepted(life, rng, start, fate)
    if start is None:
        return
    if rng.random() < 0.015:  # declined after a look
        at = add_working_hours(start, _lognormal_hours(rng, 6, 0.8))
        _reject(life, at, "Không đủ cơ sở giải quyết")
        return
    resolved = _resolved(life, rng, start)
    if resolved is not None:
        _rate(life, rng, resolved)


# --- Filing times --------------------------------------------------------------------------


def _day_weights(days: Sequence[date]) -> np.ndarray[Any, Any]:
    weights = []
    for day in days:
        season = 1 + 0.2 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 105) / 365.25)
        tet = 0.35 if any(-2 <= (day - t).days <= 5 for t in TET) else 1.0
        weights.append(season * tet * WEEKDAYS[day.weekday()])
    array = np.array(weights)
    return array / array.sum()  # type: ignore[no-any-return]


def filing_times(count: int, start: datetime, end: datetime, seed: int, tz: tzinfo) -> list[float]:
    """`count` sorted POSIX timestamps from `start` to before `end`, in the daily pattern."""
    generator = np.random.default_rng(seed)
    first = start.astimezone(tz).date()
    days = (end.astimezone(tz).date() - first).days + 1
    calendar = [first + timedelta(days=i) for i in range(days)]
    midnights = np.array([datetime.combine(d, clock(0), tz).timestamp() for d in calendar])
    # Draw more than needed over whole days, keep those inside [start, end), pick `count`.
    size = int(count * (1 + 3 / max(days - 2, 1))) + 100
    day = generator.choice(days, size=size, p=_day_weights(calendar))
    hour = generator.choice(24, size=size, p=np.array(HOURS) / sum(HOURS))
    stamps = midnights[day] + hour * HOUR + generator.uniform(0, HOUR, size=size)
    stamps = stamps[(stamps >= start.timestamp()) & (stamps < end.timestamp())]
    if len(stamps) > count:
        stamps = generator.choice(stamps, size=count, replace=False)
    stamps.sort()
    return [float(s) for s in stamps]


# --- Writing -------------------------------------------------------------------------------


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


class Writer:
    """Batches rows into COPY (PostgreSQL) or multi-row INSERTs (SQLite).

    JSON columns may hold documents or their JSON text (the simulation writes the common ones
    as text, which COPY takes as is)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}

    def write(self, model: Any, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        table = _table(model)
        self.counts[table.name] = self.counts.get(table.name, 0) + len(rows)
        names = list(rows[0])
        json_columns = [n for n in names if isinstance(table.c[n].type, sa.JSON)]
        if not self.postgres:
            decoded = [
                {**row, **{n: json.loads(row[n]) for n in json_columns if isinstance(row[n], str)}}
                for row in rows
            ]
            self.connection.execute(sa.insert(table), decoded)
            return
        raw = self.connection.connection.driver_connection
        assert raw is not None
        quoted = ", ".join(f'"{n}"' for n in names)
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy,
        ):
            for row in rows:
                for n in json_columns:
                    if isinstance(row[n], dict):
                        row[n] = json.dumps(row[n], ensure_ascii=False)
                copy.write_row([row[n] for n in names])


@dataclass(frozen=True)
class Target:
    """A database to fill; with `keep_days`, only what was filed in the last `keep_days` days
    (the same rows as in a full run: the whole stretch is simulated either way)."""

    url: str
    keep_days: float | None = None


def _units(world: World, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    units = [
        {
            "id": uid,
            "name": name,
            "kind": kind,
            "parent_id": parent,
            "ward_code": None,
            "intake": intake,
            "active": True,
            "updated_at": now,
        }
        for uid, name, kind, parent, intake in CITY_UNITS
    ]
    for code, name in world.wards:
        units.append(
            {
                "id": world.ward_unit(code),
                "name": f"UBND {name}",
                "kind": "ward",
                "parent_id": "ubnd-tp",
                "ward_code": code,
                "intake": False,
                "active": True,
                "updated_at": now,
            }
        )
    officials = []
    for unit in units:
        for role in ("handler", "supervisor"):
            officials.append(
                {"name": f"Cán bộ {role} {unit['id']}", "unit_id": unit["id"], "role": role}
            )
    officials += [
        {"name": f"Lãnh đạo thành phố {i}", "unit_id": "ubnd-tp", "role": "leader"} for i in (1, 2)
    ]
    for i, official in enumerate(officials, start=1):
        official.update(
            active=True,
            channel="telegram",
            external_user_id=f"g{i}",
            chat_id=f"g{i}",
            linked_at=now,
            created_at=now,
        )
    return units, officials


def _ticket(world: World, number: int, code: str, filed: float) -> dict[str, Any]:
    """A new ticket filed at local `filed`, routed as the directory's rules do."""
    rng = world.rng
    category = rng.choices(CATEGORY_NAMES, cum_weights=CATEGORY_WEIGHTS)[0]
    ward_code: str | None = None
    ward_name: str | None = None
    if rng.random() < 0.96:
        ward_code, ward_name = rng.choices(world.wards, cum_weights=world.ward_weights)[0]
    unrouted = False
    if category in FIXED_UNIT:
        unit = FIXED_UNIT[category]
    elif ward_code is not None:
        unit = world.ward_unit(ward_code)
    elif category in NO_WARD_UNIT:
        unit = NO_WARD_UNIT[category]
    else:
        unit, unrouted = "vp-ubnd-tp", True
    severity = SEVERITY[category]
    accept_by = add_working_hours(filed, ACCEPT_HOURS[severity])
    resolve_by = max(end_of_working_day(filed, RESOLVE_DAYS[severity]), accept_by)
    return {
        "id": number,
        "code": code,
        "status": "received",
        "category": category,
        "description": DESCRIPTIONS[category],
        "location_text": ward_name,
        "ward_code": ward_code,
        "ward_name": ward_name,
        "latitude": None,
        "longitude": None,
        "anonymous": category == "misconduct",
        "contact_phone": f"09{rng.randrange(10**8):08d}",
        "citizen_id": None,
        "channel": rng.choice(CHANNELS),
        "chat_id": str(rng.randrange(10**9)),
        "lead_unit_id": unit,
        "accept_by": accept_by,
        "resolve_by": resolve_by,
        "rating": None,
        "severity": severity,
        "unrouted": unrouted,
        "accepted_at": None,
        "resolved_at": None,
        "accept_escalation": 0,
        "resolve_escalation": 0,
        "reopen_count": 0,
        "created_at": filed,
        "updated_at": filed,
    }


def _question(rng: random.Random, number: int, at: datetime) -> dict[str, Any]:
    procedure: str | None = rng.choices(PROCEDURE_IDS, cum_weights=PROCEDURE_WEIGHTS)[0]
    if rng.random() < 0.1:
        procedure = None  # a question the catalog does not know
    channel = rng.choice(CHANNELS)
    chat = str(rng.randrange(10**9))
    return {
        "direction": "in",
        "channel": channel,
        "chat_id": chat,
        "user_id": chat,
        "channel_message_id": f"q{number}",
        "text": "cho hỏi thủ tục cần giấy tờ gì",
        "payload": {},
        "created_at": at,
        "handled_at": at,
        "nlu": {
            "intent": "ask_procedure",
            "confidence": 0.93,
            "category": None,
            "procedure": procedure,
            "source": "rasa",
        },
    }


def _offset(moment: datetime, tz: tzinfo) -> float:
    offset = moment.astimezone(tz).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _local_seconds(moment: datetime, tz: tzinfo) -> float:
    return moment.timestamp() + _offset(moment, tz)


@dataclass
class Stats:
    """What was written and how long it took."""

    counts: dict[str, int]
    seconds: float
    first: datetime
    last: datetime


def generate(
    url: str,
    *,
    tickets: int = 1_000_000,
    days: int = 365,
    end: datetime | None = None,
    seed: int = 1,
    questions: float = 0.6,
    tz: tzinfo = TZ,
    progress: bool = False,
) -> Stats:
    """Write units, officials, tickets with their events and procedure questions to `url`."""
    return generate_into(
        [Target(url)],
        tickets=tickets,
        days=days,
        end=end,
        seed=seed,
        questions=questions,
        tz=tz,
        progress=progress,
    )[url]


# Rows with the time they were filed at (a target keeps those filed since its cutoff).
_Rows = list[tuple[float, dict[str, Any]]]


def _open_writers(
    stack: contextlib.ExitStack, targets: Sequence[Target]
) -> tuple[list[Writer], list[Engine]]:
    """A writer in a transaction on each target, migrated and checked to be empty."""
    writers: list[Writer] = []
    engines: list[Engine] = []
    for target in targets:
        migrate.upgrade(target.url)
        engine = create_db_engine(target.url)
        engines.append(engine)
        stack.callback(engine.dispose)
        connection = stack.enter_context(engine.begin())
        if connection.execute(sa.select(sa.func.count()).select_from(_table(Ticket))).scalar():
            raise SystemExit(f"{target.url}: there are tickets already; use an empty database.")
        writers.append(Writer(connection))
    return writers, engines


def _write_tickets(
    world: World,
    stamps: Sequence[float],
    flush: Callable[[Any, _Rows], None],
    *,
    local_now: float,
    tz: tzinfo,
    progress: bool,
) -> dict[int, int]:
    """A ticket filed at each of `stamps`, its life simulated; the last code number by year."""
    counters: dict[int, int] = {}
    batch: _Rows = []
    events: _Rows = []
    for number, stamp in enumerate(stamps, start=1):
        offset = _offset(datetime.fromtimestamp(stamp, UTC), tz)
        year = datetime.fromtimestamp(stamp + offset, UTC).year
        counters[year] = counters.get(year, 0) + 1
        code = format_ticket_code(year, counters[year])
        life = Life(_ticket(world, number, code, stamp + offset), local_now, offset)
        simulate(life, world)
        row, its_events = life.rows()
        batch.append((stamp, row))
        events.extend((stamp, event) for event in its_events)
        if len(batch) >= BATCH:
            flush(Ticket, batch)
            flush(TicketEvent, events)
            batch, events = [], []
            if progress and number % (10 * BATCH) == 0:
                print(f"  {number:,} tickets", file=sys.stderr, flush=True)
    flush(Ticket, batch)
    flush(TicketEvent, events)
    return counters


def _write_questions(
    world: World, stamps: Sequence[float], flush: Callable[[Any, _Rows], None]
) -> None:
    rows: _Rows = []
    for number, stamp in enumerate(stamps, start=1):
        rows.append((stamp, _question(world.rng, number, datetime.fromtimestamp(stamp, UTC))))
        if len(rows) >= BATCH:
            flush(Message, rows)
            rows = []
    flush(Message, rows)


def _reset_sequences(writers: Sequence[Writer]) -> None:
    """PostgreSQL's id sequences moved past the ids written explicitly."""
    for writer in writers:
        if writer.postgres:
            for table in ("ticket", "official", "ticket_event", "message"):
                writer.connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )


def _vacuum(engines: Sequence[Engine]) -> None:
    for engine in engines:  # committed: now vacuum (it cannot run in a transaction)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()


def generate_into(
    targets: Sequence[Target],
    *,
    tickets: int = 1_000_000,
    days: int = 365,
    end: datetime | None = None,
    seed: int = 1,
    questions: float = 0.6,
    tz: tzinfo = TZ,
    progress: bool = False,
) -> dict[str, Stats]:
    """Simulate once, write to every target (each keeping its share); stats by URL."""
    began = time.monotonic()
    now = (end or datetime.now(UTC)).astimezone(UTC)
    start = now - timedelta(days=days)
    wards = [(w.code, w.name) for w in gazetteer().wards]
    # Busier and quieter wards: fixed log-normal weights.
    weights = np.random.default_rng(seed + 1).lognormal(0.0, 0.7, size=len(wards))
    world = World(wards, list(itertools.accumulate(weights.tolist())), random.Random(seed))
    since = [
        (now - timedelta(days=t.keep_days)).timestamp() if t.keep_days is not None else 0.0
        for t in targets
    ]
    with contextlib.ExitStack() as stack:
        writers, engines = _open_writers(stack, targets)
        units, officials = _units(world, now)
        for writer in writers:
            writer.write(Unit, units)
            writer.write(Official, [dict(o) for o in officials])

        def flush(model: Any, rows: _Rows) -> None:
            for writer, cutoff in zip(writers, since, strict=True):
                writer.write(model, [row for filed, row in rows if filed >= cutoff])

        stamps = filing_times(tickets, start, now, seed, tz)
        local_now = _local_seconds(now, tz)
        counters = _write_tickets(
            world, stamps, flush, local_now=local_now, tz=tz, progress=progress
        )
        flush(
            TicketCounter,
            [(now.timestamp(), {"year": y, "last_value": n}) for y, n in counters.items()],
        )
        questions_at = filing_times(round(tickets * questions), start, now, seed + 2, tz)
        _write_questions(world, questions_at, flush)
        _reset_sequences(writers)
    _vacuum(engines)
    seconds = time.monotonic() - began
    return {
        target.url: Stats(
            writer.counts,
            seconds,
            datetime.fromtimestamp(max(stamps[0], cutoff), UTC) if stamps else now,
            now,
        )
        for target, writer, cutoff in zip(targets, writers, since, strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="SQLAlchemy URL of the database to fill")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365, help="how far back filing goes")
    parser.add_argument("--end", help="local time of the last moment (default: now)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--questions", type=float, default=0.6, help="procedure questions per ticket"
    )
    args = parser.parse_args(argv)
    end = datetime.fromisoformat(args.end).replace(tzinfo=TZ) if args.end else None
    stats = generate(
        args.url,
        tickets=args.tickets,
        days=args.days,
        end=end,
        seed=args.seed,
        questions=args.questions,
        progress=True,
    )
    for table, count in stats.counts.items():
        print(f"{table}: {count:,} rows")
    print(
        f"filed {stats.first:%Y-%m-%d} to {stats.last:%Y-%m-%d %H:%M} UTC in {stats.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
