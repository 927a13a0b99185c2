"""The web chat's rate limits: moving windows per client address and per session.

A request is counted against every limit of its kind only when all of them allow it, so a
refused request costs nothing and a client that waits gets through again. Counters live in
this process's memory (`limits.storage.MemoryStorage`, which drops expired windows).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from bot.config import Settings

Kind = Literal["messages", "updates", "photos", "sessions"]
Whom = Literal["client", "session"]


@dataclass(frozen=True)
class OverLimit:
    """A refused request: which limit, and how many seconds until it allows one again."""

    kind: Kind
    whom: Whom
    retry_after: int

    @property
    def message(self) -> str:
        """What the citizen reads (HTTP 429's JSON body)."""
        wait = _wait_phrase(self.retry_after)
        if self.kind == "photos":
            return (
                f"Anh/chị đã gửi nhiều ảnh trong thời gian ngắn. Vui lòng đợi {wait} rồi gửi "
                "tiếp; những ảnh đã gửi vẫn được giữ."
            )
        if self.kind == "sessions":
            return (
                "Có quá nhiều cuộc trò chuyện mới từ địa chỉ mạng này. "
                f"Anh/chị vui lòng đợi {wait} rồi thử lại."
            )
        return (
            f"Anh/chị gửi tin nhắn hơi nhanh. Vui lòng đợi {wait} rồi gửi tiếp; "
            "các tin nhắn trước đã được ghi nhận."
        )


def _wait_phrase(seconds: int) -> str:
    if seconds < 90:
        return f"khoảng {max(seconds, 1)} giây"
    if seconds < 90 * 60:
        return f"khoảng {math.ceil(seconds / 60)} phút"
    return f"khoảng {math.ceil(seconds / 3600)} giờ"


class WebLimits:
    """Rate limits by kind of request, for a client address and a session id."""

    def __init__(self, rules: dict[tuple[Kind, Whom], str]) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rules: dict[tuple[Kind, Whom], list[RateLimitItem]] = {
            key: parse_many(value) for key, value in rules.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> WebLimits:
        """The limits of CIVICBOT_WEB_*_PER_CLIENT / _PER_SESSION."""
        kinds: tuple[Kind, ...] = ("messages", "updates", "photos")
        rules: dict[tuple[Kind, Whom], str] = {}
        for kind in kinds:
            rules[(kind, "client")] = getattr(settings, f"web_{kind}_per_client")
            rules[(kind, "session")] = getattr(settings, f"web_{kind}_per_session")
        rules[("sessions", "client")] = settings.web_sessions_per_client
        return cls(rules)

    def hit(self, kind: Kind, *, client: str, session: str | None = None) -> OverLimit | None:
        """Count one request of `kind`; an `OverLimit` (and nothing counted) when refused."""
        keys: tuple[tuple[Whom, str | None], ...] = (("client", client), ("session", session))
        checks = [
            (whom, key, item)
            for whom, key in keys
            if key is not None
            for item in self._rules.get((kind, whom), [])
        ]
        for whom, key, item in checks:
            if not self._limiter.test(item, kind, whom, key):
                reset = self._limiter.get_window_stats(item, kind, whom, key).reset_time
                return OverLimit(kind, whom, max(1, math.ceil(reset - time.time())))
        for whom, key, item in checks:
            self._limiter.hit(item, kind, whom, key)
        return None
