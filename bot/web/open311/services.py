"""The Open311 services: the complaint categories of PRODUCT.md §2, with the group,
description and keywords a GeoReport client shows (all from bot/categories.yml)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.categories import BY_CODE, CATEGORIES


@dataclass(frozen=True)
class Service:
    """An Open311 service: one complaint category."""

    code: str
    description: str
    group: str
    keywords: str

    @property
    def name(self) -> str:
        return BY_CODE[self.code].name


SERVICES: tuple[Service, ...] = tuple(
    Service(c.code, c.open311.description, c.open311.group, c.open311.keywords) for c in CATEGORIES
)
SERVICE_BY_CODE: dict[str, Service] = {service.code: service for service in SERVICES}
