"""A digest as officials read it: Markdown, JSON, CSV, an HTML fragment, a PNG chart and a
short chat message, all in Vietnamese.

Numbers officials read use the Vietnamese style (1.234; 60,5%); JSON and CSV keep plain
numbers for machines and spreadsheets. Everything shown comes from the `Digest`, which holds
no citizen data.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.digest.aggregate import Breakdown, Digest, LeagueStanding
from bot.directory.deadlines import WEEKDAY_NAMES

Format = Literal["md", "json", "csv", "html"]
FORMATS: tuple[Format, ...] = ("md", "json", "csv", "html")

HEADLINE: dict[str, str] = {
    "received": "Phản ánh mới tiếp nhận",
    "accepted": "Đơn vị nhận xử lý",
    "resolved": "Đã giải quyết",
    "rejected": "Từ chối tiếp nhận",
    "open": "Chưa kết thúc (cuối tuần)",
    "overdue": "Quá hạn (cuối tuần)",
}
COLUMNS: dict[str, str] = {
    "received": "Tiếp nhận",
    "accepted": "Nhận xử lý",
    "resolved": "Đã giải quyết",
    "rejected": "Từ chối",
    "open": "Chưa kết thúc",
    "overdue": "Quá hạn",
}
MISSED = {"accept": "tiếp nhận", "resolve": "giải quyết"}
MESSAGE_OVERDUE_CODES = 5


# --- Vietnamese numbers and dates ---------------------------------------------------------


def number(value: float, digits: int = 0) -> str:
    """1234.5 as "1.234,5" (Vietnamese separators)."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def percent(rate: float | None) -> str:
    """0.605 as "60,5%"; "—" when there is no rate."""
    return "—" if rate is None else number(rate * 100, 1) + "%"


def hours(value: float | None) -> str:
    """A duration in hours, "—" when unknown."""
    return "—" if value is None else f"{number(value, 1)} giờ"


def signed(value: int) -> str:
    """A change: "+3", "-2", "0"."""
    return f"{value:+d}" if value else "0"


# Time zones as readers say them; others shown by their id.
_ZONE_NAMES = {"Asia/Ho_Chi_Minh": "Việt Nam", "Asia/Saigon": "Việt Nam"}


def zone_name(zone: str) -> str:
    """ "Việt Nam" for Asia/Ho_Chi_Minh: a Vietnamese reader does not read zone ids."""
    return _ZONE_NAMES.get(zone, zone)


def week_title(digest: Digest) -> str:
    """ "Tuần 47/2026 (16/11–22/11/2026)"."""
    year, week = digest.week.split("-W")
    first, last = digest.period_start, digest.period_start + timedelta(days=6)
    return f"Tuần {int(week)}/{year} ({first:%d/%m}–{last:%d/%m/%Y})"


def moment(value: datetime) -> str:
    """ "17:00 thứ Hai, 16/11/2026"."""
    return f"{value:%H:%M} {WEEKDAY_NAMES[value.weekday()]}, {value:%d/%m/%Y}"


def _headline_rows(digest: Digest) -> Iterator[tuple[str, str, int, int, int]]:
    for key, label in HEADLINE.items():
        yield (
            key,
            label,
            getattr(digest.counts, key),
            getattr(digest.previous, key),
            getattr(digest.change, key),
        )


def league_line(league: LeagueStanding) -> str:
    """A ward's place among the wards and its trend, in one sentence."""
    span = f"Xếp hạng trong các phường, xã ({league.weeks} tuần gần nhất)"
    if league.place is None:
        return f"{span}: chưa xếp hạng (chưa đủ phản ánh được giải quyết có thời hạn)"
    text = f"{span}: hạng {league.place}/{league.ranked}"
    if league.previous_place is None:
        text += f"; {league.weeks} tuần trước đó: chưa xếp hạng"
    else:
        moved = league.previous_place - league.place
        trend = (
            f"tăng {moved} bậc"
            if moved > 0
            else f"giảm {-moved} bậc"
            if moved < 0
            else "giữ nguyên"
        )
        text += (
            f" ({trend}; {league.weeks} tuần trước đó: hạng "
            f"{league.previous_place}/{league.previous_ranked})"
        )
    return (
        f"{text}; giải quyết đúng hạn {percent(league.on_time_rate)} "
        f"(trước đó {percent(league.previous_on_time_rate)})"
    )


