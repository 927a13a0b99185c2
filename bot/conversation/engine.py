"""The conversation: every message is stored, understood and answered; complaints become tickets.

Channel-free: a channel hands an `IncomingMessage` and an `OutputChannel` to
`Conversation.handle`. The dialogue state of each chat lives in the database, so a restart
in the middle of a complaint form continues where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from civicbot_nlu.normalize import normalize
from sqlalchemy import Engine
from sqlmodel import Session

from bot.conversation.dialogue import flow
from bot.conversation.dialogue.context import Understanding
from bot.conversation.messages import Button, IncomingMessage, OutputChannel, Reply
from storage import queries
from storage.db import get_session
from storage.models import Channel, Direction, MessageCreate, utcnow

__all__ = ["Conversation", "Understanding"]

logger = logging.getLogger(__name__)

# Dialogue states (Conversation.state): idle, an official's question awaiting an answer,
# and the form's steps (bot/conversation/dialogue/steps.py).
IDLE = flow.IDLE
FORM_STATES = flow.DIALOGUE_STATES
TYPED_BUTTONS = "typed_buttons"  # chat data: folded label -> button data of the last buttons
MAX_STORED_TEXT = 10_000


class Conversation:
    """Handles one message at a time per chat; many chats at once."""

    def __init__(
        self,
        *,
        nlu: Understanding,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._nlu = nlu
        self._engine = engine
        self._clock = clock
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        """Store the message first, then understand and answer it (once, in order per chat)."""
        async with self._locks[(message.channel, message.chat_id)]:
            with get_session(self._engine) as session:
                turn = _Turn(session, message, output, self._nlu, self._clock)
                if not turn.store():
                    logger.info(
                        "Redelivered %s message %s ignored.", message.channel, message.message_id
                    )
                    return
                await turn.run()


class _Turn:
    """One incoming message and the replies it gets."""

    def __init__(
        self,
        session: Session,
        message: IncomingMessage,
        output: OutputChannel,
        nlu: Understanding,
        clock: Callable[[], datetime],
    ) -> None:
        self.session = session
        self.message = message
        self.output = output
        self.nlu = nlu
        self.clock = clock
        self.channel = Channel(message.channel)
        self.replies: list[Reply] = []

    # --- storing ----------------------------------------------------------------------------

    def store(self) -> bool:
        """Store the incoming message; False when this exact update was handled before."""
        m = self.message
        payload = {
            "button": m.button,
            "location": asdict(m.location) if m.location else None,
            "attachments": [asdict(a) for a in m.attachments],
            "edited": m.edited,
            "metadata": m.metadata,
        }
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
        except BaseException:
            self.session.rollback()  # what the failed step left unfinished; the state is saved
            raise
        finally:
            self.remember_buttons()
            queries.save_turn(
                session=self.session, message_id=self.stored_id, nlu=self.nlu_json,
                channel=self.channel, chat_id=self.message.chat_id, state=self.state,
                data=self.data, citizen_id=self.citizen_id,
            )  # fmt: skip
            sent = []
            for reply in self.replies:
                sent_id = await self.output.send(self.message.chat_id, reply)
                sent.append(
                    MessageCreate(
                        direction=Direction.outgoing, channel=self.channel,
                        chat_id=self.message.chat_id, text=reply.text,
                        channel_message_id=sent_id, citizen_id=self.citizen_id,
                        payload={
                            "buttons": [asdict(b) for b in reply.buttons],
                            "image_url": reply.image_url,
                        },
                    )
                )  # fmt: skip
            queries.record_replies(session=self.session, message_id=self.stored_id, replies=sent)

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
