"""The bot's Vietnamese words: responses from domain.yml and the names citizens read."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from bot.config import ROOT

CATEGORY_NAMES: dict[str, str] = {
    "sidewalk": "Lấn chiếm vỉa hè, lòng đường",
    "construction": "Trật tự xây dựng",
    "waste": "Rác thải, vệ sinh môi trường",
    "pollution": "Ô nhiễm môi trường",
    "infrastructure": "Hạ tầng đô thị",
    "traffic": "Trật tự an toàn giao thông",
    "parking": "Trông giữ xe",
    "water": "Cấp nước sạch",
    "fire_safety": "Phòng cháy, chữa cháy",
    "misconduct": "Cán bộ nhũng nhiễu, thái độ",
    "procedure_delay": "Giải quyết TTHC chậm, trễ hẹn",
    "other": "Khác",
}

STATUS_NAMES: dict[str, str] = {
    "received": "Đã tiếp nhận, đang chuyển đơn vị xử lý",
    "accepted": "Đơn vị có trách nhiệm đang xử lý",
    "need_info": "Cần anh/chị bổ sung thông tin",
    "resolved": "Đã giải quyết",
    "closed": "Đã kết thúc",
    "rejected": "Không được tiếp nhận",
}


@cache
def _responses() -> dict[str, Any]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    responses: dict[str, Any] = domain["responses"]
    return responses


def response_names() -> frozenset[str]:
    """Every response declared in domain.yml."""
    return frozenset(_responses())


def say(name: str, /, **values: object) -> str:
    """The text of response `name`, with its {placeholders} filled."""
    text: str = _responses()[name][0]["text"]
    return text.format(**values) if values else text
