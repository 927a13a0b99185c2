"""The outbox worker (bot/outbox/worker.py) against the fake Telegram and Zalo servers, on SQLite
and PostgreSQL: retries with backoff, flood control, blocked users, restarts, files, web chat.

The real python-telegram-bot `Bot` talks HTTP to the fake; the worker's clock is the test's.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fake_telegram import FakeTelegram
from fake_zalo import FakeZalo
from playwright.async_api import async_playwright
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from telegram import Bot

from bot.channels.telegram import TelegramOutput
from bot.channels.web import SESSION_COOKIE, WebOutboxOutput, chat_id_of
from bot.channels.zalo import ZaloApiError, ZaloClient, ZaloOutput
from bot.channels.zalo import classify_error as zalo_errors
from bot.conversation.messages import (
    Button,
    IncomingMessage,
    OutgoingFile,
    OutputChannel,
    Reply,
    reply_to_payload,
)
from bot.outbox import worker as delivery
from bot.outbox.worker import Failure, OutboxWorker, classify_error
from bot.web.app import create_app
from storage import migrate, queries
from storage.db import create_db_engine
from storage.models import (
    Channel,
    Direction,
    Message,
    OutboxMessage,
    OutboxMessageCreate,
    OutboxStatus,
    utcnow,
)

CHAT, OTHER, BLOCKED = 4242, 777, 555
LEASE = queries.OUTBOX_LEASE

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


class Clock:
    """The worker's time, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@asynccontextmanager
async def telegram(fake: FakeTelegram) -> AsyncIterator[TelegramOutput]:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        yield TelegramOutput(bot, max_retries=0)  # the worker reschedules instead of waiting


def enqueue(
    engine: Engine,
    chat: int | str,
    reply: Reply | str,
    *,
    clock: Clock | None = None,
    key: str | None = None,
    channel: Channel = Channel.telegram,
) -> int:
    """Queue one message, due at the test clock's now; returns its outbox id."""
    reply = Reply(reply) if isinstance(reply, str) else reply
    with Session(engine) as session:
        row = queries.enqueue_outbox(
            session=session,
            message_in=OutboxMessageCreate(
                channel=channel,
                recipient=str(chat),
                payload=reply_to_payload(reply),
                dedupe_key=key,
            ),
            not_before=clock() if clock else None,
        )
        assert row.id is not None
        return row.id


def outbox(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def row(engine: Engine, outbox_id: int) -> OutboxMessage:
    with Session(engine) as session:
        return session.get_one(OutboxMessage, outbox_id)


def stored_outgoing(engine: Engine) -> list[Message]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Message)
                .where(Message.direction == Direction.outgoing)
                .order_by(col(Message.id))
            ).all()
        )


def delivered(fake: FakeTelegram) -> Counter[tuple[int, str]]:
    """How many times each (chat, text) went out successfully."""
    return Counter(
        (int(c.params["chat_id"]), str(c.params["text"]))
        for c in fake.calls_to("sendMessage")
        if c.status == 200
    )


# --- Retries ---------------------------------------------------------------------------------


