"""The ASGI app: the local web chat, its JSON API, the health check and channel webhooks.

``GET /`` serves the chat page (static HTML, CSS and JS under ``static/``, no CDN);
``POST /api/web/messages`` takes ``{message_id, text | button | location}`` and
returns the replies as a JSON list; ``POST /api/web/photos`` takes a photo's bytes (JPEG, PNG
or WebP; the page's message id in ``X-Message-Id``) and returns the replies the same way;
``POST /api/web/session`` starts a new conversation. The session is the ``civicbot_chat``
cookie the server sets (HttpOnly, SameSite=Lax, Secure over HTTPS), never an id the page
sends. Over a rate limit (`bot.channels.web_limits`) the answer is HTTP 429 with
``{"error": "rate_limited", "message": …, "retry_after": seconds}`` and ``Retry-After``.
``GET /healthz`` answers ``{"ok": true, "nlu": …}`` without touching any dependency (the
process is alive); ``GET /readyz`` answers
``{"database": "ok"|"unreachable", "nlu": "rasa"|"fallback"}``, with 503 unless the database
answers and a Rasa server is up (the keyword fallback still answers citizens meanwhile, but
an instance without Rasa is not ready: a load balancer should prefer one with it).
Webhook routes (Zalo, Telegram) come in as `extra_routes`.
The Open311 GeoReport v2 API is under ``/open311/v2`` (`bot.web.open311`).
``GET /api/updates?after=ID`` returns the notifications the outbox delivered to the session's
web chat after message id ``after`` (not the replies the POST returned) as
``{"messages": [{id, text, buttons, image_url}], "after": ID}``; the page polls it, passing
back the ``after`` it got.
The officials' dashboard is under ``/dashboard`` (`bot.web.dashboard`); the public scorecard
under ``/bang-xep-hang`` and ``/api/scorecard`` (`bot.web.scorecard`), the photos of results
under ``/anh-ket-qua`` (`bot.web.proof`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.channels.common import BadBody, read_body, read_json
from bot.channels.web import (
    MAX_TEXT_CHARS,
    SESSION_COOKIE,
    ErrorOut,
    OverLimitOut,
    ReplyJson,
    ReplyOut,
    UpdateOut,
    UpdatesOut,
    WebChat,
    WebInputError,
    chat_id_of,
    new_session_token,
    parse_after,
    photo_message,
)
from bot.channels.web_limits import Kind, OverLimit, WebLimits
from bot.channels.web_photos import PhotoRefused, clean_photo, store_photo
from bot.config import Settings
from bot.config import settings as default_settings
from bot.conversation.messages import ConversationHandler, reply_from_payload
from bot.conversation.texts import say
from bot.web.dashboard import dashboard_routes, dashboard_session_middleware
from bot.web.open311 import open311_routes
from bot.web.proof import proof_routes
from bot.web.scorecard import scorecard_routes
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
_FAILED = ErrorOut(
    error="internal_error",
    message="Xin lỗi, hệ thống đang gặp sự cố. Anh/chị vui lòng thử lại sau ít phút.",
).model_dump()
_BAD_JSON = ErrorOut(error="bad_json", message="Yêu cầu không phải JSON hợp lệ.").model_dump()


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


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (an address or a method the app does not serve), in
    Vietnamese: JSON under /api/, plain text elsewhere (a person reads it in a browser)."""
    assert isinstance(exc, HTTPException)
    not_found = exc.status_code == 404
    message = say("web_not_found" if not_found else "web_method_not_allowed")
    if request.url.path.startswith("/api/"):
        error = "not_found" if not_found else "method_not_allowed"
        body = ErrorOut(error=error, message=message).model_dump()
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(message, status_code=exc.status_code, headers=exc.headers)


class NluMode(Protocol):
    """What understands messages now (`NluClient.mode`)."""

    @property
    def mode(self) -> str: ...


READY_TIMEOUT_SECONDS = 5.0


def _database_answers(engine: Engine | None) -> None:
    with get_session(engine) as session:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]


async def _database_state(engine: Engine | None) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await run_in_threadpool(_database_answers, engine)
    except Exception as error:
        logger.warning("Readiness: the database does not answer (%r).", error)
        return "unreachable"
    return "ok"


# --- Web chat notifications (GET /api/updates) ----------------------------------------------

UPDATES_LIMIT = 100


def _update(message: StoredMessage) -> UpdateOut:
    """A stored outgoing message as the web chat shows a reply, with its id."""
    assert message.id is not None
    reply = ReplyOut.of(reply_from_payload({**message.payload, "text": message.text}))
    return UpdateOut(id=message.id, **reply.model_dump())


