"""The conversation: every message is stored, understood and answered; complaints become tickets.

Channel-free: a channel hands an `IncomingMessage` and an `OutputChannel` to
`Conversation.handle`. The dialogue state of each chat lives in the database, so a restart
in the middle of a complaint form continues where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from civicbot_nlu.normalize import normalize
from sqlalchemy import Engine
from sqlmodel import Session

from bot.conversation.dialogue import flow
from bot.conversation.dialogue.context import Understanding
from bot.conversation.messages import (
    Button,
    IncomingMessage,
    OutputChannel,
    Reply,
    incoming_payload,
    reply_from_payload,
    reply_to_payload,
)
from bot.lanes import ChatLanes
from bot.outbox.worker import OutboxWorker
from storage import queries
from storage.db import get_session
from storage.models import Channel, utcnow

__all__ = ["Conversation", "Understanding"]

logger = logging.getLogger(__name__)

# Dialogue states (Conversation.state): idle, an official's question awaiting an answer,
# and the form's steps (bot/conversation/dialogue/steps.py).
IDLE = flow.IDLE
FORM_STATES = flow.DIALOGUE_STATES
TYPED_BUTTONS = "typed_buttons"  # chat data: folded label -> button data of the last buttons
MAX_STORED_TEXT = 10_000


class Conversation:
    """Handles one message at a time per chat; many chats at once.

    A turn's replies are queued in the outbox with its state and the message marked handled
    (one transaction), then sent at once through the turn's output when nothing of the chat
    waits before them; what cannot be sent now, the outbox worker sends later, in order.
    `outbox` is the app's worker (one 429 pause for both); by default one that only sends
    through the outputs the turns give.
    """

    def __init__(
        self,
        *,
        nlu: Understanding,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
        outbox: OutboxWorker | None = None,
    ) -> None:
        self._nlu = nlu
        self._engine = engine
        self._clock = clock
        self.outbox = outbox or OutboxWorker({}, engine=engine, clock=clock)
        self.lanes = ChatLanes()

    async def handle(self, message: IncomingMessage, output: OutputChannel | None) -> None:
        """Store the message (unless the channel's inbox did), then understand and answer it:
        once, in order per chat. Without `output`, the outbox worker sends the replies."""
        async with self.lanes.hold((message.channel, message.chat_id)):
            with get_session(self._engine) as session:
                turn = _Turn(session, message, self._nlu, self._clock)
                if not turn.store():
                    logger.info(
                        "Redelivered %s message %s ignored.", message.channel, message.message_id
                    )
                    return
                await turn.run()
            if output is not None:
                await self.outbox.send_now(turn.queued, output)

    def accept(self, messages: list[IncomingMessage]) -> list[bool]:
        """The inbox: store what a channel received before it acknowledges it (one
        transaction); whether each is new. `handle` then answers each, or a restart does."""
        rows = [
            {
                "channel": Channel(m.channel),
                "chat_id": m.chat_id,
                "channel_message_id": m.message_id,
                "text": m.text[:MAX_STORED_TEXT],
                "payload": incoming_payload(m),
                "user_id": m.user_id,
            }
            for m in messages
        ]
        with get_session(self._engine) as session:
            return [new for _, new in queries.store_inbox(session=session, messages=rows)]

    def replies_to(self, message: IncomingMessage) -> list[Reply] | None:
        """The replies queued for a message handled before, or None if it was not."""
        with get_session(self._engine) as session:
            stored = queries.incoming_id(
                session=session, channel=Channel(message.channel), chat_id=message.chat_id,
                channel_message_id=message.message_id,
            )  # fmt: skip
            if stored is None:
                return None
            payloads = queries.replies_to(session=session, message_id=stored)
        return [reply_from_payload(p) for p in payloads]


class _Turn:
    """One incoming message and the replies it gets."""

    def __init__(
        self,
        session: Session,
        message: IncomingMessage,
        nlu: Understanding,
        clock: Callable[[], datetime],
    ) -> None:
        self.session = session
        self.message = message
        self.nlu = nlu
        self.clock = clock
        self.channel = Channel(message.channel)
        self.replies: list[Reply] = []
        self.queued: list[int] = []  # the replies' outbox rows

    # --- storing ----------------------------------------------------------------------------

    def store(self) -> bool:
        """Store the incoming message; False when this exact update was handled before."""
        m = self.message
        payload = incoming_payload(m)
        start = queries.start_turn(
            session=self.session, channel=self.channel, chat_id=m.chat_id, user_id=m.user_id,
            display_name=m.display_name, channel_message_id=m.message_id,
            text=m.text[:MAX_STORED_TEXT], payload=payload,
        )  # fmt: skip
        self.citizen_id = start.citizen_id
        self.stored_id = start.message_id
        self.state = start.state or IDLE
        self.data: dict[str, Any] = start.data
        self.nlu_json: dict[str, Any] | None = None  # saved with the dialogue state
        return start.new

    async def run(self) -> None:
        try:
            await self.respond()
        except asyncio.CancelledError:
            self.session.rollback()  # stopped mid-turn: left unhandled, replayed at next start
            raise
        except BaseException:
            self.session.rollback()  # what the failed step left unfinished; the state is saved
            self.finish()
            raise
        self.finish()

    def finish(self) -> None:
        """The state, the replies (queued in the outbox) and the message handled: one commit."""
        self.remember_buttons()
        self.queued = queries.finish_turn(
            session=self.session, message_id=self.stored_id, nlu=self.nlu_json,
            channel=self.channel, chat_id=self.message.chat_id, state=self.state,
            data=self.data, citizen_id=self.citizen_id,
            replies=[reply_to_payload(r) for r in self.replies],
        )  # fmt: skip

    def reply(self, text: str, buttons: list[Button] | tuple[Button, ...] = ()) -> None:
        self.replies.append(Reply(text=text, buttons=tuple(buttons)))

    def remember_buttons(self) -> None:
        """Keep the labels of the form's last buttons: a citizen may type "bo qua" for one."""
        last = next((r for r in reversed(self.replies) if r.buttons), None)
        if self.state in FORM_STATES and last is not None:
            self.data[TYPED_BUTTONS] = {normalize(b.label): b.data for b in last.buttons}
        elif self.replies or self.state not in FORM_STATES:
            self.data.pop(TYPED_BUTTONS, None)

    # --- the dialogue ---------------------------------------------------------------------

    async def respond(self) -> None:
        """The dialogue (bot/conversation/dialogue): checks, then the step the chat is at."""
        await flow.respond(self)
