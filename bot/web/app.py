"""The ASGI app: the local web chat, its JSON API, the health check and channel webhooks.

``GET /`` serves the chat page (static HTML, CSS and JS under ``static/``, no CDN);
``POST /api/web/messages`` takes ``{session_id, message_id, text | button | location}`` and
returns the replies as a JSON list; ``GET /healthz`` answers ``{"ok": true}`` without
touching any dependency. Webhook routes (Zalo, Telegram) come in as `extra_routes`.
The Open311 GeoReport v2 API is under ``/open311/v2`` (`bot.web.open311`).
``GET /api/updates?session_id=…&after=ID`` returns the notifications the outbox delivered to a
web chat after message id ``after`` (not the replies the POST returned) as
``{"messages": [{id, text, buttons, image_url}], "after": ID}``; the page polls it, passing
back the ``after`` it got.
The officials' dashboard is under ``/dashboard`` (`bot.web.dashboard`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.common import read_body
from bot.channels.web import (
    MAX_TEXT_CHARS,
    ReplyJson,
    WebChat,
    WebInputError,
    parse_updates_query,
    reply_to_json,
)
from bot.conversation.messages import ConversationHandler, reply_from_payload
from bot.web.dashboard import dashboard_routes, dashboard_session_middleware
from bot.web.open311 import open311_routes
from storage import queries
from storage.db import get_session
from storage.models import Channel
from storage.models import Message as StoredMessage

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# 10,000 characters escaped as \uXXXX (even surrogate pairs) fit well within this.
MAX_BODY_BYTES = 256 * 1024

_PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' https: data: blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_TOO_LARGE = WebInputError(
    413, "body_too_large", "Nội dung gửi lên quá lớn. Anh/chị vui lòng gửi tin nhắn ngắn hơn."
)
_FAILED = {
    "error": "internal_error",
    "message": "Xin lỗi, hệ thống đang gặp sự cố. Anh/chị vui lòng thử lại sau ít phút.",
}


class _SecurityHeaders:
    """Adds headers every response should carry."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- Web chat notifications (GET /api/updates) ----------------------------------------------

UPDATES_LIMIT = 100


def _stored_reply_json(message: StoredMessage) -> ReplyJson:
    """A stored outgoing message as the web chat shows a reply, with its id."""
    reply = reply_from_payload({**message.payload, "text": message.text})
    return {"id": message.id, **reply_to_json(reply)}


def _read_updates(engine: Engine | None, session_id: str, after: int) -> dict[str, object]:
    with get_session(engine) as session:
        found, last = queries.outbox_updates_of_chat(
            session=session, channel=Channel.web, chat_id=session_id, after=after,
            limit=UPDATES_LIMIT,
        )  # fmt: skip
        return {"messages": [_stored_reply_json(m) for m in found], "after": last}


def _updates_endpoint(engine: Engine | None) -> Route:
    async def get_updates(request: Request) -> Response:
        try:
            session_id, after = parse_updates_query(
                request.query_params.get("session_id"), request.query_params.get("after")
            )
        except WebInputError as error:
            return JSONResponse(error.as_json(), status_code=error.status)
        try:  # a thread: the database driver blocks
            body = await run_in_threadpool(_read_updates, engine, session_id, after)
        except Exception:
            logger.exception("Reading the web chat's notifications failed.")
            return JSONResponse(_FAILED, status_code=500)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return Route("/api/updates", get_updates, methods=["GET"], name="web_updates")


def create_app(
    conversation: ConversationHandler,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    max_text_chars: int = MAX_TEXT_CHARS,
    engine: Engine | None = None,
) -> Starlette:
    """The app around `conversation`; `extra_routes` adds e.g. the Zalo webhook.

    `engine`: the database the web chat's notifications are read from (default: the app's).
    """
    chat = WebChat(conversation, max_text_chars=max_text_chars)

    async def index(request: Request) -> Response:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-cache"},
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def post_message(request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            return JSONResponse(_TOO_LARGE.as_json(), status_code=_TOO_LARGE.status)
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse(
                {"error": "bad_json", "message": "Yêu cầu không phải JSON hợp lệ."},
                status_code=400,
            )
        try:
            replies = await chat.handle(payload)
        except WebInputError as error:
            return JSONResponse(error.as_json(), status_code=error.status)
        except Exception:
            logger.exception("The conversation failed on a web chat message.")
            return JSONResponse(_FAILED, status_code=500)
        return JSONResponse(replies, headers={"Cache-Control": "no-store"})

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET", "HEAD"], name="index"),
        Route("/healthz", healthz, methods=["GET", "HEAD"], name="healthz"),
        Route("/api/web/messages", post_message, methods=["POST"], name="web_messages"),
        _updates_endpoint(engine),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *open311_routes(engine=engine),  # the Open311 GeoReport v2 API, /open311/v2
        *dashboard_routes(engine=engine),  # the officials' dashboard, /dashboard
        *extra_routes,
    ]
    middleware = [Middleware(_SecurityHeaders), dashboard_session_middleware()]
    return Starlette(routes=routes, middleware=middleware)
