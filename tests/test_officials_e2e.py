"""End to end, the officials' side: python-telegram-bot against the fake Bot API, the real
Rasa model, the desk in front of the citizens' conversation, the outbox worker delivering
notifications, and a database with the bundled Hà Nội directory. A controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fake_telegram import FakeTelegram
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.channels.telegram import TelegramOutput, build_application, running_telegram
from bot.conversation.engine import Conversation
from bot.directory.store import ensure_directory, ward_unit
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.nlu.location import gazetteer
from bot.officials.desk import Desk
from bot.officials.invites import invite_official
from bot.outbox.worker import OutboxWorker
from bot.tickets.escalation import escalate_overdue
from bot.tickets.intake import calendar
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.models import (
    Channel,
    HumanRequest,
    Message,
    OfficialRole,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
    Unit,
)

pytestmark = pytest.mark.rasa
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CITIZEN, HANDLER, HANDLER_2, SUPERVISOR, OTHER_UNIT, STRANGER = (
    6100001, 6100002, 6100003, 6100004, 6100005, 6100006,
)  # fmt: skip


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    url = f"sqlite:///{tmp_path_factory.mktemp('officials') / 'civicbot.db'}"
    upgrade(url)
    engine = create_db_engine(url)
    with Session(engine) as session:
        ensure_directory(session=session)
    return engine


def kim_lien(session: Session) -> Unit:
    ward = gazetteer().resolve("phường Kim Liên").ward
    assert ward is not None
    unit = ward_unit(session=session, ward_code=ward.code)
    assert unit is not None
    return unit


def invite(engine: Engine, unit_id: str, name: str, role: OfficialRole, now: datetime) -> str:
    with Session(engine) as session:
        return invite_official(session=session, unit_id=unit_id, name=name, role=role, now=now)[1]


@asynccontextmanager
async def product(
    fake: FakeTelegram, nlu_server: server.RunningServer, engine: Engine, clock: Clock
) -> AsyncIterator[OutboxWorker]:
    """The bot as `civicbot run` wires it: desk → conversation, outbox worker beside."""
    async with NluClient(nlu_server.url, nlu_server.token) as nlu:
        conversation = Conversation(nlu=nlu, engine=engine, clock=clock)
        desk = Desk(conversation, engine=engine, clock=clock)
        app = build_application(desk, token=fake.token, base_url=fake.base_url)
        async with running_telegram(app, poll_timeout=1):
            # Delivery runs on real time: the outbox stamps rows with it.
            worker = OutboxWorker(
                {Channel.telegram: TelegramOutput(app.bot, max_retries=0)}, engine=engine
            )
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop, interval=0.05))
            try:
                yield worker
            finally:
                stop.set()
                await task


def texts(fake: FakeTelegram, chat: int) -> list[str]:
    return [str(m.get("text") or m.get("caption") or "") for m in fake.bot_messages(chat)]


async def wait_text(fake: FakeTelegram, chat: int, needle: str, timeout: float = 20) -> str:
    """The newest bot message to `chat` containing `needle`, waiting for it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [t for t in texts(fake, chat) if needle in t]
        if found:
            return found[-1]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"No message with {needle!r} to {chat}: {texts(fake, chat)}")
        await asyncio.sleep(0.02)


async def file_complaint(fake: FakeTelegram) -> str:
    """The citizen files a waste complaint in Kim Liên; returns the ticket code."""
    fake.inject_text(CITIZEN, "rác thải đổ trộm đầu ngõ 5 phường Kim Liên cả tuần nay không ai dọn")
    await wait_text(fake, CITIZEN, "ảnh")
    fake.press_button(CITIZEN, label="Bỏ qua")
    await wait_text(fake, CITIZEN, "số điện thoại")
    fake.press_button(CITIZEN, label="Gửi ẩn danh")
    await wait_text(fake, CITIZEN, "kiểm tra lại")
    fake.press_button(CITIZEN, label="Gửi phản ánh")
    created = await wait_text(fake, CITIZEN, "Mã phản ánh")
    return created.split("Mã phản ánh: ")[1].split(".")[0]


async def link(fake: FakeTelegram, chat: int, code: str) -> None:
    fake.inject_text(chat, f"/start {code.replace('-', '')}")
    await wait_text(fake, chat, "Đã liên kết")


