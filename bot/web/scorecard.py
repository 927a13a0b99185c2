"""The public scorecard, for anyone, without signing in (`bot.digest.scorecard` computes it).

``GET /bang-xep-hang?ky=2026-11`` (or ``ky=2026-Q4``; default the last complete month): the
league table of wards and the city bodies' figures, as a page; ``GET /bang-xep-hang/{unit}``:
one unit's last 12 months and 4 quarters with an SVG chart. Their JSON:
``GET /api/scorecard?period=2026-11`` and ``GET /api/scorecard/units/{unit}``. A period that is
not a month or quarter, or has not begun, answers 400; an unknown unit 404.

Pages and JSON are computed at most once a minute per address (an in-process cache of a
bounded size), so that anyone may open them without loading the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.config import Settings
from bot.config import settings as default_settings
from bot.digest.render import number, percent
from bot.digest.scorecard import (
    Figure,
    Period,
    PeriodKind,
    Scorecard,
    UnitHistory,
    UnitScore,
    UnknownPublicUnit,
    parse_period,
    scorecard,
    unit_history,
)
from bot.web.templating import templates
from storage.db import get_session
from storage.models import utcnow

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
_BAD_PERIOD = (
    "Kỳ báo cáo không hợp lệ. Vui lòng chọn một tháng (ví dụ 2026-11) hoặc một quý "
    "(ví dụ 2026-Q4) đã bắt đầu."
)
_UNKNOWN_UNIT = "Không tìm thấy đơn vị này."


class _Cache:
    """Answers kept `CACHE_SECONDS`, at most `CACHE_ENTRIES` of them (oldest dropped)."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        found = self.entries.get(key)
        if found is not None and found[0] > now:
            return found[1]
        value = compute()
        self.entries[key] = (now + CACHE_SECONDS, value)
        self.entries.move_to_end(key)
        while len(self.entries) > CACHE_ENTRIES:
            self.entries.popitem(last=False)
        return value


# --- What the templates show ----------------------------------------------------------------


def shown(f: Figure, kind: str = "count") -> str:
    """A figure as the page shows it; "—" when suppressed, "chưa có" when there is none."""
    if f.suppressed:
        return "—"
    if f.value is None:
        return "chưa có"
    if kind == "rate":
        return percent(f.value)
    if kind == "hours":
        return number(f.value, 1)
    if kind == "stars":
        return number(f.value, 2)
    return number(f.value)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    suppressed: bool


@dataclass(frozen=True)
class Chart:
    """An SVG chart of one unit's months: tickets received (bars) and on-time resolution
    (points joined by a line; none where the rate is not published)."""

    width: int
    height: int
    left: int
    top: int
    bottom: int
    bars: tuple[Bar, ...]
    line: str
    points: tuple[tuple[float, float, str], ...]
    max_received: int


# A phone's width in SVG units, so that its 10-unit labels read as 10 px there.
CHART_W, CHART_H, CHART_TOP, CHART_BOTTOM, CHART_LEFT = 360, 215, 14, 178, 26


def chart_of(rows: tuple[tuple[str, str, UnitScore], ...]) -> Chart:
    """The chart of `rows` (period, title, score), oldest first."""
    counts = [
        int(s.received.value) if isinstance(s.received.value, int | float) else 0
        for _p, _t, s in rows
    ]
    top = max([*counts, 1])
    step = (CHART_W - CHART_LEFT) / max(len(rows), 1)
    span = CHART_BOTTOM - CHART_TOP
    bars, points = [], []
    for i, (period, _title, score) in enumerate(rows):
        x = CHART_LEFT + i * step
        height = span * counts[i] / top
        label = period[5:] + "/" + period[2:4] if len(period) == 7 else period
        suppressed = score.received.suppressed is not None
        bars.append(
            Bar(
                x=x + step * 0.15,
                y=CHART_BOTTOM - height,
                width=step * 0.7,
                height=height,
                label=label,
                value=shown(score.received),
                suppressed=suppressed,
            )
        )
        rate = score.on_time_resolution.value
        if rate is not None:
            points.append((x + step / 2, CHART_BOTTOM - span * rate, percent(rate)))
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
    return Chart(
        CHART_W, CHART_H, CHART_LEFT, CHART_TOP, CHART_BOTTOM, tuple(bars), line, tuple(points), top
    )


# --- Routes ---------------------------------------------------------------------------------


