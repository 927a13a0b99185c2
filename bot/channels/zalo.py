"""Zalo channel: the Zalo Bot Platform API (bot-api.zaloplatforms.com).

What was confirmed from the platform's documentation (as mirrored in public repositories and
SDKs; the official site bot.zaloplatforms.com/docs could not be read directly):

- Methods are called as ``{base}/bot{TOKEN}/{method}`` with POST and a JSON body: ``getMe``,
  ``getUpdates`` (``timeout`` in seconds, documented as a *string*, default 30),
  ``setWebhook`` (``url``, ``secret_token`` of 8–256 characters), ``deleteWebhook``,
  ``getWebhookInfo``, ``sendMessage`` (``chat_id``, ``text`` of 1–2000 characters),
  ``sendPhoto`` (``chat_id``, ``photo`` URL, optional ``caption`` of 1–2000 characters),
  ``sendChatAction`` (``chat_id``, ``action``: only ``typing`` is available).
- Answers are ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": n,
  "description": "…"}``; documented codes include 400, 401 (bad token), 404, 408 (request
  timeout), 429 (quota exceeded).
- ``getUpdates`` and webhooks are mutually exclusive: ``getUpdates`` does not work while a
  webhook is set. Webhook requests carry the secret in ``X-Bot-Api-Secret-Token``.
- An update is ONE object, ``{"ok": true, "result": {"event_name": …, "message": {…}}}``;
  there is no ``update_id`` and no ``offset`` (unlike Telegram). The message has ``from``
  (``id``, ``display_name``, ``is_bot``), ``chat`` (``id``, ``chat_type`` PRIVATE or GROUP),
  ``text``, ``message_id``, ``date`` (milliseconds). Events: ``message.text.received``,
  ``message.image.received``, ``message.sticker.received``, ``message.voice.received``,
  ``message.unsupported.received`` (sent instead of the content for protected senders).

Assumptions, where sources disagree or say nothing:

- A long poll that ends without an update answers ``ok: false`` with ``error_code`` 408 (as
  the OpenClaw Zalo plugin treats it) or ``ok: true`` without a result; both mean "no update".
  A list in ``result`` is accepted too, should the API ever batch.
- The image URL is ``photo_url`` (python-zalo-bot, the platform's own SDK) or ``photo``
  (documentation tables); both are read. The sender's name is ``display_name`` (webhook
  sample), ``name`` or ``first_name`` (getUpdates sample); the first present is used.
- The 2000-character limit is counted in UTF-16 code units (safe whichever way Zalo counts).
- The webhook answers 200 quickly and handles the update afterwards; what Zalo does with a
  slow or failed webhook (retries?) is not documented, and a redelivered update keeps its
  ``message_id`` so the conversation can handle it once.

Zalo sends photos by URL only (``sendPhoto``) and has no documents. A reply's photo whose file
id is an http(s) URL (what a Zalo citizen's photo is, see above) goes out by ``sendPhoto``
before the text; any other file (a Telegram file id, generated content, a document) is not
sent, and a line under the text says how many photos and which documents are attached.

Zalo has no buttons, so a `Reply`'s buttons become numbered choices (`Reply.as_plain_text`),
and "2" (or the label typed, with or without accents) comes back as that button's data on
the next message. The app reads the choices from the database (`StoredChoices`: the buttons
of the latest message sent to the chat, stored by the outbox), so they survive a restart and
hold when another process handles the answer; `ChoiceMemory` keeps them in memory instead
(bounded, expiring). The conversation must (and does) also accept the plain-text answer.
Each incoming message consumes the choices of its chat.

The token is part of every URL: errors never quote URLs, and a logging filter on the
``httpx`` logger (which logs each request's URL at INFO) replaces known tokens by ``<token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx
from civicbot_nlu.normalize import fold
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.common import (
    BadBody,
    ChannelHandler,
    clean_incoming,
    clean_reply,
    files_phrase,
    hide_token_in_logs,
    read_json,
    split_text,
    utf16_length,
)
from bot.channels.polling import polling
from bot.conversation.messages import (
    Attachment,
    Button,
    ConversationHandler,
    Inbox,
    IncomingMessage,
    OutgoingFile,
    Reply,
)
from bot.lanes import ChatLanes
from bot.outbox.failures import Failure
from storage.models import Channel

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://bot-api.zaloplatforms.com"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
MAX_TEXT_UNITS = 2000
WEBHOOK_MAX_BYTES = 256 * 1024
POLL_TIMEOUT_ERROR = 408
PERMANENT_CODES = frozenset({400, 403})  # a send refused so will be refused again

EVENT_TEXT = "message.text.received"
EVENT_IMAGE = "message.image.received"
EVENT_STICKER = "message.sticker.received"
EVENT_VOICE = "message.voice.received"
EVENT_UNSUPPORTED = "message.unsupported.received"
KNOWN_EVENTS = frozenset({EVENT_TEXT, EVENT_IMAGE, EVENT_STICKER, EVENT_VOICE, EVENT_UNSUPPORTED})


class ZaloApiError(Exception):
    """A Zalo Bot API call failed: transport error, HTTP error or ``ok: false``.

    The message never contains the bot token (it is part of every URL).
    """

    def __init__(
        self,
        method: str,
        description: str,
        *,
        error_code: int | None = None,
        status_code: int | None = None,
    ) -> None:
        code = f" (error_code {error_code})" if error_code is not None else ""
        super().__init__(f"Zalo {method} failed: {description}{code}")
        self.method = method
        self.description = description
        self.error_code = error_code
        self.status_code = status_code

    @property
    def is_poll_timeout(self) -> bool:
        """A long poll that ended without an update."""
        return self.error_code == POLL_TIMEOUT_ERROR


class ZaloClient:
    """The Zalo Bot API over one long-lived httpx client."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("A Zalo bot token is required.")
        hide_token_in_logs(token)
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=f"{base_url.rstrip('/')}/bot{token}",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            headers={"User-Agent": "CivicBot"},
        )

    @classmethod
    def from_settings(cls, config: Settings) -> ZaloClient | None:
        """The client configured by CIVICBOT_ZALO_BOT_TOKEN/BASE_URL; None when Zalo is off."""
        if not config.zalo_bot_token:
            return None
        return cls(config.zalo_bot_token, config.zalo_bot_base_url)

    async def __aenter__(self) -> ZaloClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call one method; returns its ``result``. Raises `ZaloApiError`."""
        request_timeout = (
            httpx.Timeout(timeout, connect=5.0) if timeout else httpx.USE_CLIENT_DEFAULT
        )
        try:
            response = await self._http.post(
                f"/{method}", json=dict(params or {}), timeout=request_timeout
            )
        except httpx.TimeoutException:
            raise ZaloApiError(method, "timed out") from None
        except httpx.HTTPError as error:  # the message may contain the URL, hence the token
            raise ZaloApiError(method, f"network error ({type(error).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            raise ZaloApiError(
                method, f"HTTP {response.status_code}, not JSON", status_code=response.status_code
            ) from None
        if not isinstance(body, dict) or body.get("ok") is not True:
            body = body if isinstance(body, dict) else {}
            code = body.get("error_code")
            raise ZaloApiError(
                method,
                str(body.get("description") or f"HTTP {response.status_code}"),
                error_code=code if isinstance(code, int) else None,
                status_code=response.status_code,
            )
        return body.get("result")

    async def get_me(self) -> dict[str, Any]:
        """The bot's identity (``id``, ``account_name``…): checks the token."""
        result = await self.call("getMe")
        return result if isinstance(result, dict) else {}

    async def get_updates(self, timeout: int = 30) -> list[dict[str, Any]]:
        """Long-poll for updates; an empty list when none came within `timeout` seconds."""
        try:
            result = await self.call(
                "getUpdates", {"timeout": str(timeout)}, timeout=timeout + 10.0
            )
        except ZaloApiError as error:
            if error.is_poll_timeout:
                return []
            raise
        if isinstance(result, list):
            return [u for u in result if isinstance(u, dict)]
        if isinstance(result, dict) and result:
            return [result]
        return []

    async def set_webhook(self, url: str, secret_token: str) -> dict[str, Any]:
        """Have Zalo post updates to `url` (HTTPS) with `secret_token` in the header."""
        result = await self.call("setWebhook", {"url": url, "secret_token": secret_token})
        return result if isinstance(result, dict) else {}

    async def delete_webhook(self) -> dict[str, Any]:
        """Remove the webhook (needed before long polling works again)."""
        result = await self.call("deleteWebhook")
        return result if isinstance(result, dict) else {}

    async def get_webhook_info(self) -> dict[str, Any]:
        """``{"url": …, "updated_at": …}``; an empty url when no webhook is set."""
        result = await self.call("getWebhookInfo")
        return result if isinstance(result, dict) else {}

    async def send_message(self, chat_id: str, text: str) -> str | None:
        """Send a text (1–2000 characters); returns Zalo's message id."""
        result = await self.call("sendMessage", {"chat_id": chat_id, "text": text})
        return _message_id(result)

    async def send_photo(self, chat_id: str, photo: str, caption: str | None = None) -> str | None:
        """Send an image by URL, with an optional caption; returns Zalo's message id."""
        params = {"chat_id": chat_id, "photo": photo}
        if caption:
            params["caption"] = caption
        return _message_id(await self.call("sendPhoto", params))

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        """Show "typing…" in the chat for a moment."""
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action})