async def test_file_accept_ask_answer_resolve_rate(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    clock = Clock(datetime(2026, 11, 20, 9, 0, tzinfo=HANOI))  # a Friday morning
    with Session(engine) as session:
        unit = kim_lien(session)
    codes = [invite(engine, unit.id, n, OfficialRole.handler, clock.now) for n in ("A", "B")]
    with FakeTelegram() as fake:
        async with product(fake, nlu_server, engine, clock):
            await link(fake, HANDLER, codes[0])
            await link(fake, HANDLER_2, codes[1])
            code = await file_complaint(fake)
            created = await wait_text(fake, CITIZEN, "Mã phản ánh")
            assert unit.name in created and "thứ hai" in created.lower()  # after the weekend
            # Both officials of the ward are told, with the action buttons.
            for chat in (HANDLER, HANDLER_2):
                notice = await wait_text(fake, chat, f"Phản ánh mới {code}")
                assert "Rác thải" in notice and "Kim Liên" in notice
                assert "Ảnh: không có" in notice  # as the citizen's summary says it, not "0"
            fake.press_button(HANDLER, label="Tiếp nhận")
            await wait_text(fake, HANDLER, "đã tiếp nhận")
            assert unit.name in await wait_text(fake, CITIZEN, "tiếp nhận xử lý")
            fake.press_button(HANDLER, label="Hỏi thêm người dân")
            await wait_text(fake, HANDLER, "Nhập câu hỏi")
            fake.inject_text(HANDLER, "Anh/chị cho biết rác đổ ở bên trái hay bên phải ngõ?")
            question = await wait_text(fake, CITIZEN, "cần anh/chị bổ sung")
            assert "bên trái hay bên phải" in question
            fake.inject_text(CITIZEN, "bên trái ngõ, cạnh cột điện số 12")
            await wait_text(fake, CITIZEN, "Đã chuyển câu trả lời")
            answer = await wait_text(fake, HANDLER, "trả lời:")
            assert "cột điện số 12" in answer
            fake.press_button(HANDLER, label="Đã giải quyết")
            await wait_text(fake, HANDLER, "Nhập kết quả")
            fake.inject_text(HANDLER, "Đã thu gom toàn bộ rác và lắp biển cấm đổ rác.")
            resolved = await wait_text(fake, CITIZEN, "Kết quả:")
            assert "lắp biển cấm" in resolved
            fake.press_button(CITIZEN, label="5 ⭐")
            await wait_text(fake, CITIZEN, "đánh giá 5/5")
            for chat in (HANDLER, HANDLER_2):  # the last notices: all sent before stopping
                await wait_text(fake, chat, "đánh giá kết quả: 5/5")
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
        events = session.exec(select(TicketEvent).where(TicketEvent.ticket_id == ticket.id)).all()
        outbox = session.exec(select(OutboxMessage)).all()
    assert (ticket.status, ticket.rating, ticket.lead_unit_id) == (
        TicketStatus.closed, 5, unit.id,
    )  # fmt: skip
    assert ticket.accepted_at is not None and ticket.resolved_at is not None
    statuses = [e.new_value["status"] for e in events if e.kind == "status" and e.new_value]
    assert statuses == ["accepted", "need_info", "accepted", "resolved", "closed"]
    assert all(m.status == OutboxStatus.sent for m in outbox)
    # Each notification went out once: no duplicate texts to one chat.
    for chat in (CITIZEN, HANDLER, HANDLER_2):
        sent = texts(fake, chat)
        assert len(sent) == len(set(sent)), sent


async def test_transfer_reject_reopen_and_refusals(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, tzinfo=HANOI))
    with Session(engine) as session:
        unit = kim_lien(session)
        other = session.exec(
            select(Unit).where(Unit.kind == "ward", Unit.id != unit.id).order_by(col(Unit.id))
        ).first()
        assert other is not None and unit.parent_id is not None
        parent = session.get(Unit, unit.parent_id)
        assert parent is not None
    handler = invite(engine, unit.id, "Handler", OfficialRole.handler, clock.now)
    outsider = invite(engine, other.id, "Outsider", OfficialRole.handler, clock.now)
    parent_official = invite(engine, parent.id, "Parent", OfficialRole.handler, clock.now)
    with FakeTelegram() as fake:
        async with product(fake, nlu_server, engine, clock):
            await link(fake, HANDLER, handler)
            await link(fake, OTHER_UNIT, outsider)
            await link(fake, SUPERVISOR, parent_official)
            code = await file_complaint(fake)
            await wait_text(fake, HANDLER, f"Phản ánh mới {code}")
            # A stranger and an official of another unit press the ward's buttons: refused.
            fake.press_button(STRANGER, data=f"t:acc:{code}")
            await wait_text(fake, STRANGER, "chưa được liên kết")
            fake.press_button(OTHER_UNIT, data=f"t:acc:{code}")
            await wait_text(fake, OTHER_UNIT, "không thuộc phạm vi")
            # Transfer to the parent unit, with a reason; the parent's official is told.
            fake.press_button(HANDLER, data=f"t:tra:{code}")
            await wait_text(fake, HANDLER, "tới đơn vị nào")
            fake.press_button(HANDLER, data=f"t:to:{code}:{parent.id}")
            await wait_text(fake, HANDLER, "lý do chuyển")
            fake.inject_text(HANDLER, "Vượt thẩm quyền của phường")
            await wait_text(fake, CITIZEN, f"chuyển tới {parent.name}")
            transferred = await wait_text(fake, SUPERVISOR, "chuyển đến")
            assert "Vượt thẩm quyền" in transferred
            # The old unit can no longer act on it.
            fake.press_button(HANDLER, data=f"t:acc:{code}")
            assert "Không tìm thấy" in await wait_text(fake, HANDLER, "không thuộc phạm vi")
            # Resolve, the citizen says it is not fixed: reopened, the unit is told.
            fake.press_button(SUPERVISOR, data=f"t:res:{code}")
            await wait_text(fake, SUPERVISOR, "Nhập kết quả")
            fake.inject_text(SUPERVISOR, "Đã xử lý xong.")
            await wait_text(fake, CITIZEN, "Đã xử lý xong")
            fake.press_button(CITIZEN, label="Chưa được giải quyết")
            await wait_text(fake, CITIZEN, "Đã mở lại")
            await wait_text(fake, SUPERVISOR, "CHƯA được giải quyết")
            # Reject needs a reason.
            fake.press_button(SUPERVISOR, data=f"t:rej:{code}")
            await wait_text(fake, SUPERVISOR, "lý do không tiếp nhận")
            fake.inject_text(SUPERVISOR, "Khu vực thuộc dự án đang thi công, đã có phương án.")
            rejected = await wait_text(fake, CITIZEN, "không được")
            assert "dự án đang thi công" in rejected
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
        refused = [
            m
            for m in session.exec(select(Message)).all()
            if m.payload.get("flags", {}).get("refused") or m.payload.get("refused")
        ]
    assert (ticket.status, ticket.lead_unit_id, ticket.reopen_count) == (
        TicketStatus.rejected, parent.id, 1,
    )  # fmt: skip
    assert len(refused) == 3  # the stranger, the other unit, the old unit


