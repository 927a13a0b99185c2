"""What every channel needs: cleaning hostile text, splitting long texts, reading bounded
request bodies and JSON, and keeping bot tokens out of the logs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from starlette.requests import Request

from bot.conversation.messages import (
    Button,
    ConversationHandler,
    IncomingMessage,
    OutgoingFile,
    Reply,
)


class ChannelHandler(ConversationHandler, Protocol):
    """What the app hands every channel (the officials' desk): it handles messages, and
    says which buttons were last offered in a chat (Zalo's numbered choices)."""

    def offered_buttons(self, channel: str, chat_id: str, answer: str) -> tuple[Button, ...]:
        """The buttons offered in the chat before the answer `answer` (a message id)."""
        ...


# Never stored as typed nor shown to anyone: C0 controls but tab and newline, DEL, C1
# controls, and the bidi marks, embeddings, overrides and isolates that can make a text read
# differently from what it says (Trojan Source). Zero-width joiners stay: emoji need them.
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
# Lone UTF-16 surrogates: valid in JSON ("\ud800") and in Python, not encodable as UTF-8.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_JSON_DEPTH = 32


def clean_text(text: str) -> str:
    """`text` safe to store and to show: line breaks unified, lone surrogates replaced by
    U+FFFD, control and bidi characters removed."""
    if text.isascii() and text.isprintable():  # the common case, at no cost
        return text
    text = _LINE_BREAKS.sub("\n", text)
    return _HIDDEN.sub("", _SURROGATE.sub("\ufffd", text))


def clean_incoming(message: IncomingMessage) -> IncomingMessage:
    """What a channel hands on: its texts cleaned; a changed text is kept as sent, as the
    hex of its UTF-16 code units (lone surrogates included), in `metadata["raw_text"]`."""
    text, button = clean_text(message.text), _clean_optional(message.button)
    name = _clean_optional(message.display_name)
    if (text, button, name) == (message.text, message.button, message.display_name):
        return message
    metadata = dict(message.metadata)
    if text != message.text:
        metadata["raw_text"] = message.text.encode("utf-16-be", "surrogatepass").hex()
    label = metadata.get("button_label")
    if isinstance(label, str):
        metadata["button_label"] = clean_text(label)
    return replace(message, text=text, button=button, display_name=name, metadata=metadata)


def clean_reply(reply: Reply) -> Reply:
    """A reply with nothing hidden in its text or button labels, whatever it was made of
    (an official's words, a ticket's summary, a place's name)."""
    text = clean_text(reply.text)
    buttons = tuple(
        b if clean_text(b.label) == b.label else Button(clean_text(b.label), b.data)
        for b in reply.buttons
    )
    if text == reply.text and buttons == reply.buttons:
        return reply
    return replace(reply, text=text, buttons=buttons)


def _clean_optional(text: str | None) -> str | None:
    return None if text is None else clean_text(text)


class BadBody(Exception):
    """A request body refused: `status` 413 (too large) or 400 (not JSON, or too deep)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes (by its Content-Length
    or, without one, as it streams in)."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def read_json(request: Request, limit: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The request's JSON, read with `read_body`; raises `BadBody` for a body over `limit`
    bytes, one that is not JSON, or one nested deeper than `max_depth`."""
    body = await read_body(request, limit)
    if body is None:
        raise BadBody(413, "too large")
    return parse_json(body, max_depth)


def parse_json(body: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`body` parsed; raises `BadBody` (400) when it is not JSON or nested too deep."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nested about 1,000 deep
        raise BadBody(400, "not JSON") from error
    if _depth_over(value, max_depth):
        raise BadBody(400, "nested too deep")
    return value


def _depth_over(value: Any, max_depth: int) -> bool:
    """Whether `value` has containers nested more than `max_depth` deep (no recursion)."""
    level: list[Any] = [value]
    for _ in range(max_depth):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return bool(level)


def files_phrase(files: Iterable[OutgoingFile]) -> str | None:
    """What files a reply has, for a channel that cannot show them ("2 ảnh và 1 tệp
    (ket-qua.pdf)"), or None when it has none."""
    files = list(files)
    photos = sum(1 for f in files if f.kind == "photo")
    documents = [f for f in files if f.kind != "photo"]
    parts = [f"{photos} ảnh"] if photos else []
    if documents:
        names = [d.filename for d in documents if d.filename]
        parts.append(f"{len(documents)} tệp" + (f" ({', '.join(names)})" if names else ""))
    return " và ".join(parts) if parts else None


def utf16_length(text: str) -> int:
    """Length as Telegram and Zalo count it: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def prefix_within(text: str, limit: int) -> int:
    """The number of characters of the longest prefix of at most `limit` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into non-empty pieces of at most `limit` UTF-16 units.

    Cuts at a paragraph break, else a line break, else a space, in the second half of the
    piece; a hard cut only for a long run without spaces.
    """
    if limit < 16:
        raise ValueError("limit must be at least 16")
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_length(rest) <= limit:
            pieces.append(rest)
            break
        cut = prefix_within(rest, limit)
        window = rest[:cut]
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at >= cut // 2:
                cut = at
                break
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return pieces


class _RedactTokens(logging.Filter):
    """Hides bot tokens in httpx's request log lines (it logs full URLs, tokens included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, token: str) -> None:
        self.tokens.add(token)
        # One pass, longest first: a token inside another must not leave the rest of it.
        ordered = sorted(self.tokens, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is not None:
            message = record.getMessage()
            redacted = self._pattern.sub("<token>", message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_redactor = _RedactTokens()


def hide_token_in_logs(token: str) -> None:
    """From now on, log lines of httpx show `<token>` instead of `token`."""
    httpx_logger = logging.getLogger("httpx")
    if _redactor not in httpx_logger.filters:
        httpx_logger.addFilter(_redactor)
    _redactor.add(token)