def _message_id(result: Any) -> str | None:
    if isinstance(result, dict) and result.get("message_id") is not None:
        return str(result["message_id"])
    return None


# --- Turning updates into messages ---------------------------------------------------------


def update_to_message(
    update: Mapping[str, Any], choices: Choices | None = None
) -> IncomingMessage | None:
    """The `IncomingMessage` of one update (webhook body or getUpdates result), or None.

    None for updates that are not a citizen's message: unknown events, messages from bots,
    no chat. With `choices`, an answer to the numbered choices last offered in the chat
    becomes that button's data (and the chat's choices are consumed).
    """
    result = update.get("result") if "result" in update else update
    if not isinstance(result, Mapping):
        return None
    event = str(result.get("event_name") or "")
    message = result.get("message")
    if not isinstance(message, Mapping):
        return None
    if event not in KNOWN_EVENTS:
        logger.info("Ignoring a Zalo update with event %r.", event)
        return None
    sender = _mapping(message.get("from"))
    chat = _mapping(message.get("chat"))
    chat_id = _text(chat.get("id")) or _text(sender.get("id"))
    if not chat_id or sender.get("is_bot") is True:
        return None
    user_id = _text(sender.get("id")) or chat_id
    name = sender.get("display_name") or sender.get("name") or sender.get("first_name")

    text, attachments = _CONTENT.get(event, _no_content)(message)
    metadata = _metadata(event, message, chat)
    incoming = clean_incoming(
        IncomingMessage(
            channel="zalo",
            chat_id=chat_id,
            user_id=user_id,
            message_id=_text(message.get("message_id")) or _derived_id(message),
            text=text,
            attachments=attachments,
            display_name=str(name) if name else None,
            metadata=metadata,
        )
    )
    if choices is not None:
        answer = text if event == EVENT_TEXT else ""
        button = choices.resolve(chat_id, answer, message_id=incoming.message_id)
        if button is not None:
            incoming = replace(incoming, button=button)
    return incoming


