"""The weekly digest on the dashboard: a unit's (leaders: any unit's or the city's), with its
chart, week by week, and as CSV."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.responses import Response

from bot.config import settings
from bot.digest.aggregate import IsoWeek, UnknownUnit, as_tz, parse_iso_week
from bot.digest.render import chart_png, csv_bytes, render_html
from bot.digest.scorecard import digest_with_league
from bot.web.dashboard.guard import Viewer, Visit
from bot.web.dashboard.queries import all_units

_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL)
_BAD_WEEK = "Tuần không hợp lệ. Anh/chị chọn một tuần đã qua, ví dụ 2026-W47."
_UNKNOWN_UNIT = "Đơn vị này không có trong danh bạ."


@dataclass(frozen=True)
class DigestRequest:
    """Which digest a viewer asked for: a week, and for leaders a unit ("" = city-wide)."""

    week: IsoWeek
    unit: str = ""

    @classmethod
    def from_query(
        cls, query: Mapping[str, str], *, viewer: Viewer, now: datetime
    ) -> DigestRequest:
        """The week in `?week=2026-W47` (default: the last complete week); ValueError if
        it is not a week or is still to come. Only leaders choose the unit."""
        zone = as_tz(settings.timezone)
        text = query.get("week", "").strip()
        week = parse_iso_week(text) if text else IsoWeek.last_complete(now, zone)
        if week > IsoWeek.containing(now, zone):
            raise ValueError(f"{week} is still to come.")
        unit = query.get("unit", "").strip()[:64] if viewer.is_leader else viewer.unit_id
        return cls(week=week, unit=unit)

    def query(self, viewer: Viewer, week: IsoWeek | None = None) -> str:
        """The query string of this digest (of another week)."""
        query = {"week": str(week or self.week)}
        return urlencode({**query, "unit": self.unit} if viewer.is_leader else query)


def _wanted(visit: Visit) -> tuple[Viewer, DigestRequest | None]:
    viewer = visit.viewer
    assert viewer is not None
    try:
        query = visit.request.query_params
        return viewer, DigestRequest.from_query(query, viewer=viewer, now=visit.now)
    except ValueError:
        return viewer, None


def _style_hashes(fragment: str) -> list[str]:
    """CSP hashes of the fragment's inline style elements."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE_ELEMENT.findall(fragment)
    ]


def digest_page(visit: Visit) -> Response:
    viewer, wanted = _wanted(visit)
    if wanted is None:
        return visit.message("Không xem được báo cáo", _BAD_WEEK, status=400)
    zone = as_tz(settings.timezone)
    try:
        digest = digest_with_league(
            session=visit.session,
            week=wanted.week,
            unit_id=wanted.unit or None,
            tz=zone,
            min_tickets=settings.scorecard_min_tickets,
        )
    except UnknownUnit:
        fragment = None
    else:
        fragment = render_html(digest, chart_png(digest))  # escapes what it shows itself
    week, current = wanted.week, IsoWeek.containing(visit.now, zone)
    units = all_units(session=visit.session) if viewer.is_leader else []
    return visit.render(
        "digest.html",
        styles=_style_hashes(fragment or ""),
        week=week,
        current=current,
        previous=wanted.query(viewer, week.previous()),
        next=wanted.query(viewer, week.next()) if week < current else None,
        download=wanted.query(viewer),
        unit=wanted.unit,
        units=[("", "Toàn thành phố"), *((u.id, u.name) for u in units)],
        fragment=Markup(fragment) if fragment is not None else None,
    )


def digest_csv(visit: Visit) -> Response:
    _, wanted = _wanted(visit)
    if wanted is None:
        return visit.message("Không xem được báo cáo", _BAD_WEEK, status=400)
    try:
        digest = digest_with_league(
            session=visit.session,
            week=wanted.week,
            unit_id=wanted.unit or None,
            tz=as_tz(settings.timezone),
            min_tickets=settings.scorecard_min_tickets,
        )
    except UnknownUnit:
        return visit.message("Không tìm thấy", _UNKNOWN_UNIT, status=404)
    name = f"bao-cao-tuan-{wanted.week}-{wanted.unit or 'toan-thanh-pho'}.csv"
    return Response(
        csv_bytes(digest),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