async def test_server_errors_back_off_then_the_message_goes_out_once(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    outbox_id = enqueue(engine, CHAT, "Phản ánh PA-2026-000001 đã được tiếp nhận.", clock=clock)
    fake.fail("sendMessage", status=500, times=2)
    start = clock.now
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 0
        first = row(engine, outbox_id)
        assert first.status == OutboxStatus.pending and first.attempts == 1
        assert first.next_attempt_at == start + timedelta(seconds=30)
        assert first.last_error is not None and "Internal Server Error" in first.last_error

        clock.advance(29)  # not yet: nothing is sent before its time
        assert await worker.run_once() == 0
        assert len(fake.calls_to("sendMessage")) == 1

        clock.advance(1)
        assert await worker.run_once() == 0  # second 500: the wait doubles
        assert row(engine, outbox_id).next_attempt_at == clock.now + timedelta(seconds=60)
        clock.advance(59)
        assert await worker.run_once() == 0
        assert len(fake.calls_to("sendMessage")) == 2

        clock.advance(1)
        assert await worker.run_once() == 1
        clock.advance(3600)
        assert await worker.run_once() == 0

    assert [c.status for c in fake.calls_to("sendMessage")] == [500, 500, 200]
    assert delivered(fake) == {(CHAT, "Phản ánh PA-2026-000001 đã được tiếp nhận."): 1}
    done = row(engine, outbox_id)
    assert done.status == OutboxStatus.sent and done.attempts == 3 and done.last_error is None
    assert done.sent_at == clock.now - timedelta(seconds=3600)
    [message] = stored_outgoing(engine)  # every message sent is stored, with Telegram's id
    assert message.channel == Channel.telegram and message.chat_id == str(CHAT)
    assert message.text == "Phản ánh PA-2026-000001 đã được tiếp nhận."
    assert message.channel_message_id == str(fake.bot_messages(CHAT)[-1]["message_id"])
    assert message.payload["outbox_id"] == outbox_id


async def test_attempts_run_out_and_the_message_fails(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    outbox_id = enqueue(engine, CHAT, "Không bao giờ tới", clock=clock)
    fake.fail("sendMessage", status=502, times=None)
    async with telegram(fake) as output:
        worker = OutboxWorker(
            {Channel.telegram: output}, engine=engine, clock=clock, max_attempts=3
        )
        for _ in range(6):
            await worker.run_once()
            clock.advance(3600)
    failed = row(engine, outbox_id)
    assert failed.status == OutboxStatus.failed and failed.attempts == 3
    assert len(fake.calls_to("sendMessage")) == 3


async def test_flood_control_retry_after_is_honoured_and_pauses_the_channel(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    first = enqueue(engine, CHAT, "Tin thứ nhất", clock=clock)
    second = enqueue(engine, OTHER, "Tin thứ hai", clock=clock)
    fake.fail("sendMessage", status=429, retry_after=7, times=1)
    start = clock.now
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 0
        assert len(fake.calls_to("sendMessage")) == 1  # the second one waits too
        for outbox_id in (first, second):
            waiting = row(engine, outbox_id)
            assert waiting.status == OutboxStatus.pending
            assert waiting.next_attempt_at == start + timedelta(seconds=7)
            assert waiting.attempts == 0  # waiting our turn is no failed attempt
        assert "retry after 7" in (row(engine, first).last_error or "")

        clock.advance(6.9)
        assert await worker.run_once() == 0
        assert len(fake.calls_to("sendMessage")) == 1
        clock.advance(0.1)
        assert await worker.run_once() == 2

    assert delivered(fake) == {(CHAT, "Tin thứ nhất"): 1, (OTHER, "Tin thứ hai"): 1}
    assert [row(engine, i).attempts for i in (first, second)] == [1, 1]


async def test_long_flood_control_uses_no_attempts_but_is_bounded_by_age(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    patient = enqueue(engine, CHAT, "Kiên nhẫn", clock=clock)
    fake.fail("sendMessage", status=429, retry_after=1, times=5)
    async with telegram(fake) as output:
        worker = OutboxWorker(
            {Channel.telegram: output}, engine=engine, clock=clock, max_attempts=2
        )
        sent = 0
        for _ in range(6):
            sent += await worker.run_once()
            clock.advance(1)
        assert sent == 1 and row(engine, patient).status == OutboxStatus.sent

        stale = enqueue(engine, CHAT, "Quá cũ", clock=clock)
        fake.fail("sendMessage", status=429, retry_after=1, times=1)
        clock.advance(2 * 86400)  # queued two days ago by the worker's clock
        assert await worker.run_once() == 0
    failed = row(engine, stale)
    assert failed.status == OutboxStatus.failed
    assert "queued too long" in (failed.last_error or "")


# --- Permanent failures ----------------------------------------------------------------------


async def test_blocked_user_fails_for_good_and_others_are_unaffected(
    fake: FakeTelegram, engine: Engine, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.block(BLOCKED)
    blocked = enqueue(engine, BLOCKED, "Gửi người đã chặn bot", clock=clock)
    ok = [enqueue(engine, chat, f"Gửi {chat}", clock=clock) for chat in (CHAT, OTHER)]
    missing = enqueue(engine, "không-phải-chat", "Gửi nhầm chỗ", clock=clock)
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        with caplog.at_level(logging.WARNING, logger="bot.outbox.worker"):
            assert await worker.run_once() == 2
        clock.advance(7200)
        assert await worker.run_once() == 0

    failed = row(engine, blocked)
    assert failed.status == OutboxStatus.failed and failed.attempts == 1
    assert "bot was blocked by the user" in (failed.last_error or "")
    assert "chat not found" in (row(engine, missing).last_error or "").lower()
    assert row(engine, missing).status == OutboxStatus.failed
    assert [row(engine, i).status for i in ok] == [OutboxStatus.sent, OutboxStatus.sent]
    assert len(fake.calls_to("sendMessage", chat_id=BLOCKED)) == 1  # never tried again
    assert delivered(fake) == {(CHAT, f"Gửi {CHAT}"): 1, (OTHER, f"Gửi {OTHER}"): 1}
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.outbox.worker"]
    assert any(f"outbox {blocked} (telegram → {BLOCKED}" in m and "blocked" in m for m in logged)


async def test_invalid_reply_fails_at_once_without_sending(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    too_long = Reply("Chọn:", buttons=(Button("Dài", "x" * 65),))
    invalid = enqueue(engine, CHAT, too_long, clock=clock)
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 0
    failed = row(engine, invalid)
    assert failed.status == OutboxStatus.failed
    assert (failed.last_error or "").startswith("invalid reply: Telegram button data")
    assert fake.calls_to("sendMessage") == []


# --- Restarts and concurrency ----------------------------------------------------------------


class HangAfter:
    """An output that sends `sends` replies, then hangs (a worker stuck when it dies)."""

    def __init__(self, inner: OutputChannel, sends: int) -> None:
        self.inner = inner
        self.left = sends
        self.hung = asyncio.Event()

    async def send(self, chat_id: str, reply: Reply) -> str | None:
        if self.left == 0:
            self.hung.set()
            await asyncio.Event().wait()
        self.left -= 1
        return await self.inner.send(chat_id, reply)


def texts(count: int) -> list[tuple[int, str]]:
    return [(CHAT if i % 2 else OTHER, f"Thông báo số {i}") for i in range(count)]


async def test_a_crash_mid_batch_leaves_a_lease_and_a_new_worker_sends_each_once(
    fake: FakeTelegram, engine: Engine, database_url: str, clock: Clock
) -> None:
    expected = texts(6)
    for chat, text in expected:
        enqueue(engine, chat, text, clock=clock)
    start = clock.now
    async with telegram(fake) as output:
        hanging = HangAfter(output, sends=2)
        dying = OutboxWorker({Channel.telegram: hanging}, engine=engine, clock=clock)
        task = asyncio.create_task(dying.run_once())
        await asyncio.wait_for(hanging.hung.wait(), 5)
        task.cancel()  # the process dies: nothing is marked or given back
        with pytest.raises(asyncio.CancelledError):
            await task
    engine.dispose()
    rows = outbox(engine)
    assert [r.status for r in rows].count(OutboxStatus.sent) == 2
    leased = [r for r in rows if r.status == OutboxStatus.pending]
    assert len(leased) == 4
    assert all(r.attempts == 1 and r.next_attempt_at == start + LEASE for r in leased)

    restarted = create_db_engine(database_url)
    try:
        async with telegram(fake) as output:
            worker = OutboxWorker({Channel.telegram: output}, engine=restarted, clock=clock)
            clock.advance(LEASE.total_seconds() / 2)
            assert await worker.run_once() == 0  # still leased to the dead worker
            clock.advance(LEASE.total_seconds() / 2)
            assert await worker.run_once() == 4
            clock.advance(3600)
            assert await worker.run_once() == 0
    finally:
        restarted.dispose()
    assert delivered(fake) == dict.fromkeys(expected, 1)
    assert len(fake.calls_to("sendMessage")) == 6
    assert len(stored_outgoing(engine)) == 6


async def test_500s_then_429_with_a_restart_in_between_send_each_message_once(
    fake: FakeTelegram, engine: Engine, database_url: str, clock: Clock
) -> None:
    expected = texts(3)
    for chat, text in expected:
        enqueue(engine, chat, text, clock=clock)
    fake.fail("sendMessage", status=500, times=None)  # down until healed
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 0
        clock.advance(30)
        assert await worker.run_once() == 0
    engine.dispose()  # the process stops while the server is still failing
    assert {r.status for r in outbox(engine)} == {OutboxStatus.pending}
    # the third waits behind the first, to the same chat
    assert [r.attempts for r in outbox(engine)] == [2, 2, 0]

    fake.heal()
    fake.fail("sendMessage", status=429, retry_after=5, times=1)
    restarted = create_db_engine(database_url)
    try:
        async with telegram(fake) as output:
            worker = OutboxWorker({Channel.telegram: output}, engine=restarted, clock=clock)
            clock.advance(60)  # the backoff after the second 500 is over
            assert await worker.run_once() == 0  # flood control: everything waits 5 s
            clock.advance(5)
            assert await worker.run_once() == 3
            clock.advance(3600)
            assert await worker.run_once() == 0
    finally:
        restarted.dispose()
    assert delivered(fake) == dict.fromkeys(expected, 1)
    # two 500s and the success each (the third: the success); the 429 counted for nothing
    assert [r.attempts for r in outbox(engine)] == [3, 3, 1]
    assert len(stored_outgoing(engine)) == 3


async def test_stopping_mid_batch_gives_the_rest_back_for_the_next_worker(
    fake: FakeTelegram, engine: Engine, database_url: str, clock: Clock
) -> None:
    expected = texts(5)
    for chat, text in expected:
        enqueue(engine, chat, text, clock=clock)
    stop = asyncio.Event()

    class StopAfterTwo:
        def __init__(self, inner: OutputChannel) -> None:
            self.inner, self.count = inner, 0

        async def send(self, chat_id: str, reply: Reply) -> str | None:
            self.count += 1
            if self.count == 2:
                stop.set()  # asked to stop while this one is being sent
            return await self.inner.send(chat_id, reply)

    async with telegram(fake) as output:
        first = OutboxWorker({Channel.telegram: StopAfterTwo(output)}, engine=engine, clock=clock)
        await asyncio.wait_for(first.run(stop, interval=0.01), 5)
    rows = outbox(engine)
    assert [r.status for r in rows].count(OutboxStatus.sent) == 2  # the one in flight finished
    given_back = [r for r in rows if r.status == OutboxStatus.pending]
    assert all(r.attempts == 0 and r.next_attempt_at == clock.now for r in given_back)

    restarted = create_db_engine(database_url)
    try:
        async with telegram(fake) as output:
            second = OutboxWorker({Channel.telegram: output}, engine=restarted, clock=clock)
            assert await second.run_once() == 3  # at once: no lease to wait for
    finally:
        restarted.dispose()
    assert delivered(fake) == dict.fromkeys(expected, 1)


async def test_two_workers_at_once_send_each_message_once(
    fake: FakeTelegram, engine: Engine, database_url: str, clock: Clock
) -> None:
    expected = texts(30)
    for chat, text in expected:
        enqueue(engine, chat, text, clock=clock)
    other_engine = create_db_engine(database_url)
    try:
        async with telegram(fake) as output:
            workers = [
                OutboxWorker({Channel.telegram: output}, engine=e, clock=clock, batch=4)
                for e in (engine, other_engine)
            ]
            sent = 0
            for _ in range(10):
                sent += sum(await asyncio.gather(*(w.run_once() for w in workers)))
    finally:
        other_engine.dispose()
    assert sent == 30
    assert delivered(fake) == dict.fromkeys(expected, 1)


async def test_the_same_dedupe_key_is_sent_once(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    key = "ticket:1:status:accepted:citizen"
    first = enqueue(engine, CHAT, "Phản ánh đã được tiếp nhận", clock=clock, key=key)
    again = enqueue(engine, CHAT, "Phản ánh đã được tiếp nhận (lần 2)", clock=clock, key=key)
    assert first == again
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 1
        enqueue(engine, CHAT, "Phản ánh đã được tiếp nhận", clock=clock, key=key)  # after sending
        assert await worker.run_once() == 0
    assert delivered(fake) == {(CHAT, "Phản ánh đã được tiếp nhận"): 1}


# --- Waking and channels without an output -------------------------------------------------


async def test_a_queued_message_wakes_the_running_worker(
    fake: FakeTelegram, engine: Engine
) -> None:
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine)
        async with delivery.running_outbox(worker, interval=60):
            await asyncio.sleep(0.3)  # the worker found nothing and waits its 60 s
            loop = asyncio.get_running_loop()
            started = loop.time()
            enqueue(engine, CHAT, "Ngay lập tức")
            await fake.wait_for("sendMessage", 1, timeout=5)
            # Queued from another thread (a dashboard request, say): woken too.
            await asyncio.to_thread(enqueue, engine, OTHER, "Từ luồng khác")
            await fake.wait_for("sendMessage", 2, timeout=5)
            assert loop.time() - started < 5
    assert delivered(fake) == {(CHAT, "Ngay lập tức"): 1, (OTHER, "Từ luồng khác"): 1}


async def test_rows_of_a_channel_without_output_stay_pending_logged_once(
    fake: FakeTelegram,
    engine: Engine,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "MISSING_OUTPUT_CHECK_SECONDS", 0.0)
    waiting = enqueue(engine, "zalo-user-1", "Tin cho Zalo", clock=clock, channel=Channel.zalo)
    enqueue(engine, CHAT, "Tin cho Telegram", clock=clock)
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        with caplog.at_level(logging.WARNING, logger="bot.outbox.worker"):
            assert await worker.run_once() == 1
            clock.advance(7200)
            assert await worker.run_once() == 0
    kept = row(engine, waiting)
    assert kept.status == OutboxStatus.pending and kept.attempts == 0
    warnings = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert len(warnings) == 1 and "zalo" in warnings[0]


# --- Files -----------------------------------------------------------------------------------


async def test_files_are_rendered_by_telegram(
    fake: FakeTelegram, engine: Engine, clock: Clock
) -> None:
    citizen_photo = fake.add_file(b"\xff\xd8citizen-photo", "photos", "jpg")
    csv = "mã,trạng thái\nPA-2026-000001,đã tiếp nhận\n".encode()
    chart = b"\x89PNG\r\n\x1a\nchart"
    album = [fake.add_file(b"\xff\xd8album-%d" % i, "photos", "jpg") for i in range(3)]
    replies = [
        Reply("Ảnh hiện trường", files=(OutgoingFile("photo", file_id=citizen_photo),)),
        Reply(
            "Báo cáo tuần",
            buttons=(Button("Đã xem", "digest:seen"),),
            files=(
                OutgoingFile("document", content=csv, filename="bao-cao.csv", mime_type="text/csv"),
                OutgoingFile("photo", content=chart, filename="bieu-do.png"),
            ),
        ),
        Reply("", files=tuple(OutgoingFile("photo", file_id=f) for f in album)),
    ]
    for reply in replies:
        enqueue(engine, CHAT, reply, clock=clock)
    async with telegram(fake) as output:
        worker = OutboxWorker({Channel.telegram: output}, engine=engine, clock=clock)
        assert await worker.run_once() == 3

    by_id, uploaded = fake.calls_to("sendPhoto")
    assert by_id.params["photo"] == citizen_photo and by_id.encoding == "form"
    assert uploaded.encoding == "multipart" and uploaded.params["photo"].data == chart
    [document] = fake.calls_to("sendDocument")
    assert document.encoding == "multipart" and document.status == 200
    assert document.params["document"].data == csv
    assert document.params["document"].filename == "bao-cao.csv"
    [group] = fake.calls_to("sendMediaGroup")
    assert [m["media"] for m in group.params["media"]] == album
    texts_sent = fake.calls_to("sendMessage")
    assert [c.params["text"] for c in texts_sent] == ["Ảnh hiện trường", "Báo cáo tuần"]
    assert "reply_markup" in texts_sent[1].params  # the buttons come last, under the files
    order = [c.method for c in fake.calls if c.method.startswith("send")]
    assert order == [
        "sendPhoto", "sendMessage", "sendDocument", "sendPhoto", "sendMessage", "sendMediaGroup",
    ]  # fmt: skip

    messages = stored_outgoing(engine)
    assert len(messages) == 3
    assert messages[2].channel_message_id == str(fake.bot_messages(CHAT)[-1]["message_id"])
    stored_files = messages[1].payload["files"]
    assert [(f["kind"], f["filename"], f["size"]) for f in stored_files] == [
        ("document", "bao-cao.csv", len(csv)),
        ("photo", "bieu-do.png", len(chart)),
    ]
    assert "content" not in stored_files[0]  # the bytes are not copied into every message


async def test_telegram_refuses_files_it_cannot_send_before_sending(fake: FakeTelegram) -> None:
    async with telegram(fake) as output:
        with pytest.raises(ValueError, match="file id or content"):
            await output.send(str(CHAT), Reply("Tệp", files=(OutgoingFile("document"),)))
        big = OutgoingFile("photo", content=b"x" * (10 * 1024 * 1024 + 1))
        with pytest.raises(ValueError, match="at most"):
            await output.send(str(CHAT), Reply("Ảnh lớn", files=(big,)))
        lonely = Reply("", buttons=(Button("Có", "yes"),), files=(OutgoingFile("photo", "AgAC"),))
        with pytest.raises(ValueError, match="buttons need"):
            await output.send(str(CHAT), lonely)
    assert [c for c in fake.calls if c.method.startswith("send")] == []


async def test_zalo_sends_photos_by_url_and_names_the_other_files() -> None:
    with FakeZalo() as zalo:
        async with ZaloClient(zalo.token, zalo.base_url, timeout=5.0) as client:
            output = ZaloOutput(client)
            reply = Reply(
                "Phản ánh mới PA-2026-000002",
                buttons=(Button("Tiếp nhận", "ticket:accept"),),
                files=(
                    OutgoingFile("photo", file_id="https://zalo.example/anh-1.jpg"),
                    OutgoingFile("photo", file_id="AgAC-telegram-file-id"),
                    OutgoingFile("document", content=b"a,b\n", filename="bao-cao.csv"),
                ),
            )
            await output.send("zalo-user-1", reply)
            [photo] = zalo.calls_to("sendPhoto")
            assert photo.params["photo"] == "https://zalo.example/anh-1.jpg"
            [text] = zalo.texts()
            assert text.startswith("Phản ánh mới PA-2026-000002\n\n(Tin nhắn này có kèm 1 ảnh")
            assert "1 tệp (bao-cao.csv)" in text
            assert text.index("bao-cao.csv") < text.index("1. Tiếp nhận")  # note above choices
            assert [c.method for c in zalo.calls] == ["sendPhoto", "sendMessage"]


async def test_zalo_errors_through_the_worker(engine: Engine, clock: Clock) -> None:
    with FakeZalo() as zalo:
        async with ZaloClient(zalo.token, zalo.base_url, timeout=5.0) as client:
            flaky = enqueue(engine, "zalo-1", "Thử lại", clock=clock, channel=Channel.zalo)
            worker = OutboxWorker({Channel.zalo: ZaloOutput(client)}, engine=engine, clock=clock)
            zalo.fail(1, methods=("sendMessage",), status=500, error_code=500)
            assert await worker.run_once() == 0
            assert row(engine, flaky).status == OutboxStatus.pending
            clock.advance(30)
            assert await worker.run_once() == 1
            refused = enqueue(engine, "zalo-2", "Bị từ chối", clock=clock, channel=Channel.zalo)
            zalo.fail(1, methods=("sendMessage",), status=200, error_code=400, description="x")
            assert await worker.run_once() == 0
    assert row(engine, flaky).status == OutboxStatus.sent
    assert row(engine, refused).status == OutboxStatus.failed
    assert zalo.texts() == ["Thử lại", "Thử lại", "Bị từ chối"]


def test_classification() -> None:
    def zalo(code: int) -> Failure:
        failure = zalo_errors(ZaloApiError("sendMessage", "x", error_code=code))
        assert failure is not None
        return failure

    assert [zalo(code).permanent for code in (400, 403, 401, 404, 408, 429, 500)] == [
        True, True, False, False, False, False, False,
    ]  # fmt: skip
    assert classify_error(Channel.web, ValueError("empty")).permanent
    unknown = classify_error(Channel.telegram, RuntimeError("boom"))
    assert not unknown.permanent and unknown.retry_after is None


# --- The web chat: notifications fetched by the page -----------------------------------------


class SilentConversation:
    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        return None


async def test_web_updates_return_outbox_messages_after_an_id(engine: Engine, clock: Clock) -> None:
    token = "t" * 43  # the cookie of a session the server started
    session_id = chat_id_of(token)
    assert session_id is not None
    with Session(engine) as session:  # a reply returned by the POST: not an update
        queries.store_outgoing(
            session=session, channel=Channel.web, chat_id=session_id, text="Trả lời trực tiếp"
        )
    notice = Reply(
        "Phản ánh PA-2026-000003 đã được giải quyết.",
        buttons=(Button("Hài lòng", "rate:5"),),
        files=(OutgoingFile("document", content=b"%PDF", filename="ket-qua.pdf"),),
    )
    enqueue(engine, session_id, notice, clock=clock, channel=Channel.web)
    enqueue(engine, "web-s-2", "Cho phiên khác", clock=clock, channel=Channel.web)
    empty = enqueue(engine, session_id, "  ", clock=clock, channel=Channel.web)
    worker = OutboxWorker({Channel.web: WebOutboxOutput()}, engine=engine, clock=clock)
    assert await worker.run_once() == 2
    assert row(engine, empty).status == OutboxStatus.failed  # nothing to show

    app = create_app(SilentConversation(), engine=engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", cookies={SESSION_COOKIE: token}
    ) as http:
        first = await http.get("/api/updates")
        assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
        body = first.json()
        [update] = body["messages"]
        assert update["text"] == (
            "Phản ánh PA-2026-000003 đã được giải quyết.\n\n(Kèm theo 1 tệp (ket-qua.pdf).)"
        )
        assert update["buttons"] == [{"label": "Hài lòng", "data": "rate:5"}]
        assert body["after"] == update["id"]

        again = await http.get("/api/updates", params={"after": body["after"]})
        assert again.json() == {"messages": [], "after": body["after"]}

        enqueue(engine, session_id, "Thông báo mới", clock=clock, channel=Channel.web)
        assert await worker.run_once() == 1
        later = await http.get("/api/updates", params={"after": body["after"]})
        assert [m["text"] for m in later.json()["messages"]] == ["Thông báo mới"]

        for bad in ("-1", "1e3", "x"):
            refused = await http.get("/api/updates", params={"after": bad})
            assert refused.status_code == 400 and refused.json()["error"] == "bad_request"

    # The attacker: the victim's chat id, in the old query parameter or as the cookie, reads
    # nothing; a session the server starts for them has no notifications.
    for cookies in ({}, {SESSION_COOKIE: session_id}):
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", cookies=cookies
        ) as attacker:
            stolen = await attacker.get("/api/updates", params={"session_id": session_id})
            assert stolen.status_code == 200 and stolen.json()["messages"] == []
            assert chat_id_of(stolen.cookies[SESSION_COOKIE]) not in (None, session_id)


async def test_the_page_shows_notifications_it_polls_for(tmp_path: Path, clock: Clock) -> None:
    """In Chromium: a notification delivered before the page opens and one after appear once."""
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    token = "b" * 43
    session_id = chat_id_of(token)
    assert session_id is not None
    worker = OutboxWorker({Channel.web: WebOutboxOutput()}, engine=engine, clock=clock)
    enqueue(engine, session_id, "Phản ánh PA-2026-000004 đã được tiếp nhận.", clock=clock,
            channel=Channel.web)  # fmt: skip
    assert await worker.run_once() == 1

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(SilentConversation(), engine=engine), log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            page = await browser.new_page()
            await page.context.add_cookies(
                [{"name": SESSION_COOKIE, "value": token, "url": f"http://127.0.0.1:{port}/"}]
            )
            await page.goto(f"http://127.0.0.1:{port}/")
            bubbles = page.locator("#messages .msg.bot .bubble")
            await bubbles.first.wait_for(timeout=5000)
            assert await bubbles.all_inner_texts() == ["Phản ánh PA-2026-000004 đã được tiếp nhận."]

            enqueue(engine, session_id, "Phản ánh PA-2026-000004 đã được giải quyết.",
                    clock=clock, channel=Channel.web)  # fmt: skip
            assert await worker.run_once() == 1
            await bubbles.nth(1).wait_for(timeout=10_000)  # the next poll, within seconds
            await page.reload()  # from the page's history, not shown twice
            await bubbles.nth(1).wait_for(timeout=5000)
            await asyncio.sleep(0.5)
            assert await bubbles.all_inner_texts() == [
                "Phản ánh PA-2026-000004 đã được tiếp nhận.",
                "Phản ánh PA-2026-000004 đã được giải quyết.",
            ]
            await browser.close()
    finally:
        server.should_exit = True
        await serving
        engine.dispose()
