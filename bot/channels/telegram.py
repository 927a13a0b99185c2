"""Telegram channel, on python-telegram-bot 22.

Long polling by default; with a webhook URL, Telegram posts updates to
`telegram_webhook_route`, served by the app's own ASGI server, which refuses requests without
the right ``X-Telegram-Bot-Api-Secret-Token``. Every update becomes one `IncomingMessage`:

- ``message_id`` is the Telegram ``update_id``: the same update delivered twice (a polling
  restart before the offset was confirmed, a webhook retry) keeps it, while an edit or a
  second press of a button is a new update with a new id. The Telegram message id is in
  ``metadata["telegram_message_id"]``.
- A button press is answered (answerCallbackQuery) whatever happens next, its keyboard is
  removed (editMessageReplyMarkup) so it cannot be pressed twice, and its data becomes
  ``button``. A second press of the same keyboard that arrives before the removal took effect
  is answered and dropped (remembered in memory, bounded).
- Photos, documents, voice, stickers and videos become `Attachment` (file id, kind, MIME
  type, size); the caption becomes ``text``; a location pin becomes ``location``; an edited
  message has ``edited=True``. Replying politely to what it cannot use is the conversation's
  job; this channel only makes sure each update reaches it once and in order.
- Only private chats are handled: the conversation collects personal data (names, phone
  numbers, addresses), which must not be echoed into a group. Group updates are ignored.

Nothing is acknowledged before it is stored: every update goes through the application's
update queue, an `InboxQueue` that stores the update's message in the inbox
(`Inbox.accept`) before queueing it. PTB's Updater moves the getUpdates offset (which
confirms the batch to Telegram) only after queueing the whole batch, and the webhook answers
200 only after queueing; a failure to store leaves the update unconfirmed, to come again.
What was stored and not handled when the process died is handled at the next start
(bot/inbox.py).

Updates are processed concurrently across chats and in order within a chat
(`PerChatUpdateProcessor`). A failing update is logged with its update and chat ids by one
error handler, the citizen gets an apology, and the bot goes on.

`TelegramOutput` renders a `Reply`: plain text (no parse mode), buttons as an inline keyboard
(one per row), an image as a photo with the text as caption when it fits, long texts split on
line boundaries. Lengths are counted in UTF-16 code units, as Telegram counts them. A reply's
files go first: photos (by file id or uploaded) one by sendPhoto or several by sendMediaGroup,
documents by sendDocument (uploaded as multipart); then the text, so its buttons stay last.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import hmac
import inspect
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, Final, TypeVar
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.channels.bot_api_request import AiohttpRequest
from bot.channels.common import (
    BadBody,
    ChannelHandler,
    clean_incoming,
    clean_reply,
    hide_token_in_logs,
    read_json,
    split_text,
    utf16_length,
)
from bot.channels.polling import polling
from bot.config import Settings
from bot.conversation.messages import (
    Attachment,
    Button,
    ConversationHandler,
    GeoPoint,
    Inbox,
    IncomingMessage,
    OutgoingFile,
    Reply,
)
from bot.lanes import ChatLanes
from bot.outbox.failures import Failure
from storage.models import Channel

logger = logging.getLogger(__name__)

TelegramApplication = Application[
    ExtBot[None],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    None,
]

DEFAULT_BASE_URL: Final = "https://api.telegram.org/bot"
DEFAULT_WEBHOOK_PATH: Final = "/telegram/webhook"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES: Final = ("message", "edited_message", "callback_query")
MESSAGE_LIMIT: Final = 4096  # UTF-16 code units
CAPTION_LIMIT: Final = 1024
CALLBACK_DATA_LIMIT: Final = 64  # bytes, UTF-8
PHOTO_MAX_BYTES: Final = 10 * 1024 * 1024  # Telegram's limit for an uploaded photo
DOCUMENT_MAX_BYTES: Final = 50 * 1024 * 1024  # … and for an uploaded document
MEDIA_GROUP_MAX: Final = 10  # photos per sendMediaGroup
WEBHOOK_MAX_BYTES: Final = 1024 * 1024
APOLOGY: Final = (
    "Xin lỗi anh/chị, hệ thống đang gặp sự cố nên chưa xử lý được tin nhắn vừa rồi. "
    "Anh/chị vui lòng thử lại sau ít phút."
)
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what setWebhook accepts as secret_token
_STATE_KEY: Final = "civicbot.telegram"

T = TypeVar("T")


# --- Incoming: Update -> IncomingMessage -------------------------------------------------


def _attachments(message: Message) -> tuple[Attachment, ...]:
    """The files of one message, largest photo size only."""
    found: list[Attachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        found.append(Attachment(largest.file_id, "photo", "image/jpeg", largest.file_size))
    if message.sticker:
        sticker = message.sticker
        mime = (
            "application/x-tgsticker"
            if sticker.is_animated
            else "video/webm"
            if sticker.is_video
            else "image/webp"
        )
        found.append(Attachment(sticker.file_id, "sticker", mime, sticker.file_size))
    if message.voice:
        voice = message.voice
        found.append(Attachment(voice.file_id, "voice", voice.mime_type, voice.file_size))
    if message.video:
        video = message.video
        found.append(Attachment(video.file_id, "video", video.mime_type, video.file_size))
    if message.video_note:
        note = message.video_note
        found.append(Attachment(note.file_id, "video", "video/mp4", note.file_size))
    if message.animation:  # Telegram also sets `document` for an animation: keep one
        anim = message.animation
        found.append(Attachment(anim.file_id, "video", anim.mime_type, anim.file_size))
    elif message.document:
        doc = message.document
        found.append(Attachment(doc.file_id, "document", doc.mime_type, doc.file_size))
    if message.audio:
        audio = message.audio
        found.append(Attachment(audio.file_id, "other", audio.mime_type, audio.file_size))
    return tuple(found)


def incoming_message(update: Update) -> IncomingMessage | None:
    """The one `IncomingMessage` of a citizen's update, or None for what we ignore.

    Ignored: updates from groups and channels, from no user, and button presses without data.
    """
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None or chat.type != ChatType.PRIVATE:
        return None
    common: dict[str, Any] = {
        "channel": "telegram",
        "chat_id": str(chat.id),
        "user_id": str(user.id),
        "message_id": str(update.update_id),
        "display_name": user.full_name or None,
    }
    metadata: dict[str, Any] = {"update_id": update.update_id}
    if user.language_code:
        metadata["language_code"] = user.language_code

    query = update.callback_query
    if query is not None:
        if query.data is None:
            return None
        metadata["callback_query_id"] = query.id
        if query.message is not None:
            metadata["telegram_message_id"] = query.message.message_id
            if isinstance(query.message, Message):
                label = _button_label(query.message, query.data)
                if label is not None:
                    metadata["button_label"] = label
        return clean_incoming(IncomingMessage(**common, button=query.data, metadata=metadata))

    message = update.message or update.edited_message
    if message is None:
        return None
    metadata["telegram_message_id"] = message.message_id
    metadata["date"] = message.date.isoformat()
    if message.edit_date is not None:
        metadata["edit_date"] = message.edit_date.isoformat()
    location = message.location
    incoming = IncomingMessage(
        **common,
        text=message.text or message.caption or "",
        location=GeoPoint(location.latitude, location.longitude) if location else None,
        attachments=_attachments(message),
        edited=update.edited_message is not None,
        metadata=metadata,
    )
    return clean_incoming(incoming)


def _button_label(message: Message, data: str) -> str | None:
    """The label of the pressed button, read from the message's keyboard."""
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == data:
                return button.text
    return None


