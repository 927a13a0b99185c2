"""Per-citizen daily caps on tickets and person requests (issue 12: 30 complaints in 0.8 s,
40 "gặp cán bộ" in 0.3 s were all accepted), on SQLite and PostgreSQL.

Whole dialogues through `Conversation` with the keyword NLU, as a citizen would write them.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.config import settings
from bot.conversation.engine import Conversation
from bot.conversation.messages import CollectingOutput, IncomingMessage, Reply
from bot.nlu.client import NluClient
from bot.nlu.result import NluResult
from bot.tickets.intake import DailyCapReached, file_ticket
from storage.models import Channel, HumanRequest, OutboxMessage, Ticket, TicketCreate

_ids = itertools.count(1)
# 23:50 in Hà Nội (UTC+7) on 6 December 2026.
LATE_EVENING = datetime(2026, 12, 6, 16, 50, tzinfo=UTC)


class KeywordNlu:
    async def parse(self, text: str) -> NluResult:
        async with NluClient("http://127.0.0.1:9", "x", timeout=0.2) as client:
            return await client.parse(text)  # unreachable server: keyword fallback


class Citizen:
    """One citizen on one channel, with a clock the test moves."""

    def __init__(self, engine: Engine, chat: str, channel: str = "telegram") -> None:
        self.now = LATE_EVENING
        self.conversation = Conversation(nlu=KeywordNlu(), engine=engine, clock=lambda: self.now)
        self.chat, self.channel = chat, channel
        self.output = CollectingOutput()

    async def send(self, text: str = "", button: str | None = None) -> list[Reply]:
        before = len(self.output.sent)
        message = IncomingMessage(
            channel=self.channel,  # type: ignore[arg-type]
            chat_id=self.chat,
            user_id=self.chat,
            message_id=str(next(_ids)),
            text=text,
            button=button,
        )
        await self.conversation.handle(message, self.output)
        return [reply for _, reply in self.output.sent[before:]]

    async def press(self, label: str) -> list[Reply]:
        for _, reply in reversed(self.output.sent):
            for choice in reply.buttons:
                if choice.label == label:
                    return await self.send(button=choice.data)
        raise AssertionError(f"no button {label!r}")

    async def complain(self) -> str:
        """A whole complaint; the last reply's text."""
        await self.send("Vỉa hè phố Huế, phường Hai Bà Trưng bị quán nước lấn chiếm hết")
        await self.press("Bỏ qua")
        offered = await self.press("Gửi ẩn danh")
        if any(b.label == "Gửi phản ánh mới" for r in offered for b in r.buttons):
            await self.press("Gửi phản ánh mới")  # another citizen's open ticket: file anyway
        return (await self.press("Gửi phản ánh"))[-1].text


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return len(session.exec(select(model)).all())


def notices(engine: Engine) -> int:
    """Outbox messages that are not replies to a chat message (officials' notifications)."""
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage.reply_to_id)).all()
        return sum(1 for reply_to in rows if reply_to is None)


@pytest.fixture
def caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "max_tickets_per_day", 2)
    monkeypatch.setattr(settings, "max_person_requests_per_day", 2)


async def test_tickets_over_the_daily_cap_are_refused_until_the_next_local_day(
    engine: Engine, caps: None
) -> None:
    citizen = Citizen(engine, "tg-1")
    assert "Mã phản ánh: PA-" in await citizen.complain()
    assert "Mã phản ánh: PA-" in await citizen.complain()
    notified = notices(engine)
    refused = await citizen.complain()
    assert "đã gửi 2 phản ánh" in refused and "ngày mai" in refused and "114" in refused
    assert count(engine, Ticket) == 2 and notices(engine) == notified  # no notice
    other = Citizen(engine, "tg-2")
    assert "Mã phản ánh: PA-" in await other.complain()  # a cap per citizen, not for everyone
    citizen.now = LATE_EVENING + timedelta(minutes=15)  # 00:05 in Hà Nội: a new day
    assert "Mã phản ánh: PA-" in await citizen.complain()
    assert count(engine, Ticket) == 4


async def test_person_requests_over_the_daily_cap_are_answered_not_forwarded(
    engine: Engine, caps: None
) -> None:
    citizen = Citizen(engine, "zl-1", channel="zalo")
    for text in ("cho tôi gặp cán bộ", "cho toi gap can bo"):
        assert "Đã ghi nhận yêu cầu gặp cán bộ" in (await citizen.send(text))[-1].text
    notified = notices(engine)
    for _ in range(5):  # a flood of "gặp cán bộ"
        refused = (await citizen.send("gặp cán bộ"))[-1].text
        assert "đã gửi 2 yêu cầu gặp cán bộ" in refused and "cán bộ trực" in refused
    assert count(engine, HumanRequest) == 2 and notices(engine) == notified


def test_the_cap_counts_a_chat_without_a_citizen_and_not_anonymous_api_tickets(
    engine: Engine, caps: None
) -> None:
    def ticket(chat_id: str | None) -> TicketCreate:
        channel = Channel.web if chat_id else None
        return TicketCreate(
            category="waste", description="Rác tồn đọng", channel=channel, chat_id=chat_id
        )

    with Session(engine) as session:
        for _ in range(2):
            file_ticket(session=session, ticket_in=ticket("w-1"), now=LATE_EVENING, actor="t")
        with pytest.raises(DailyCapReached) as refused:
            file_ticket(session=session, ticket_in=ticket("w-1"), now=LATE_EVENING, actor="t")
        assert refused.value.cap == 2 and "2 phản ánh" in refused.value.reply_text
        for _ in range(3):  # no citizen, no chat (an Open311 client's): not capped here
            file_ticket(session=session, ticket_in=ticket(None), now=LATE_EVENING, actor="t")
    assert count(engine, Ticket) == 5
