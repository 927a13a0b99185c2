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
every unit and the city-wide digest, and do not act. Pages are server-rendered from Jinja2
templates (``bot/web/templates/dashboard/``, everything escaped), with no script and one
stylesheet (``static/dashboard.css``).

The package: `guard` (who is looking; the one guard every route goes through), `signin`,
`queue`, `tickets` and `digest` (the pages), `queries` (what they read), `cells` (how a
ticket's status and deadlines read).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine
from starlette.routing import BaseRoute, Route

from bot.web.dashboard import digest, queue, signin, tickets
from bot.web.dashboard.guard import SESSION_COOKIE, Dashboard, dashboard_session_middleware
from storage.models import utcnow

__all__ = ["SESSION_COOKIE", "dashboard_routes", "dashboard_session_middleware"]


def dashboard_routes(
    *, engine: Engine | None = None, clock: Callable[[], datetime] = utcnow
) -> list[BaseRoute]:
    """The dashboard's routes under `/dashboard` (`engine` default: the app's)."""
    guard = Dashboard(engine, clock)
    official, anyone = guard.official, guard.anyone
    return [
        Route("/dashboard", official(queue.queue_page), methods=["GET"], name="dashboard"),
        Route(
            "/dashboard/digest",
            official(digest.digest_page),
            methods=["GET"],
            name="dashboard_digest",
        ),
        Route(
            "/dashboard/digest.csv",
            official(digest.digest_csv),
            methods=["GET"],
            name="dashboard_digest_csv",
        ),
        Route(
            "/dashboard/signin",
            anyone(signin.number_page),
            methods=["GET"],
            name="dashboard_signin",
        ),
        Route("/dashboard/signin", anyone(signin.send_code, posts=True), methods=["POST"]),
        Route(
            "/dashboard/signin/code",
            anyone(signin.code_page),
            methods=["GET"],
            name="dashboard_code",
        ),
        Route("/dashboard/signin/code", anyone(signin.check_code, posts=True), methods=["POST"]),
        Route(
            "/dashboard/signin/link",
            anyone(signin.link_page),
            methods=["GET"],
            name="dashboard_link",
        ),
        Route("/dashboard/signin/link", anyone(signin.use_link, posts=True), methods=["POST"]),
        Route(
            "/dashboard/signout",
            anyone(signin.sign_out, posts=True),
            methods=["POST"],
            name="dashboard_signout",
        ),
        Route(
            "/dashboard/tickets/{code}",
            official(tickets.ticket_page),
            methods=["GET"],
            name="dashboard_ticket",
        ),
        Route(
            "/dashboard/tickets/{code}/photos/{index:int}",
            official(tickets.ticket_photo),
            methods=["GET"],
        ),
        Route(
            "/dashboard/tickets/{code}/{action}",
            official(tickets.act, posts=True),
            methods=["POST"],
        ),
    ]
