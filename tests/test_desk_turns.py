"""The officials' desk in the chat's claim (issue 13): an official's turns run one at a time
and in order across processes, a desk message left unhandled by a crash is handled by the
desk, and a citizen's chat state is never touched by one (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from test_cluster import Telegram, instances, message, until
from test_conversation import KeywordNlu

from bot import inbox
from bot.conversation.engine import Conversation
from bot.conversation.messages import CollectingOutput, IncomingMessage, reply_from_payload
from bot.conversation.texts import say
from bot.nlu.result import NluResult
from bot.officials import desk as desk_module
from bot.officials.desk import Desk
from bot.tickets import workflow
from storage import queries
from storage.models import (
    Channel,
    Message,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketStatus,
    utcnow,
)
from storage.models import Conversation as ConversationRow

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

OFFICIAL = "7100"


def seed_ticket(engine: Engine) -> str:
    """Two wards, an official of ward-a linked to the Telegram chat OFFICIAL, a ticket led
    by ward-a; its code."""
    with Session(engine) as session:
        two_wards_and_city(session)
        linked_official(session, "ward-a", OFFICIAL, OfficialRole.handler, now=utcnow())
        return waste_ticket(session, "ward-a", now=utcnow()).code


def outbox_rows(engine: Engine, chat: str) -> list[OutboxMessage]:
    """The replies queued to a chat, in order."""
    with Session(engine) as session:
        statement = select(OutboxMessage).where(OutboxMessage.recipient == chat)
        return list(session.exec(statement.order_by(col(OutboxMessage.id))).all())


def replies_by_message(engine: Engine, chat: str) -> list[tuple[int | None, str]]:
    """The replies queued to a chat, in order: the message each answers, its text."""
    rows = outbox_rows(engine, chat)
    return [(row.reply_to_id, reply_from_payload(row.payload).text) for row in rows]


def stored_id(engine: Engine, chat: str, number: int) -> int | None:
    with Session(engine) as session:
        return queries.incoming_id(
            session=session,
            channel=Channel.telegram,
            chat_id=chat,
            channel_message_id=f"{chat}-{number}",
        )


async def test_two_desk_turns_of_one_officials_chat_on_two_instances_run_in_order(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Không tiếp nhận" on one instance (slow), the reason typed at once on the other: the
    reason waits for the first turn's step, and the ticket is rejected with it."""
    telegram = Telegram()
    slow = threading.Event()
    pending = desk_module._DeskTurn.pending

    def slow_pending(turn: Any, *args: Any) -> None:
        slow.set()
        time.sleep(0.8)  # the first turn is mid-way: the reason reaches the other instance
        pending(turn, *args)

    monkeypatch.setattr(desk_module._DeskTurn, "pending", slow_pending)
    with instances(database_url, telegram) as (a, b):
        code = seed_ticket(a.engine)
        press = message(OFFICIAL, 1, button=f"t:rej:{code}")
        reason = message(OFFICIAL, 2, "Không thuộc thẩm quyền của phường")
        assert a.desk.accept([press]) == [True]
        first = a.handle(press, telegram)
        await until(slow.is_set)
        assert b.desk.accept([reason]) == [True]
        await asyncio.gather(first, b.handle(reason, telegram))
        await until(lambda: len(telegram.texts(OFFICIAL)) == 2)
        with Session(a.engine) as session:
            ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
        answered = replies_by_message(a.engine, OFFICIAL)
        ids = [stored_id(a.engine, OFFICIAL, n) for n in (1, 2)]
    assert ticket.status == TicketStatus.rejected
    assert [reply_to for reply_to, _ in answered] == ids  # one reply each, in order
    assert telegram.texts(OFFICIAL) == [text for _, text in answered]
    assert telegram.texts(OFFICIAL)[0] == say("utter_official_ask_reject_reason", code=code)
    assert telegram.texts(OFFICIAL)[1].startswith("Đã ghi nhận: không tiếp nhận")


def official_message(number: int, text: str = "", **fields: object) -> IncomingMessage:
    return message(OFFICIAL, number, text, **fields)


async def test_a_desk_message_left_unhandled_is_answered_by_the_desk_once_before_the_next(
    engine: Engine,
) -> None:
    """A crash left the official's "/hangdoi" stored, not handled; after the restart their
    next message comes in before the start-up replay reached it: the desk answers both, in
    order, and the replay finds nothing left."""
    code = seed_ticket(engine)
    output = CollectingOutput()
    desk = Desk(Conversation(nlu=KeywordNlu(), engine=engine), engine=engine)
    queue = official_message(1, "/hangdoi")
    assert desk.accept([queue]) == [True]  # stored; the process died before its turn
    await desk.handle(official_message(2, code), output)
    assert await inbox.replay(desk, before=utcnow(), engine=engine) == 0
    await desk.handle(queue, output)  # redelivered by the channel: not answered again
    answered = replies_by_message(engine, OFFICIAL)
    assert [reply_to for reply_to, _ in answered] == [
        stored_id(engine, OFFICIAL, 1),
        stored_id(engine, OFFICIAL, 2),
    ]
    texts = output.texts(OFFICIAL)
    assert texts == [text for _, text in answered]
    assert texts[0].startswith("Phản ánh đang mở của UBND Phường A (1):")  # the queue
    assert texts[1].startswith(f"{code} — ")  # the ticket, shown by the desk


