"""What every channel needs: splitting long texts, reading bounded request bodies, and
keeping bot tokens out of the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.requests import Request

from bot.conversation.messages import OutgoingFile


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

    def filter(self, record: logging.LogRecord) -> bool:
        if self.tokens:
            message = record.getMessage()
            redacted = message
            for token in self.tokens:
                redacted = redacted.replace(token, "<token>")
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_redactor = _RedactTokens()


def hide_token_in_logs(token: str) -> None:
    """From now on, log lines of httpx show `<token>` instead of `token`."""
    httpx_logger = logging.getLogger("httpx")
    if _redactor not in httpx_logger.filters:
        httpx_logger.addFilter(_redactor)
    _redactor.tokens.add(token)
