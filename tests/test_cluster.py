"""One city, several app processes (issue 18): one chat at a time cluster-wide, button and
web-chat memory in the database, the outbox in order per recipient and Telegram's 429 pause
shared by every sender.

"Two app instances" here are two conversations (each with its desk, its outbox worker and
its own engine, so its own connections) on one PostgreSQL database in one test, with
messages of one chat given alternately to each, as a load balancer would."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from telegram.error import RetryAfter
from test_conversation import KeywordNlu
from test_delivery import Clock, enqueue

from bot.channels.telegram import classify_error as telegram_errors
from bot.channels.web import WebChat
from bot.channels.zalo import StoredChoices
from bot.conversation.engine import Conversation
from bot.conversation.messages import IncomingMessage, OutputChannel, Reply, reply_from_payload
from bot.conversation.texts import say
from bot.nlu.result import NluResult
from bot.officials.desk import Desk
from bot.outbox.failures import Failure
from bot.outbox.worker import OutboxWorker, running_outbox
from storage import queries
from storage.db import create_db_engine
from storage.models import Channel, Direction, Message, OutboxMessage, OutboxStatus, Ticket
from storage.models import Conversation as ConversationRow

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

T = TypeVar("T")
GREETINGS = ("xin chào", "cảm ơn", "tạm biệt")  # each answered by one message of its own
REPORT = "Vỉa hè phố Huế, phường Hai Bà Trưng bị quán nước lấn chiếm hết"


class JitteryNlu(KeywordNlu):
    """The keyword NLU, answering after 0-30 ms: turns of one chat on two instances would
    overlap and overtake each other if nothing held them in order."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    async def parse(self, text: str) -> NluResult:
        await asyncio.sleep(self.random.uniform(0, 0.03))
        return await super().parse(text)


@dataclass
class Telegram:
    """What the chats received, in the order it arrived, from either instance."""

    received: list[tuple[str, str]] = field(default_factory=list)
    delay: random.Random = field(default_factory=lambda: random.Random(7))

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        await asyncio.sleep(self.delay.uniform(0, 0.005))
        self.received.append((chat_id, reply.text))
        return str(len(self.received))  # Telegram's message ids are numbers

    def texts(self, chat_id: str) -> list[str]:
        return [text for chat, text in self.received if chat == chat_id]


class Instance:
    """One app process: its engine, conversation, desk and outbox worker, on an event loop
    in a thread of its own (two instances run at once, as two processes would)."""

    def __init__(self, database_url: str, telegram: Telegram, seed: int) -> None:
        self.engine = create_db_engine(database_url)
        self.loop = asyncio.new_event_loop()
        worker = OutboxWorker(
            {Channel.telegram: telegram, Channel.web: telegram}, engine=self.engine
        )
        self.conversation = Conversation(nlu=JitteryNlu(seed), engine=self.engine, outbox=worker)
        self.desk = Desk(self.conversation, engine=self.engine)
        self.stop = asyncio.Event()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._run(worker),)
        )
        self.thread.start()

    async def _run(self, worker: OutboxWorker) -> None:
        async with running_outbox(worker, interval=0.05):
            await self.stop.wait()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """Run `coroutine` on this instance; awaitable from the test's loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def handle(self, message: IncomingMessage, output: OutputChannel) -> Awaitable[None]:
        return self.run(self.desk.handle(message, output))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=30)
        self.loop.close()
        self.engine.dispose()


@contextmanager
def instances(database_url: str, telegram: Telegram) -> Iterator[tuple[Instance, Instance]]:
    """Two app instances on the database, their outbox workers running."""
    a = Instance(database_url, telegram, 1)
    try:
        b = Instance(database_url, telegram, 2)
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


def message(chat: str, number: int, text: str = "", **fields: object) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        chat_id=chat,
        user_id=chat,
        message_id=f"{chat}-{number}",
        text=text,
        **fields,  # type: ignore[arg-type]
    )


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached in {timeout} s")


def replies_in_outbox(engine: Engine) -> dict[str, list[OutboxMessage]]:
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    found: dict[str, list[OutboxMessage]] = defaultdict(list)
    for row in rows:
        found[row.recipient].append(row)
    return found


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated PostgreSQL database with no rows (the cluster runs on PostgreSQL)."""
    from conftest import emptied

    yield emptied(request.getfixturevalue("postgres_migrated"))