def chat_state(engine: Engine, chat: str) -> tuple[str, dict[str, Any]]:
    with Session(engine) as session:
        row = session.exec(select(ConversationRow).where(ConversationRow.chat_id == chat)).one()
    return row.state, dict(row.data)


async def test_a_desk_message_left_unhandled_in_a_citizens_chat_leaves_their_form_alone(
    engine: Engine,
) -> None:
    """A citizen mid-way through a complaint sends something that looks like an invite code
    (stored, then a crash); their next message comes in before the start-up replay: the
    code goes to the desk (refused), and the form is where the next message alone takes it,
    as in a chat that never sent the code."""
    with Session(engine) as session:
        two_wards_and_city(session)
    output = CollectingOutput()
    desk = Desk(Conversation(nlu=KeywordNlu(), engine=engine), engine=engine)
    report = "Vỉa hè phố Huế, phường Hai Bà Trưng bị quán nước lấn chiếm hết"
    chats = ("7201", "7202")  # the first sends the code, the other is the control
    for chat in chats:
        await desk.handle(message(chat, 1, report), output)
    skip = next(
        button
        for row in reversed(outbox_rows(engine, chats[0]))
        for button in reply_from_payload(row.payload).buttons
        if button.label == "Bỏ qua"
    )
    before = chat_state(engine, chats[0])
    code = message(chats[0], 2, "CB-7KQ2-M9XD")  # an invite code's format, no such code
    assert desk.accept([code]) == [True]  # stored; the process died before its turn
    await desk.handle(message(chats[0], 3, button=skip.data), output)
    await desk.handle(message(chats[1], 3, button=skip.data), output)
    assert await inbox.replay(desk, before=utcnow(), engine=engine) == 0
    answered = replies_by_message(engine, chats[0])
    code_id = stored_id(engine, chats[0], 2)
    assert [text for reply_to, text in answered if reply_to == code_id] == [
        say("utter_official_invite_invalid")
    ]
    assert before[0] != "idle"
    assert chat_state(engine, chats[0]) == chat_state(engine, chats[1])
    with Session(engine) as session:
        stored = session.exec(select(Message).where(Message.chat_id == chats[0])).all()
    assert all(m.handled_at is not None for m in stored if m.direction == "in")


# --- A long turn keeps its chat ----------------------------------------------------------


class CountingNlu(KeywordNlu):
    """The keyword NLU counting what it is asked (shared by both instances); `slow` texts
    take `delay` seconds the first time."""

    def __init__(self, asked: dict[str, int], slow: str = "", delay: float = 0.0) -> None:
        self.asked, self.slow, self.delay = asked, slow, delay
        self.started = threading.Event()

    async def parse(self, text: str) -> NluResult:
        self.asked[text] = self.asked.get(text, 0) + 1
        if text == self.slow and self.asked[text] == 1:
            self.started.set()
            await asyncio.sleep(self.delay)
        return await super().parse(text)


async def test_a_turn_longer_than_its_claim_keeps_its_chat_and_runs_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NLU takes 4 s on one instance, the claim lasts 1.5 s: the chat's next message,
    on the other instance, waits for the turn instead of taking the chat over and running
    the first message again."""
    monkeypatch.setattr(queries, "CHAT_CLAIM", timedelta(seconds=1.5))
    await KeywordNlu().parse("xin chào")  # its first use loads the fallback, blocking a loop
    telegram = Telegram()
    asked: dict[str, int] = {}
    chat = "7300"
    with instances(database_url, telegram) as (a, b):
        slow = CountingNlu(asked, slow="xin chào", delay=4.0)
        a.conversation._nlu = slow
        b.conversation._nlu = CountingNlu(asked)
        hello, thanks = message(chat, 1, "xin chào"), message(chat, 2, "cảm ơn")
        assert a.desk.accept([hello]) == [True]
        first = a.handle(hello, telegram)
        await until(slow.started.is_set)
        assert b.desk.accept([thanks]) == [True]
        await asyncio.gather(first, b.handle(thanks, telegram))
        await until(lambda: len(telegram.texts(chat)) == 2)
        answered = replies_by_message(a.engine, chat)
        ids = [stored_id(a.engine, chat, n) for n in (1, 2)]
    assert asked == {"xin chào": 1, "cảm ơn": 1}  # each understood once: no turn run twice
    assert [reply_to for reply_to, _ in answered] == ids
    assert telegram.texts(chat) == [text for _, text in answered]
    assert "Xin chào" in telegram.texts(chat)[0]


async def test_a_failed_desk_step_is_answered_and_does_not_hold_the_chat(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = seed_ticket(engine)
    output = CollectingOutput()
    desk = Desk(Conversation(nlu=KeywordNlu(), engine=engine), engine=engine)
    await desk.handle(official_message(1, button=f"t:rej:{code}"), output)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away mid-step")

    monkeypatch.setattr(workflow, "reject", broken)
    with pytest.raises(RuntimeError):
        await desk.handle(official_message(2, "Không thuộc thẩm quyền"), output)
    monkeypatch.undo()
    assert chat_state(engine, OFFICIAL)[0] == desk_module.OFF_REJECT_REASON  # as it was
    await desk.handle(official_message(3, "Không thuộc thẩm quyền"), output)
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
    assert ticket.status == TicketStatus.rejected
    assert [text for reply_to, text in replies_by_message(engine, OFFICIAL)][1:] == [
        say("utter_official_failed"),
        say("utter_official_done", what="không tiếp nhận", code=code),
    ]
