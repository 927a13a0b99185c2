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
