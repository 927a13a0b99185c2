"""A fake Zalo Bot API server on loopback, for tests.

Starlette + uvicorn in a background thread on a free port. It answers
``POST /bot{TOKEN}/{method}`` like the real API as far as CivicBot uses it, records every
call, serves injected updates to ``getUpdates`` (one per call, 408 when none came within the
poll timeout) and can be told to fail for a while.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "1234567890:fake-zalo-token"


@dataclass
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    token: str


@dataclass
class _Failure:
    methods: frozenset[str] | None
    remaining: int
    status: int
    error_code: int
    description: str


@dataclass
class FakeZalo:
    """The fake server; use as a context manager (`with FakeZalo() as zalo:`)."""

    token: str = TOKEN
    max_poll_seconds: float = 1.0
    max_text: int = 2000
    calls: list[Call] = field(default_factory=list)
    webhook_url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._updates: deque[dict[str, Any]] = deque()
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- Control from tests ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, update: dict[str, Any]) -> None:
        """Queue an update for the next getUpdates call."""
        with self._lock:
            self._updates.append(update)

    def fail(
        self,
        times: int,
        *,
        methods: tuple[str, ...] | None = None,
        status: int = 500,
        error_code: int = 500,
        description: str = "Internal server error",
    ) -> None:
        """Answer the next `times` calls (of `methods`, or any) with an error."""
        with self._lock:
            self._failures.append(
                _Failure(
                    frozenset(methods) if methods else None, times, status, error_code, description
                )
            )

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def texts(self) -> list[str]:
        """Texts of all sendMessage calls, in order."""
        return [str(c.params.get("text")) for c in self.calls_to("sendMessage")]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Wait (asynchronously) until `method` was called at least `count` times."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls_to(method)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} called {len(found)} times, expected {count}")
            await asyncio.sleep(0.01)

    # --- The server ------------------------------------------------------------------

    def __enter__(self) -> FakeZalo:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("The fake Zalo server did not start.")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()  # ends long polls in progress
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _endpoint(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        try:
            params = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, 400, "Bad request")
        with self._lock:
            self.calls.append(Call(method, params, token))
            failure = next(
                (f for f in self._failures if f.methods is None or method in f.methods), None
            )
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
        if token != self.token:
            return _error(401, 401, "Unauthorized")
        if failure is not None:
            return _error(failure.status, failure.error_code, failure.description)
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, 404, "Not found")
        result: JSONResponse = await handler(params)
        return result

    def _sent(self) -> JSONResponse:
        return _ok({"message_id": f"bot-msg-{next(self._ids)}", "date": int(time.time() * 1000)})

    async def _getMe(self, params: dict[str, Any]) -> JSONResponse:
        return _ok(
            {
                "id": "42",
                "account_name": "bot.Fake",
                "account_type": "BASIC",
                "can_join_groups": False,
            }
        )

    async def _getUpdates(self, params: dict[str, Any]) -> JSONResponse:
        timeout = min(float(params.get("timeout", 30)), self.max_poll_seconds)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self.webhook_url:
                    return _error(400, 400, "Webhook is set; getUpdates is disabled")
                if self._updates:
                    return JSONResponse(self._updates.popleft())
            if time.monotonic() >= deadline or self._closing.is_set():
                return _error(200, 408, "Request timeout")
            await asyncio.sleep(0.01)

    async def _sendMessage(self, params: dict[str, Any]) -> JSONResponse:
        text = params.get("text")
        if not params.get("chat_id") or not isinstance(text, str):
            return _error(400, 400, "chat_id and text are required")
        if not 1 <= len(text.encode("utf-16-le")) // 2 <= self.max_text:
            return _error(400, 400, "text must have 1 to 2000 characters")
        return self._sent()

    async def _sendPhoto(self, params: dict[str, Any]) -> JSONResponse:
        if not params.get("chat_id") or not params.get("photo"):
            return _error(400, 400, "chat_id and photo are required")
        caption = params.get("caption")
        if caption is not None and not 1 <= len(caption) <= self.max_text:
            return _error(400, 400, "caption must have 1 to 2000 characters")
        return self._sent()

    async def _sendChatAction(self, params: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def _setWebhook(self, params: dict[str, Any]) -> JSONResponse:
        secret = params.get("secret_token", "")
        if not params.get("url") or not 8 <= len(secret) <= 256:
            return _error(400, 400, "url and secret_token (8-256 characters) are required")
        with self._lock:
            self.webhook_url = str(params["url"])
        return _ok({"url": self.webhook_url, "updated_at": int(time.time() * 1000)})

    async def _deleteWebhook(self, params: dict[str, Any]) -> JSONResponse:
        with self._lock:
            self.webhook_url = ""
        return _ok({"url": "", "updated_at": int(time.time() * 1000)})

    async def _getWebhookInfo(self, params: dict[str, Any]) -> JSONResponse:
        return _ok({"url": self.webhook_url, "updated_at": int(time.time() * 1000)})


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(status: int, error_code: int, description: str) -> JSONResponse:
    body = {"ok": False, "error_code": error_code, "description": description}
    return JSONResponse(body, status_code=status)


_message_ids = itertools.count(1)


def text_update(
    text: str,
    *,
    chat_id: str = "chat-1",
    user_id: str | None = None,
    message_id: str | None = None,
    name: str = "Nguyễn Văn A",
) -> dict[str, Any]:
    """An update as Zalo sends it for a text message."""
    return _update("message.text.received", {"text": text}, chat_id, user_id, message_id, name)


def image_update(
    photo_url: str, caption: str | None = None, *, chat_id: str = "chat-1"
) -> dict[str, Any]:
    """An update for an image (with an optional caption)."""
    fields: dict[str, Any] = {"photo_url": photo_url}
    if caption is not None:
        fields["caption"] = caption
    return _update("message.image.received", fields, chat_id, None, None, "Nguyễn Văn A")


def event_update(event_name: str, *, chat_id: str = "chat-1", **fields: Any) -> dict[str, Any]:
    """An update of any event with the given message fields."""
    return _update(event_name, fields, chat_id, None, None, "Nguyễn Văn A")


def _update(
    event: str,
    fields: dict[str, Any],
    chat_id: str,
    user_id: str | None,
    message_id: str | None,
    name: str,
) -> dict[str, Any]:
    message = {
        "from": {"id": user_id or chat_id, "display_name": name, "is_bot": False},
        "chat": {"id": chat_id, "chat_type": "PRIVATE"},
        "message_id": message_id or f"zmsg-{next(_message_ids)}",
        "date": int(time.time() * 1000),
        **fields,
    }
    return {"ok": True, "result": {"message": message, "event_name": event}}