def _summary_lines(digest: Digest) -> list[str]:
    s = digest.satisfaction
    rating = f"{number(s.average, 2)}/5 ({number(s.ratings)} đánh giá)" if s.average else "—"
    return [
        f"Tỷ lệ giải quyết đúng hạn: {percent(digest.on_time_rate)} "
        f"({number(digest.resolved_on_time)}/{number(digest.resolved_with_deadline)} "
        "phản ánh có hạn giải quyết)",
        f"Thời gian từ tiếp nhận đến khi đơn vị nhận xử lý (trung vị): "
        f"{hours(digest.median_hours_to_accept)}",
        f"Thời gian từ tiếp nhận đến khi giải quyết (trung vị): "
        f"{hours(digest.median_hours_to_resolve)}",
        f"Mức độ hài lòng: {rating}",
        f"Số lần người dân mở lại phản ánh: {number(digest.reopened)}",
        *([league_line(digest.league)] if digest.league is not None else []),
    ]


# --- Markdown -----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _breakdown_rows(rows: tuple[Breakdown, ...]) -> list[list[str]]:
    return [[r.name, *(number(getattr(r, k)) for k in COLUMNS)] for r in rows]


def render_markdown(digest: Digest) -> str:
    """The digest as a Markdown report."""
    out = [
        f"# Báo cáo phản ánh, kiến nghị: {week_title(digest)}",
        "",
        f"**Đơn vị:** {digest.unit_name}  ",
        f"**Thời gian:** từ {moment(digest.period_start)} đến trước "
        f"{moment(digest.period_end)} (giờ {zone_name(digest.timezone)})",
        "",
        "## Tổng quan",
        "",
    ]
    out += _md_table(
        ["Chỉ số", "Tuần này", "Tuần trước", "Thay đổi"],
        [
            [label, number(now), number(before), signed(change)]
            for _k, label, now, before, change in _headline_rows(digest)
        ],
    )
    out += ["", *(f"- {line}" for line in _summary_lines(digest)), ""]
    out += ["## Mức độ hài lòng", ""]
    out += _md_table(
        ["Đánh giá", "Số lượt"],
        [[f"{stars} sao", number(n)] for stars, n in digest.satisfaction.distribution.items()],
    )
    out += ["", "## Theo lĩnh vực", ""]
    out += _md_table(["Lĩnh vực", *COLUMNS.values()], _breakdown_rows(digest.by_category))
    out += ["", "## Theo phường, xã", ""]
    out += _md_table(["Phường, xã", *COLUMNS.values()], _breakdown_rows(digest.by_ward))
    out += ["", "## Phường, xã có nhiều phản ánh nhất", ""]
    out += [
        f"{i}. {w.name}: {number(w.received)} phản ánh"
        for i, w in enumerate(digest.top_wards, start=1)
    ] or ["Không có phản ánh mới."]
    out += ["", "## Thủ tục hành chính được hỏi nhiều nhất (toàn thành phố)", ""]
    out += [f"Tổng số câu hỏi về thủ tục: {number(digest.procedure_questions)}", ""]
    out += _md_table(
        ["Thủ tục", "Số câu hỏi"], [[p.name, number(p.questions)] for p in digest.top_procedures]
    )
    out += ["", f"## Phản ánh quá hạn cuối tuần ({number(len(digest.overdue_tickets))})", ""]
    out += _md_table(OVERDUE_HEADERS, _overdue_rows(digest), numeric_from=5)
    out += ["", f"## Phản ánh trùng đã gộp ({number(len(digest.merged_duplicates))})", ""]
    out += _md_table(MERGED_HEADERS, _merged_rows(digest), numeric_from=5)
    return "\n".join(out) + "\n"


OVERDUE_HEADERS = ["Mã", "Đơn vị", "Lĩnh vực", "Phường, xã", "Hạn bị trễ", "Quá hạn"]


def _overdue_rows(digest: Digest) -> list[list[str]]:
    """The overdue tickets' table, one row a ticket, the same in Markdown and HTML."""
    return [
        [
            t.code,
            t.unit_name,
            t.category_name,
            t.ward_name,
            f"{MISSED[t.missed]}: {moment(t.deadline)}",
            hours(t.hours_overdue),
        ]
        for t in digest.overdue_tickets
    ]


