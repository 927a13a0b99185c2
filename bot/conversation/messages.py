"""What channels hand to the conversation and what they get back.

A channel turns its updates into `IncomingMessage` and renders each `Reply` as well as it
can: buttons as an inline keyboard where the platform has one, as numbered choices where it
has none, an image as a photo or a link. `CollectingOutput` keeps replies for tests.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ChannelName = Literal["telegram", "zalo", "web"]


@dataclass(frozen=True)
class GeoPoint:
    """A shared location pin."""

    lat: float
    lon: float


@dataclass(frozen=True)
class Attachment:
    """A file the citizen sent, by the channel's own file id."""

    file_id: str
    kind: Literal["photo", "document", "voice", "sticker", "video", "other"]
    mime_type: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class IncomingMessage:
    """One update from a citizen, whatever the channel.

    `text` is what they typed (or the caption); `button` is the data of a pressed button;
    `message_id` is the channel's id of this update, used to handle a redelivery once.
    """

    channel: ChannelName
    chat_id: str
    user_id: str
    message_id: str
    text: str = ""
    button: str | None = None
    location: GeoPoint | None = None
    attachments: tuple[Attachment, ...] = ()
    edited: bool = False
    display_name: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    can_send_photos: bool = True  # False: the channel has no way to send one, so none is asked


@dataclass(frozen=True)
class Button:
    """A choice offered to the citizen: the label shown and the data sent back."""

    label: str
    data: str


@dataclass(frozen=True)
class OutgoingFile:
    """A file sent with a reply: a photo by the channel's file id (a citizen's photo shown to an
    official), or generated content such as a digest's chart (PNG) or table (CSV)."""

    kind: Literal["photo", "document"]
    file_id: str | None = None
    content: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    channel: str | None = None  # whose file id it is: a file id means nothing elsewhere

    @property
    def url(self) -> str | None:
        """The file id when it is an http(s) URL, which any channel can fetch."""
        url = self.file_id or ""
        return url if url.startswith(("https://", "http://")) else None

    def sendable_on(self, channel: str) -> bool:
        """Whether `channel` can send this file: content, a URL, or its own file id."""
        return self.content is not None or self.channel in (None, channel) or bool(self.url)


@dataclass(frozen=True)
class Reply:
    """One message to a citizen or an official: text, optional buttons, image and files."""

    text: str
    buttons: tuple[Button, ...] = ()
    image_url: str | None = None
    files: tuple[OutgoingFile, ...] = ()

    def as_plain_text(self) -> str:
        """The reply for a channel without buttons: choices numbered under the text."""
        if not self.buttons:
            return self.text
        choices = "\n".join(f"{i}. {b.label}" for i, b in enumerate(self.buttons, start=1))
        return f"{self.text}\n\n{choices}\n(Anh/chị trả lời bằng số thứ tự.)"


def reply_to_payload(reply: Reply) -> dict[str, Any]:
    """A reply as JSON (the outbox's payload); file contents in base64."""
    return {
        "text": reply.text,
        "buttons": [{"label": b.label, "data": b.data} for b in reply.buttons],
        "image_url": reply.image_url,
        "files": [
            {
                "kind": f.kind,
                "file_id": f.file_id,
                "content": base64.b64encode(f.content).decode() if f.content else None,
                "filename": f.filename,
                "mime_type": f.mime_type,
                "channel": f.channel,
            }
            for f in reply.files
        ],
    }


def reply_from_payload(payload: dict[str, Any]) -> Reply:
    """The reply `reply_to_payload` stored."""
    return Reply(
        text=payload.get("text", ""),
        buttons=tuple(Button(b["label"], b["data"]) for b in payload.get("buttons", [])),
        image_url=payload.get("image_url"),
        files=tuple(
            OutgoingFile(
                kind=f["kind"],
                file_id=f.get("file_id"),
                content=base64.b64decode(f["content"]) if f.get("content") else None,
                filename=f.get("filename"),
                mime_type=f.get("mime_type"),
                channel=f.get("channel"),
            )
            for f in payload.get("files", [])
        ),
    )


class OutputChannel(Protocol):
    """Where replies go."""

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        """Send one reply; returns the channel's message id when it has one."""
        ...


_collected_ids = itertools.count(1)


@dataclass
class CollectingOutput:
    """An output that keeps what was sent, for tests (ids unique, as a channel's are)."""

    sent: list[tuple[str, Reply]] = field(default_factory=list)

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        self.sent.append((chat_id, reply))
        return f"collected-{next(_collected_ids)}"

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [r.text for c, r in self.sent if chat_id is None or c == chat_id]


class ConversationHandler(Protocol):
    """What channels call: handle one incoming message, replying through `output`."""

    async def handle(self, message: IncomingMessage, output: OutputChannel | None) -> None:
        """Store, understand and answer one message; the replies go out through `output`
        at once, or through the outbox worker without one (a replay)."""
        ...


def incoming_payload(message: IncomingMessage) -> dict[str, Any]:
    """What is stored of an incoming message besides its text and ids (`incoming_from_row`
    reads it back: the inbox replays a message from the database)."""
    return {
        "button": message.button,
        "location": asdict(message.location) if message.location else None,
        "attachments": [asdict(a) for a in message.attachments],
        "edited": message.edited,
        "metadata": message.metadata,
        "display_name": message.display_name,
    }


def incoming_from_row(
    *,
    channel: str,
    chat_id: str,
    user_id: str | None,
    channel_message_id: str,
    text: str,
    payload: dict[str, Any],
) -> IncomingMessage:
    """The message `incoming_payload` and its row stored."""
    location = payload.get("location")
    return IncomingMessage(
        channel=channel,  # type: ignore[arg-type]
        chat_id=chat_id,
        user_id=user_id or chat_id,
        message_id=channel_message_id,
        text=text,
        button=payload.get("button"),
        location=GeoPoint(**location) if location else None,
        attachments=tuple(Attachment(**a) for a in payload.get("attachments") or ()),
        edited=bool(payload.get("edited")),
        display_name=payload.get("display_name"),
        metadata=dict(payload.get("metadata") or {}),
    )


@runtime_checkable
class Inbox(Protocol):
    """Where a channel stores what it receives before acknowledging it (the conversation)."""

    def accept(self, messages: list[IncomingMessage]) -> list[bool]:
        """Store the messages durably (one transaction); whether each is new."""
        ...

    def replies_to(self, message: IncomingMessage) -> list[Reply] | None:
        """The replies queued for a message handled before (None: not stored)."""
        ...
