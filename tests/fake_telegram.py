"""A fake Telegram Bot API server on loopback, for tests.

`FakeTelegram` runs a Starlette app under uvicorn in a background thread on a free port, so
sync and async tests (and subprocesses such as ``civicbot run``) can use it. Point the bot at
``fake.base_url`` (``http://127.0.0.1:PORT/bot``; the library appends the token and method).

It implements what python-telegram-bot 22 calls: getMe, getUpdates (long poll, honours
``offset``, ``limit``, ``timeout`` (at most ``max_poll_seconds``) and ``allowed_updates``;
409 while a webhook is set, and for a poll superseded by a newer one, as Telegram does),
sendMessage, sendPhoto, sendDocument, sendMediaGroup (photos), answerCallbackQuery,
editMessageReplyMarkup, getFile (and file downloads under ``/file/bot<token>/``), setWebhook,
deleteWebhook, getWebhookInfo, logOut and close. While a webhook is set, queued updates are
POSTed to it in order, with the secret in ``X-Telegram-Bot-Api-Secret-Token``, retried until
answered 2xx (as Telegram does).

Bodies are accepted as Telegram accepts them: JSON, form-encoded (what the library sends
without files), multipart (with files) and query strings. Every call is recorded as a
`Call` with decoded ``params`` (reply_markup and other JSON fields parsed, ids as int) and
the ``encoding`` used. Answers follow the Bot API, including its errors for empty or too long
texts and captions, button data over 64 bytes, unknown callback queries ("query is too old")
and editing a keyboard to what it already is ("message is not modified").

Tests inject updates with helpers (`inject_text`, `press_button`, `inject_location`,
`inject_photo`, `inject_sticker`, `inject_voice`, `inject_document`, `inject_video`,
`inject_edit`, or `inject` for any update; `redeliver` sends one again with the same
update_id) and can make methods fail for a while with `fail` (e.g. 500, or 429 with
``retry_after``; ``chat_id`` limits it to one chat; `block` makes a chat's user block the bot).
Chat ids are ints; a private chat's id is its user's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.parser
import email.policy
import itertools
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = "123456789:AAFakeTokenForCivicBotTests_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "civicbot_test_bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

METHODS = (
    "getMe",
    "getUpdates",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendMediaGroup",
    "answerCallbackQuery",
    "editMessageReplyMarkup",
    "getFile",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "logOut",
    "close",
)
_CANONICAL = {name.lower(): name for name in METHODS}

# How the library encodes non-string values in form and multipart bodies: as JSON text.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "allowed_updates",
        "entities",
        "caption_entities",
        "reply_parameters",
        "link_preview_options",
        "media",
        "results",
        "commands",
        "scope",
    }
)
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "cache_time",
        "message_thread_id",
        "from_chat_id",
        "user_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "drop_pending_updates",
        "show_alert",
        "disable_notification",
        "protect_content",
        "has_spoiler",
        "show_caption_above_media",
        "allow_sending_without_reply",
        "allow_paid_broadcast",
    }
)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart body."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One Bot API request as the fake received it."""

    method: str
    params: dict[str, Any]
    encoding: str  # "json", "form", "multipart", "query" or "empty"
    raw: dict[str, Any]  # values before decoding (form fields are strings)
    status: int = 200
    at: float = field(default_factory=time.monotonic)


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the webhook."""

    update_id: int
    status: int | None  # None when the connection failed
    error: str | None = None


@dataclass
class _Failure:
    method: str | None
    status: int
    description: str
    retry_after: int | None
    remaining: int | None
    until: float | None
    chat_id: int | None = None

    def applies(self, method: str, now: float, chat_id: Any = None) -> bool:
        if self.method is not None and self.method.lower() != method.lower():
            return False
        if self.chat_id is not None and self.chat_id != chat_id:
            return False
        if self.until is not None and now >= self.until:
            return False
        return self.remaining is None or self.remaining > 0


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def _decode(key: str, value: Any) -> Any:
    """A form or multipart value as the library meant it (it JSON-encodes non-strings)."""
    if not isinstance(value, str):
        return value
    if key in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if key in _INT_PARAMS and re.fullmatch(r"-?\d+", value):
        return int(value)
    if key in _BOOL_PARAMS and value in ("true", "false"):
        return value == "true"
    return value


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Fields (str) and files (`UploadedFile`) of a multipart/form-data body."""
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode()
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    values: dict[str, Any] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            values[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            values[name] = data.decode(part.get_content_charset() or "utf-8")
    return values


class FakeTelegram:
    """The fake server and its state. Use as a context manager, or `start` and `stop`."""

    def __init__(
        self,
        token: str = TOKEN,
        *,
        max_poll_seconds: float = 2.0,
        deliver_webhooks: bool = True,
        webhook_verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.token = token
        self.max_poll_seconds = max_poll_seconds
        self.deliver_webhooks = deliver_webhooks
        self.webhook_verify = webhook_verify  # trusting a self-signed proxy: a context
        self.reject_photo_urls = False  # answer sendPhoto with a URL like an unfetchable URL
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.static: dict[str, tuple[bytes, str]] = {}  # served at /static/<name>
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._pending: list[dict[str, Any]] = []  # updates not yet confirmed
        self._update_ids = itertools.count(10_001)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._message_ids: dict[int, Iterator[int]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}  # both sides, by chat
        self._open_queries: set[str] = set()
        self._answered_queries: list[str] = []
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._failures: list[_Failure] = []
        self._poll_generation = 0
        self._users: dict[int, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.port = 0

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> FakeTelegram:
        """Serve on a free loopback port, in a background thread."""
        # proto=IPPROTO_TCP: asyncio disables Nagle (TCP_NODELAY) only on sockets that say
        # so; without it every answer (headers and body written apart) waited ~40 ms for
        # the client's delayed ACK, which the real Bot API does not do.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._wakeup = asyncio.Event()
            ready.set()
            assert self._server is not None
            try:
                loop.run_until_complete(self._server.serve(sockets=[sock]))
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                sock.close()

        self._thread = threading.Thread(target=serve, name="fake-telegram", daemon=True)
        self._thread.start()
        ready.wait(5)
        deadline = time.monotonic() + 5
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("The fake Telegram server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving (long polls end at once)."""
        self._closing = True
        self._wake()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the library as base_url (it appends the token)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def static_url(self, name: str, content: bytes, content_type: str = "image/png") -> str:
        """Serve `content` at a URL of this server (e.g. an image the bot must download)."""
        self.static[name] = (content, content_type)
        return f"{self.url}/static/{name}"

    # --- what was called -------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, **params: Any) -> list[Call]:
        """The calls of one method, optionally those whose params include `params`."""
        return [
            c
            for c in self.calls
            if c.method == method and all(c.params.get(k) == v for k, v in params.items())
        ]

    def methods(self) -> list[str]:
        """Method names in the order called."""
        return [c.method for c in self.calls]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts and captions the bot sent successfully, in order."""
        texts = []
        for call in self.calls:
            if call.status != 200 or call.method not in ("sendMessage", "sendPhoto"):
                continue
            if chat_id is not None and call.params.get("chat_id") != chat_id:
                continue
            texts.append(str(call.params.get("text") or call.params.get("caption") or ""))
        return texts

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message as the fake holds it now (e.g. after its keyboard was removed)."""
        with self._lock:
            found = self._messages.get((chat_id, message_id))
            return copy.deepcopy(found) if found else None

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in a chat, oldest first, as they are now."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for (chat, _), m in sorted(self._messages.items())
                if chat == chat_id and m.get("from", {}).get("id") == BOT_ID
            ]

    @property
    def answered_queries(self) -> list[str]:
        with self._lock:
            return list(self._answered_queries)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by an offset (or a 2xx webhook answer)."""
        with self._lock:
            return copy.deepcopy(self._pending)

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Wait (asynchronously) until `method` was called `count` times; returns the calls."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method) if where is None or where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{method} called {len(found)} times, expected {count}; calls: {self.methods()}"
                )
            await asyncio.sleep(0.01)

    def wait_for_sync(self, method: str, count: int = 1, *, timeout: float = 5.0) -> list[Call]:
        """`wait_for` for sync tests (the bot must run in another thread or process)."""
        deadline = time.monotonic() + timeout
        while len(found := self.calls_to(method)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} called {len(found)} times, expected {count}")
            time.sleep(0.01)
        return found

    # --- failures --------------------------------------------------------------------------

    def fail(
        self,
        method: str | None = None,
        *,
        status: int = 500,
        times: int | None = 1,
        seconds: float | None = None,
        retry_after: int | None = None,
        description: str | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Answer `method` (every method when None) with an error, `times` times (None: until
        `heal`) or for `seconds`. ``retry_after`` adds ``parameters.retry_after`` (use status
        429); ``chat_id`` fails only the calls for that chat."""
        default = "Too Many Requests: retry after" if status == 429 else "Internal Server Error"
        if retry_after is not None and description is None:
            description = f"Too Many Requests: retry after {retry_after}"
        with self._lock:
            self._failures.append(
                _Failure(
                    method,
                    status,
                    description or default,
                    retry_after,
                    None if times is None or seconds is not None else times,
                    time.monotonic() + seconds if seconds is not None else None,
                    chat_id,
                )
            )

    def block(self, chat_id: int) -> None:
        """The user of this private chat blocked the bot: every send to it is refused (403)."""
        self.fail(
            None,
            status=403,
            times=None,
            description="Forbidden: bot was blocked by the user",
            chat_id=chat_id,
        )

    def heal(self) -> None:
        """Stop failing."""
        with self._lock:
            self._failures.clear()

    # --- injecting updates -----------------------------------------------------------------

    def user(self, user_id: int, first_name: str | None = None, **extra: Any) -> dict[str, Any]:
        """A Telegram user; the first call for an id (or one with a name) defines it."""
        with self._lock:
            if user_id not in self._users or first_name is not None or extra:
                self._users[user_id] = {
                    "id": user_id,
                    "is_bot": False,
                    "first_name": first_name or "Công dân",
                    "last_name": str(user_id),
                    "language_code": "vi",
                    **extra,
                }
            return dict(self._users[user_id])

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (an update_id is added when missing); returns it."""
        with self._lock:
            update = copy.deepcopy(update)
            update.setdefault("update_id", next(self._update_ids))
            self._pending.append(update)
            self._pending.sort(key=lambda u: int(u["update_id"]))
        self._wake()
        return copy.deepcopy(update)

    def redeliver(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an already delivered update again, same update_id (as after a crash)."""
        with self._lock:
            self._pending.append(copy.deepcopy(update))
        self._wake()
        return update

    def _chat(self, chat_id: int, chat_type: str) -> dict[str, Any]:
        if chat_type == "private":
            user = self.user(chat_id)
            return {"id": chat_id, "type": "private", "first_name": user["first_name"]}
        return {"id": chat_id, "type": chat_type, "title": f"Nhóm {chat_id}"}

    def _next_message_id(self, chat_id: int) -> int:
        with self._lock:
            return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _user_message(
        self, chat_id: int, user_id: int | None, chat_type: str, **content: Any
    ) -> dict[str, Any]:
        user_id = user_id if user_id is not None else chat_id
        message = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id, chat_type),
            "from": self.user(user_id),
            **content,
        }
        with self._lock:
            self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        return message

    def inject_message(
        self,
        chat_id: int,
        *,
        user_id: int | None = None,
        chat_type: str = "private",
        **content: Any,
    ) -> dict[str, Any]:
        """A new message from a citizen with the given content fields."""
        message = self._user_message(chat_id, user_id, chat_type, **content)
        return self.inject({"message": message})

    def inject_text(self, chat_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        return self.inject_message(chat_id, text=text, **kwargs)

    def inject_location(
        self, chat_id: int, lat: float, lon: float, **kwargs: Any
    ) -> dict[str, Any]:
        location = {"latitude": lat, "longitude": lon}
        return self.inject_message(chat_id, location=location, **kwargs)

    def add_file(self, content: bytes, path_prefix: str = "documents", ext: str = "bin") -> str:
        """Register a downloadable file; returns its file_id."""
        number = next(self._file_ids)
        file_id = f"AgAC-fake-file-{number}"
        with self._lock:
            self._files[file_id] = (f"{path_prefix}/file_{number}.{ext}", content)
        return file_id

    def _file(self, content: bytes, prefix: str, ext: str) -> dict[str, Any]:
        file_id = self.add_file(content, prefix, ext)
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(content)}

    def inject_photo(
        self,
        chat_id: int,
        caption: str | None = None,
        *,
        content: bytes = b"\xff\xd8" + b"p" * 2048,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A photo in two sizes (Telegram sends several; the last is the largest)."""
        small = {**self._file(content[:256], "photos", "jpg"), "width": 90, "height": 60}
        large = {**self._file(content, "photos", "jpg"), "width": 1280, "height": 853}
        extra: dict[str, Any] = {"caption": caption} if caption is not None else {}
        return self.inject_message(chat_id, photo=[small, large], **extra, **kwargs)

    def inject_sticker(
        self, chat_id: int, *, animated: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        sticker = {
            **self._file(b"RIFF-webp-sticker", "stickers", "tgs" if animated else "webp"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "emoji": "👍",
            "is_animated": animated,
            "is_video": False,
        }
        return self.inject_message(chat_id, sticker=sticker, **kwargs)

    def inject_voice(self, chat_id: int, *, seconds: int = 3, **kwargs: Any) -> dict[str, Any]:
        voice = {
            **self._file(b"OggS" + b"v" * 500, "voice", "oga"),
            "duration": seconds,
            "mime_type": "audio/ogg",
        }
        return self.inject_message(chat_id, voice=voice, **kwargs)

    def inject_document(
        self,
        chat_id: int,
        file_name: str = "don-khieu-nai.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        document = {
            **self._file(b"%PDF-1.4 fake", "documents", "pdf"),
            "file_name": file_name,
            "mime_type": mime_type,
        }
        extra: dict[str, Any] = {"caption": caption} if caption is not None else {}
        return self.inject_message(chat_id, document=document, **extra, **kwargs)

    def inject_video(self, chat_id: int, **kwargs: Any) -> dict[str, Any]:
        video = {
            **self._file(b"\x00\x00\x00\x18ftypmp42", "videos", "mp4"),
            "width": 640,
            "height": 360,
            "duration": 5,
            "mime_type": "video/mp4",
        }
        return self.inject_message(chat_id, video=video, **kwargs)

    def inject_edit(self, original: dict[str, Any], text: str) -> dict[str, Any]:
        """The citizen edits a message they sent (give the update that carried it)."""
        message = copy.deepcopy(original["message"])
        field_name = "caption" if "caption" in message else "text"
        message[field_name] = text
        message["edit_date"] = int(time.time())
        with self._lock:
            self._messages[(message["chat"]["id"], message["message_id"])] = copy.deepcopy(message)
        return self.inject({"edited_message": message})

    def press_button(
        self,
        chat_id: int,
        data: str | None = None,
        *,
        label: str | None = None,
        message_id: int | None = None,
        user_id: int | None = None,
    ) -> dict[str, Any]:
        """The citizen presses a button of a bot message (the latest with a keyboard unless
        `message_id`): by `data`, by `label`, or the first. Data that is on no keyboard is
        sent anyway, from an old keyboard the fake makes up (a button of a past version)."""
        with self._lock:
            if message_id is None:
                with_keyboard = [m for m in self.bot_messages(chat_id) if m.get("reply_markup")]
                message = with_keyboard[-1] if with_keyboard else None
            else:
                message = self.message(chat_id, message_id)
            buttons = [
                b
                for row in ((message or {}).get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row
            ]
            chosen = next(
                (
                    b
                    for b in buttons
                    if (data is None or b.get("callback_data") == data)
                    and (label is None or b.get("text") == label)
                ),
                None,
            )
            if chosen is None:
                if data is None:
                    raise AssertionError(f"No button {label!r} in chat {chat_id}: {buttons}")
                chosen = {"text": label or data, "callback_data": data}
                message = self._bot_message(
                    chat_id,
                    text="(tin cũ)",
                    reply_markup={"inline_keyboard": [[chosen]]},
                )
            assert message is not None
            query_id = str(next(self._query_ids) * 1_000_003)
            self._open_queries.add(query_id)
            update = {
                "callback_query": {
                    "id": query_id,
                    "from": self.user(user_id if user_id is not None else chat_id),
                    "chat_instance": f"ci-{chat_id}",
                    "data": chosen["callback_data"],
                    "message": message,
                }
            }
        return self.inject(update)

    # --- the server --------------------------------------------------------------------------

    def _wake(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing
                loop.call_soon_threadsafe(event.set)

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
                Route("/static/{name}", self._static, methods=["GET"]),
            ]
        )

    async def _read(self, request: Request) -> tuple[dict[str, Any], str]:
        values: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if not body:
            return values, "query" if values else "empty"
        if content_type.startswith("application/json"):
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ApiError(400, "Bad Request: JSON object expected")
            values.update(data)
            return values, "json"
        if content_type.startswith("application/x-www-form-urlencoded"):
            values.update(parse_qsl(body.decode(), keep_blank_values=True))
            return values, "form"
        if content_type.startswith("multipart/form-data"):
            values.update(_parse_multipart(content_type, body))
            return values, "multipart"
        raise ApiError(400, f"Bad Request: unsupported content type {content_type!r}")

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params["token"]
        asked = request.path_params["method"]
        method = _CANONICAL.get(asked.lower(), asked)
        try:
            raw, encoding = await self._read(request)
        except (ApiError, ValueError) as error:
            raw, encoding = {}, "invalid"
            status = error.status if isinstance(error, ApiError) else 400
            return self._record(method, raw, encoding, _error(status, str(error)))
        if token != self.token:
            return self._record(method, raw, encoding, _error(401, "Unauthorized"))
        params = {key: _decode(key, value) for key, value in raw.items()}
        failure = self._failure(method, params.get("chat_id"))
        if failure is not None:
            return self._record(method, raw, encoding, failure)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._record(method, raw, encoding, _error(404, "Not Found: method not found"))
        call = self._record_call(method, params, raw, encoding)
        try:
            result = await handler(params)
        except ApiError as error:
            call.status = error.status
            return _error(error.status, error.description, error.retry_after)
        return JSONResponse({"ok": True, "result": result})

    def _record_call(
        self, method: str, params: dict[str, Any], raw: dict[str, Any], encoding: str
    ) -> Call:
        call = Call(method, params, encoding, raw)
        with self._lock:
            self._calls.append(call)
        return call

    def _record(
        self, method: str, raw: dict[str, Any], encoding: str, response: JSONResponse
    ) -> JSONResponse:
        params = {key: _decode(key, value) for key, value in raw.items()}
        self._record_call(method, params, raw, encoding).status = response.status_code
        return response

    def _failure(self, method: str, chat_id: Any = None) -> JSONResponse | None:
        now = time.monotonic()
        with self._lock:
            for failure in self._failures:
                if failure.applies(method, now, chat_id):
                    if failure.remaining is not None:
                        failure.remaining -= 1
                    return _error(failure.status, failure.description, failure.retry_after)
        return None

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        with self._lock:
            found = [c for p, c in self._files.values() if p == request.path_params["path"]]
        if not found:
            return Response(status_code=404)
        return Response(found[0], media_type="application/octet-stream")

    async def _static(self, request: Request) -> Response:
        found = self.static.get(request.path_params["name"])
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

    # --- Bot API methods -------------------------------------------------------------------

    def _bot_message(self, chat_id: int, **content: Any) -> dict[str, Any]:
        message = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id, "private" if chat_id > 0 else "group"),
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "CivicBot",
                "username": BOT_USERNAME,
            },
            **{k: v for k, v in content.items() if v is not None},
        }
        with self._lock:
            self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        return message

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "CivicBot",
            "username": BOT_USERNAME,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _confirm(self, offset: int) -> None:
        with self._lock:
            self._pending = [u for u in self._pending if int(u["update_id"]) >= offset]

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        wait = min(float(params.get("timeout") or 0), self.max_poll_seconds)
        allowed = params.get("allowed_updates") or None
        deadline = time.monotonic() + wait
        assert self._wakeup is not None
        if offset > 0:  # confirmed when asked, not when answered
            self._confirm(offset)
        with self._lock:  # a newer getUpdates ends the older one, as Telegram does
            self._poll_generation += 1
            generation = self._poll_generation
        self._wakeup.set()
        while True:
            self._wakeup.clear()
            with self._lock:
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that only "
                        "one bot instance is running",
                    )
                if allowed:  # Telegram drops what was not asked for
                    self._pending = [u for u in self._pending if _kind(u) in allowed]
                batch = self._pending[:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing:
                return copy.deepcopy(batch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _check_markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if not str(button.get("text", "")).strip():
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
        return markup

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        text = str(params.get("text") or "")
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        markup = self._check_markup(params)
        return self._bot_message(chat_id, text=text, reply_markup=markup)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        photo = params.get("photo")
        caption = params.get("caption")
        if caption is not None and utf16_len(str(caption)) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = self._check_markup(params)
        if isinstance(photo, UploadedFile):
            content = photo.data
        elif isinstance(photo, str) and photo.startswith(("http://", "https://")):
            if self.reject_photo_urls:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            content = b"\xff\xd8fetched:" + photo.encode()
        elif isinstance(photo, str) and photo in self._files:
            content = self._files[photo][1]
        else:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        sizes = [{**self._file(content, "photos", "jpg"), "width": 800, "height": 600}]
        return self._bot_message(chat_id, photo=sizes, caption=caption, reply_markup=markup)

    def _media_content(self, media: Any, params: dict[str, Any], what: str) -> bytes:
        """The bytes of a file given as an upload, ``attach://name``, a file id or a URL."""
        if isinstance(media, str) and media.startswith("attach://"):
            media = params.get(media.removeprefix("attach://"))
        if isinstance(media, UploadedFile):
            return media.data
        if isinstance(media, str) and media.startswith(("http://", "https://")):
            return b"fetched:" + media.encode()
        if isinstance(media, str) and media in self._files:
            return self._files[media][1]
        raise ApiError(400, f"Bad Request: there is no {what} in the request")

    async def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        document = params.get("document")
        caption = params.get("caption")
        if caption is not None and utf16_len(str(caption)) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = self._check_markup(params)
        content = self._media_content(document, params, "document")
        name = document.filename if isinstance(document, UploadedFile) else None
        mime = document.content_type if isinstance(document, UploadedFile) else None
        info = {
            **self._file(content, "documents", "bin"),
            "file_name": name or "document",
            "mime_type": mime or "application/octet-stream",
        }
        return self._bot_message(chat_id, document=info, caption=caption, reply_markup=markup)

    async def _api_sendMediaGroup(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: media must include 2-10 items")
        group_id = str(next(self._file_ids) * 7919)
        sent = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") != "photo":
                raise ApiError(400, "Bad Request: unsupported media type in the group")
            content = self._media_content(item.get("media"), params, "photo")
            sizes = [{**self._file(content, "photos", "jpg"), "width": 800, "height": 600}]
            sent.append(
                self._bot_message(
                    chat_id, photo=sizes, caption=item.get("caption"), media_group_id=group_id
                )
            )
        return sent

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("callback_query_id"))
        with self._lock:
            if query_id not in self._open_queries:
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or "
                    "query ID is invalid",
                )
            self._open_queries.discard(query_id)
            self._answered_queries.append(query_id)
        return True

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        chat_id = self._chat_id(params)
        markup = self._check_markup(params)
        key = (chat_id, int(params.get("message_id") or 0))
        with self._lock:
            message = self._messages.get(key)
            if message is None or message["from"]["id"] != BOT_ID:
                raise ApiError(400, "Bad Request: message to edit not found")
            if message.get("reply_markup") == markup or (
                not message.get("reply_markup") and not markup
            ):
                raise ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content "
                    "and reply markup are exactly the same as a current content and reply "
                    "markup of the message",
                )
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            message["edit_date"] = int(time.time())
            return copy.deepcopy(message)

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id"))
        with self._lock:
            found = self._files.get(file_id)
        if found is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = found
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.match(str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if not url:
            return await self._api_deleteWebhook(params)
        if not url.startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        with self._lock:
            if params.get("drop_pending_updates"):
                self._pending.clear()
            self.webhook = {
                "url": url,
                "secret_token": secret,
                "allowed_updates": params.get("allowed_updates"),
                "max_connections": params.get("max_connections", 40),
            }
        if self.deliver_webhooks and (self._pusher is None or self._pusher.done()):
            self._pusher = asyncio.get_running_loop().create_task(self._push_webhooks())
        self._wake()
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        with self._lock:
            self.webhook = None
            if params.get("drop_pending_updates"):
                self._pending.clear()
        self._wake()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        with self._lock:
            hook = self.webhook or {}
            return {
                "url": hook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
                "max_connections": hook.get("max_connections", 40),
                "allowed_updates": hook.get("allowed_updates") or [],
            }

    async def _api_logOut(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _push_webhooks(self) -> None:
        """POST pending updates to the webhook, one at a time, in order, until 2xx."""
        assert self._wakeup is not None
        backoff = 0.05
        async with httpx.AsyncClient(timeout=10.0, verify=self.webhook_verify) as client:
            while not self._closing:
                with self._lock:
                    hook = self.webhook
                    allowed = (hook or {}).get("allowed_updates") or None
                    if allowed:
                        self._pending = [u for u in self._pending if _kind(u) in allowed]
                    update = copy.deepcopy(self._pending[0]) if self._pending else None
                if hook is None:
                    return
                if update is None:
                    self._wakeup.clear()
                    with self._lock:
                        empty = not self._pending
                    if empty:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), 0.5)
                    continue
                headers = {SECRET_HEADER: hook["secret_token"]} if hook["secret_token"] else {}
                try:
                    response = await client.post(hook["url"], json=update, headers=headers)
                    status: int | None = response.status_code
                    error = None
                except httpx.HTTPError as exc:
                    status, error = None, repr(exc)
                with self._lock:
                    self.webhook_deliveries.append(
                        WebhookDelivery(int(update["update_id"]), status, error)
                    )
                    if status is not None and 200 <= status < 300:
                        self._pending = [
                            u for u in self._pending if u["update_id"] != update["update_id"]
                        ]
                        backoff = 0.05
                        continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)


def _kind(update: dict[str, Any]) -> str:
    """The update's type: the one key besides update_id."""
    return next((k for k in update if k != "update_id"), "")


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)