# --- One chat at a time, cluster-wide ----------------------------------------------------


async def test_three_messages_back_to_back_in_50_chats_on_two_instances_answered_in_order(
    pg_url: str,
) -> None:
    telegram = Telegram()
    chats = [str(9_000_000 + n) for n in range(50)]
    with instances(pg_url, telegram) as (a, b):
        expected = {}
        turns = []
        for chat in chats:
            messages = [message(chat, n, text) for n, text in enumerate(GREETINGS, 1)]
            for number, sent in enumerate(messages):
                side = (a, b)[number % 2]  # the balancer alternates
                assert side.desk.accept([sent]) == [True]  # stored, then acknowledged
                turns.append(side.handle(sent, telegram))
        await asyncio.gather(*turns)
        await until(lambda: len(telegram.received) == 150)
        for chat in chats:
            expected[chat] = [row.payload["text"] for row in replies_in_outbox(a.engine)[chat]]
    out_of_order = [chat for chat in chats if telegram.texts(chat) != expected[chat]]
    assert out_of_order == []
    with Session(a.engine) as session:
        incoming = session.exec(
            select(Message).where(Message.direction == Direction.incoming).order_by(col(Message.id))
        ).all()
        by_chat: dict[str, list[Message]] = defaultdict(list)
        for row in incoming:
            by_chat[row.chat_id].append(row)
    for chat in chats:
        rows = by_chat[chat]
        assert [r.text for r in rows] == list(GREETINGS)
        handled = [r.handled_at for r in rows]
        assert None not in handled and handled == sorted(handled)  # type: ignore[type-var]
        texts = telegram.texts(chat)
        assert len(texts) == 3 and "Xin chào" in texts[0] and "Không có gì" in texts[1]
        replied_to = [row.reply_to_id for row in replies_in_outbox(a.engine)[chat]]
        assert replied_to == [r.id for r in rows]  # one reply each, in order


async def test_a_double_tap_on_send_across_two_instances_files_one_ticket(pg_url: str) -> None:
    telegram = Telegram()
    citizens = [str(9_100_000 + n) for n in range(20)]
    with instances(pg_url, telegram) as (a, b):

        async def to_the_summary(chat: str) -> str:
            for number, (text, button) in enumerate(
                ((REPORT, None), ("", "Bỏ qua"), ("", "Gửi ẩn danh")), 1
            ):
                data = None
                if button is not None:
                    data = next(
                        b.data
                        for row in reversed(replies_in_outbox(a.engine)[chat])
                        for b in reply_from_payload(row.payload).buttons
                        if b.label == button
                    )
                await a.handle(message(chat, number, text, button=data), telegram)
            rows = replies_in_outbox(a.engine)[chat]
            return next(
                b.data
                for row in reversed(rows)
                for b in reply_from_payload(row.payload).buttons
                if b.label == "Gửi phản ánh"
            )

        sends = await asyncio.gather(*(to_the_summary(chat) for chat in citizens))
        taps = []
        for chat, data in zip(citizens, sends, strict=True):
            first, second = message(chat, 10, button=data), message(chat, 11, button=data)
            taps += [a.handle(first, telegram), b.handle(second, telegram)]
        await asyncio.gather(*taps)
        await until(lambda: all(len(telegram.texts(c)) >= 5 for c in citizens))
    with Session(a.engine) as session:
        tickets = session.exec(select(Ticket)).all()
    per_citizen: dict[str | None, int] = defaultdict(int)
    for ticket in tickets:
        per_citizen[ticket.chat_id] += 1
    assert per_citizen == dict.fromkeys(citizens, 1)
    for chat in citizens:
        last_two = telegram.texts(chat)[-3:]
        assert sum("PA-" in text for text in last_two) == 1
        assert say("utter_button_expired") in last_two