def _read_updates(engine: Engine | None, session_id: str, after: int) -> dict[str, Any]:
    with get_session(engine) as session:
        found, last = queries.outbox_updates_of_chat(
            session=session,
            channel=Channel.web,
            chat_id=session_id,
            after=after,
            limit=UPDATES_LIMIT,
        )
        return UpdatesOut(messages=[_update(m) for m in found], after=last).model_dump()


# --- The web chat's session cookie and rate limits ------------------------------------------


class _Sessions:
    """Finds the session of a request from its cookie, or starts one (within the limits)."""

    def __init__(self, settings: Settings, limits: WebLimits) -> None:
        self.max_age = settings.web_session_days * 86400
        self.limits = limits

    @staticmethod
    def client(request: Request) -> str:
        """The client's address (behind a proxy, as uvicorn's proxy headers set it)."""
        return request.client.host if request.client else "unknown"

    def start(self, request: Request) -> tuple[str, str] | OverLimit:
        """A new session: (token, chat id), or the limit that refuses it."""
        refused = self.limits.hit("sessions", client=self.client(request))
        if refused is not None:
            return refused
        token = new_session_token()
        chat_id = chat_id_of(token)
        assert chat_id is not None
        return token, chat_id

    def admit(self, request: Request, kind: Kind) -> tuple[str, str | None] | OverLimit:
        """The request's chat id and the token to set (None: the cookie is kept), after
        counting it against `kind`'s limits; or the limit that refuses it."""
        token: str | None = None
        chat_id = chat_id_of(request.cookies.get(SESSION_COOKIE))
        if chat_id is None:
            started = self.start(request)
            if isinstance(started, OverLimit):
                return started
            token, chat_id = started
        refused = self.limits.hit(kind, client=self.client(request), session=chat_id)
        return refused if refused is not None else (chat_id, token)

    def answer(self, request: Request, token: str | None, replies: list[ReplyJson]) -> Response:
        """The replies as JSON, with the session cookie when `token` is a new one."""
        response = JSONResponse(replies, headers={"Cache-Control": "no-store"})
        return self.set_cookie(request, response, token)

    def set_cookie(self, request: Request, response: Response, token: str | None) -> Response:
        """Sets the session cookie when `token` is a new one; returns `response`."""
        if token is not None:
            response.set_cookie(
                SESSION_COOKIE,
                token,
                max_age=self.max_age,
                path="/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response


def _over_limit(refused: OverLimit) -> Response:
    body = OverLimitOut(
        error="rate_limited", message=refused.message, retry_after=refused.retry_after
    ).model_dump()
    return JSONResponse(
        body,
        status_code=429,
        headers={"Retry-After": str(refused.retry_after), "Cache-Control": "no-store"},
    )


def _updates_endpoint(engine: Engine | None, sessions: _Sessions) -> Route:
    async def get_updates(request: Request) -> Response:
        try:
            after = parse_after(request.query_params.get("after"))
        except WebInputError as error:
            return JSONResponse(error.as_json(), status_code=error.status)
        admitted = sessions.admit(request, "updates")
        if isinstance(admitted, OverLimit):
            return _over_limit(admitted)
        session_id, token = admitted
        try:  # a thread: the database driver blocks
            body = await run_in_threadpool(_read_updates, engine, session_id, after)
        except Exception:
            logger.exception("Reading the web chat's notifications failed.")
            return JSONResponse(_FAILED, status_code=500)
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
        return sessions.set_cookie(request, response, token)

    return Route("/api/updates", get_updates, methods=["GET"], name="web_updates")


def _health_routes(engine: Engine | None, nlu: NluMode | None) -> list[BaseRoute]:
    """`/healthz` (the process is alive) and `/readyz` (the database and Rasa answer)."""

    def nlu_mode() -> str:
        return nlu.mode if nlu is not None else "fallback"

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "nlu": nlu_mode()}, headers={"Cache-Control": "no-store"})

    async def readyz(request: Request) -> Response:
        state = {"database": await _database_state(engine), "nlu": nlu_mode()}
        ready = state == {"database": "ok", "nlu": "rasa"}
        return JSONResponse(
            state, status_code=200 if ready else 503, headers={"Cache-Control": "no-store"}
        )

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"], name="healthz"),
        Route("/readyz", readyz, methods=["GET", "HEAD"], name="readyz"),
    ]