def _period_of(text: str | None, kind: PeriodKind, now: datetime, tz: str) -> Period:
    """The period asked for, or the last complete month; ValueError when it has not begun."""
    if not text:
        return Period.containing(now, kind, tz).previous()
    period = parse_period(text[:16])
    if period.bounds(tz)[0] > now:
        raise ValueError("not begun")
    return period


def _choices(now: datetime, tz: str) -> list[tuple[str, str]]:
    """The periods offered as links: the last 6 months and 4 quarters, newest first."""
    months = Period.containing(now, "month", tz).recent(6)[::-1]
    quarters = Period.containing(now, "quarter", tz).recent(4)[::-1]
    return [(str(p), p.title) for p in (*months, *quarters)]


class _Scorecards:
    """The scorecard's pages and JSON, read through one cache."""

    def __init__(self, engine: Engine | None, config: Settings, clock: Callable[[], datetime]):
        self.engine, self.clock = engine, clock
        self.tz, self.min_tickets = config.timezone, config.scorecard_min_tickets
        self.cache = _Cache()

    def _card_sync(self, period: Period) -> Scorecard:
        with get_session(self.engine) as session:
            return scorecard(
                session=session,
                period=period,
                tz=self.tz,
                min_tickets=self.min_tickets,
                now=self.clock(),
            )

    def _history_sync(self, unit_id: str) -> UnitHistory:
        with get_session(self.engine) as session:
            return unit_history(
                session=session,
                unit_id=unit_id,
                tz=self.tz,
                min_tickets=self.min_tickets,
                now=self.clock(),
            )

    async def card(self, text: str | None) -> Scorecard:
        period = _period_of(text, "month", self.clock(), self.tz)
        found: Scorecard = await run_in_threadpool(
            self.cache.get, f"card:{period}", lambda: self._card_sync(period)
        )
        return found

    async def history(self, unit_id: str) -> UnitHistory:
        found: UnitHistory = await run_in_threadpool(
            self.cache.get, f"unit:{unit_id[:64]}", lambda: self._history_sync(unit_id[:64])
        )
        return found

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        return templates.TemplateResponse(
            request,
            name,
            {"shown": shown, "min_tickets": self.min_tickets, **context},
            status_code=status,
            headers={"Content-Security-Policy": _POLICY, "Cache-Control": "public, max-age=60"},
        )

    def refused(self, request: Request, status: int, message: str) -> Response:
        return self.page(request, "scorecard/error.html", {"message": message}, status)

    async def league_page(self, request: Request) -> Response:
        try:
            found = await self.card(request.query_params.get("ky"))
        except ValueError:
            return self.refused(request, 400, _BAD_PERIOD)
        context = {"card": found, "choices": _choices(self.clock(), self.tz)}
        return self.page(request, "scorecard/league.html", context)

    async def unit_page(self, request: Request) -> Response:
        try:
            found = await self.history(request.path_params["unit_id"])
        except UnknownPublicUnit:
            return self.refused(request, 404, _UNKNOWN_UNIT)
        context = {"unit": found, "chart": chart_of(found.months)}
        return self.page(request, "scorecard/unit.html", context)

    async def league_json(self, request: Request) -> Response:
        try:
            found = await self.card(request.query_params.get("period"))
        except ValueError:
            return _as_json({"error": "bad_period", "message": _BAD_PERIOD}, 400)
        return _as_json(found.model_dump(mode="json"))

    async def unit_json(self, request: Request) -> Response:
        try:
            found = await self.history(request.path_params["unit_id"])
        except UnknownPublicUnit:
            return _as_json({"error": "unknown_unit", "message": _UNKNOWN_UNIT}, 404)
        return _as_json(found.model_dump(mode="json"))


def _as_json(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "public, max-age=60"})


def scorecard_routes(
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[BaseRoute]:
    """The public scorecard's pages and JSON (`engine` default: the app's)."""
    cards = _Scorecards(engine, settings or default_settings, clock)
    return [
        Route("/bang-xep-hang", cards.league_page, methods=["GET", "HEAD"], name="scorecard"),
        Route(
            "/bang-xep-hang/{unit_id}",
            cards.unit_page,
            methods=["GET", "HEAD"],
            name="scorecard_unit",
        ),
        Route("/api/scorecard", cards.league_json, methods=["GET"], name="scorecard_json"),
        Route(
            "/api/scorecard/units/{unit_id}",
            cards.unit_json,
            methods=["GET"],
            name="scorecard_unit_json",
        ),
    ]
