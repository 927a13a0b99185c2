"""Photos uploaded from the web chat: checked on their bytes, re-encoded, kept on disk.

Only JPEG, PNG and WebP are taken, recognised by their first bytes and then decoded by
Pillow. Every photo is turned upright, shrunk to at most `MAX_SIDE` pixels and saved again as
JPEG: what is kept is a plain image (no EXIF, so no GPS position or camera serial), small
enough for Telegram. Its file id is ``web:<sha256>`` and the file
``<CIVICBOT_UPLOAD_DIR>/<sha256>.jpg``, so a retried upload is stored once.

A web file id means nothing to Telegram or Zalo: `portable` turns it into the file's content
for officials' notices.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

from PIL import Image, ImageOps

from bot.conversation.messages import OutgoingFile

MAX_SIDE = 1600
MAX_PIXELS = 50_000_000  # decoding more is a memory bomb, not a citizen's photo
JPEG_QUALITY = 85
_FORMATS = {"JPEG", "PNG", "WEBP"}
_FILE_ID = re.compile(r"^web:([0-9a-f]{64})$")


class PhotoRefused(ValueError):
    """An upload that is not a photo we take: HTTP status and a Vietnamese explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


TOO_MANY_PIXELS = PhotoRefused(
    413, "Ảnh có kích thước quá lớn. Anh/chị vui lòng chụp lại hoặc gửi ảnh nhỏ hơn."
)
NOT_A_PHOTO = PhotoRefused(
    415, "Tệp này không phải ảnh JPEG, PNG hoặc WebP. Anh/chị vui lòng chọn một tấm ảnh khác."
)


def sniff(data: bytes) -> str | None:
    """The image format its first bytes say, among those we take, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def clean_photo(data: bytes) -> bytes:
    """The upload as an upright JPEG of at most `MAX_SIDE` pixels without metadata.

    Raises `PhotoRefused` for anything else (blocking: run it in a thread)."""
    if sniff(data) is None:
        raise NOT_A_PHOTO
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in _FORMATS:
                    raise NOT_A_PHOTO
                if image.width * image.height > MAX_PIXELS:
                    raise TOO_MANY_PIXELS
                image.load()
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail((MAX_SIDE, MAX_SIDE))
                out = io.BytesIO()
                _flatten(upright).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        except PhotoRefused:
            raise
        except (
            OSError,
            ValueError,
            SyntaxError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as error:
            raise NOT_A_PHOTO from error
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, transparent parts on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return image.convert("RGB")


def store_photo(data: bytes, directory: Path) -> str:
    """Keep a cleaned photo under `directory`; its file id."""
    digest = hashlib.sha256(data).hexdigest()
    path = directory / f"{digest}.jpg"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".part", delete=False) as part:
            part.write(data)
        os.replace(part.name, path)  # whole or not at all, also for two uploads at once
    return f"web:{digest}"


def photo_path(file_id: str, directory: Path) -> Path | None:
    """Where the photo of a web file id is kept, or None for another id."""
    found = _FILE_ID.match(file_id)
    return directory / f"{found.group(1)}.jpg" if found else None


def portable(file: OutgoingFile, directory: Path) -> OutgoingFile:
    """A web chat photo as content any channel can send; other files unchanged (also a web
    photo whose file is missing: it is then named, not shown)."""
    path = photo_path(file.file_id or "", directory) if file.channel == "web" else None
    if path is None or file.content is not None or not path.is_file():
        return file
    return replace(file, content=path.read_bytes(), filename=path.name, mime_type="image/jpeg")
