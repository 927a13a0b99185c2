"""The ASGI app: the local web chat, its JSON API, the health check and channel webhooks.

``GET /`` serves the chat page (static HTML, CSS and JS under ``static/``, no CDN);
``POST /api/web/messages`` takes ``{session_id, message_id, text | button | location}`` and
returns the replies as a JSON list; ``GET /healthz`` answers ``{"ok": true}`` without
touching any dependency. Webhook routes (Zalo, Telegram) come in as `extra_routes`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.web import MAX_TEXT_CHARS, WebChat, WebInputError
from bot.conversation.messages import ConversationHandler

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


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def create_app(
    conversation: ConversationHandler,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    max_text_chars: int = MAX_TEXT_CHARS,
) -> Starlette:
    """The app around `conversation`; `extra_routes` adds e.g. the Zalo webhook."""
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
        body = await _read_body(request, MAX_BODY_BYTES)
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
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *extra_routes,
    ]
    return Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
