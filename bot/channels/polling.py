"""Long polling in a cluster: one poller per bot, under a database lock.

Telegram and Zalo hand each update to whoever polls; two pollers of one bot got 409 Conflict
and each other's updates. So a channel polls only while its process holds the poll lock;
the other processes stand by and take over when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from storage.locks import Job, leadership

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def polling(database_url: str, lock: str, poll: Job) -> AsyncIterator[None]:
    """`poll` while this process holds the poll lock `lock`, for the duration of the block."""

    def refused() -> None:
        logger.error(
            "Polling (%s): another process polls this bot; this one will not until it stops "
            "(several processes: use webhooks).",
            lock,
        )

    stop = asyncio.Event()
    task = asyncio.create_task(leadership(database_url, lock, poll, stop, on_wait=refused))
    try:
        yield
    finally:
        stop.set()
        await task