# What an event carries: (text, attachments).
_Content = tuple[str, tuple[Attachment, ...]]


def _no_content(message: Mapping[str, Any]) -> _Content:
    return "", ()


def _text_content(message: Mapping[str, Any]) -> _Content:
    return _text(message.get("text")), ()


def _image_content(message: Mapping[str, Any]) -> _Content:
    text = _text(message.get("caption")) or _text(message.get("text"))
    photo = _text(message.get("photo_url")) or _text(message.get("photo"))
    return text, (Attachment(file_id=photo, kind="photo"),) if photo else ()


def _sticker_content(message: Mapping[str, Any]) -> _Content:
    sticker = _text(message.get("sticker")) or _text(message.get("url"))
    return "", (Attachment(file_id=sticker or "sticker", kind="sticker"),)


def _voice_content(message: Mapping[str, Any]) -> _Content:
    voice = _text(message.get("voice_url")) or _text(message.get("url"))
    if not voice:
        return "", ()
    return "", (Attachment(file_id=voice, kind="voice", mime_type="audio/aac"),)


_CONTENT: dict[str, Callable[[Mapping[str, Any]], _Content]] = {
    EVENT_TEXT: _text_content,
    EVENT_IMAGE: _image_content,
    EVENT_STICKER: _sticker_content,
    EVENT_VOICE: _voice_content,
}