# --- Outgoing: Reply -> Bot API calls ----------------------------------------------------


def inline_keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
    """One button per row; refuses what Telegram would refuse, before anything is sent."""
    if not buttons:
        return None
    for button in buttons:
        size = len(button.data.encode("utf-8"))
        if not 1 <= size <= CALLBACK_DATA_LIMIT:
            raise ValueError(
                f"Telegram button data must be 1 to {CALLBACK_DATA_LIMIT} bytes in UTF-8; "
                f"button {button.label!r} has {size} bytes: {button.data!r}"
            )
        if not button.label.strip():
            raise ValueError(f"Telegram buttons need a label; data {button.data!r} has none")
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data)] for b in buttons]
    )


def retry_seconds(error: RetryAfter) -> float:
    """`RetryAfter.retry_after` in seconds, int or timedelta, without PTB's deprecation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def check_files(files: Sequence[OutgoingFile]) -> None:
    """Refuses files Telegram would refuse (no id and no content, over the size limits)."""
    for file in files:
        if not file.file_id and not file.content:
            raise ValueError(f"A Telegram {file.kind} needs a file id or content: {file!r}")
        limit = PHOTO_MAX_BYTES if file.kind == "photo" else DOCUMENT_MAX_BYTES
        if file.content is not None and len(file.content) > limit:
            raise ValueError(
                f"Telegram takes a {file.kind} of at most {limit} bytes; "
                f"{file.filename or 'this one'} has {len(file.content)}"
            )


def _media(file: OutgoingFile) -> str | bytes:
    """What to give the library: the file id, or the content to upload."""
    if file.content:
        return file.content
    assert file.file_id is not None
    return file.file_id


class TelegramOutput:
    """Sends replies to Telegram chats; waits and retries when Telegram says 429.

    With ``max_retries=0`` a 429 is raised at once (`RetryAfter`): the outbox worker
    reschedules the message instead of waiting here.
    """

    def __init__(self, bot: Bot, *, max_retries: int = 3, max_wait_seconds: float = 30.0):
        self.bot = bot
        self.max_retries = max_retries
        self.max_wait_seconds = max_wait_seconds

    async def download(self, file_id: str) -> bytes:
        """A file's bytes by its Telegram file id (an official's photo of a result, kept so
        that citizens on other channels can see it: `Desk.keep_photos`)."""
        file = await self._call(partial(self.bot.get_file, file_id))
        return bytes(await file.download_as_bytearray())

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        """Send one reply; returns the id of the last message sent (the one with the buttons).

        Raises ValueError for a reply Telegram would refuse (no text, image or file; buttons
        without text or image; button data over 64 bytes; files too large), before sending
        anything.
        """
        reply = clean_reply(reply)
        markup = inline_keyboard(reply.buttons)
        chunks = split_text(reply.text, MESSAGE_LIMIT)
        check_files(reply.files)
        if not chunks and not reply.image_url:
            if not reply.files:
                raise ValueError("A Telegram reply needs text or an image; this one has neither")
            if markup is not None:
                raise ValueError("Telegram buttons need a text or an image to hang on")
        last_file = await self._send_files(chat_id, reply.files)
        if not chunks and not reply.image_url:
            return last_file
        if reply.image_url:
            fits = bool(chunks) and utf16_length(reply.text) <= CAPTION_LIMIT
            caption = reply.text.strip() if fits else None
            photo = await self._send_photo(
                chat_id, reply.image_url, caption, markup if fits or not chunks else None
            )
            if photo is None:  # Telegram could not have it: send the link instead
                chunks = split_text(f"{reply.text}\n{reply.image_url}".strip(), MESSAGE_LIMIT)
            elif fits or not chunks:
                return str(photo.message_id)
        sent: Message | None = None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            keyboard = markup if last else None
            sent = await self._call(
                partial(self.bot.send_message, chat_id, chunk, reply_markup=keyboard)
            )
        return str(sent.message_id) if sent else None

    async def _send_files(self, chat_id: str, files: Sequence[OutgoingFile]) -> str | None:
        """Send the files in order, runs of photos as albums; returns the last message id."""
        last: str | None = None
        index = 0
        while index < len(files):
            file = files[index]
            if file.kind == "document":
                sent = await self._call(
                    partial(
                        self.bot.send_document, chat_id, _media(file),
                        filename=file.filename if file.content else None,
                    )
                )  # fmt: skip
                last, index = str(sent.message_id), index + 1
                continue
            album = [file]
            while (
                len(album) < MEDIA_GROUP_MAX
                and index + len(album) < len(files)
                and files[index + len(album)].kind == "photo"
            ):
                album.append(files[index + len(album)])
            index += len(album)
            if len(album) == 1:
                photo = await self._call(
                    partial(self.bot.send_photo, chat_id, _media(file), filename=file.filename)
                )
                last = str(photo.message_id)
                continue
            media = [InputMediaPhoto(_media(f), filename=f.filename) for f in album]
            messages = await self._call(partial(self.bot.send_media_group, chat_id, media))
            last = str(messages[-1].message_id)
        return last

    async def _send_photo(
        self, chat_id: str, url: str, caption: str | None, markup: InlineKeyboardMarkup | None
    ) -> Message | None:
        """Send a photo by URL; if Telegram cannot fetch it, download and upload it."""
        try:
            return await self._call(
                partial(self.bot.send_photo, chat_id, url, caption=caption, reply_markup=markup)
            )
        except BadRequest as error:
            logger.info("Telegram could not fetch %s (%s); uploading it.", url, error)
        content = await _download_image(url)
        if content is None:
            return None
        try:
            return await self._call(
                partial(self.bot.send_photo, chat_id, content, caption=caption, reply_markup=markup)
            )
        except BadRequest as error:
            logger.warning("Telegram refused the image %s (%s); sending a link.", url, error)
            return None

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        """Run one Bot API request, waiting out 429 answers (Telegram sent nothing then)."""
        attempt = 0
        while True:
            try:
                return await request()
            except RetryAfter as error:
                wait = retry_seconds(error)
                attempt += 1
                if attempt > self.max_retries or wait > self.max_wait_seconds:
                    raise
                logger.warning("Telegram flood control: waiting %.1f s (try %d).", wait, attempt)
                await asyncio.sleep(wait)

    def classify_error(self, error: Exception) -> Failure | None:
        """What a failed send means for the outbox worker (`classify_error` below)."""
        return classify_error(error)


async def _download_image(url: str) -> bytes | None:
    """The image at `url` (at most Telegram's 10 MB), or None."""
    try:
        async with (
            httpx.AsyncClient(timeout=10.0, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or not kind.startswith("image/"):
                logger.warning("Image %s: HTTP %s, %s", url, response.status_code, kind)
                return None
            content = bytearray()
            async for block in response.aiter_bytes():
                content.extend(block)
                if len(content) > PHOTO_MAX_BYTES:
                    logger.warning("Image %s is over %d bytes.", url, PHOTO_MAX_BYTES)
                    return None
            return bytes(content)
    except httpx.HTTPError as error:
        logger.warning("Image %s could not be downloaded: %r", url, error)
        return None


# --- Ordering: concurrent across chats, in order within a chat ---------------------------


def _chat_key(update: object) -> int | None:
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Processes updates of different chats concurrently and those of one chat in order.

    The Application starts one task per update, in the order received; each waits for its
    chat's lock (asyncio locks are fair: first come, first served), then for one of
    `max_running` slots. Waiting for a chat does not take a slot, so a burst in one chat
    never blocks the others. Past `max_waiting` updates in the processor (waiting or
    running), further ones wait before taking their chat's turn.
    """

    __slots__ = ("_lanes", "_running")

    def __init__(self, max_running: int = 64, max_waiting: int = 4096):
        super().__init__(max_concurrent_updates=max(max_waiting, max_running, 2))
        self._running = asyncio.Semaphore(max_running)
        self._lanes = ChatLanes()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run `coroutine` after the earlier updates of the same chat."""
        key = _chat_key(update)
        if key is None:
            async with self._running:
                await coroutine
            return
        try:
            async with self._lanes.hold(key), self._running:
                await coroutine
        except asyncio.CancelledError:
            if inspect.iscoroutine(coroutine):
                coroutine.close()  # cancelled before it ran: no "never awaited" warning
            raise

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


# --- The inbox: stored before acknowledged ------------------------------------------------


class InboxQueue(asyncio.Queue[object]):
    """The application's update queue: an update's message is stored in the inbox before
    the update is queued, so before the Updater confirms it to Telegram (its next getUpdates
    offset) and before the webhook answers 200. A second press of the same keyboard is
    dropped here, not stored (`_ChannelState.first_press`)."""

    def __init__(self, state: _ChannelState, inbox: Inbox | None) -> None:
        super().__init__()
        self.state = state
        self.inbox = inbox

    async def put(self, item: object) -> None:
        if isinstance(item, Update) and self.inbox is not None:
            message = incoming_message(item)
            if message is not None and self._first_press(item):
                try:
                    self.inbox.accept([message])
                except Exception:
                    logger.exception("Telegram update %s could not be stored.", item.update_id)
                    await asyncio.sleep(1.0)  # the database is down: no busy loop
                    raise  # unconfirmed: Telegram delivers it again
        await super().put(item)

    def _first_press(self, update: Update) -> bool:
        query = update.callback_query
        pressed = query.message if query is not None else None
        if query is None or pressed is None:
            return True
        return self.state.first_press(pressed.chat.id, pressed.message_id, query.id)


# --- Handlers ----------------------------------------------------------------------------


@dataclass
class _ChannelState:
    conversation: ConversationHandler
    pressed: OrderedDict[tuple[int, int], str] = field(default_factory=OrderedDict)
    pressed_limit: int = 10_000

    def first_press(self, chat_id: int, message_id: int, query_id: str) -> bool:
        """Whether this press is the first of that keyboard (a redelivery counts as first)."""
        key = (chat_id, message_id)
        seen = self.pressed.get(key)
        if seen is not None and seen != query_id:
            return False
        self.pressed[key] = query_id
        self.pressed.move_to_end(key)
        while len(self.pressed) > self.pressed_limit:
            self.pressed.popitem(last=False)
        return True


def _state(context: ContextTypes.DEFAULT_TYPE) -> _ChannelState:
    state = context.bot_data[_STATE_KEY]
    assert isinstance(state, _ChannelState)
    return state


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Hand a citizen's message, new or edited, to the conversation."""
    message = incoming_message(update)
    if message is not None:
        await _state(context).conversation.handle(message, TelegramOutput(context.bot))


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a button press, remove its keyboard, hand its data to the conversation."""
    query = update.callback_query
    assert query is not None
    await _answer(query)
    message = incoming_message(update)
    if message is None:
        return
    pressed = query.message
    if pressed is not None:
        chat_id, message_id = pressed.chat.id, pressed.message_id
        if not _state(context).first_press(chat_id, message_id, query.id):
            logger.info("Second press on message %s in chat %s ignored.", message_id, chat_id)
            return
        await _remove_keyboard(context.bot, chat_id, message_id)
    await _state(context).conversation.handle(message, TelegramOutput(context.bot))


def before_replay(bot: Bot) -> Callable[[IncomingMessage], Awaitable[None]]:
    """What `on_button` does before the turn, for a press replayed from the inbox (the
    process died after storing it): answer the callback (Telegram may say it is too old:
    logged) and remove the keyboard. Other messages need nothing."""

    async def first_steps(message: IncomingMessage) -> None:
        if message.channel != "telegram" or message.button is None:
            return
        query_id = message.metadata.get("callback_query_id")
        if isinstance(query_id, str):
            try:
                await bot.answer_callback_query(query_id)
            except TelegramError as error:
                logger.info("answerCallbackQuery %s on replay failed: %s", query_id, error)
        pressed = message.metadata.get("telegram_message_id")
        if isinstance(pressed, int):
            await _remove_keyboard(bot, int(message.chat_id), pressed)

    return first_steps


async def _answer(query: CallbackQuery) -> None:
    try:
        await query.answer()
    except TelegramError as error:  # e.g. "query is too old": the press still counts
        logger.warning("answerCallbackQuery %s failed: %s", query.id, error)


async def _remove_keyboard(bot: Bot, chat_id: int, message_id: int) -> None:
    try:
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
    except TelegramError as error:  # "message is not modified" when already removed
        logger.info("Keyboard of message %s in chat %s kept: %s", message_id, chat_id, error)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a failed update with its ids; apologise to the citizen unless Telegram failed."""
    update_id = update.update_id if isinstance(update, Update) else None
    chat = update.effective_chat if isinstance(update, Update) else None
    logger.error(
        "Telegram update %s from chat %s failed: %r",
        update_id,
        chat.id if chat else None,
        context.error,
        exc_info=context.error,
    )
    if chat is None or chat.type != ChatType.PRIVATE or isinstance(context.error, TelegramError):
        return
    try:
        await context.bot.send_message(chat.id, APOLOGY)
    except TelegramError as error:
        logger.warning("Apology to chat %s failed: %s", chat.id, error)


# --- Wiring ------------------------------------------------------------------------------


def file_base_url(base_url: str) -> str:
    """The file download base matching a Bot API base: …/bot -> …/file/bot."""
    stripped = base_url.rstrip("/")
    if stripped.endswith("/bot"):
        return stripped[: -len("bot")] + "file/bot"
    return stripped + "/file/bot"


def build_application(
    conversation: ConversationHandler,
    *,
    token: str,
    base_url: str = DEFAULT_BASE_URL,
    base_file_url: str | None = None,
    max_running: int = 64,
    max_connections: int = 16,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
) -> TelegramApplication:
    """The Telegram application: handlers, per-chat ordering and the error handler.

    Bot API calls (sendMessage and the like) go over aiohttp (`AiohttpRequest`), at most
    `max_connections` at a time, enough for Telegram's own limit of about 30 messages a
    second; getUpdates has its own connection.
    """
    if not token:
        raise ValueError("A Telegram bot token is required.")
    hide_token_in_logs(token)
    request = AiohttpRequest(
        connection_limit=max_connections, connect_timeout=connect_timeout, read_timeout=read_timeout
    )
    polling = AiohttpRequest(connection_limit=1, connect_timeout=connect_timeout)
    state = _ChannelState(conversation)
    inbox = conversation if isinstance(conversation, Inbox) else None
    application = (
        Application.builder()
        .update_queue(InboxQueue(state, inbox))
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url or file_base_url(base_url))
        .concurrent_updates(PerChatUpdateProcessor(max_running=max_running))
        .request(request)
        .get_updates_request(polling)
        .job_queue(None)
        .build()
    )
    application.bot_data[_STATE_KEY] = state
    private = filters.ChatType.PRIVATE
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGES & private, on_message))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_error_handler(on_error)
    return application