MERGED_HEADERS = ["Mã", "Gộp vào", "Lĩnh vực", "Phường, xã", "Lúc"]


def _merged_rows(digest: Digest) -> list[list[str]]:
    """The duplicates merged in the week, the same in Markdown and HTML."""
    return [
        [m.code, m.into, m.category_name, m.ward_name, moment(m.merged_at)]
        for m in digest.merged_duplicates
    ]


# --- JSON and CSV -------------------------------------------------------------------------


def render_json(digest: Digest) -> str:
    """The digest as JSON (UTF-8, not escaped)."""
    return json.dumps(digest.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"


def _league_csv_rows(league: LeagueStanding) -> Iterator[tuple[str, str, str, str, object]]:
    measures: tuple[tuple[str, float | None, float | None], ...] = (
        ("Hạng", league.place, league.previous_place),
        ("Số phường, xã được xếp hạng", league.ranked, league.previous_ranked),
        ("Tỷ lệ giải quyết đúng hạn", league.on_time_rate, league.previous_on_time_rate),
        ("Mức độ hài lòng", league.satisfaction, league.previous_satisfaction),
    )
    for name, current, earlier in measures:
        yield ("Xếp hạng", str(league.weeks), name, f"{league.weeks} tuần gần nhất", current)
        yield ("Xếp hạng", str(league.weeks), name, f"{league.weeks} tuần trước đó", earlier)


def _csv_rows(digest: Digest) -> Iterator[tuple[str, str, str, str, object]]:
    yield ("Thông tin", "week", "Tuần", "", digest.week)
    yield ("Thông tin", digest.unit_id or "city", "Đơn vị", "", digest.unit_name)
    yield ("Thông tin", "period_start", "Từ", "", digest.period_start.isoformat())
    yield ("Thông tin", "period_end", "Đến trước", "", digest.period_end.isoformat())
    for key, label, now, before, change in _headline_rows(digest):
        yield ("Tổng quan", key, label, "Tuần này", now)
        yield ("Tổng quan", key, label, "Tuần trước", before)
        yield ("Tổng quan", key, label, "Thay đổi", change)
    yield (
        "Tổng quan",
        "on_time_rate",
        "Tỷ lệ giải quyết đúng hạn",
        "Tuần này",
        digest.on_time_rate,
    )
    yield (
        "Tổng quan",
        "median_hours_to_accept",
        "Thời gian nhận xử lý, trung vị (giờ)",
        "Tuần này",
        digest.median_hours_to_accept,
    )
    yield (
        "Tổng quan",
        "median_hours_to_resolve",
        "Thời gian giải quyết, trung vị (giờ)",
        "Tuần này",
        digest.median_hours_to_resolve,
    )
    yield ("Tổng quan", "reopened", "Số lần mở lại", "Tuần này", digest.reopened)
    yield ("Hài lòng", "average", "Điểm trung bình", "Tuần này", digest.satisfaction.average)
    for stars, count in digest.satisfaction.distribution.items():
        yield ("Hài lòng", stars, f"{stars} sao", "Số lượt đánh giá", count)
    if digest.league is not None:
        yield from _league_csv_rows(digest.league)
    for section, rows in (("Lĩnh vực", digest.by_category), ("Phường, xã", digest.by_ward)):
        for row in rows:
            for key, label in COLUMNS.items():
                yield (section, row.key or "", row.name, label, getattr(row, key))
    section = "Thủ tục được hỏi nhiều (toàn thành phố)"
    yield (section, "total", "Tổng số câu hỏi về thủ tục", "Số câu hỏi", digest.procedure_questions)
    for p in digest.top_procedures:
        yield (section, p.procedure, p.name, "Số câu hỏi", p.questions)
    for t in digest.overdue_tickets:
        yield ("Quá hạn", t.code, t.unit_name, "Phường, xã", t.ward_name)
        yield ("Quá hạn", t.code, t.unit_name, "Lĩnh vực", t.category_name)
        yield ("Quá hạn", t.code, t.unit_name, f"Hạn {MISSED[t.missed]}", t.deadline.isoformat())
        yield ("Quá hạn", t.code, t.unit_name, "Số giờ quá hạn", t.hours_overdue)
    for m in digest.merged_duplicates:
        yield ("Trùng đã gộp", m.code, m.category_name, "Gộp vào", m.into)


def render_csv(digest: Digest) -> str:
    """The digest as one long CSV table: section, key, name, measure, value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("Phần", "Mã", "Tên", "Chỉ số", "Giá trị"))
    for row in _csv_rows(digest):
        writer.writerow("" if v is None else v for v in row)
    return buffer.getvalue()


def csv_bytes(digest: Digest) -> bytes:
    """The CSV as a file for spreadsheets (UTF-8 with a byte-order mark, which Excel needs)."""
    return render_csv(digest).encode("utf-8-sig")


# --- Chart --------------------------------------------------------------------------------


def chart_png(digest: Digest) -> bytes:
    """Received and resolved tickets per category, and the ratings 1–5, as a PNG."""
    # Fixed margins (room for 30-letter category names): a layout engine would double the cost.
    figure = Figure(figsize=(11, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, width_ratios=(2.2, 1))
    figure.subplots_adjust(left=0.23, right=0.98, bottom=0.1, top=0.86, wspace=0.22)
    rows = list(reversed(digest.by_category))
    names = [_shorten(r.name) for r in rows]
    positions = range(len(rows))
    height = 0.38
    left.barh(
        [p + height / 2 for p in positions],
        [r.received for r in rows],
        height,
        label="Tiếp nhận",
        color="#1f6fb2",
    )
    left.barh(
        [p - height / 2 for p in positions],
        [r.resolved for r in rows],
        height,
        label="Đã giải quyết",
        color="#2e9e5b",
    )
    left.set_yticks(list(positions), names)
    left.set_xlabel("Số phản ánh")
    left.set_title("Theo lĩnh vực")
    left.xaxis.get_major_locator().set_params(integer=True)
    if rows:
        left.legend(loc="lower right")
    else:
        left.text(0.5, 0.5, "Không có phản ánh", ha="center", va="center", transform=left.transAxes)
    stars = list(digest.satisfaction.distribution)
    counts = [digest.satisfaction.distribution[s] for s in stars]
    right.bar([f"{s} sao" for s in stars], counts, color="#e0a526")
    right.set_title(f"Mức độ hài lòng ({number(digest.satisfaction.ratings)} đánh giá)")
    right.set_ylabel("Số lượt đánh giá")
    right.yaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(f"{digest.unit_name}: {week_title(digest)}", fontsize=13)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _shorten(name: str, limit: int = 30) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# --- HTML ---------------------------------------------------------------------------------

_STYLE = """
.civicbot-digest{font-family:system-ui,sans-serif;color:#1d2733;max-width:60rem}
.civicbot-digest table{border-collapse:collapse;margin:.5rem 0 1rem}
.civicbot-digest th,.civicbot-digest td{border:1px solid #c9d2dc;padding:.25rem .5rem}
.civicbot-digest td.n{text-align:right}
.civicbot-digest img{max-width:100%;height:auto}
"""


def _html_table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{html.escape(c)}</td>'
            if i >= numeric_from
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(digest: Digest, chart: bytes | None = None) -> str:
    """A self-contained HTML fragment (its own style, the chart as a data: URI)."""
    png = chart if chart is not None else chart_png(digest)
    e = html.escape
    parts = [
        f'<section class="civicbot-digest" lang="vi"><style>{_STYLE}</style>',
        f"<h2>Báo cáo phản ánh, kiến nghị: {e(week_title(digest))}</h2>",
        f"<p><strong>Đơn vị:</strong> {e(digest.unit_name)}<br>"
        f"<strong>Thời gian:</strong> từ {e(moment(digest.period_start))} đến trước "
        f"{e(moment(digest.period_end))} (giờ {e(zone_name(digest.timezone))})</p>",
        f'<img alt="{e("Biểu đồ: phản ánh theo lĩnh vực và mức độ hài lòng")}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">',
        "<h3>Tổng quan</h3>",
        _html_table(
            ["Chỉ số", "Tuần này", "Tuần trước", "Thay đổi"],
            [
                [label, number(now), number(before), signed(change)]
                for _k, label, now, before, change in _headline_rows(digest)
            ],
        ),
        "<ul>" + "".join(f"<li>{e(line)}</li>" for line in _summary_lines(digest)) + "</ul>",
        "<h3>Mức độ hài lòng</h3>",
        _html_table(
            ["Đánh giá", "Số lượt"],
            [[f"{s} sao", number(n)] for s, n in digest.satisfaction.distribution.items()],
        ),
        "<h3>Theo lĩnh vực</h3>",
        _html_table(["Lĩnh vực", *COLUMNS.values()], _breakdown_rows(digest.by_category)),
        "<h3>Theo phường, xã</h3>",
        _html_table(["Phường, xã", *COLUMNS.values()], _breakdown_rows(digest.by_ward)),
        "<h3>Phường, xã có nhiều phản ánh nhất</h3>",
        "<ol>"
        + "".join(f"<li>{e(w.name)}: {number(w.received)}</li>" for w in digest.top_wards)
        + "</ol>",
        "<h3>Thủ tục hành chính được hỏi nhiều nhất (toàn thành phố)</h3>",
        f"<p>Tổng số câu hỏi về thủ tục: {number(digest.procedure_questions)}</p>",
        _html_table(
            ["Thủ tục", "Số câu hỏi"],
            [[p.name, number(p.questions)] for p in digest.top_procedures],
        ),
        f"<h3>Phản ánh quá hạn cuối tuần ({number(len(digest.overdue_tickets))})</h3>",
        _html_table(OVERDUE_HEADERS, _overdue_rows(digest), numeric_from=5),
        f"<h3>Phản ánh trùng đã gộp ({number(len(digest.merged_duplicates))})</h3>",
        _html_table(MERGED_HEADERS, _merged_rows(digest), numeric_from=5),
        "</section>",
    ]
    return "\n".join(parts) + "\n"


# --- The chat message ---------------------------------------------------------------------


def _trend(change: int) -> str:
    return f" ({signed(change)} so với tuần trước)" if change else " (không đổi)"


def message_text(digest: Digest) -> str:
    """The short Vietnamese message sent with the chart and the CSV."""
    c, d = digest.counts, digest.change
    lines = [
        f"📊 Báo cáo phản ánh, kiến nghị: {week_title(digest)}",
        f"Đơn vị: {digest.unit_name}",
        "",
        f"• Tiếp nhận mới: {number(c.received)}{_trend(d.received)}",
        f"• Đơn vị nhận xử lý: {number(c.accepted)}; đã giải quyết: {number(c.resolved)}"
        f"{_trend(d.resolved)}; từ chối: {number(c.rejected)}",
        f"• Đúng hạn: {percent(digest.on_time_rate)}; thời gian giải quyết (trung vị): "
        f"{hours(digest.median_hours_to_resolve)}",
        f"• Chưa kết thúc cuối tuần: {number(c.open)}, trong đó quá hạn: {number(c.overdue)}"
        f"{_trend(d.overdue)}",
    ]
    s = digest.satisfaction
    if s.average is not None:
        lines.append(f"• Hài lòng: {number(s.average, 2)}/5 ({number(s.ratings)} đánh giá)")
    if digest.league is not None:
        lines.append(f"• {league_line(digest.league)}")
    if digest.top_wards:
        wards = ", ".join(f"{w.name} ({number(w.received)})" for w in digest.top_wards[:3])
        lines.append(f"• Nhiều phản ánh nhất: {wards}")
    if digest.overdue_tickets:
        shown = [t.code for t in digest.overdue_tickets[:MESSAGE_OVERDUE_CODES]]
        rest = len(digest.overdue_tickets) - len(shown)
        more = f" và {number(rest)} phản ánh khác" if rest else ""
        lines.append(f"• Quá hạn: {', '.join(shown)}{more}")
    if digest.merged_duplicates:
        merged = ", ".join(f"{m.code} → {m.into}" for m in digest.merged_duplicates[:5])
        left = len(digest.merged_duplicates) - 5
        tail = f" và {number(left)} phản ánh khác" if left > 0 else ""
        lines.append(f"• Phản ánh trùng đã gộp: {merged}{tail}")
    lines += ["", "Kính gửi anh/chị biểu đồ và bảng số liệu chi tiết (CSV) kèm theo."]
    return "\n".join(lines)


# --- By format ----------------------------------------------------------------------------

RENDERERS: dict[Format, Callable[[Digest], str]] = {
    "md": render_markdown,
    "json": render_json,
    "csv": render_csv,
    "html": render_html,
}


def render(digest: Digest, fmt: Format) -> str:
    """The digest in one of FORMATS."""
    return RENDERERS[fmt](digest)
