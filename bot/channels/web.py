"""The local web chat channel: JSON in, the replies of that message out.

The server names the session: a random token in an HttpOnly cookie (`new_session_token`),
whose hash is the chat id (`chat_id_of`), so a chat id read from the database or a log does
not open the session. Whatever id a browser sends in a body or a URL is ignored.

A browser posts ``{message_id, text}`` (or ``button`` or ``location``), or a photo's bytes,
and gets the replies as ``[{text, buttons: [{label, data}], image_url}]``. The
client-generated ``message_id`` makes a retried post safe: the same (session, message id) is
handled once and its replies are returned again, also to a retry that arrives while the first
is still being handled (in-process and bounded memory), or after a restart (the conversation
stores the message before answering, and its replies with it: they are read back).

The web has no push: notifications from the outbox (`WebOutboxOutput`) are stored as outgoing
messages, and the page asks for them (``GET /api/updates``, `parse_after`). Files are
not shown; a line under the text says what is attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from starlette.routing import BaseRoute

from bot.channels.common import ChannelHandler, clean_incoming, clean_reply, files_phrase
from bot.config import Settings
from bot.conversation.messages import (
    Attachment,
    ConversationHandler,
    GeoPoint,
    Inbox,
    IncomingMessage,
    OutgoingFile,
    Reply,
)
from bot.outbox.failures import Failure
from storage.models import Channel

MAX_TEXT_CHARS = 10_000
MAX_BUTTON_CHARS = 256
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SESSION_COOKIE = "civicbot_chat"

ReplyJson = dict[str, Any]


def new_session_token() -> str:
    """A fresh session token for the cookie (256 random bits)."""
    return secrets.token_urlsafe(32)


def chat_id_of(token: str | None) -> str | None:
    """The chat id of a session token, or None when `token` is not one we issue."""
    if token is None or not _TOKEN.match(token):
        return None
    return "w-" + hashlib.sha256(token.encode()).hexdigest()[:40]


def files_note(files: Sequence[OutgoingFile]) -> str | None:
    """A line saying what files a reply has (the web chat does not show them), or None."""
    phrase = files_phrase(files)
    return f"(Kèm theo {phrase}.)" if phrase else None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ButtonOut(_Model):
    label: str
    data: str


class ReplyOut(_Model):
    """One reply as the web chat shows it: ``{text, buttons: [{label, data}], image_url}``."""

    text: str
    buttons: list[ButtonOut]
    image_url: str | None

    @classmethod
    def of(cls, reply: Reply) -> ReplyOut:
        """Attached files only as a line of text (the page does not show them)."""
        reply = clean_reply(reply)
        note = files_note(reply.files)
        return cls(
            text=f"{reply.text}\n\n{note}".strip() if note else reply.text,
            buttons=[ButtonOut(label=b.label, data=b.data) for b in reply.buttons],
            image_url=reply.image_url,
        )


class UpdateOut(ReplyOut):
    """A notification of ``GET /api/updates``: a reply with its (stored message) id."""

    id: int


class UpdatesOut(_Model):
    """``GET /api/updates``: the notifications after ``after``, and the ``after`` to send next."""

    messages: list[UpdateOut]
    after: int


class ErrorOut(_Model):
    """A refusal: a short code and a Vietnamese explanation."""

    error: str
    message: str


class OverLimitOut(ErrorOut):
    retry_after: int


def reply_to_json(reply: Reply) -> ReplyJson:
    """One reply as the web chat shows it; attached files only as a line of text."""
    return ReplyOut.of(reply).model_dump()


@dataclass
class WebOutput:
    """Collects the replies to one message, for the HTTP response."""

    replies: list[Reply] = field(default_factory=list)

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        """Keep the reply; the web has no message ids of its own, so one is made up."""
        self.replies.append(reply)
        return f"web-{uuid.uuid4().hex}"

    def as_json(self) -> list[ReplyJson]:
        """The collected replies, in order."""
        return [reply_to_json(r) for r in self.replies]


@dataclass
class WebOutboxOutput:
    """The outbox worker's output for the web chat, which has no push.

    Sending only checks the reply: the worker stores it as an outgoing message, and the
    page fetches it from ``GET /api/updates``. The id is made up, as for replies.
    """

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        """Accept a reply that has something to show; ValueError for an empty one."""
        if not _ID.match(chat_id):
            raise ValueError(f"Not a web chat session id: {chat_id!r}")
        if not (reply.text.strip() or reply.image_url or reply.files):
            raise ValueError("A web chat notification needs text, an image or a file")
        return f"web-outbox-{uuid.uuid4().hex}"

    def classify_error(self, error: Exception) -> Failure | None:
        """None: sending only checks the reply, whose ValueError the worker knows."""
        return None


class WebChannel:
    """The web chat in the channel registry (`bot.channels.registry`): always on. Its routes
    are the web app's own (`bot.web.app`); nothing runs beside them."""

    name: ClassVar[Channel] = Channel.web

    def __init__(self) -> None:
        self.output = WebOutboxOutput()

    @classmethod
    def from_settings(cls, config: Settings, handler: ChannelHandler) -> WebChannel:
        return cls()

    def routes(self) -> list[BaseRoute]:
        return []

    def running(self) -> AbstractAsyncContextManager[object]:
        return contextlib.nullcontext()

    async def before_replay(self, message: IncomingMessage) -> None:
        """Nothing: a web chat message needs no first step of its own."""