def application_from_settings(
    conversation: ConversationHandler, config: Settings
) -> TelegramApplication | None:
    """The application configured by CIVICBOT_TELEGRAM_*, or None when Telegram is off."""
    if not config.telegram_token:
        return None
    return build_application(
        conversation, token=config.telegram_token, base_url=config.telegram_base_url
    )


def webhook_path(webhook_url: str | None) -> str:
    """The path the webhook route must serve for CIVICBOT_TELEGRAM_WEBHOOK_URL."""
    path = urlsplit(webhook_url).path if webhook_url else ""
    return path if path not in ("", "/") else DEFAULT_WEBHOOK_PATH


def _check_secret(secret: str) -> None:
    if not _SECRET.match(secret):
        raise ValueError(
            "The Telegram webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -."
        )


def telegram_webhook_route(
    application: TelegramApplication, secret: str, path: str = DEFAULT_WEBHOOK_PATH
) -> Route:
    """The route Telegram posts updates to; 403 without the right secret header.

    The update is stored and queued, then answered 200 (Telegram waits for the answer before
    it sends the next one); 503 while the application is not running or the update could
    not be stored, so Telegram retries.
    """
    _check_secret(secret)
    expected = secret.encode()

    async def telegram_webhook(request: Request) -> Response:
        """Queue one update from Telegram."""
        given = request.headers.get(SECRET_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), expected):
            logger.warning("Telegram webhook: missing or wrong secret from %s", request.client)
            return Response(status_code=403)
        if not application.running:
            return Response(status_code=503)
        try:  # bounded as it streams in: a chunked body has no Content-Length to check
            data = await read_json(request, WEBHOOK_MAX_BYTES)
        except BadBody as error:
            logger.warning("Telegram webhook: body refused (%s)", error.reason)
            return Response(status_code=error.status)
        try:
            update = Update.de_json(data, application.bot)
        except Exception as error:  # not JSON, or not an update
            logger.warning("Telegram webhook: unreadable update (%r)", error)
            return Response(status_code=400)
        try:
            await application.update_queue.put(update)
        except Exception:  # not stored (logged by InboxQueue): Telegram sends it again
            return Response(status_code=503)
        return Response(status_code=200)

    return Route(path, telegram_webhook, methods=["POST"], name="telegram_webhook")