def _metadata(event: str, message: Mapping[str, Any], chat: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"event_name": event}
    if chat.get("chat_type"):
        metadata["chat_type"] = str(chat["chat_type"])
    if isinstance(message.get("date"), int | float):
        metadata["date_ms"] = message["date"]
    if event == EVENT_UNSUPPORTED:
        metadata["unsupported"] = True
    return metadata


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return str(value)


def _derived_id(message: Mapping[str, Any]) -> str:
    """A stable id for a message without one: the same update gives the same id."""
    digest = hashlib.sha256(
        json.dumps(message, sort_keys=True, ensure_ascii=False, default=str).encode()
    )
    return "sha256:" + digest.hexdigest()[:32]


# --- Numbered choices ----------------------------------------------------------------------

_CHOICE_NUMBER = re.compile(r"^(?:so|chon|lua chon)?\s*#?(\d{1,3})\s*[.)]?$")


def _fold(text: str) -> str:
    """Lower case, no accents, single spaces, no trailing punctuation: for matching labels."""
    return " ".join(fold(text).split()).strip(" .!?,;:\"'")


class Choices(Protocol):
    """Where the choices offered in a chat are kept until its next message."""

    def remember(self, chat_id: str, buttons: Iterable[Button]) -> None:
        """The buttons just offered in `chat_id`."""
        ...

    def resolve(self, chat_id: str, text: str, message_id: str | None = None) -> str | None:
        """Consume the chat's choices; the data of the button the answer picks, if any."""
        ...


