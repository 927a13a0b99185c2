"""The officials' web dashboard: sign-in, the unit's queue, a ticket page with the same
actions as the chat buttons, and the weekly digest with its charts.

Sign-in (`bot/officials/signin.py`: codes, links, their budgets and the sessions):

1. ``/dashboard/signin`` asks for the official's number (the id `civicbot official list`
   shows). For an active official linked to a chat account, a 6-digit code is queued
   through the outbox to that chat, valid 10 minutes, within hourly budgets per official,
   per client address and overall. The page answers the same whether or not the number
   exists or a budget is spent, so it tells nobody who is registered.
2. ``/dashboard/signin/code`` takes the code. Only an HMAC of it is stored; a code is used
   once, 5 wrong tries void it, and the official's chat is told of wrong tries.
3. Officials can always ask for a one-time link in their own chat (``/dangnhap``), with a
   budget of their own; operators print one with `civicbot official signin-link`. Opening a
   link shows a button; the sign-in is the POST behind it, so link previews in chat apps
   cannot use it up.

The session is a record on the server (``dashboard_session``); the cookie (Starlette's
signed SessionMiddleware cookie: HttpOnly, SameSite=Lax, path ``/dashboard``, ``Secure``
when the request came over HTTPS) carries its random id, the CSRF token and the flash
message. Signing out or removing the official ends the record: a replayed cookie is then
worth nothing. The official is read afresh on every request, so a deactivated official is
signed out at once.

Who sees what: handlers and supervisors see their unit's tickets (any other ticket is a
404) and act through `bot.tickets.workflow`, exactly as the Telegram buttons do; leaders see
every unit and the city-wide digest, and do not act. Pages are server-rendered HTML with
everything escaped, no script, and one stylesheet (``static/dashboard.css``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from bot.channels.common import read_body
from bot.channels.web_photos import photo_path
from bot.config import settings
from bot.conversation.messages import OutgoingFile
from bot.conversation.texts import CATEGORY_NAMES, OFFICIAL_STATUS_NAMES
from bot.digest.aggregate import IsoWeek, UnknownUnit, as_tz, parse_iso_week, weekly_digest
from bot.digest.render import chart_png, csv_bytes, render_html
from bot.officials import signin
from bot.officials.desk import ROLE_NAMES, is_overdue, overdue_clause
from bot.tickets import access, workflow
from bot.tickets.intake import contact_text, expected, place_text
from bot.tickets.publish import MAX_PUBLIC_CHARS, add_public_note, set_public_summary
from bot.tickets.workflow import ActionRefused
from storage import queries
from storage.db import get_session
from storage.models import (
    Official,
    OfficialRole,
    Ticket,
    TicketStatus,
    Unit,
    UnitKind,
    utcnow,
)

logger = logging.getLogger(__name__)

SESSION_COOKIE = "civicbot_dashboard"
MAX_FORM_BYTES = 32 * 1024
MAX_NOTE_CHARS = 2000
MAX_LISTED = 200
STYLESHEET = "/static/dashboard.css"


def _policy(styles: Sequence[str] = ()) -> str:
    """The pages' Content-Security-Policy: no script at all; `styles` are the hashes of
    inline style elements allowed (the digest fragment brings one)."""
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


# --- Who is looking -------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """The signed-in official, as read at the start of a request."""

    id: int
    name: str
    role: OfficialRole
    unit_id: str
    unit_name: str
    unit_ward_code: str | None = None

    @property
    def is_leader(self) -> bool:
        """Leaders see every unit (and do not act)."""
        return self.role == OfficialRole.leader

    @property
    def reader(self) -> access.Reader:
        return access.Reader(self.id, self.role, self.unit_id, self.unit_ward_code)

    def may_see(self, ticket: Ticket) -> bool:
        """Whether the ticket is shown to this official at all (the desk's rule)."""
        return access.can_read(self.reader, ticket)

    def may_act(self, ticket: Ticket) -> bool:
        """Whether the action forms are offered (`workflow.check_can_act` decides in the end)."""
        return access.can_act(self.reader, ticket)


def load_viewer(*, session: Session, official_id: int) -> Viewer | None:
    """The active official `official_id` as a Viewer, or None."""
    official = session.get(Official, official_id)
    reader = access.Reader.of(session, official)
    if official is None or reader is None:
        return None
    return Viewer(
        id=reader.official_id, name=official.name, role=reader.role, unit_id=reader.unit_id,
        unit_name=workflow.unit_name(session, official.unit_id),
        unit_ward_code=reader.unit_ward_code,
    )  # fmt: skip


# --- The queue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as in the page's query string."""

    status: str = "open"  # open | all | a TicketStatus value
    category: str = ""
    ward: str = ""
    overdue: bool = False
    unit: str = ""  # leaders only

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilters:
        """Filters from a query string; unknown values fall back to "no filter"."""
        status = query.get("status", "open")
        if status not in ("open", "all") and status not in TicketStatus.__members__:
            status = "open"
        category = query.get("category", "")
        return cls(
            status=status,
            category=category if category in CATEGORY_NAMES else "",
            ward=query.get("ward", "").strip()[:16],
            overdue=query.get("overdue", "") in ("1", "on", "true"),
            unit=query.get("unit", "").strip()[:64],
        )

    def statuses(self) -> tuple[TicketStatus, ...]:
        """The statuses shown (empty: all)."""
        if self.status == "open":
            return workflow.OPEN_STATUSES
        if self.status == "all":
            return ()
        return (TicketStatus(self.status),)


def queue_tickets(
    *,
    session: Session,
    unit_id: str | None,
    filters: QueueFilters,
    now: datetime,
    limit: int = MAX_LISTED,
    reader: access.Reader | None = None,
) -> tuple[list[Ticket], int]:
    """Tickets of a unit (all units: None) matching `filters`, and how many match in all.

    Open tickets come by deadline (soonest first, none last); lists that include finished
    tickets come newest first. Overdue is `desk.is_overdue`, in SQL.
    """
    conditions: list[Any] = []
    statuses = filters.statuses()
    if statuses:
        conditions.append(col(Ticket.status).in_(list(statuses)))
    if unit_id is not None:
        conditions.append(Ticket.lead_unit_id == unit_id)
    if filters.category:
        conditions.append(Ticket.category == filters.category)
    if filters.ward:
        conditions.append(Ticket.ward_code == filters.ward)
    if filters.overdue:
        conditions.append(overdue_clause(now))
    if reader is not None:
        conditions.append(access.readable_clause(reader))
    total = session.exec(
        select(sa.func.count()).select_from(Ticket).where(sa.true(), *conditions)
    ).one()
    statement = select(Ticket).where(sa.true(), *conditions)
    if statuses and set(statuses) <= set(workflow.OPEN_STATUSES):
        statement = statement.order_by(
            col(Ticket.resolve_by).is_(None), col(Ticket.resolve_by), col(Ticket.id)
        )
    else:
        statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return list(session.exec(statement.limit(limit))), total


def queue_wards(
    *, session: Session, unit_id: str | None, reader: access.Reader
) -> list[tuple[str, str]]:
    """(ward code, ward name) of the wards the unit's tickets (all: None) are in, by name."""
    statement = select(Ticket.ward_code, Ticket.ward_name).where(
        col(Ticket.ward_code).is_not(None), access.readable_clause(reader)
    )
    if unit_id is not None:
        statement = statement.where(Ticket.lead_unit_id == unit_id)
    names: dict[str, str] = {}
    for code, name in session.exec(statement.distinct()):
        if code is not None:
            names.setdefault(code, name or code)
    return sorted(names.items(), key=lambda item: (item[1], item[0]))


# --- HTML -----------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Text made safe for HTML, attributes included."""
    return html.escape(str(value), quote=True)


def _options(choices: Iterable[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{esc(value)}"{" selected" if value == selected else ""}>'
        f"{esc(label)}</option>"
        for value, label in choices
    )


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


@dataclass(frozen=True)
class Page:
    """What every page needs besides its content."""

    viewer: Viewer | None
    csrf: str
    flash: tuple[str, str] | None = None


def _document(title: str, content: str, page: Page) -> str:
    nav = ""
    if page.viewer is not None:
        v = page.viewer
        role = ROLE_NAMES.get(v.role.value, v.role.value)
        nav = (
            '<nav class="nav">'
            '<a href="/dashboard">Hàng đợi</a><a href="/dashboard/digest">Báo cáo tuần</a>'
            f'<span class="who">{esc(v.name)} (số hiệu {v.id}) · {esc(role)} · '
            f"{esc(v.unit_name)}</span>"
            '<form method="post" action="/dashboard/signout" class="inline">'
            f'{_hidden("csrf", page.csrf)}<button type="submit" class="link">Đăng xuất</button>'
            "</form></nav>"
        )
    flash = ""
    if page.flash is not None:
        kind, text = page.flash
        flash = f'<p class="flash {esc(kind)}" role="status">{esc(text)}</p>'
    return (
        '<!doctype html>\n<html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} — CivicBot</title>"
        f'<link rel="stylesheet" href="{STYLESHEET}">'
        '<link rel="icon" href="/static/icon.svg" type="image/svg+xml"></head><body>'
        '<header class="top"><a class="brand" href="/dashboard">CivicBot · Cán bộ</a>'
        f"{nav}</header><main>{flash}{content}</main></body></html>"
    )


def _html(text: str, status: int = 200, styles: Sequence[str] = ()) -> Response:
    headers = {"Content-Security-Policy": _policy(styles), "Cache-Control": "no-store"}
    return HTMLResponse(text, status_code=status, headers=headers)


def _deadline(moment: datetime | None, now: datetime) -> str:
    late = moment is not None and moment < now
    return f'<span class="{"late" if late else ""}">{esc(expected(moment))}</span>'


def _status_badge(ticket: Ticket, now: datetime) -> str:
    badge = (
        f'<span class="status s-{esc(ticket.status.value)}">'
        f"{esc(OFFICIAL_STATUS_NAMES[ticket.status.value])}</span>"
    )
    if is_overdue(ticket, now):
        badge += ' <span class="badge overdue">Quá hạn</span>'
    return badge


def _all_units(session: Session) -> list[Unit]:
    """Every unit, for a leader's choice of unit: by kind, then name."""
    return list(session.exec(select(Unit).order_by(col(Unit.kind), col(Unit.name))))


def _category(ticket: Ticket) -> str:
    return CATEGORY_NAMES.get(ticket.category or "other", "Khác")


def render_queue(
    *, session: Session, viewer: Viewer, filters: QueueFilters, now: datetime, page: Page
) -> str:
    """The queue page."""
    unit_id: str | None = viewer.unit_id
    units: list[Unit] = []
    if viewer.is_leader:
        units = _all_units(session)
        known = {u.id for u in units}
        unit_id = filters.unit if filters.unit in known else None
        filters = replace(filters, unit=unit_id or "")
    tickets, total = queue_tickets(
        session=session, unit_id=unit_id, filters=filters, now=now, reader=viewer.reader
    )
    wards = queue_wards(session=session, unit_id=unit_id, reader=viewer.reader)

    statuses = [("open", "Đang mở (chưa xong)"), ("all", "Tất cả")] + [
        (s.value, OFFICIAL_STATUS_NAMES[s.value]) for s in TicketStatus
    ]
    fields = [
        '<label>Trạng thái<select name="status">'
        f"{_options(statuses, filters.status)}</select></label>",
        '<label>Lĩnh vực<select name="category">'
        f"{_options([('', 'Tất cả lĩnh vực'), *CATEGORY_NAMES.items()], filters.category)}"
        "</select></label>",
        '<label>Phường, xã<select name="ward">'
        f"{_options([('', 'Tất cả phường, xã'), *wards], filters.ward)}</select></label>",
    ]
    if viewer.is_leader:
        unit_choices = [("", "Tất cả đơn vị"), *((u.id, u.name) for u in units)]
        fields.insert(
            0,
            f'<label>Đơn vị<select name="unit">{_options(unit_choices, filters.unit)}'
            "</select></label>",
        )
    checked = " checked" if filters.overdue else ""
    fields.append(
        f'<label class="check"><input type="checkbox" name="overdue" value="1"{checked}>'
        " Chỉ phản ánh quá hạn</label>"
    )
    form = (
        '<form method="get" action="/dashboard" class="filters" aria-label="Lọc phản ánh">'
        + "".join(fields)
        + '<div class="buttons"><button type="submit">Lọc</button>'
        '<a class="button secondary" href="/dashboard">Bỏ lọc</a></div></form>'
    )
    scope = "Toàn thành phố" if viewer.is_leader and unit_id is None else None
    own = unit_id == viewer.unit_id  # its name was read with the viewer
    heading = scope or (viewer.unit_name if own else workflow.unit_name(session, unit_id))
    shown = f"{len(tickets)}/{total}" if total > len(tickets) else str(total)
    rows = []
    for t in tickets:
        place = t.ward_name or t.location_text or "—"
        unit_cell = (
            f'<td data-label="Đơn vị">{esc(workflow.unit_name(session, t.lead_unit_id))}</td>'
            if viewer.is_leader
            else ""
        )
        rows.append(
            f'<tr><td data-label="Mã"><a href="/dashboard/tickets/{esc(t.code)}">'
            f"{esc(t.code)}</a></td>"
            f'<td data-label="Lĩnh vực">{esc(_category(t))}</td>'
            f'<td data-label="Địa điểm">{esc(place)}</td>{unit_cell}'
            f'<td data-label="Trạng thái">{_status_badge(t, now)}</td>'
            f'<td data-label="Hạn giải quyết">{_deadline(t.resolve_by, now)}</td></tr>'
        )
    if rows:
        unit_head = "<th>Đơn vị</th>" if viewer.is_leader else ""
        table = (
            '<div class="table"><table class="queue"><thead><tr><th>Mã</th><th>Lĩnh vực</th>'
            f"<th>Địa điểm</th>{unit_head}<th>Trạng thái</th><th>Hạn giải quyết</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    else:
        table = '<p class="empty">Không có phản ánh nào khớp bộ lọc.</p>'
    more = (
        f'<p class="note">Chỉ hiển thị {len(tickets)} phản ánh đầu tiên; '
        "anh/chị vui lòng lọc thêm.</p>"
        if total > len(tickets)
        else ""
    )
    content = (
        f"<h1>Hàng đợi phản ánh <small>{esc(heading)}</small></h1>{form}"
        f'<p class="count">{esc(shown)} phản ánh</p>{table}{more}'
    )
    return _document("Hàng đợi phản ánh", content, page)


def _transfer_choices(session: Session, ticket: Ticket) -> list[tuple[str, str]]:
    """Units a ticket may go to: the parent unit and the ticket's ward first, then the city
    bodies and companies, then every ward."""
    units = [
        u
        for u in session.exec(select(Unit).order_by(col(Unit.name)))
        if access.may_receive(u, ticket)
    ]
    current = session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
    first = [
        u
        for u in units
        if (current is not None and u.id == current.parent_id)
        or (ticket.ward_code is not None and u.ward_code == ticket.ward_code)
    ]
    others = [u for u in units if u not in first and u.kind != UnitKind.ward]
    wards = [u for u in units if u not in first and u.kind == UnitKind.ward]
    return [(u.id, u.name) for u in (*first, *others, *wards)]


def _action_forms(session: Session, ticket: Ticket, csrf: str) -> str:
    base = f"/dashboard/tickets/{esc(ticket.code)}"
    token = _hidden("csrf", csrf)

    def form(action: str, title: str, body: str, button: str, kind: str = "") -> str:
        return (
            f'<form method="post" action="{base}/{action}" class="action {kind}">'
            f"<h3>{esc(title)}</h3>{token}{body}"
            f'<button type="submit">{esc(button)}</button></form>'
        )

    def text(name: str, label: str) -> str:
        return (
            f'<label>{esc(label)}<textarea name="{name}" rows="3" required '
            f'maxlength="{MAX_NOTE_CHARS}"></textarea></label>'
        )

    forms = []
    if ticket.status == TicketStatus.received:
        forms.append(form("accept", "Tiếp nhận", "", "Tiếp nhận", "primary"))
    units = _options([("", "— Chọn đơn vị —"), *_transfer_choices(session, ticket)], "")
    forms += [
        form("ask", "Hỏi thêm người dân", text("question", "Câu hỏi gửi người dân"),
             "Gửi câu hỏi"),
        form("resolve", "Báo đã giải quyết", text("note", "Kết quả giải quyết"),
             "Báo đã giải quyết", "primary"),
        form("transfer", "Chuyển đơn vị",
             f'<label>Đơn vị nhận<select name="unit" required>{units}</select></label>'
             + text("reason", "Lý do chuyển"), "Chuyển"),
        form("reject", "Không tiếp nhận", text("reason", "Lý do không tiếp nhận (bắt buộc)"),
             "Không tiếp nhận", "danger"),
    ]  # fmt: skip
    return f'<section class="actions"><h2>Thao tác</h2>{"".join(forms)}</section>'


def _photo_gallery(code: str, photos: Sequence[OutgoingFile]) -> str:
    """The photos this server keeps (sent from the web chat), each a link to itself."""
    links = [
        f'<a href="{href}"><img src="{href}" alt="Ảnh {i + 1}" loading="lazy"></a>'
        for i, photo in enumerate(photos)
        if photo.channel == "web" and photo_path(photo.file_id or "", settings.upload_dir)
        for href in [esc(f"/dashboard/tickets/{code}/photos/{i}")]
    ]
    return f'<div class="photos">{"".join(links)}</div>' if links else ""


def _publish_forms(ticket: Ticket, csrf: str) -> str:
    """What Open311 publishes: the public summary (prefilled) and a public note."""
    base = f"/dashboard/tickets/{esc(ticket.code)}"
    summary = esc(ticket.public_summary or "")
    unset = "Chưa có: Open311 chỉ công bố lĩnh vực và phường."
    shown = "" if summary else f'<p class="note">{esc(unset)}</p>'
    return (
        '<section class="actions publish"><h2>Công khai trên Open311</h2>'
        f'<form method="post" action="{base}/summary" class="action">'
        f"<h3>Tóm tắt công khai</h3>{_hidden('csrf', csrf)}"
        f"{shown}"
        f"<label>Tóm tắt thay cho lời người dân (không ghi tên, số điện thoại, số nhà)"
        f'<textarea name="summary" rows="3" required maxlength="{MAX_PUBLIC_CHARS}">'
        f"{summary}</textarea></label>"
        '<button type="submit">Lưu tóm tắt</button></form>'
        f'<form method="post" action="{base}/public_note" class="action">'
        f"<h3>Thông báo công khai</h3>{_hidden('csrf', csrf)}"
        f'<label>Tiến độ, kết quả (công bố trên Open311)<textarea name="public_note" rows="3" '
        f'required maxlength="{MAX_PUBLIC_CHARS}"></textarea></label>'
        '<button type="submit">Công bố</button></form></section>'
    )


def render_ticket(
    *, session: Session, viewer: Viewer, ticket: Ticket, now: datetime, page: Page
) -> str:
    """The ticket page: details, history and (for its unit's handlers) the action forms."""
    assert ticket.id is not None
    photo_files = workflow.photos_of(session, ticket)
    photos = len(photo_files)
    place, contact = place_text(ticket), contact_text(ticket)
    facts = [
        ("Lĩnh vực", esc(_category(ticket))),
        ("Trạng thái", _status_badge(ticket, now)),
        ("Đơn vị chủ trì", esc(workflow.unit_name(session, ticket.lead_unit_id))),
        ("Địa điểm", esc(place)),
        ("Liên hệ", esc(contact)),
        ("Ảnh kèm theo", esc(f"{photos} ảnh")),
        ("Ngày gửi", esc(expected(ticket.created_at))),
        ("Hạn tiếp nhận", _deadline(ticket.accept_by, now)
         if ticket.status == TicketStatus.received else esc(expected(ticket.accept_by))),
        ("Hạn giải quyết", _deadline(ticket.resolve_by, now)
         if ticket.status in workflow.OPEN_STATUSES else esc(expected(ticket.resolve_by))),
    ]  # fmt: skip
    if ticket.rating is not None:
        facts.append(("Đánh giá của người dân", esc(f"{ticket.rating}/5")))
    details = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    history = "".join(
        f"<li>{esc(line.removeprefix('• '))}</li>"
        for line in workflow.history_lines(session, ticket)
    )
    if viewer.may_act(ticket) and ticket.status in workflow.OPEN_STATUSES:
        acting = _action_forms(session, ticket, page.csrf)
    elif viewer.may_act(ticket):
        acting = '<p class="note">Phản ánh đã kết thúc xử lý: không còn thao tác.</p>'
    else:
        acting = '<p class="note">Anh/chị chỉ xem phản ánh này; đơn vị chủ trì xử lý.</p>'
    if viewer.may_act(ticket):
        acting += _publish_forms(ticket, page.csrf)
    content = (
        '<p class="back"><a href="/dashboard">← Hàng đợi</a></p>'
        f"<h1>Phản ánh {esc(ticket.code)}</h1>"
        f'<div class="ticket"><section class="details"><dl>{details}</dl>'
        f'<h2>Nội dung</h2><p class="description">{esc(ticket.description)}</p>'
        f"{_photo_gallery(ticket.code, photo_files)}</section>"
        f'<section class="history"><h2>Lịch sử xử lý</h2><ol>{history}</ol></section>'
        f"{acting}</div>"
    )
    return _document(f"Phản ánh {ticket.code}", content, page)


def _signin_page(page: Page, *, next_path: str, error: str = "") -> str:
    alert = f'<p class="flash error" role="alert">{esc(error)}</p>' if error else ""
    content = (
        '<section class="signin"><h1>Đăng nhập</h1>'
        "<p>Nhập số hiệu cán bộ của anh/chị (do quản trị viên cung cấp, xem bằng lệnh "
        "<code>civicbot official list</code>). Mã đăng nhập gồm 6 chữ số sẽ được gửi tới "
        "tài khoản Telegram hoặc Zalo mà anh/chị đã liên kết với CivicBot.</p>"
        f'{alert}<form method="post" action="/dashboard/signin">{_hidden("csrf", page.csrf)}'
        f"{_hidden('next', next_path)}"
        '<label>Số hiệu cán bộ<input name="official" inputmode="numeric" pattern="[0-9]+" '
        'required autofocus autocomplete="username"></label>'
        '<button type="submit">Gửi mã đăng nhập</button></form></section>'
    )
    return _document("Đăng nhập", content, page)


def _code_page(page: Page, *, next_path: str, error: str = "") -> str:
    alert = f'<p class="flash error" role="alert">{esc(error)}</p>' if error else ""
    minutes = int(signin.CODE_VALIDITY.total_seconds() // 60)
    content = (
        '<section class="signin"><h1>Nhập mã đăng nhập</h1>'
        "<p>Nếu số hiệu cán bộ đúng và đã liên kết tài khoản trò chuyện, CivicBot vừa gửi "
        f"mã 6 chữ số tới tài khoản đó. Mã có hiệu lực {minutes} phút.</p>"
        f'{alert}<form method="post" action="/dashboard/signin/code">'
        f"{_hidden('csrf', page.csrf)}{_hidden('next', next_path)}"
        '<label>Mã đăng nhập<input name="code" inputmode="numeric" pattern="[0-9 ]{6,7}" '
        'maxlength="7" required autofocus autocomplete="one-time-code"></label>'
        '<button type="submit">Đăng nhập</button></form>'
        '<p class="note"><a href="/dashboard/signin">Không nhận được mã? Nhập lại số hiệu'
        "</a></p></section>"
    )
    return _document("Nhập mã đăng nhập", content, page)


def _link_page(page: Page, *, token: str) -> str:
    content = (
        '<section class="signin"><h1>Đăng nhập bằng đường dẫn</h1>'
        "<p>Đường dẫn này chỉ dùng được một lần. Bấm nút dưới đây để đăng nhập.</p>"
        f'<form method="post" action="/dashboard/signin/link">{_hidden("csrf", page.csrf)}'
        f'{_hidden("token", token)}<button type="submit">Đăng nhập</button></form></section>'
    )
    return _document("Đăng nhập", content, page)


def _message_page(title: str, text: str, page: Page) -> str:
    content = (
        f'<section class="message"><h1>{esc(title)}</h1><p>{esc(text)}</p>'
        '<p><a href="/dashboard">Về hàng đợi</a></p></section>'
    )
    return _document(title, content, page)


# --- The digest -----------------------------------------------------------------------------

_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL)


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


def render_digest(
    *, session: Session, viewer: Viewer, request: DigestRequest, now: datetime, page: Page
) -> tuple[str, list[str]]:
    """The digest page and the hashes of the inline styles it needs (for the CSP)."""
    zone = as_tz(settings.timezone)
    units: list[Unit] = []
    if viewer.is_leader:
        units = _all_units(session)
    try:
        digest = weekly_digest(
            session=session, week=request.week, unit_id=request.unit or None, tz=zone
        )
    except UnknownUnit:
        fragment = '<p class="empty">Đơn vị này không có trong danh bạ.</p>'
        styles: list[str] = []
    else:
        fragment = render_html(digest, chart_png(digest))
        styles = [
            "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
            for m in _STYLE_ELEMENT.findall(fragment)
        ]
    week = request.week
    current = IsoWeek.containing(now, zone)

    def link(target: IsoWeek, label: str) -> str:
        query = {"week": str(target), **({"unit": request.unit} if viewer.is_leader else {})}
        return f'<a href="/dashboard/digest?{esc(urlencode(query))}">{esc(label)}</a>'

    later = link(week.next(), "Tuần sau →") if week < current else ""
    unit_field = ""
    if viewer.is_leader:
        choices = [("", "Toàn thành phố"), *((u.id, u.name) for u in units)]
        unit_field = (
            f'<label>Đơn vị<select name="unit">{_options(choices, request.unit)}</select></label>'
        )
    download = {"week": str(week), **({"unit": request.unit} if viewer.is_leader else {})}
    content = (
        f"<h1>Báo cáo tuần <small>{esc(week)}</small></h1>"
        '<div class="digest-nav">'
        f"{link(week.previous(), '← Tuần trước')}{later}"
        f'<form method="get" action="/dashboard/digest">{unit_field}'
        f'<label>Tuần<input type="week" name="week" value="{esc(week)}" '
        f'max="{esc(current)}"></label><button type="submit">Xem</button></form>'
        f'<a href="/dashboard/digest.csv?{esc(urlencode(download))}">Tải bảng số liệu (CSV)</a>'
        f'</div><div class="digest">{fragment}</div>'
    )
    return _document(f"Báo cáo tuần {week}", content, page), styles


# --- Routes ---------------------------------------------------------------------------------

_ACTIONS = ("accept", "ask", "transfer", "resolve", "reject", "summary", "public_note")
_DONE = {
    "accept": "Đã tiếp nhận phản ánh {code}.",
    "ask": "Đã gửi câu hỏi tới người phản ánh {code}.",
    "transfer": "Đã chuyển phản ánh {code} tới {unit}.",
    "resolve": "Đã báo kết quả giải quyết phản ánh {code}.",
    "reject": "Đã ghi nhận không tiếp nhận phản ánh {code}.",
    "summary": "Đã lưu tóm tắt công khai của phản ánh {code}.",
    "public_note": "Đã công bố thông báo về phản ánh {code}.",
}
_CSRF_FAILED = (
    "Phiên làm việc đã hết hạn hoặc biểu mẫu không hợp lệ. "
    "Anh/chị vui lòng tải lại trang và thử lại."
)
_NOT_FOUND = "Không tìm thấy phản ánh này, hoặc phản ánh không thuộc đơn vị của anh/chị."


class _SessionMiddleware(SessionMiddleware):
    """Starlette's signed session cookie, marked `Secure` when the request came over HTTPS
    (directly, or through a proxy uvicorn trusts for X-Forwarded-Proto)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await super().__call__(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                cookies = headers.getlist("set-cookie")
                del headers["set-cookie"]
                for cookie in cookies:
                    secure = cookie.startswith(f"{SESSION_COOKIE}=") and "secure" not in cookie
                    headers.append("set-cookie", f"{cookie}; secure" if secure else cookie)
            await send(message)

        await super().__call__(scope, receive, send_secure)


def dashboard_session_middleware() -> Middleware:
    """The signed session cookie the dashboard needs (added by `create_app`)."""
    return Middleware(
        _SessionMiddleware,
        secret_key=settings.dashboard_secret,
        session_cookie=SESSION_COOKIE,
        max_age=int(signin.SESSION_LIFETIME.total_seconds()),
        path="/dashboard",
        same_site="lax",
    )


def _client(request: Request) -> str | None:
    """The client's address (uvicorn puts a trusted proxy's X-Forwarded-For there)."""
    return request.client.host[:64] if request.client else None


def _safe_next(value: str | None) -> str:
    """Only a path on the dashboard: never somewhere else after signing in."""
    if (
        value
        and value.startswith("/dashboard")
        and "//" not in value
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
    ):
        return value
    return "/dashboard"


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form (last value of each field), or None when too large or garbled."""
    body = await read_body(request, MAX_FORM_BYTES)
    if body is None:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


def _csrf(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _csrf_ok(request: Request, form: Mapping[str, str] | None) -> bool:
    expected_token = request.session.get("csrf")
    sent = (form or {}).get("csrf", "")
    return isinstance(expected_token, str) and hmac.compare_digest(expected_token, sent)


async def _checked_form(request: Request) -> dict[str, str] | None:
    """The posted form when it is readable and carries the session's CSRF token, else None."""
    form = await _form(request)
    return form if form is not None and _csrf_ok(request, form) else None


def dashboard_routes(
    *, engine: Engine | None = None, clock: Callable[[], datetime] = utcnow
) -> list[BaseRoute]:
    """The dashboard's routes under `/dashboard` (`engine` default: the app's)."""

    def db() -> Any:
        return get_session(engine)

    def viewer_sync(token: str) -> Viewer | None:
        with db() as session:
            official_id = signin.session_official(session=session, token=token, now=clock())
            if official_id is None:
                return None
            return load_viewer(session=session, official_id=official_id)

    async def current_viewer(request: Request) -> Viewer | None:
        """The official of the cookie's live server-side session, or None."""
        token = request.session.get("sid")
        if not isinstance(token, str) or not token:
            if "official" in request.session:  # a cookie of the old, self-contained kind
                request.session.clear()
            return None
        viewer = await run_in_threadpool(viewer_sync, token[:128])
        if viewer is None:
            request.session.clear()  # signed out, expired, deactivated or removed
        return viewer

    def page_of(request: Request, viewer: Viewer | None) -> Page:
        flash = request.session.pop("flash", None)
        shown = None
        if isinstance(flash, list) and len(flash) == 2:
            shown = (str(flash[0]), str(flash[1]))
        return Page(viewer=viewer, csrf=_csrf(request), flash=shown)

    def to_signin(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": _safe_next(target)})
        return RedirectResponse(f"/dashboard/signin?{query}", status_code=303)

    def start_sync(official_id: int) -> str:
        with db() as session:
            return signin.start_session(session=session, official_id=official_id, now=clock())

    async def signed_in(request: Request, official: Official, next_path: str) -> Response:
        assert official.id is not None
        token = await run_in_threadpool(start_sync, official.id)
        request.session.clear()
        request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32)})
        logger.info("Official %s signed in to the dashboard.", official.id)
        return RedirectResponse(_safe_next(next_path), status_code=303)

    def forbidden(request: Request, viewer: Viewer | None) -> Response:
        page = _message_page("Không thực hiện được", _CSRF_FAILED, page_of(request, viewer))
        return _html(page, status=403)

    # --- sign-in ---

    async def signin_get(request: Request) -> Response:
        if await current_viewer(request) is not None:
            return RedirectResponse("/dashboard", status_code=303)
        next_path = _safe_next(request.query_params.get("next"))
        return _html(_signin_page(page_of(request, None), next_path=next_path))

    def request_code_sync(official_id: int, client: str | None) -> int | None:
        with db() as session:
            return signin.request_signin_code(
                session=session, official_id=official_id, now=clock(), client=client
            )

    async def signin_post(request: Request) -> Response:
        form = await _checked_form(request)
        if form is None:
            return forbidden(request, None)
        next_path = _safe_next(form.get("next"))
        number = form.get("official", "").strip().lstrip("#")
        if not number.isdigit() or len(number) > 12:
            page = _signin_page(
                page_of(request, None), next_path=next_path,
                error="Số hiệu cán bộ là một dãy chữ số.",
            )  # fmt: skip
            return _html(page, status=400)
        signin_id = await run_in_threadpool(request_code_sync, int(number), _client(request))
        request.session["pending"] = signin_id or 0  # 0: nothing was sent; every code fails
        return RedirectResponse(
            f"/dashboard/signin/code?{urlencode({'next': next_path})}", status_code=303
        )

    async def code_page(request: Request) -> Response:
        if "pending" not in request.session:
            return RedirectResponse("/dashboard/signin", status_code=303)
        next_path = _safe_next(request.query_params.get("next"))
        return _html(_code_page(page_of(request, None), next_path=next_path))

    def verify_sync(signin_id: int, code: str, client: str | None) -> Official | None:
        with db() as session:
            return signin.verify_signin_code(
                session=session, signin_id=signin_id, code=code, now=clock(), client=client
            )

    async def code_post(request: Request) -> Response:
        form = await _checked_form(request)
        if form is None:
            return forbidden(request, None)
        next_path = _safe_next(form.get("next"))
        pending = request.session.get("pending")
        official = None
        if isinstance(pending, int) and pending > 0:
            code = form.get("code", "")[:16]
            official = await run_in_threadpool(verify_sync, pending, code, _client(request))
        if official is None:
            error = (
                "Mã không đúng, đã hết hạn hoặc đã bị khóa sau "
                f"{signin.MAX_CODE_ATTEMPTS} lần nhập sai. Anh/chị kiểm tra lại, "
                "hoặc yêu cầu mã mới."
            )
            page = _code_page(page_of(request, None), next_path=next_path, error=error)
            return _html(page, status=400)
        return await signed_in(request, official, next_path)

    async def link_page(request: Request) -> Response:
        token = request.query_params.get("token", "")[:128]
        return _html(_link_page(page_of(request, None), token=token))

    def use_link_sync(token: str) -> Official | None:
        with db() as session:
            return signin.use_signin_link(session=session, token=token, now=clock())

    async def link_post(request: Request) -> Response:
        form = await _checked_form(request)
        if form is None:
            return forbidden(request, None)
        official = await run_in_threadpool(use_link_sync, form.get("token", "")[:128])
        if official is None:
            page = _message_page(
                "Không đăng nhập được",
                "Đường dẫn đăng nhập không đúng, đã hết hạn hoặc đã được dùng.",
                page_of(request, None),
            )
            return _html(page, status=400)
        return await signed_in(request, official, "/dashboard")

    def end_sync(token: str) -> None:
        with db() as session:
            signin.end_session(session=session, token=token, now=clock())

    async def signout(request: Request) -> Response:
        form = await _checked_form(request)
        if form is None:
            return forbidden(request, None)
        token = request.session.get("sid")
        if isinstance(token, str):
            await run_in_threadpool(end_sync, token[:128])
        request.session.clear()
        return RedirectResponse("/dashboard/signin", status_code=303)

    # --- queue and tickets ---

    def queue_sync(viewer: Viewer, filters: QueueFilters, page: Page) -> str:
        with db() as session:
            return render_queue(
                session=session, viewer=viewer, filters=filters, now=clock(), page=page
            )

    async def queue(request: Request) -> Response:
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        filters = QueueFilters.from_query(request.query_params)
        return _html(await run_in_threadpool(queue_sync, viewer, filters, page_of(request, viewer)))

    def ticket_sync(viewer: Viewer, code: str, page: Page) -> str | None:
        with db() as session:
            ticket = queries.get_ticket_by_code(session=session, code=code)
            if ticket is None or not viewer.may_see(ticket):
                access.log_refusal(viewer.reader, "open", code)
                return None
            return render_ticket(
                session=session, viewer=viewer, ticket=ticket, now=clock(), page=page
            )

    def not_found(request: Request, viewer: Viewer) -> Response:
        page = _message_page("Không tìm thấy", _NOT_FOUND, page_of(request, viewer))
        return _html(page, status=404)

    def photo_sync(viewer: Viewer, code: str, index: int) -> Path | None:
        with db() as session:
            ticket = queries.get_ticket_by_code(session=session, code=code)
            if ticket is None or not viewer.may_see(ticket):
                access.log_refusal(viewer.reader, "photo", code)
                return None
            photos = workflow.photos_of(session, ticket)
            if not 0 <= index < len(photos) or photos[index].channel != "web":
                return None
            return photo_path(photos[index].file_id or "", settings.upload_dir)

    async def ticket_photo(request: Request) -> Response:
        """A photo of a ticket that the web chat's citizen sent (`bot.channels.web_photos`)."""
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        code, index = str(request.path_params["code"]), int(request.path_params["index"])
        path = await run_in_threadpool(photo_sync, viewer, code, index)
        if path is None or not path.is_file():
            return not_found(request, viewer)
        return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private"})

    async def ticket_page(request: Request) -> Response:
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        code = str(request.path_params["code"])
        text = await run_in_threadpool(ticket_sync, viewer, code, page_of(request, viewer))
        if text is None:
            return not_found(request, viewer)
        return _html(text)

    def act_sync(
        viewer: Viewer, code: str, action: str, form: Mapping[str, str]
    ) -> tuple[str, str, str] | None:
        """(flash kind, text, where to go next), or None: no such ticket for the viewer."""
        with db() as session:
            ticket = queries.get_ticket_by_code(session=session, code=code)
            official = session.get(Official, viewer.id)
            if ticket is None or not viewer.may_see(ticket):
                access.log_refusal(viewer.reader, action, code)
                return None
            keys = ("question", "note", "reason", "unit", "summary", "public_note")
            text = {k: form.get(k, "") for k in keys}
            page = f"/dashboard/tickets/{ticket.code}"
            if any(len(v) > MAX_NOTE_CHARS for v in text.values()):
                return ("error", f"Nội dung dài quá {MAX_NOTE_CHARS} ký tự.", page)
            common: dict[str, Any] = {"session": session, "ticket": ticket,
                                      "official": official, "now": clock()}  # fmt: skip
            try:
                if action == "accept":
                    workflow.accept(**common)
                elif action == "ask":
                    workflow.ask_info(question=text["question"], **common)
                elif action == "transfer":
                    workflow.transfer(to_unit_id=text["unit"], reason=text["reason"], **common)
                elif action == "resolve":
                    workflow.resolve(note=text["note"], **common)
                elif action == "summary":
                    set_public_summary(text=text["summary"], **common)
                elif action == "public_note":
                    add_public_note(text=text["public_note"], **common)
                else:
                    workflow.reject(reason=text["reason"], **common)
            except ActionRefused as refused:
                return ("error", refused.message, page)
            unit = workflow.unit_name(session, ticket.lead_unit_id)
            done = _DONE[action].format(code=ticket.code, unit=unit)
            # After a transfer the ticket may be another unit's: back to the queue then.
            return ("ok", done, page if viewer.may_see(ticket) else "/dashboard")

    async def act(request: Request) -> Response:
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        form = await _checked_form(request)
        if form is None:
            return forbidden(request, viewer)
        code = str(request.path_params["code"])
        action = str(request.path_params["action"])
        if action not in _ACTIONS:
            return not_found(request, viewer)
        outcome = await run_in_threadpool(act_sync, viewer, code, action, form)
        if outcome is None:
            return not_found(request, viewer)
        kind, text, target = outcome
        request.session["flash"] = [kind, text]
        return RedirectResponse(target, status_code=303)

    # --- the digest ---

    def digest_sync(viewer: Viewer, wanted: DigestRequest, page: Page) -> tuple[str, list[str]]:
        with db() as session:
            return render_digest(
                session=session, viewer=viewer, request=wanted, now=clock(), page=page
            )

    def wanted_digest(request: Request, viewer: Viewer) -> DigestRequest | Response:
        try:
            return DigestRequest.from_query(request.query_params, viewer=viewer, now=clock())
        except ValueError:
            text = "Tuần không hợp lệ. Anh/chị chọn một tuần đã qua, ví dụ 2026-W47."
            page = _message_page("Không xem được báo cáo", text, page_of(request, viewer))
            return _html(page, status=400)

    async def digest_page(request: Request) -> Response:
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        wanted = wanted_digest(request, viewer)
        if isinstance(wanted, Response):
            return wanted
        text, styles = await run_in_threadpool(
            digest_sync, viewer, wanted, page_of(request, viewer)
        )
        return _html(text, styles=styles)

    def digest_csv_sync(wanted: DigestRequest) -> bytes | None:
        with db() as session:
            try:
                digest = weekly_digest(
                    session=session, week=wanted.week, unit_id=wanted.unit or None,
                    tz=settings.timezone,
                )  # fmt: skip
            except UnknownUnit:
                return None
            return csv_bytes(digest)

    async def digest_csv(request: Request) -> Response:
        viewer = await current_viewer(request)
        if viewer is None:
            return to_signin(request)
        wanted = wanted_digest(request, viewer)
        if isinstance(wanted, Response):
            return wanted
        body = await run_in_threadpool(digest_csv_sync, wanted)
        if body is None:
            return _html(_message_page("Không tìm thấy", "Đơn vị này không có trong danh bạ.",
                                       page_of(request, viewer)), status=404)  # fmt: skip
        name = f"bao-cao-tuan-{wanted.week}-{wanted.unit or 'toan-thanh-pho'}.csv"
        return Response(
            body, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"',
                     "Cache-Control": "no-store"},
        )  # fmt: skip

    return [
        Route("/dashboard", queue, methods=["GET"], name="dashboard"),
        Route("/dashboard/digest", digest_page, methods=["GET"], name="dashboard_digest"),
        Route("/dashboard/digest.csv", digest_csv, methods=["GET"], name="dashboard_digest_csv"),
        Route("/dashboard/signin", signin_get, methods=["GET"], name="dashboard_signin"),
        Route("/dashboard/signin", signin_post, methods=["POST"]),
        Route("/dashboard/signin/code", code_page, methods=["GET"], name="dashboard_code"),
        Route("/dashboard/signin/code", code_post, methods=["POST"]),
        Route("/dashboard/signin/link", link_page, methods=["GET"], name="dashboard_link"),
        Route("/dashboard/signin/link", link_post, methods=["POST"]),
        Route("/dashboard/signout", signout, methods=["POST"], name="dashboard_signout"),
        Route("/dashboard/tickets/{code}", ticket_page, methods=["GET"], name="dashboard_ticket"),
        Route("/dashboard/tickets/{code}/photos/{index:int}", ticket_photo, methods=["GET"]),
        Route("/dashboard/tickets/{code}/{action}", act, methods=["POST"]),
    ]