def _log_polling_error(error: TelegramError) -> None:
    """Polling goes on after a network error; one line instead of a traceback per retry."""
    logger.warning("Telegram polling failed (%s); retrying.", error)


async def start_telegram(
    application: TelegramApplication,
    *,
    webhook_url: str | None = None,
    secret: str | None = None,
    poll: bool = True,
    poll_timeout: float = 10.0,
    bootstrap_retries: int = 3,
) -> None:
    """Start processing updates: from the webhook route when a URL is given, else by polling
    (unless `poll` is false: `poll_updates` then starts it, under the poll lock).

    The webhook is registered once per deploy by `set_webhook` (`civicbot telegram
    set-webhook`), not here: every process setting its own secret refused the others'
    deliveries. Raises what Telegram raises at start (e.g. `telegram.error.InvalidToken`,
    `NetworkError`) after releasing what was set up.
    """
    if webhook_url:
        if secret is None:
            raise ValueError("A webhook needs a secret (CIVICBOT_TELEGRAM_WEBHOOK_SECRET).")
        _check_secret(secret)
    await application.initialize()
    try:
        await application.start()
        if webhook_url:
            logger.info("Telegram: updates from the webhook at %s", webhook_url)
        elif poll:
            await _start_polling(application, poll_timeout, bootstrap_retries)
    except BaseException:
        await stop_telegram(application)
        raise


