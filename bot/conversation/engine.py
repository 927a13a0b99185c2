"""The conversation: every message is stored, understood and answered; complaints become tickets.

Channel-free: a channel hands an `IncomingMessage` and an `OutputChannel` to
`Conversation.handle`. The dialogue state of each chat lives in the database, so a restart
in the middle of a complaint form continues where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from civicbot_nlu.normalize import normalize
from sqlalchemy import Engine
from sqlmodel import Session

from bot.conversation.dialogue import context, flow
from bot.conversation.dialogue.context import Understanding
from bot.conversation.messages import (
    Button,
    IncomingMessage,
    OutputChannel,
    Reply,
    incoming_from_row,
    incoming_payload,
    reply_from_payload,
    reply_to_payload,
)
from bot.lanes import ChatLanes
from bot.measures import TURN_SECONDS
from bot.outbox.worker import Claim, OutboxWorker
from storage import queries
from storage.db import get_session
from storage.models import Channel, utcnow

__all__ = ["Conversation", "Understanding"]

logger = logging.getLogger(__name__)

# Dialogue states (Conversation.state): idle, an official's question awaiting an answer,
# and the form's steps (bot/conversation/dialogue/steps.py).
IDLE = context.IDLE
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
        # The chats' turns; the desk in front (bot/officials/desk.py) routes its own there.
        self.chats = Chats(engine, self.turn)

    async def handle(self, message: IncomingMessage, output: OutputChannel | None) -> None:
        """Store the message (unless the channel's inbox did), then understand and answer it:
        once, in order per chat, cluster-wide (`Chats.take_turns`). Without `output`, the
        outbox worker sends the replies."""

        def first(session: Session) -> _Turn:
            turn = self.turn(session, message)
            if output is not None:  # its replies are sent at once: queued claimed
                turn.send_lease = self.outbox.lease
            return turn

        await self.chats.take_turns(message, output, first, self.outbox)

    def turn(self, session: Session, message: IncomingMessage) -> _Turn:
        """A citizen's turn for `message`."""
        return _Turn(session, message, self._nlu, self._clock)

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
                **_keyboard(m),
            }
            for m in messages
        ]
        with get_session(self._engine) as session:
            return [new for _, new in queries.store_inbox(session=session, messages=rows)]

    def offered_buttons(self, channel: str, chat_id: str, answer: str) -> tuple[Button, ...]:
        """The buttons last offered in a chat before its message `answer` (a channel id),
        none when a message of the chat came in between (`queries.offered_buttons`)."""
        with get_session(self._engine) as session:
            offered = queries.offered_buttons(
                session=session, channel=Channel(channel), chat_id=chat_id, answer=answer
            )
        return tuple(Button(b["label"], b["data"]) for b in offered)

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


class ChatTurn(Protocol):
    """A turn that `Chats.take_turns` runs under its chat's claim: a citizen's (`_Turn`) or
    an official's (bot/officials/desk.py)."""

    message: IncomingMessage
    claim: str  # its hold on the chat, cluster-wide (`queries.start_turn`)
    queued: list[int]  # its replies' outbox rows, once run

    def store(self) -> queries.TurnStart:
        """Store the message and claim its chat (`queries.start_turn` with `claim`)."""
        ...

    async def run(self) -> None:
        """Answer; the state, the replies and the message handled in one commit (raises
        `queries.ClaimLost` when another turn took the chat)."""
        ...

    def claims(self) -> list[Claim]:
        """The replies queued claimed for this turn to send (none when they wait)."""
        ...