class WebInputError(ValueError):
    """A request the web chat refuses: HTTP status, short code, Vietnamese explanation."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_json(self) -> dict[str, str]:
        return ErrorOut(error=self.code, message=self.message).model_dump()


def _bad(message: str) -> WebInputError:
    return WebInputError(400, "bad_request", message)


class LocationIn(BaseModel):
    """A shared location: two finite numbers within range."""

    model_config = ConfigDict(strict=True, frozen=True)

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class MessageIn(BaseModel):
    """What the page posts: ``{message_id, text}``, or a ``button`` or a ``location``. Strict:
    a number is not text. Other fields (a ``session_id`` too: the cookie names the session)
    are ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    message_id: Annotated[str, Field(pattern=_ID.pattern)] | None = None
    text: str | None = ""
    button: Annotated[str, Field(min_length=1, max_length=MAX_BUTTON_CHARS)] | None = None
    location: LocationIn | None = None

    @field_validator("message_id", mode="before")
    @classmethod
    def _blank_id(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("text")
    @classmethod
    def _length(cls, value: str | None, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_text_chars", MAX_TEXT_CHARS)
        if value is not None and len(value) > limit:
            raise PydanticCustomError("text_too_long", "text too long", {"limit": limit})
        return value or ""


# The first problem found, field by field, is the one the page is told about.
_FIELD_PROBLEMS = {
    "message_id": "Sai message_id (1–128 ký tự chữ, số, - _ . :).",
    "text": "Trường text phải là chuỗi ký tự.",
    "button": "Trường button phải là chuỗi 1–256 ký tự.",
}
_RANGE_ERRORS = {"greater_than_equal", "less_than_equal"}


def _refusal(invalid: ValidationError) -> WebInputError:
    """The web chat's refusal for what `MessageIn` found wrong."""
    errors = invalid.errors()
    first = errors[0]
    where = first["loc"][0] if first["loc"] else None
    if where is None:
        return _bad("Yêu cầu phải là một đối tượng JSON.")
    if first["type"] == "text_too_long":
        limit = int((first.get("ctx") or {}).get("limit", MAX_TEXT_CHARS))
        return WebInputError(
            413,
            "text_too_long",
            f"Tin nhắn dài quá {limit:,} ký tự".replace(",", ".")
            + ". Anh/chị vui lòng rút gọn hoặc chia thành nhiều tin nhắn nhỏ hơn.",
        )
    if where != "location":
        return _bad(_FIELD_PROBLEMS[str(where)])
    if len(first["loc"]) == 1:
        return _bad("Trường location phải có dạng {lat, lon}.")
    inside = [e for e in errors if e["loc"][:1] == ("location",)]
    if all(e["type"] in _RANGE_ERRORS for e in inside):
        return _bad("Vị trí nằm ngoài phạm vi hợp lệ.")
    return _bad("Vị trí phải gồm hai số lat, lon.")


def message_key(session_id: str, client_id: str | None) -> str:
    """The message id of a post: the session's chat id and the page's id for the message (a
    fresh one without it: no retry protection then). Raises `WebInputError`."""
    if not client_id:
        client_id = uuid.uuid4().hex
    if not _ID.match(client_id):
        raise _bad(_FIELD_PROBLEMS["message_id"])
    return f"{session_id}/{client_id}"


def parse_message(
    payload: Any, *, session_id: str, max_text_chars: int = MAX_TEXT_CHARS
) -> IncomingMessage:
    """Validate one message posted in the session `session_id` (from the cookie; a
    ``session_id`` in the body is ignored). Raises `WebInputError`."""
    try:
        posted = MessageIn.model_validate(payload, context={"max_text_chars": max_text_chars})
    except ValidationError as invalid:
        raise _refusal(invalid) from None
    location = posted.location
    incoming = IncomingMessage(
        channel="web",
        chat_id=session_id,
        user_id=session_id,
        message_id=message_key(session_id, posted.message_id),
        text=posted.text or "",
        button=posted.button,
        location=GeoPoint(lat=location.lat, lon=location.lon) if location else None,
    )
    incoming = clean_incoming(incoming)  # before the check: only hidden characters is empty
    if not incoming.text.strip() and posted.button is None and location is None:
        raise _bad("Tin nhắn trống: cần text, button hoặc location.")
    return incoming


def photo_message(
    session_id: str, client_id: str | None, file_id: str, size: int
) -> IncomingMessage:
    """A photo the page uploaded, as the channels' photo messages are. Raises `WebInputError`."""
    return IncomingMessage(
        channel="web",
        chat_id=session_id,
        user_id=session_id,
        message_id=message_key(session_id, client_id),
        attachments=(Attachment(file_id=file_id, kind="photo", mime_type="image/jpeg", size=size),),
    )


def parse_after(after: str | None) -> int:
    """The last message id the page has seen, from ``GET /api/updates?after=``.
    Raises `WebInputError`."""
    if after is None or after == "":
        return 0
    if not after.isascii() or not after.isdigit() or len(after) > 18:
        raise _bad("Tham số after phải là số nguyên không âm.")
    return int(after)


class WebChat:
    """The web channel: validates, handles each (session, message id) once, collects replies."""

    def __init__(
        self,
        conversation: ConversationHandler,
        *,
        max_text_chars: int = MAX_TEXT_CHARS,
        remembered: int = 10_000,
    ) -> None:
        self.conversation = conversation
        self.max_text_chars = max_text_chars
        self._remembered = remembered
        self._results: OrderedDict[str, asyncio.Future[list[ReplyJson]]] = OrderedDict()

    async def handle(self, payload: Any, *, session_id: str) -> list[ReplyJson]:
        """The replies to one message posted in `session_id`. Raises `WebInputError` for a
        bad request."""
        message = parse_message(payload, session_id=session_id, max_text_chars=self.max_text_chars)
        return await self.handle_message(message)

    async def handle_message(self, message: IncomingMessage) -> list[ReplyJson]:
        """The replies to one message, handled once per message id.

        An exception of the conversation propagates and is not remembered: a retry runs
        the message again.
        """
        known = self._results.get(message.message_id)
        if known is not None:
            return list(await asyncio.shield(known))
        result: asyncio.Future[list[ReplyJson]] = asyncio.get_running_loop().create_future()
        self._results[message.message_id] = result
        self._forget_oldest()
        output = WebOutput()
        try:
            await self.conversation.handle(message, output)
        except BaseException as error:
            del self._results[message.message_id]
            if isinstance(error, Exception):
                result.set_exception(error)
                result.exception()  # retrieved: no "never retrieved" warning without waiters
            else:
                result.cancel()
            raise
        if not output.replies and isinstance(self.conversation, Inbox):
            # handled before (a retry after a restart): the replies it got, from the database
            output.replies = self.conversation.replies_to(message) or []
        replies = output.as_json()
        result.set_result(replies)
        return list(replies)

    def _forget_oldest(self) -> None:
        while len(self._results) > self._remembered:
            oldest = next(iter(self._results))
            if not self._results[oldest].done():
                break
            del self._results[oldest]
