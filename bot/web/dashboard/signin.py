"""The sign-in pages: the official's number, the code sent to their chat, a one-time link, and
signing out. What they check and record is `bot.officials.signin`'s."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

from starlette.responses import RedirectResponse, Response

from bot.officials import signin
from bot.web.dashboard.guard import Visit, client_address, safe_next, signed_in_viewer
from storage.models import Official

logger = logging.getLogger(__name__)

_WRONG_CODE = (
    "Mã không đúng, đã hết hạn hoặc đã bị khóa sau {attempts} lần nhập sai. "
    "Anh/chị kiểm tra lại, hoặc yêu cầu mã mới."
)
_LINK_FAILED = "Đường dẫn đăng nhập không đúng, đã hết hạn hoặc đã được dùng."


def _signed_in(visit: Visit, official: Official, next_path: str) -> Response:
    """A fresh server-side session (and CSRF token) for the official; on to `next_path`."""
    assert official.id is not None
    token = signin.start_session(session=visit.session, official_id=official.id, now=visit.now)
    visit.request.session.clear()
    visit.request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32)})
    logger.info("Official %s signed in to the dashboard.", official.id)
    return RedirectResponse(safe_next(next_path), status_code=303)


def number_page(visit: Visit) -> Response:
    """Asks for the official's number (the signed-in go straight to their queue)."""
    if signed_in_viewer(request=visit.request, session=visit.session, now=visit.now):
        return RedirectResponse("/dashboard", status_code=303)
    return visit.render("signin.html", next_path=safe_next(visit.query("next")), error="")


def send_code(visit: Visit) -> Response:
    """Queues a code to the official's chat, if the number is theirs and budgets allow; the
    answer is the same either way."""
    next_path = safe_next(visit.form.get("next"))
    number = visit.form.get("official", "").strip().lstrip("#")
    if not number.isdigit() or len(number) > 12:
        error = "Số hiệu cán bộ là một dãy chữ số."
        return visit.render("signin.html", status=400, next_path=next_path, error=error)
    signin_id = signin.request_signin_code(
        session=visit.session,
        official_id=int(number),
        now=visit.now,
        client=client_address(visit.request),
    )
    visit.request.session["pending"] = signin_id or 0  # 0: nothing was sent; every code fails
    return RedirectResponse(
        f"/dashboard/signin/code?{urlencode({'next': next_path})}", status_code=303
    )


def code_page(visit: Visit) -> Response:
    if "pending" not in visit.request.session:
        return RedirectResponse("/dashboard/signin", status_code=303)
    next_path = safe_next(visit.query("next"))
    return visit.render("code.html", next_path=next_path, error="", minutes=_minutes())


def check_code(visit: Visit) -> Response:
    next_path = safe_next(visit.form.get("next"))
    pending = visit.request.session.get("pending")
    official = None
    if isinstance(pending, int) and pending > 0:
        official = signin.verify_signin_code(
            session=visit.session,
            signin_id=pending,
            code=visit.form.get("code", "")[:16],
            now=visit.now,
            client=client_address(visit.request),
        )
    if official is None:
        error = _WRONG_CODE.format(attempts=signin.MAX_CODE_ATTEMPTS)
        return visit.render(
            "code.html", status=400, next_path=next_path, error=error, minutes=_minutes()
        )
    return _signed_in(visit, official, next_path)


def link_page(visit: Visit) -> Response:
    """A button: the sign-in is the POST behind it (link previews cannot use it up)."""
    return visit.render("link.html", token=visit.query("token")[:128])


def use_link(visit: Visit) -> Response:
    token = visit.form.get("token", "")[:128]
    official = signin.use_signin_link(session=visit.session, token=token, now=visit.now)
    if official is None:
        return visit.message("Không đăng nhập được", _LINK_FAILED, status=400)
    return _signed_in(visit, official, "/dashboard")


def sign_out(visit: Visit) -> Response:
    token = visit.request.session.get("sid")
    if isinstance(token, str):
        signin.end_session(session=visit.session, token=token[:128], now=visit.now)
    visit.request.session.clear()
    return RedirectResponse("/dashboard/signin", status_code=303)


def _minutes() -> int:
    return int(signin.CODE_VALIDITY.total_seconds() // 60)
