"""Proof of the fix: the photos a unit attaches when it resolves a ticket.

A unit may send photos with its result: on Telegram or Zalo before or with the note, or with
the dashboard's form. The categories in `CIVICBOT_PROOF_REQUIRED` (a JSON list of category
codes) cannot be resolved without at least one: the chat politely asks for a photo, the
dashboard's form says so. The photos are ticket attachments of kind ``proof`` (the citizen's
own photos are ``photo``), with the id of the resolution's event.

The citizen gets them with the result on every channel that can show them, and a link
wherever it cannot: a photo this server keeps (uploaded on the dashboard, or fetched from
Telegram when an official sends it there, both checked and re-encoded as the web chat's
photos are, `bot.channels.web_photos`) is public at ``/anh-ket-qua/<sha256>.jpg``; a Zalo
photo is its Zalo URL. Only proof photos are served there, never a citizen's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sqlmodel import Session, col, select

from bot.channels.web_photos import clean_photo, photo_path, store_photo
from bot.config import settings
from bot.conversation.messages import OutgoingFile
from storage.models import Attachment, Channel, Ticket

PROOF = "proof"
MAX_PROOF_PHOTOS = 10
PUBLIC_PATH = "/anh-ket-qua"
_WEB_ID = re.compile(r"^web:([0-9a-f]{64})$")


def needs_proof(category: str | None) -> bool:
    """Whether a ticket of `category` may only be resolved with a photo of the result."""
    return category is not None and category in settings.proof_required


def public_url(photo: OutgoingFile, base: str | None = None) -> str | None:
    """Where anyone can see a proof photo: this server's copy (under `base`, default
    CIVICBOT_DASHBOARD_URL; "" for a path), or the channel's own URL."""
    found = _WEB_ID.match(photo.file_id or "") if photo.channel == Channel.web.value else None
    if found:
        server = settings.web_base_url if base is None else base
        return f"{server}{PUBLIC_PATH}/{found.group(1)}.jpg"
    return photo.url


def keep_photo(data: bytes) -> str:
    """A photo checked, re-encoded and kept here as the web chat's are; its "web:…" file id.
    `PhotoRefused` for what is not a photo (blocking: run it in a thread)."""
    return store_photo(clean_photo(data), settings.upload_dir)


def keep_uploads(uploads: Sequence[bytes]) -> tuple[OutgoingFile, ...]:
    """The photos of a result uploaded on the dashboard, kept here."""
    return tuple(
        OutgoingFile("photo", file_id=keep_photo(data), channel=Channel.web.value)
        for data in uploads[:MAX_PROOF_PHOTOS]
    )


def for_citizen(
    photos: Sequence[OutgoingFile], channel: Channel | None
) -> tuple[OutgoingFile, ...]:
    """The photos as the citizen's channel takes them: Zalo fetches photos by URL (this
    server's copies by their public address); the web chat shows the links instead (and the
    first photo); Telegram takes them all (this server's copies are uploaded)."""
    if channel == Channel.web:
        return ()
    if channel == Channel.zalo:
        return tuple(
            replace(photo, file_id=url, channel=None) if (url := public_url(photo)) else photo
            for photo in photos
        )
    return tuple(photos)


def add_proof(
    *, session: Session, ticket: Ticket, photos: Sequence[OutgoingFile], event_id: int
) -> None:
    """Keep the photos of a resolution (in the caller's transaction)."""
    assert ticket.id is not None
    for photo in photos[:MAX_PROOF_PHOTOS]:
        session.add(
            Attachment(
                ticket_id=ticket.id,
                channel=Channel(photo.channel or Channel.web.value),
                file_id=photo.file_id or "",
                kind=PROOF,
                mime_type="image/jpeg",
                meta={"event_id": event_id},
            )
        )


def proof_of(session: Session, ticket: Ticket) -> tuple[OutgoingFile, ...]:
    """The ticket's proof photos, oldest first."""
    rows = session.exec(
        select(Attachment)
        .where(Attachment.ticket_id == ticket.id, Attachment.kind == PROOF)
        .order_by(col(Attachment.id))
    ).all()
    return tuple(OutgoingFile("photo", file_id=a.file_id, channel=a.channel.value) for a in rows)


def public_proof_path(session: Session, name: str, directory: Path) -> Path | None:
    """The file of ``<sha256>.jpg`` when it is a proof photo this server keeps, else None."""
    digest = name.removesuffix(".jpg")
    if not re.fullmatch(r"[0-9a-f]{64}", digest) or name != f"{digest}.jpg":
        return None
    file_id = f"web:{digest}"
    found = session.exec(
        select(Attachment.id).where(Attachment.kind == PROOF, Attachment.file_id == file_id)
    ).first()
    path = photo_path(file_id, directory)
    return path if found is not None and path is not None and path.is_file() else None
