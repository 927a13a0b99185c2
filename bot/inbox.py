"""The inbox after a crash: what was stored and not handled is handled, oldest first.

Every channel stores an incoming message before acknowledging it (`Conversation.accept`,
`start_turn`), and a turn marks it handled in the transaction that saves its effects and
queues its replies. A message stored and never handled was taken in by a process that died
(``kill -9``, power loss) before or during its turn: `replay` hands it to the conversation
again (through the desk, as a channel would), at start-up beside the channels, and then
every `SWEEP_SECONDS` for what has waited longer than `STALE_AFTER` (another process's
crash, once several share a database). The replies go out through the outbox. Order holds
whoever comes first: a turn handles the older unhandled messages of its chat before its own,
each by the turn it belongs to, the desk's or a citizen's (`Chats` in
bot/conversation/engine.py), so a new message never overtakes a replayed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.conversation.messages import ConversationHandler, IncomingMessage, incoming_from_row
from storage import queries
from storage.db import get_session
from storage.models import Message, utcnow

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
STALE_AFTER = timedelta(minutes=5)
BATCH = 100


# What a channel does for a message before its turn, when the message is replayed (e.g. a
# Telegram button press: answer the callback, remove the keyboard).
BeforeReplay = Callable[[IncomingMessage], Awaitable[None]]


async def replay(
    handler: ConversationHandler,
    *,
    before: datetime,
    engine: Engine | None = None,
    concurrency: int = 16,
    before_turn: BeforeReplay | None = None,
) -> int:
    """Handle the messages stored before `before` and not handled: each chat's in order,
    `concurrency` chats at once, each after `before_turn` (its channel's own first steps,
    which the crash may have cut). Returns how many were handed over; one that fails is
    logged and left (the sweep tries it again)."""
    seen: set[int] = set()
    slots = asyncio.Semaphore(concurrency)

    async def one_chat(messages: list[tuple[int, IncomingMessage]]) -> None:
        async with slots:
            for row_id, message in messages:
                try:
                    if before_turn is not None:
                        await before_turn(message)
                    await handler.handle(message, None)
                except Exception:
                    logger.exception("Replaying %s message %s failed.", message.channel, row_id)

    while True:
        chats: dict[tuple[str, str], list[tuple[int, IncomingMessage]]] = {}
        with get_session(engine) as session:
            for row in queries.unhandled_incoming(session=session, before=before, limit=BATCH):
                assert row.id is not None
                if row.id not in seen:
                    seen.add(row.id)
                    chats.setdefault((row.channel, row.chat_id), []).append((row.id, _message(row)))
        if not chats:
            return len(seen)
        await asyncio.gather(*(one_chat(messages) for messages in chats.values()))


def _message(row: Message) -> IncomingMessage:
    return incoming_from_row(
        channel=row.channel.value,
        chat_id=row.chat_id,
        user_id=row.user_id,
        channel_message_id=row.channel_message_id or "",
        text=row.text,
        payload=dict(row.payload),
    )


async def sweep(
    handler: ConversationHandler,
    stop: asyncio.Event,
    *,
    engine: Engine | None = None,
    before_turn: BeforeReplay | None = None,
) -> None:
    """Every `SWEEP_SECONDS`, replay what has waited unhandled longer than `STALE_AFTER`."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=SWEEP_SECONDS)
        if stop.is_set():
            return
        try:
            replayed = await replay(
                handler, before=utcnow() - STALE_AFTER, engine=engine, before_turn=before_turn
            )
        except Exception:
            logger.exception("Replaying the inbox failed; trying again later.")
            continue
        if replayed:
            logger.warning("Replayed %d message(s) left unhandled in the inbox.", replayed)