async def test_escalation_and_human_request(
    nlu_server: server.RunningServer, engine: Engine
) -> None:
    # Friday 16:00: accept within 8 working hours runs over the weekend into Monday.
    clock = Clock(datetime(2026, 11, 20, 16, 0, tzinfo=HANOI))
    with Session(engine) as session:
        unit = kim_lien(session)
        intake = session.exec(select(Unit).where(col(Unit.intake))).one()
    handler = invite(engine, unit.id, "Handler", OfficialRole.handler, clock.now)
    supervisor = invite(engine, unit.id, "Boss", OfficialRole.supervisor, clock.now)
    duty = invite(engine, intake.id, "Duty", OfficialRole.handler, clock.now)
    with FakeTelegram() as fake:
        async with product(fake, nlu_server, engine, clock):
            await link(fake, HANDLER, handler)
            await link(fake, SUPERVISOR, supervisor)
            await link(fake, OTHER_UNIT, duty)
            code = await file_complaint(fake)
            with Session(engine) as session:
                ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
            accept_by = ticket.accept_by
            assert accept_by is not None
            local = accept_by.astimezone(HANOI)
            assert local.weekday() == 0 and local.date() == datetime(2026, 11, 23).date()
            # Saturday and Sunday pass: nothing escalates before the deadline.
            for moment in (local - timedelta(hours=50), local - timedelta(minutes=1)):
                with Session(engine) as session:
                    assert not escalate_overdue(session=session, now=moment, calendar=calendar())
            with Session(engine) as session:
                steps = escalate_overdue(
                    session=session, now=local + timedelta(minutes=1), calendar=calendar()
                )
                again = escalate_overdue(
                    session=session, now=local + timedelta(minutes=2), calendar=calendar()
                )
            assert len(steps) == 1 and not again
            assert code in await wait_text(fake, SUPERVISOR, code)
            # A citizen asks for a person: the unit on duty answers through the bot.
            fake.inject_text(CITIZEN, "cho tôi gặp cán bộ trực với")
            await wait_text(fake, CITIZEN, "yêu cầu gặp cán bộ")
            await wait_text(fake, OTHER_UNIT, "cần gặp cán bộ")
            fake.press_button(OTHER_UNIT, label="Trả lời")
            await wait_text(fake, OTHER_UNIT, "Nhập câu trả lời")
            fake.inject_text(OTHER_UNIT, "Chào anh/chị, tôi là cán bộ trực, tôi có thể giúp gì?")
            assert "cán bộ trực" in await wait_text(fake, CITIZEN, "trả lời anh/chị:")
    with Session(engine) as session:
        request = session.exec(select(HumanRequest)).one()
    assert request.status == "answered" and request.unit_id == intake.id
    assert texts(fake, HANDLER).count(f"Phản ánh mới {code}") <= 1
    assert not [t for t in texts(fake, HANDLER) if code in t and "quá hạn" in t.lower()]
