"""End to end: python-telegram-bot against the fake Bot API, the real Rasa model, the real
conversation and database. Whole Vietnamese dialogues, checked in replies and rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fake_telegram import FakeTelegram
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.channels.telegram import build_application, running_telegram
from bot.conversation.engine import Conversation
from bot.nlu import server
from bot.nlu.client import NluClient
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.models import Direction, Message, Ticket, TicketStatus

pytestmark = pytest.mark.rasa
CHAT = 5550001


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'civicbot.db'}"
    upgrade(url)
    return create_db_engine(url)


@asynccontextmanager
async def bot(
    fake: FakeTelegram, nlu_server: server.RunningServer, engine: Engine
) -> AsyncIterator[None]:
    async with NluClient(nlu_server.url, nlu_server.token) as nlu:
        conversation = Conversation(nlu=nlu, engine=engine)
        app = build_application(conversation, token=fake.token, base_url=fake.base_url)
        async with running_telegram(app, poll_timeout=1):
            yield


async def reply_after(fake: FakeTelegram, count: int) -> str:
    """The text of the bot's message number `count` (1-based) to the chat."""
    calls = await fake.wait_for("sendMessage", count, timeout=15)
    return str(calls[count - 1].params["text"])


async def test_citizen_files_a_complaint_without_diacritics(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    with FakeTelegram() as fake:
        async with bot(fake, nlu_server, engine):
            fake.inject_text(CHAT, "/start")
            assert "Xin chào" in await reply_after(fake, 1)
            fake.inject_text(CHAT, "rac thai do dau ngo 5 phuong kim lien 3 ngay chua ai don")
            assert "ảnh" in await reply_after(fake, 2)
            fake.inject_photo(CHAT)
            assert "Đã nhận 1 ảnh" in await reply_after(fake, 3)
            fake.press_button(CHAT, label="Xong")
            assert "số điện thoại" in await reply_after(fake, 4)
            fake.press_button(CHAT, label="Để lại số điện thoại")
            await reply_after(fake, 5)
            fake.inject_text(CHAT, "sdt cua toi la 0987 654 321")
            summary = await reply_after(fake, 6)
            assert "Rác thải" in summary and "Phường Kim Liên" in summary
            fake.press_button(CHAT, label="Gửi phản ánh")
            created = await reply_after(fake, 7)
    with Session(engine) as session:
        (ticket,) = session.exec(select(Ticket)).all()
        messages = session.exec(select(Message)).all()
    assert ticket.code in created
    assert (ticket.status, ticket.category, ticket.ward_name, ticket.contact_phone) == (
        TicketStatus.received, "waste", "Phường Kim Liên", "0987654321",
    )  # fmt: skip
    incoming = [m for m in messages if m.direction == Direction.incoming]
    assert len(incoming) == 7 and all(m.handled_at for m in incoming)
    assert next(m for m in incoming if m.text.startswith("rac thai")).nlu["source"] == "rasa"
    assert fake.answered_queries  # every button press was answered


async def test_procedure_question_with_diacritics(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    with FakeTelegram() as fake:
        async with bot(fake, nlu_server, engine):
            fake.inject_text(CHAT, "Cho em hỏi đăng ký tạm trú cho người thuê trọ nộp ở đâu ạ?")
            text = await reply_after(fake, 1)
            fake.press_button(CHAT, label="Xem đầy đủ")
            details = await reply_after(fake, 2)
    assert text.startswith("Nơi nộp hồ sơ")
    assert "tạm trú" in text.lower()
    assert "Căn cứ" in details


async def test_a_redelivered_update_is_answered_once(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    with FakeTelegram() as fake:
        async with bot(fake, nlu_server, engine):
            update = fake.inject_text(CHAT, "xin chào")
            await reply_after(fake, 1)
            fake.redeliver(update)
            fake.inject_text(CHAT, "cảm ơn nhé")
            await reply_after(fake, 2)
    assert len(fake.calls_to("sendMessage")) == 2
