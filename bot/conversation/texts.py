"""The bot's Vietnamese words: `texts.yml` beside this file and the names citizens read."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from bot.categories import CATEGORIES

TEXTS_FILE = Path(__file__).with_name("texts.yml")

CATEGORY_NAMES: dict[str, str] = {c.code: c.name for c in CATEGORIES}

CATEGORY_NAMES_EN: dict[str, str] = {c.code: c.name_en for c in CATEGORIES}

# What officials read (desk, dashboard, refusals): the same statuses from the unit's side.
OFFICIAL_STATUS_NAMES: dict[str, str] = {
    "received": "Mới, chưa tiếp nhận",
    "accepted": "Đang xử lý",
    "need_info": "Chờ người dân bổ sung thông tin",
    "resolved": "Đã giải quyết, chờ người dân đánh giá",
    "closed": "Đã kết thúc",
    "rejected": "Không tiếp nhận",
}

# What citizens read.
STATUS_NAMES: dict[str, str] = {
    "received": "Đã gửi tới đơn vị, chờ đơn vị tiếp nhận",
    "accepted": "Đơn vị có trách nhiệm đang xử lý",
    "need_info": "Cần anh/chị bổ sung thông tin",
    "resolved": "Đã giải quyết",
    "closed": "Đã kết thúc",
    "rejected": "Không được tiếp nhận",
}

STATUS_NAMES_EN: dict[str, str] = {
    "received": "Sent to the unit, waiting for it to take it on",
    "accepted": "Being handled by the responsible unit",
    "need_info": "Waiting for more information from you",
    "resolved": "Resolved",
    "closed": "Closed",
    "rejected": "Not accepted",
}


def status_name(status: str, language: str = "vi") -> str:
    """A ticket's status as its citizen reads it, in the chat's language."""
    return (STATUS_NAMES_EN if language == "en" else STATUS_NAMES)[status]


def category_name(code: str | None, language: str = "vi") -> str:
    """A category's name in the chat's language ("other" for none or an unknown code)."""
    names = CATEGORY_NAMES_EN if language == "en" else CATEGORY_NAMES
    return names.get(code or "other", names["other"])


# The channels as people read them ("kênh {channel}"), never the enum's English names.
CHANNEL_NAMES: dict[str, str] = {
    "telegram": "Telegram",
    "zalo": "Zalo",
    "web": "trò chuyện trên trang web",
}


@cache
def _responses() -> dict[str, str]:
    responses: dict[str, str] = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))
    return responses


def response_names() -> frozenset[str]:
    """Every response declared in texts.yml."""
    return frozenset(_responses())


def say(name: str, /, **values: object) -> str:
    """The text of response `name`, with its {placeholders} filled."""
    text = _responses()[name]
    return text.format(**values) if values else text


def say_in(language: str, name: str, /, **values: object) -> str:
    """Response `name` in `language` ("en": `name_en` where it exists), else Vietnamese."""
    if language != "vi" and f"{name}_{language}" in _responses():
        name = f"{name}_{language}"
    return say(name, **values)