class GatedNlu(KeywordNlu):
    """The keyword NLU, answering once the test opens the gate (from any thread)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.asked = threading.Event()

    async def parse(self, text: str) -> NluResult:
        self.asked.set()
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        return await super().parse(text)


async def test_a_retried_web_post_reaching_the_other_instance_gets_the_same_reply(
    pg_url: str,
) -> None:
    telegram = Telegram()
    with instances(pg_url, telegram) as (a, b):
        slow = GatedNlu()
        a.conversation._nlu = slow  # the first instance is slow to answer
        post = {"message_id": "m1", "text": "xin chào"}
        first = a.run(WebChat(a.desk).handle(post, session_id="s-retry"))
        await until(slow.asked.is_set)
        retry = asyncio.ensure_future(b.run(WebChat(b.desk).handle(post, session_id="s-retry")))
        await asyncio.sleep(0.3)
        assert not retry.done()  # the other instance waits for the turn in flight
        slow.gate.set()
        answers = await asyncio.gather(first, retry)
        later = await b.run(WebChat(b.desk).handle(post, session_id="s-retry"))  # once more
    assert answers[0] == answers[1] == later and "Xin chào" in answers[0][0]["text"]
    with Session(a.engine) as session:
        assert len(session.exec(select(Message).where(Message.direction == "in")).all()) == 1
        assert len(session.exec(select(OutboxMessage)).all()) == 1


async def test_a_second_press_of_one_keyboard_on_another_instance_is_dropped(
    pg_url: str,
) -> None:
    telegram = Telegram()
    with instances(pg_url, telegram) as (a, b):
        await a.handle(message("4242", 1, "xin chào"), telegram)
        await until(lambda: len(telegram.received) == 1)
        with Session(a.engine) as session:
            sent = session.exec(select(Message).where(Message.direction == "out")).one()
        assert sent.channel_message_id is not None
        keyboard = {"telegram_message_id": int(sent.channel_message_id)}
        first = message("4242", 2, button="menu:status", metadata=keyboard)
        second = message("4242", 3, button="menu:status", metadata=keyboard)
        assert a.desk.accept([first]) == [True]
        assert b.desk.accept([second]) == [False]  # the other instance drops it
        assert a.desk.accept([first]) == [False]  # a redelivery is stored once
        await asyncio.gather(a.handle(first, telegram), b.handle(second, telegram))
        await until(lambda: len(telegram.received) == 2)
    with Session(a.engine) as session:
        rows = session.exec(
            select(Message).where(Message.direction == "in").order_by(col(Message.id))
        ).all()
    assert [r.payload.get("second_press") for r in rows] == [None, None, True]
    assert all(r.handled_at is not None for r in rows)


async def test_zalo_numbered_choices_offered_by_one_instance_are_read_by_the_other(
    pg_url: str,
) -> None:
    telegram = Telegram()
    with instances(pg_url, telegram) as (a, b):
        greeting = IncomingMessage(
            channel="zalo", chat_id="z1", user_id="z1", message_id="z-1", text="xin chào"
        )
        await a.handle(greeting, telegram)  # answered with the menu, as numbered choices
        await until(lambda: len(telegram.received) == 1)
        with Session(a.engine) as session:
            sent = session.exec(select(Message).where(Message.direction == "out")).one()
        menu = [button["data"] for button in sent.payload["buttons"]]
        choices = StoredChoices(partial(b.desk.offered_buttons, "zalo"))  # the other instance
        answers = [
            IncomingMessage(
                channel="zalo", chat_id="z1", user_id="z1", message_id=f"z-{n}", text=text
            )
            for n, text in ((2, "2"), (3, "1"))
        ]
        assert b.desk.accept(answers[:1]) == [True]
        assert choices.resolve("z1", "2", message_id="z-2") == menu[1]
        assert b.desk.accept(answers[1:]) == [True]  # the next message: choices consumed
        assert choices.resolve("z1", "1", message_id="z-3") is None
        assert choices.resolve("z1", "2", message_id="z-2") == menu[1]  # the same answer again


# --- The outbox: in order per recipient, one 429 pause for all ---------------------------


async def test_two_workers_keep_each_recipients_order(pg_url: str) -> None:
    telegram = Telegram()
    recipients = [str(100 + n) for n in range(20)]
    with instances(pg_url, telegram) as (a, _b):  # each with its outbox worker running
        for number in range(10):
            for recipient in recipients:
                enqueue(a.engine, recipient, f"{recipient}: {number}")
        await until(lambda: len(telegram.received) == 200)
    for recipient in recipients:
        assert telegram.texts(recipient) == [f"{recipient}: {n}" for n in range(10)]


class FloodedOnce(Telegram):
    """Telegram answering the first message with 429 (retry after 7 s)."""

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        if not self.received and not getattr(self, "flooded", False):
            self.flooded = True
            raise RetryAfter(7)
        return await super().send(chat_id, reply)

    def classify_error(self, error: Exception) -> Failure | None:
        """Telegram's errors read as TelegramOutput reads them (its channel's classifier)."""
        return telegram_errors(error)


async def test_a_429_pauses_the_channel_for_every_worker(pg_url: str) -> None:
    engines = [create_db_engine(pg_url) for _ in range(2)]
    clock = Clock()
    flooded = FloodedOnce()
    try:
        for recipient in ("1", "2", "3"):
            enqueue(engines[0], recipient, f"tin {recipient}", clock=clock)
        first, second = (
            OutboxWorker({Channel.telegram: flooded}, engine=engine, clock=clock, batch=1)
            for engine in engines
        )
        assert await first.run_once() == 0  # 429: paused until clock + 7 s
        clock.advance(1)
        assert await second.run_once() == 0  # the other worker waits too
        clock.advance(5.9)
        assert await second.run_once() == 0
        clock.advance(0.2)
        sent = 0
        for _ in range(3):
            sent += await second.run_once()
        assert sent == 3
    finally:
        for engine in engines:
            engine.dispose()
    assert sorted(text for _, text in flooded.received) == ["tin 1", "tin 2", "tin 3"]
    with Session(engines[0]) as session:
        assert {row.status for row in session.exec(select(OutboxMessage))} == {OutboxStatus.sent}


# --- The chat's claim --------------------------------------------------------------------


def test_a_chat_is_claimed_by_one_turn_until_it_ends_or_the_claim_lapses(engine: Engine) -> None:
    from datetime import timedelta

    from storage.models import utcnow

    def start(number: int, claim: str, now: object = None) -> queries.TurnStart:
        with Session(engine) as session:
            return queries.start_turn(
                session=session,
                channel=Channel.zalo,
                chat_id="c1",
                user_id="c1",
                display_name=None,
                channel_message_id=str(number),
                text="alo",
                payload={},
                claim=claim,
                now=now,  # type: ignore[arg-type]
            )

    first = start(1, "turn-1")
    assert first.claimed and first.state == "idle" and first.earlier is None
    second = start(2, "turn-2")
    assert not second.claimed  # the first turn holds the chat
    later = utcnow() + queries.CHAT_CLAIM + timedelta(seconds=1)
    taken = start(2, "turn-3", later)  # the first turn's process died: its claim lapsed
    assert taken.claimed and taken.earlier is not None
    assert taken.earlier.id == first.message_id  # … and its message comes first

    def finish(claim: str, state: str) -> None:
        with Session(engine) as session:
            queries.finish_turn(
                session=session,
                message_id=first.message_id,
                nlu=None,
                channel=Channel.zalo,
                chat_id="c1",
                state=state,
                data={"n": 1},
                citizen_id=None,
                replies=[],
                claim=claim,
            )

    with pytest.raises(queries.ClaimLost):
        finish("turn-1", "idle")  # its own claim is gone: nothing written
    finish("turn-3", "ask_place")
    after = start(2, "turn-4")
    assert after.claimed and after.earlier is None and after.state == "ask_place"


def test_chats_held_by_a_dead_process_of_this_machine_are_released_at_start(
    engine: Engine,
) -> None:
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process that ran on this machine and is gone (as after kill -9)
    machine = queries.new_claim_token().split(":")[0]
    with Session(engine) as session:
        for chat, token in (
            ("c-dead", f"{machine}:{dead.pid}:0a0b0c0d0e0f"),
            ("c-alive", queries.new_claim_token()),  # this process: running
            ("c-other", f"ffffffff:{dead.pid}:0a0b0c0d0e0f"),  # another machine's: lapses
        ):
            started = queries.start_turn(
                session=session,
                channel=Channel.zalo,
                chat_id=chat,
                user_id=chat,
                display_name=None,
                channel_message_id="1",
                text="alo",
                payload={},
                claim=token,
            )
            assert started.claimed
        assert queries.release_dead_claims(session=session) == 1
        held = {row.chat_id: row.claim_token for row in session.exec(select(ConversationRow)).all()}
    assert held["c-dead"] is None
    assert held["c-alive"] is not None and held["c-other"] is not None
