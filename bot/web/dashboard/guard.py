"""Who is looking, and the one guard every dashboard route goes through.

`Dashboard.official` wraps a page for signed-in officials, `Dashboard.anyone` a sign-in page.
The guard reads a posted form (and refuses it without the session's CSRF token), opens one
database session, reads the viewer from the cookie's server-side session, and runs the page
in a worker thread with all of that in a `Visit`: pages are plain functions, no `*_sync`
twins.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Message, Receive, Scope, Send

from bot.channels.common import read_body
from bot.config import settings
from bot.officials import signin
from bot.officials.desk import ROLE_NAMES
from bot.tickets import access, workflow
from bot.tickets.proof import MAX_PROOF_PHOTOS
from bot.web.templating import templates
from storage.db import get_session
from storage.models import Official, OfficialRole, Ticket

SESSION_COOKIE = "civicbot_dashboard"
MAX_FORM_BYTES = 32 * 1024

CSRF_FAILED = (
    "Phiên làm việc đã hết hạn hoặc biểu mẫu không hợp lệ. "
    "Anh/chị vui lòng tải lại trang và thử lại."
)
NOT_FOUND = "Không tìm thấy phản ánh này, hoặc phản ánh không thuộc đơn vị của anh/chị."


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
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role.value, self.role.value)

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
        id=reader.official_id,
        name=official.name,
        role=reader.role,
        unit_id=reader.unit_id,
        unit_name=workflow.unit_name(session, official.unit_id),
        unit_ward_code=reader.unit_ward_code,
    )


def signed_in_viewer(*, request: Request, session: Session, now: datetime) -> Viewer | None:
    """The official of the cookie's live server-side session, or None (the cookie then
    cleared: signed out, expired, deactivated or removed)."""
    token = request.session.get("sid")
    if not isinstance(token, str) or not token:
        if "official" in request.session:  # a cookie of the old, self-contained kind
            request.session.clear()
        return None
    official_id = signin.session_official(session=session, token=token[:128], now=now)
    viewer = None if official_id is None else load_viewer(session=session, official_id=official_id)
    if viewer is None:
        request.session.clear()
    return viewer


# --- The request's parts --------------------------------------------------------------------


def policy(styles: Sequence[str] = ()) -> str:
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


def client_address(request: Request) -> str | None:
    """The client's address (uvicorn puts a trusted proxy's X-Forwarded-For there)."""
    return request.client.host[:64] if request.client else None


def safe_next(value: str | None) -> str:
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


async def read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form (last value of each field), or None when too large or garbled.
    A multipart form (with a result's photos) is read by `read_upload`."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await read_upload(request)
    body = await read_body(request, MAX_FORM_BYTES)
    if body is None:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        return None


async def read_upload(request: Request) -> dict[str, str] | None:
    """A multipart form: its text fields, and the bytes of its files (at most
    `MAX_PROOF_PHOTOS`, each at most CIVICBOT_WEB_PHOTO_MAX_BYTES) in
    `request.state.uploads`; None when too large, without a length, or garbled."""
    limit = MAX_FORM_BYTES + MAX_PROOF_PHOTOS * settings.web_photo_max_bytes
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > limit:
        return None
    fields: dict[str, str] = {}
    uploads: list[bytes] = []
    try:
        async with request.form(
            max_files=MAX_PROOF_PHOTOS, max_fields=20, max_part_size=settings.web_photo_max_bytes
        ) as form:
            for name, value in form.multi_items():
                if isinstance(value, str):
                    fields[name] = value
                elif data := await value.read():  # an empty file input sends an empty part
                    uploads.append(data)
    except (HTTPException, MultiPartException):
        return None
    request.state.uploads = uploads
    return fields


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> dict[str, str] | None:
    """The posted form when it is readable and carries the session's CSRF token, else None."""
    form = await read_form(request)
    expected = request.session.get("csrf")
    if form is None or not isinstance(expected, str):
        return None
    sent = form.get("csrf", "").encode()  # bytes: compare_digest refuses non-ASCII text
    return form if hmac.compare_digest(expected.encode(), sent) else None


# --- One visit ------------------------------------------------------------------------------


@dataclass
class Visit:
    """One request to a dashboard page: the request, an open database session, the time,
    who is looking (None on the sign-in pages) and the posted form (CSRF-checked)."""

    request: Request
    session: Session
    now: datetime
    viewer: Viewer | None
    form: Mapping[str, str]

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "")

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def render(
        self, template: str, *, status: int = 200, styles: Sequence[str] = (), **context: Any
    ) -> Response:
        """A page from `templates/dashboard/`; it shows (and so uses up) the flash message."""
        flash = self.request.session.pop("flash", None)
        shown = None
        if isinstance(flash, list) and len(flash) == 2:
            shown = (str(flash[0]), str(flash[1]))
        headers = {"Content-Security-Policy": policy(styles), "Cache-Control": "no-store"}
        page = {"viewer": self.viewer, "csrf": csrf_token(self.request), "flash": shown}
        return templates.TemplateResponse(
            self.request, f"dashboard/{template}", {**page, **context}, status, headers
        )

    def message(self, title: str, text: str, *, status: int) -> Response:
        return self.render("message.html", status=status, title=title, text=text)

    def not_found(self) -> Response:
        return self.message("Không tìm thấy", NOT_FOUND, status=404)

    def forbidden(self) -> Response:
        return self.message("Không thực hiện được", CSRF_FAILED, status=403)

    def to_signin(self) -> Response:
        url = self.request.url
        target = url.path + (f"?{url.query}" if url.query else "")
        query = urlencode({"next": safe_next(target)})
        return RedirectResponse(f"/dashboard/signin?{query}", status_code=303)

    def flash_and_go(self, kind: str, text: str, target: str) -> Response:
        """Back to a page (post/redirect/get), which then shows `text`."""
        self.request.session["flash"] = [kind, text]
        return RedirectResponse(target, status_code=303)


Page = Callable[[Visit], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


class Dashboard:
    """The guard: where the database is, what time it is, and how a route is entered."""

    def __init__(self, engine: Engine | None, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def official(self, page: Page, *, posts: bool = False) -> Endpoint:
        """A page for signed-in officials: anyone else goes to sign in first."""
        return self._endpoint(page, signed_in=True, posts=posts)

    def anyone(self, page: Page, *, posts: bool = False) -> Endpoint:
        """A sign-in page (no viewer)."""
        return self._endpoint(page, signed_in=False, posts=posts)

    def _endpoint(self, page: Page, *, signed_in: bool, posts: bool) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            form = await checked_form(request) if posts else {}
            return await run_in_threadpool(self._visit, page, request, form, signed_in)

        endpoint.__name__ = page.__name__
        return endpoint

    def _visit(
        self, page: Page, request: Request, form: dict[str, str] | None, signed_in: bool
    ) -> Response:
        with get_session(self.engine) as session:
            now = self.clock()
            viewer = None
            if signed_in:
                viewer = signed_in_viewer(request=request, session=session, now=now)
            visit = Visit(request=request, session=session, now=now, viewer=viewer, form={})
            if signed_in and viewer is None:
                return visit.to_signin()
            if form is None:
                return visit.forbidden()
            visit.form = form
            return page(visit)


# --- The session cookie ---------------------------------------------------------------------


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