def _session_routes(sessions: _Sessions) -> list[BaseRoute]:
    """The chat page (which starts a session when there is none) and `POST /api/web/session`."""

    async def index(request: Request) -> Response:
        response = FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _PAGE_POLICY, "Cache-Control": "no-cache"},
        )
        if chat_id_of(request.cookies.get(SESSION_COOKIE)) is None:
            started = sessions.start(request)  # over the limit: the first post says so
            if not isinstance(started, OverLimit):
                sessions.set_cookie(request, response, started[0])
        return response

    async def new_session(request: Request) -> Response:
        started = sessions.start(request)
        if isinstance(started, OverLimit):
            return _over_limit(started)
        response = JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})
        return sessions.set_cookie(request, response, started[0])

    return [
        Route("/", index, methods=["GET", "HEAD"], name="index"),
        Route("/api/web/session", new_session, methods=["POST"], name="web_session"),
    ]


def _message_endpoint(chat: WebChat, sessions: _Sessions) -> Route:
    async def post_message(request: Request) -> Response:
        admitted = sessions.admit(request, "messages")
        if isinstance(admitted, OverLimit):
            return _over_limit(admitted)
        session_id, token = admitted
        try:
            payload = await read_json(request, MAX_BODY_BYTES)
        except BadBody as error:
            if error.status == 413:
                return JSONResponse(_TOO_LARGE.as_json(), status_code=_TOO_LARGE.status)
            return JSONResponse(_BAD_JSON, status_code=400)
        try:
            replies = await chat.handle(payload, session_id=session_id)
        except WebInputError as error:
            return JSONResponse(error.as_json(), status_code=error.status)
        except Exception:
            logger.exception("The conversation failed on a web chat message.")
            return JSONResponse(_FAILED, status_code=500)
        return sessions.answer(request, token, replies)

    return Route("/api/web/messages", post_message, methods=["POST"], name="web_messages")


def _photo_endpoint(chat: WebChat, sessions: _Sessions, settings: Settings) -> Route:
    photo_too_large = WebInputError(
        413,
        "photo_too_large",
        f"Ảnh lớn quá {settings.web_photo_max_bytes / 1024 / 1024:.0f} MB. "
        "Anh/chị vui lòng gửi ảnh nhỏ hơn (ví dụ chụp lại với chất lượng thấp hơn).",
    )

    async def post_photo(request: Request) -> Response:
        admitted = sessions.admit(request, "photos")
        if isinstance(admitted, OverLimit):
            return _over_limit(admitted)
        session_id, token = admitted
        data = await read_body(request, settings.web_photo_max_bytes)
        if data is None:
            return JSONResponse(photo_too_large.as_json(), status_code=photo_too_large.status)
        try:
            cleaned = await run_in_threadpool(clean_photo, data)
            file_id = await run_in_threadpool(store_photo, cleaned, settings.upload_dir)
            message = photo_message(
                session_id, request.headers.get("x-message-id"), file_id, len(cleaned)
            )
            replies = await chat.handle_message(message)
        except PhotoRefused as refused:
            body = ErrorOut(error="not_a_photo", message=refused.message).model_dump()
            return JSONResponse(body, status_code=refused.status)
        except WebInputError as error:
            return JSONResponse(error.as_json(), status_code=error.status)
        except Exception:
            logger.exception("The conversation failed on a web chat photo.")
            return JSONResponse(_FAILED, status_code=500)
        return sessions.answer(request, token, replies)

    return Route("/api/web/photos", post_photo, methods=["POST"], name="web_photos")


def create_app(
    conversation: ConversationHandler,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    max_text_chars: int = MAX_TEXT_CHARS,
    engine: Engine | None = None,
    settings: Settings | None = None,
    nlu: NluMode | None = None,
) -> Starlette:
    """The app around `conversation`; `extra_routes` adds e.g. the Zalo webhook.

    `engine`: the database the web chat's notifications are read from (default: the app's).
    `settings`: the web chat's limits and upload directory (default: the app's).
    `nlu`: what `/readyz` reports (without it, "fallback").
    """
    settings = settings or default_settings
    chat = WebChat(conversation, max_text_chars=max_text_chars)
    sessions = _Sessions(settings, WebLimits.from_settings(settings))
    routes: list[BaseRoute] = [
        *_session_routes(sessions),
        *_health_routes(engine, nlu),
        _message_endpoint(chat, sessions),
        _photo_endpoint(chat, sessions, settings),
        _updates_endpoint(engine, sessions),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *open311_routes(engine=engine),  # the Open311 GeoReport v2 API, /open311/v2
        *dashboard_routes(engine=engine),  # the officials' dashboard, /dashboard
        *scorecard_routes(engine=engine, settings=settings),  # public, /bang-xep-hang
        *proof_routes(engine=engine, settings=settings),  # public, /anh-ket-qua
        *extra_routes,
    ]
    middleware = [Middleware(_SecurityHeaders), dashboard_session_middleware()]
    errors = {404: _http_error, 405: _http_error}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=errors)