async def _start_polling(
    application: TelegramApplication, poll_timeout: float, bootstrap_retries: int
) -> None:
    assert application.updater is not None
    await application.updater.start_polling(
        timeout=dtm.timedelta(seconds=poll_timeout),
        bootstrap_retries=bootstrap_retries,
        allowed_updates=ALLOWED_UPDATES,
        error_callback=_log_polling_error,
    )
    logger.info("Telegram: long polling")


async def poll_updates(
    application: TelegramApplication, stop: asyncio.Event, *, poll_timeout: float = 10.0
) -> None:
    """Long-poll getUpdates until `stop` is set, on a started application (`poll=False`):
    the app runs this under the poll lock, so one process of the cluster polls."""
    await _start_polling(application, poll_timeout, bootstrap_retries=3)
    try:
        await stop.wait()
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()


async def set_webhook(bot: Bot, *, url: str, secret: str) -> None:
    """Register the webhook and its secret with Telegram: once per deploy, for every process
    (`civicbot telegram set-webhook`). Telegram holds updates while no process answers."""
    _check_secret(secret)
    await bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
    logger.info("Telegram: webhook set to %s", url)


async def stop_telegram(application: TelegramApplication) -> None:
    """Stop fetching, finish the updates already received, release the connections."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()


@contextlib.asynccontextmanager
async def running_telegram(
    application: TelegramApplication,
    *,
    webhook_url: str | None = None,
    secret: str | None = None,
    poll: bool = True,
    poll_timeout: float = 10.0,
) -> AsyncIterator[TelegramApplication]:
    """`start_telegram` … `stop_telegram`, for running next to the ASGI server."""
    await start_telegram(
        application, webhook_url=webhook_url, secret=secret, poll=poll, poll_timeout=poll_timeout
    )
    try:
        yield application
    finally:
        await stop_telegram(application)


def classify_error(error: Exception) -> Failure | None:
    """What a Telegram error means for the outbox worker; None for other errors.

    Flood control (429) gives Telegram's ``retry_after``: the worker pauses the channel until
    then. A user who blocked the bot, a chat not found or any other 400 will not get better:
    permanent. Anything else Telegram raises (network, time-out, 5xx, bad token) is retried.
    """
    if isinstance(error, RetryAfter):
        seconds = retry_seconds(error)
        return Failure(f"Telegram flood control: retry after {seconds:g} s", retry_after=seconds)
    if isinstance(error, Forbidden | BadRequest):  # blocked, chat not found, bad request
        return Failure(f"Telegram: {error.message}", permanent=True)
    if isinstance(error, ChatMigrated):
        return Failure(f"Telegram: chat moved to {error.new_chat_id}", permanent=True)
    if isinstance(error, TelegramError):  # NetworkError, TimedOut, 5xx, InvalidToken, Conflict
        return Failure(f"Telegram: {type(error).__name__}: {error.message}")
    return None


class TelegramChannel:
    """Telegram in the channel registry (`bot.channels.registry`): on when
    CIVICBOT_TELEGRAM_TOKEN is set; a webhook route when CIVICBOT_TELEGRAM_WEBHOOK_URL is,
    else long polling."""

    name: ClassVar[Channel] = Channel.telegram

    def __init__(self, application: TelegramApplication, config: Settings) -> None:
        self.application = application
        self.database_url = config.database_url
        self.webhook_url = config.telegram_webhook_url
        self.secret = config.telegram_webhook_secret
        # A 429 is raised at once: the outbox worker reschedules rather than waits.
        self.output = TelegramOutput(application.bot, max_retries=0)
        self._first_steps = before_replay(application.bot)

    @classmethod
    def from_settings(cls, config: Settings, handler: ChannelHandler) -> TelegramChannel | None:
        application = application_from_settings(handler, config)
        return None if application is None else cls(application, config)

    def routes(self) -> list[BaseRoute]:
        if not self.webhook_url:
            return []
        path = webhook_path(self.webhook_url)
        return [telegram_webhook_route(self.application, self.secret, path)]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The application started (the webhook set), or long polling under the cluster's
        poll lock (`bot.channels.polling`)."""
        async with running_telegram(
            self.application, webhook_url=self.webhook_url, secret=self.secret, poll=False
        ):
            if self.webhook_url:
                yield
                return
            poll = partial(poll_updates, self.application)
            async with polling(self.database_url, "telegram-poll", poll):
                yield

    async def before_replay(self, message: IncomingMessage) -> None:
        """A pressed button replayed: its callback answered, its keyboard removed."""
        await self._first_steps(message)