class Chats:
    """One turn per chat at a time, in order, cluster-wide, whoever's turn it is.

    `route` gives the turn for a stored message of a chat: the desk's for an official's
    message, a citizen's otherwise (the desk sets it; by default, a citizen's)."""

    def __init__(
        self, engine: Engine | None, route: Callable[[Session, IncomingMessage], ChatTurn]
    ) -> None:
        self._engine = engine
        self.route = route
        self.lanes = ChatLanes()

    async def take_turns(
        self,
        message: IncomingMessage,
        output: OutputChannel | None,
        first: Callable[[Session], ChatTurn],
        outbox: OutboxWorker,
    ) -> None:
        """Run `first(session)`, the turn of `message`, under its chat's claim; replies sent
        through `outbox` to `output` (without one, the outbox worker sends them).

        The turn claims its chat in the database (`queries.start_turn`): while a turn of
        another process holds it, this one waits, and returns once that turn (or a later one
        there) handled the message. Older messages of the chat left unhandled (stored by
        another process, or by one that died) are handled first, each by its own kind of
        turn (`route`), their replies sent before this one's (a web post's response holds
        its own replies only: the earlier posts get theirs from the database)."""
        queued: list[int] = []
        claimed: list[Claim] = []
        async with self.lanes.hold((message.channel, message.chat_id)):
            waits = _claim_waits()
            while True:
                with get_session(self._engine) as session:
                    turn = first(session)
                    start = turn.store()
                    if not start.new:
                        logger.info("Redelivered %s message %s ignored.", *_ids(message))
                        return
                    if not start.claimed:  # another process's turn of this chat
                        await asyncio.sleep(next(waits))
                        continue
                    if start.earlier is not None:
                        earlier = self._earlier(session, turn, start.earlier)
                        if earlier is None:  # the chat was taken meanwhile: again
                            continue
                        turn = earlier
                    try:
                        with TURN_SECONDS.time():
                            async with self._held(turn):
                                await turn.run()
                    except queries.ClaimLost:
                        logger.warning("%s message %s: chat taken over; again.", *_ids(message))
                        continue
                if turn.message is message:
                    mine = turn.claims()
                    claimed += mine
                    queued += [] if mine else turn.queued
                    break
                if message.channel != "web":  # a web post answers its own message only
                    queued += turn.queued
            if output is not None:
                await outbox.send_now(queued, output, claimed)

    @contextlib.asynccontextmanager
    async def _held(self, turn: ChatTurn) -> AsyncIterator[None]:
        """The turn's claim renewed every third of `CHAT_CLAIM` while it runs: a slow NLU or
        database does not lose the chat to another turn (which would run it again)."""
        heartbeat = asyncio.create_task(self._renew(turn.message, turn.claim))
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _renew(self, message: IncomingMessage, claim: str) -> None:
        channel, chat_id = Channel(message.channel), message.chat_id
        while True:
            await asyncio.sleep(queries.CHAT_CLAIM.total_seconds() / 3)
            try:  # in a thread: on SQLite it may wait for the turn's write lock
                held = await asyncio.to_thread(self._renew_once, channel, chat_id, claim)
            except Exception:
                logger.exception("Renewing the claim on %s chat %s failed.", channel, chat_id)
                continue
            if not held:  # lapsed and taken: the turn ends with ClaimLost
                return

    def _renew_once(self, channel: Channel, chat_id: str, claim: str) -> bool:
        with get_session(self._engine) as session:
            return queries.renew_claim(
                session=session, channel=channel, chat_id=chat_id, claim=claim
            )

    def _earlier(
        self, session: Session, turn: ChatTurn, row: queries.StoredIncoming
    ) -> ChatTurn | None:
        """The turn of an older message of the chat, left unhandled, in `turn`'s claim (None
        when the claim lapsed meanwhile)."""
        m = turn.message
        message = incoming_from_row(
            channel=m.channel,
            chat_id=m.chat_id,
            user_id=row.user_id,
            text=row.text,
            channel_message_id=row.channel_message_id or "",
            payload=row.payload,
        )
        earlier = self.route(session, message)
        earlier.claim = turn.claim
        start = earlier.store()  # renews the claim
        return earlier if start.new and start.claimed else None


def _keyboard(message: IncomingMessage) -> dict[str, str]:
    """For a button pressed on one of our messages (Telegram), the message's id: a keyboard
    is pressed once (`queries.store_inbox`)."""
    pressed = message.metadata.get("telegram_message_id")
    if message.button is None or pressed is None:
        return {}
    return {"keyboard": str(pressed)}


def _ids(message: IncomingMessage) -> tuple[str, str]:
    return message.channel, message.message_id


def _claim_waits() -> Iterator[float]:
    """Seconds between looks at a chat another process's turn holds: 10 ms doubling to 0.2 s."""
    wait = 0.01
    while True:
        yield wait
        wait = min(wait * 2, 0.2)


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
        self.payloads: list[dict[str, Any]] = []
        self.send_lease: timedelta | None = None  # sent at once: queued claimed this long
        self.claim = queries.new_claim_token()  # this turn's hold on its chat, cluster-wide
        self.nlu_json: dict[str, Any] | None = None  # saved with the dialogue state

    # --- storing ----------------------------------------------------------------------------

    def store(self) -> queries.TurnStart:
        """Store the incoming message and claim its chat (`queries.start_turn`)."""
        m = self.message
        start = queries.start_turn(
            session=self.session,
            channel=self.channel,
            chat_id=m.chat_id,
            user_id=m.user_id,
            display_name=m.display_name,
            channel_message_id=m.message_id,
            text=m.text[:MAX_STORED_TEXT],
            payload=incoming_payload(m),
            claim=self.claim,
        )
        assert start.citizen_id is not None  # a citizen's turn
        self.citizen_id = start.citizen_id
        self.stored_id = start.message_id
        self.state = start.state or IDLE
        self.data: dict[str, Any] = start.data
        return start

    async def run(self) -> None:
        try:
            await self.respond()
        except asyncio.CancelledError:
            self.session.rollback()  # stopped mid-turn: left unhandled, replayed at next start
            queries.release_chat(
                session=self.session,
                channel=self.channel,
                chat_id=self.message.chat_id,
                claim=self.claim,
            )  # the chat's next turn need not wait for the claim to lapse
            raise
        except BaseException:
            self.session.rollback()  # what the failed step left unfinished; the state is saved
            self.finish()
            raise
        self.finish()

    def finish(self) -> None:
        """The state, the replies (queued in the outbox) and the message handled: one commit."""
        self.remember_buttons()
        self.payloads = [reply_to_payload(r) for r in self.replies]
        self.queued = queries.finish_turn(
            session=self.session, message_id=self.stored_id, nlu=self.nlu_json,
            channel=self.channel, chat_id=self.message.chat_id, state=self.state,
            data=self.data, citizen_id=self.citizen_id,
            replies=self.payloads, claim=self.claim, send_now=self.send_lease,
        )  # fmt: skip

    def claims(self) -> list[Claim]:
        """The replies queued claimed for this turn to send (none when they wait)."""
        queued = self.queued
        if not isinstance(queued, queries.QueuedReplies) or queued.claimed_until is None:
            return []
        chat = self.message.chat_id
        return [
            Claim(row, self.channel, chat, payload, None, 1, queued.queued_at, self.stored_id)
            for row, payload in zip(queued, self.payloads, strict=True)
        ]

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
