"""Per-chat lanes: one chat's turns one after the other, different chats at once.

`ChatLanes.hold(key)` is an asyncio lock per key (fair: first come, first served) that
exists only while someone holds or waits for it, so the map is as large as the number of
busy chats, not of all chats ever seen. It orders turns within one process; across
processes the database orders them (the inbox's rows, the outbox's per-chat hold).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field


@dataclass
class _Lane:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class ChatLanes:
    """Locks by chat, forgotten when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._lanes: dict[Hashable, _Lane] = {}

    def __len__(self) -> int:
        return len(self._lanes)

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Wait for the earlier holders of `key`, then hold it for the block."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.users += 1
        try:
            async with lane.lock:
                yield
        finally:
            lane.users -= 1
            if lane.users == 0:
                del self._lanes[key]