class ChoiceMemory:
    """Per chat, the buttons last offered; in memory, bounded, expiring, lost on restart."""

    def __init__(
        self,
        *,
        max_chats: int = 10_000,
        ttl_seconds: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._offered: OrderedDict[str, tuple[float, tuple[Button, ...]]] = OrderedDict()
        self._max_chats = max_chats
        self._ttl = ttl_seconds
        self._clock = clock

    def __len__(self) -> int:
        return len(self._offered)

    def remember(self, chat_id: str, buttons: Iterable[Button]) -> None:
        """The buttons just offered in `chat_id` (replacing earlier ones)."""
        offered = tuple(buttons)
        if not offered:
            return
        self._offered.pop(chat_id, None)
        self._offered[chat_id] = (self._clock(), offered)
        while len(self._offered) > self._max_chats:
            self._offered.popitem(last=False)

    def offered(self, chat_id: str) -> tuple[Button, ...]:
        """The buttons currently remembered for `chat_id` (without consuming them)."""
        entry = self._offered.get(chat_id)
        if entry is None or self._clock() - entry[0] > self._ttl:
            return ()
        return entry[1]

    def resolve(self, chat_id: str, text: str, message_id: str | None = None) -> str | None:
        """Consume the chat's choices; the data of the button `text` picks, if any (`pick`).
        `message_id` (the answer's) is not needed here."""
        buttons = self.offered(chat_id)
        self._offered.pop(chat_id, None)
        return pick(buttons, text)


def pick(buttons: Sequence[Button], text: str) -> str | None:
    """The data of the offered button that `text` picks: "2", "2.", "số 2" pick the second;
    the label itself (any case, with or without accents) picks that button."""
    answer = _fold(text)
    if not buttons or not answer:
        return None
    number = _CHOICE_NUMBER.match(answer)
    if number:
        index = int(number.group(1))
        return buttons[index - 1].data if 1 <= index <= len(buttons) else None
    matches = [b for b in buttons if _fold(b.label) == answer]
    return matches[0].data if len(matches) == 1 else None


class StoredChoices:
    """The choices of a chat as stored, whichever process offered them and whichever handles
    the answer: `offered(chat_id, answer)` gives the buttons offered in the chat before the
    answer (the app's: `Conversation.offered_buttons`, from the messages the outbox stored
    as it sent them). The answer consumes them: the next message has none."""

    def __init__(self, offered: Callable[[str, str], Sequence[Button]]) -> None:
        self._offered = offered

    def remember(self, chat_id: str, buttons: Iterable[Button]) -> None:
        """Nothing to do: the outbox stores what it sent, buttons included."""

    def resolve(self, chat_id: str, text: str, message_id: str | None = None) -> str | None:
        """The data of the button the answer `message_id` (stored already) picks, if any."""
        if not _fold(text) or message_id is None:
            return None
        return pick(self._offered(chat_id, message_id), text)


# --- Sending -------------------------------------------------------------------------------


def _photo_url(file: OutgoingFile) -> str | None:
    """The URL Zalo can fetch this file from, when it is a photo that has one."""
    return file.url if file.kind == "photo" and not file.content else None


def files_not_sent_note(files: Iterable[OutgoingFile]) -> str | None:
    """A line telling the reader which attached files Zalo could not show, or None."""
    phrase = files_phrase(files)
    if phrase is None:
        return None
    return (
        f"(Tin nhắn này có kèm {phrase}; Zalo chưa hiển thị được tệp đính kèm, "
        "anh/chị vui lòng xem trên kênh khác.)"
    )


class ZaloOutput:
    """Renders replies for Zalo: plain text with numbered choices, photos, split long texts."""

    def __init__(
        self,
        client: ZaloClient,
        *,
        max_chars: int = MAX_TEXT_UNITS,
        choices: Choices | None = None,
    ) -> None:
        self.client = client
        self.max_chars = max_chars
        self.choices: Choices = choices if choices is not None else ChoiceMemory()

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        """Send one reply; returns the Zalo id of the last message sent.

        Photos with a URL go first, then the text; other files become a line of text.
        """
        reply = clean_reply(reply)
        urls = [url for url in map(_photo_url, reply.files) if url]
        note = files_not_sent_note(f for f in reply.files if _photo_url(f) is None)
        if note:  # above the numbered choices, if any
            reply = replace(reply, text=f"{reply.text.strip()}\n\n{note}".strip())
        text = reply.as_plain_text().strip()
        self.choices.remember(chat_id, reply.buttons)
        sent: str | None = None
        for url in urls:
            sent = await self.client.send_photo(chat_id, url)
        if reply.image_url:
            caption = text if text and utf16_length(text) <= self.max_chars else None
            sent = await self.client.send_photo(chat_id, reply.image_url, caption)
            if caption is not None or not text:
                return sent
        for piece in split_text(text, self.max_chars):
            sent = await self.client.send_message(chat_id, piece)
        return sent

    def classify_error(self, error: Exception) -> Failure | None:
        """What a failed send means for the outbox worker (`classify_error` below)."""
        return classify_error(error)


# --- Receiving: polling and webhook --------------------------------------------------------


class ZaloDispatcher:
    """Hands updates to the conversation: in order within a chat, concurrently across chats."""

    def __init__(
        self, conversation: ConversationHandler, output: ZaloOutput, *, typing: bool = True
    ) -> None:
        self.conversation = conversation
        self.output = output
        self.typing = typing
        self.inbox = conversation if isinstance(conversation, Inbox) else None
        self._lanes = ChatLanes()

    def accept(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """Store the updates' messages in the inbox before they are acknowledged (raises
        when the database cannot take them)."""
        if self.inbox is None:
            return
        # As received: a number answering the offered choices becomes their button's data
        # when it is handled (resolving consumes the choices).
        messages = [update_to_message(u) for u in updates]
        self.inbox.accept([m for m in messages if m is not None])

    async def dispatch(self, update: Mapping[str, Any]) -> bool:
        """Handle one update; True when it reached the conversation. Never raises."""
        try:
            chat_id = _chat_of(update)
            if chat_id is None:
                logger.info("Ignoring a Zalo update without a chat.")
                return False
            async with self._lanes.hold(chat_id):
                message = update_to_message(update, self.output.choices)
                if message is None:
                    return False
                if self.typing:
                    with contextlib.suppress(ZaloApiError):
                        await self.output.client.send_chat_action(message.chat_id)
                await self.conversation.handle(message, self.output)
                return True
        except Exception:
            logger.exception("Handling a Zalo update failed.")
            return False


def _chat_of(update: Mapping[str, Any]) -> str | None:
    result = update.get("result") if "result" in update else update
    message = result.get("message") if isinstance(result, Mapping) else None
    if not isinstance(message, Mapping):
        return None
    for holder in (message.get("chat"), message.get("from")):
        if isinstance(holder, Mapping) and _text(holder.get("id")):
            return _text(holder.get("id"))
    return None


async def run_polling(
    client: ZaloClient,
    conversation: ConversationHandler,
    stop_event: asyncio.Event,
    *,
    output: ZaloOutput | None = None,
    poll_timeout: int = 30,
    retry_delay: float = 1.0,
    max_retry_delay: float = 60.0,
    shutdown_grace: float = 10.0,
) -> None:
    """Long-poll getUpdates until `stop_event` is set, handing each update over.

    Errors back off exponentially (`retry_delay` doubling up to `max_retry_delay`); setting
    `stop_event` aborts the poll in flight at once and lets handlers in progress finish
    for up to `shutdown_grace` seconds. A webhook must not be set (see `delete_webhook`).
    """
    dispatcher = ZaloDispatcher(conversation, output or ZaloOutput(client))
    in_flight: set[asyncio.Task[bool]] = set()
    delay = retry_delay
    await _warn_if_webhook_set(client)
    stopped = asyncio.ensure_future(stop_event.wait())
    poll: asyncio.Future[list[dict[str, Any]]] | None = None
    try:
        while not stop_event.is_set():
            poll = asyncio.ensure_future(client.get_updates(timeout=poll_timeout))
            await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not poll.done():
                break
            try:
                updates = poll.result()
            except Exception as error:
                if isinstance(error, ZaloApiError):
                    level = logging.ERROR if error.error_code in (401, 403) else logging.WARNING
                    logger.log(level, "Zalo polling: %s; retrying in %.1f s.", error, delay)
                else:
                    logger.exception("Zalo polling failed; retrying in %.1f s.", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stopped), delay)
                delay = min(delay * 2, max_retry_delay)
                continue
            delay = retry_delay
            try:  # Zalo hands an update out once: stored before anything else
                dispatcher.accept(updates)
            except Exception:
                logger.exception("Zalo updates could not be stored; handling them anyway.")
            for update in updates:
                task = asyncio.create_task(dispatcher.dispatch(update))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
    finally:
        stopped.cancel()
        if poll is not None and not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
        if in_flight:
            _, late = await asyncio.wait(in_flight, timeout=shutdown_grace)
            for task in late:
                task.cancel()


async def _warn_if_webhook_set(client: ZaloClient) -> None:
    """getUpdates does not work while a webhook is set; say so (but change nothing)."""
    try:
        info = await client.get_webhook_info()
    except ZaloApiError as error:
        logger.warning("Zalo getWebhookInfo: %s", error)
        return
    if info.get("url"):
        logger.warning(
            "A Zalo webhook is set (%s): getUpdates will fail until it is deleted "
            "(ZaloClient.delete_webhook).",
            info["url"],
        )


def zalo_webhook_route(
    conversation: ConversationHandler,
    client: ZaloClient,
    secret: str,
    path: str = "/zalo/webhook",
    *,
    output: ZaloOutput | None = None,
    max_bytes: int = WEBHOOK_MAX_BYTES,
) -> Route:
    """A Starlette route receiving Zalo's webhook posts.

    The `X-Bot-Api-Secret-Token` header must equal `secret` (constant-time comparison),
    else 403 and nothing is read or handled. A good update is stored in the inbox, then
    acknowledged with 200 and handled right after the response is sent (503 when it could
    not be stored, so that Zalo sends it again).
    """
    if len(secret) < 8:
        logger.warning("The Zalo webhook secret is shorter than 8 characters: Zalo refuses it.")
    expected = secret.encode()
    dispatcher = ZaloDispatcher(conversation, output or ZaloOutput(client))

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not expected or not hmac.compare_digest(given, expected):
            return JSONResponse({"ok": False, "description": "Forbidden"}, status_code=403)
        try:
            update = await read_json(request, max_bytes)
        except BadBody as error:
            description = "Too large" if error.status == 413 else "Bad JSON"
            return JSONResponse({"ok": False, "description": description}, status_code=error.status)
        if not isinstance(update, dict):
            return JSONResponse({"ok": False, "description": "Not an update"}, status_code=400)
        try:
            dispatcher.accept([update])
        except Exception:
            logger.exception("A Zalo update could not be stored.")
            return JSONResponse({"ok": False, "description": "Not stored"}, status_code=503)
        return JSONResponse({"ok": True}, background=BackgroundTask(dispatcher.dispatch, update))

    return Route(path, webhook, methods=["POST"], name="zalo_webhook")


def classify_error(error: Exception) -> Failure | None:
    """What a Zalo Bot API error means for the outbox worker; None for other errors: 400 and
    403 will not get better (permanent), the rest (401, 408, 429, 5xx, network) is retried."""
    if isinstance(error, ZaloApiError):
        code = error.error_code or error.status_code
        return Failure(str(error), permanent=code in PERMANENT_CODES)
    return None


class ZaloChannel:
    """Zalo in the channel registry (`bot.channels.registry`): on when
    CIVICBOT_ZALO_BOT_TOKEN is set; its webhook route, and long polling beside it."""

    name: ClassVar[Channel] = Channel.zalo

    def __init__(self, client: ZaloClient, handler: ChannelHandler, config: Settings) -> None:
        self.client = client
        self.handler = handler
        self.secret = config.zalo_webhook_secret
        self.database_url = config.database_url
        # Numbered choices from the database: any process may handle the answer.
        choices = StoredChoices(partial(handler.offered_buttons, "zalo"))
        self.output = ZaloOutput(client, choices=choices)

    @classmethod
    def from_settings(cls, config: Settings, handler: ChannelHandler) -> ZaloChannel | None:
        client = ZaloClient.from_settings(config)
        return None if client is None else cls(client, handler, config)

    def routes(self) -> list[BaseRoute]:
        return [zalo_webhook_route(self.handler, self.client, self.secret, output=self.output)]

    async def before_replay(self, message: IncomingMessage) -> None:
        """Nothing: a Zalo message needs no first step of its own."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Long polling under the cluster's poll lock (`bot.channels.polling`) until the block
        ends; then the client's connections are closed."""
        poll = partial(run_polling, self.client, self.handler, output=self.output)
        async with self.client, polling(self.database_url, "zalo-poll", poll):
            yield
