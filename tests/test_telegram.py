"""The Telegram channel against a fake Bot API server (tests/fake_telegram.py).

The real python-telegram-bot Application runs in the test's event loop and talks HTTP to
the fake, which runs in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fake_telegram import FakeTelegram
from starlette.applications import Starlette
from telegram import Bot

from bot.channels.common import split_text, utf16_length
from bot.channels.telegram import (
    APOLOGY,
    SECRET_HEADER,
    TelegramApplication,
    TelegramOutput,
    build_application,
    running_telegram,
    set_webhook,
    telegram_webhook_route,
    webhook_path,
)
from bot.conversation.messages import (
    Attachment,
    Button,
    GeoPoint,
    IncomingMessage,
    OutputChannel,
    Reply,
)

CHAT = 4242
OTHER_CHAT = 777
SECRET = "s3cret-Token_for-tests"
BUTTONS = (Button("Có", "confirm:yes"), Button("Không", "confirm:no"))


@dataclass
class EchoConversation:
    """Records every message; echoes text with two buttons, confirms a pressed button.

    ``delays`` slows one chat down; a text of "boom" raises.
    """

    received: list[IncomingMessage] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    handled_at: list[tuple[str, float]] = field(default_factory=list)
    replies: Callable[[IncomingMessage], Reply | None] | None = None

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        self.received.append(message)
        if delay := self.delays.get(message.chat_id):
            await asyncio.sleep(delay)
        if message.text == "boom":
            raise RuntimeError("conversation exploded")
        if self.replies is not None:
            reply = self.replies(message)
        elif message.button:
            reply = Reply(f"Anh/chị đã chọn: {message.button}")
        else:
            reply = Reply(f"Bạn nói: {message.text or '(không có chữ)'}", buttons=BUTTONS)
        if reply is not None:
            await output.send(message.chat_id, reply)
        self.handled_at.append((message.chat_id, time.monotonic()))

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.received if m.chat_id == str(chat_id)]


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def conversation() -> EchoConversation:
    return EchoConversation()


def make_app(fake: FakeTelegram, conversation: EchoConversation) -> TelegramApplication:
    return build_application(conversation, token=fake.token, base_url=fake.base_url)


@asynccontextmanager
async def polling(
    fake: FakeTelegram, conversation: EchoConversation
) -> AsyncIterator[TelegramApplication]:
    async with running_telegram(make_app(fake, conversation), poll_timeout=1) as app:
        yield app


async def received(conversation: EchoConversation, count: int = 1) -> list[IncomingMessage]:
    await wait_until(lambda: len(conversation.received) >= count)
    return conversation.received


# --- polling, text, buttons --------------------------------------------------------------


async def test_polling_delivers_text_and_reply_has_inline_keyboard(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        update = fake.inject_text(CHAT, "Xin chào, tôi muốn phản ánh")
        [sent] = await fake.wait_for("sendMessage")

    [message] = conversation.received
    assert message.channel == "telegram"
    assert message.chat_id == str(CHAT) and message.user_id == str(CHAT)
    assert message.message_id == str(update["update_id"])
    assert message.text == "Xin chào, tôi muốn phản ánh"
    assert message.display_name == f"Công dân {CHAT}"
    assert message.metadata["telegram_message_id"] == update["message"]["message_id"]
    assert not message.edited and message.button is None and message.attachments == ()

    assert sent.params["chat_id"] == CHAT
    assert sent.params["text"] == "Bạn nói: Xin chào, tôi muốn phản ánh"
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Có", "callback_data": "confirm:yes"}],
            [{"text": "Không", "callback_data": "confirm:no"}],
        ]
    }
    methods = fake.methods()
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    polls = fake.calls_to("getUpdates")
    assert polls[0].params["allowed_updates"] == ["message", "edited_message", "callback_query"]
    assert polls[-1].params["offset"] == update["update_id"] + 1  # confirmed on the way out
    assert fake.pending_updates == []


async def test_button_press_is_answered_keyboard_removed_and_data_delivered(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        fake.inject_text(CHAT, "Tôi muốn nộp hồ sơ")
        [offer] = await fake.wait_for("sendMessage")
        offered_id = fake.bot_messages(CHAT)[-1]["message_id"]

        # A fast double tap: both presses leave before the keyboard is removed.
        press = fake.press_button(CHAT, label="Không")
        again = fake.press_button(CHAT, "confirm:yes", message_id=offered_id)
        await fake.wait_for("sendMessage", 2)
        await fake.wait_for("answerCallbackQuery", 2)
        # An old keyboard with data this version does not know: delivered as is.
        fake.press_button(CHAT, "v1:menu:legacy")
        await received(conversation, 3)
        await fake.wait_for("answerCallbackQuery", 3)

    first, legacy = conversation.received[1], conversation.received[2]
    assert first.button == "confirm:no" and first.text == ""
    assert first.message_id == str(press["update_id"])
    assert first.metadata["button_label"] == "Không"
    assert first.metadata["telegram_message_id"] == offered_id
    assert legacy.button == "v1:menu:legacy"
    assert str(again["update_id"]) not in {m.message_id for m in conversation.received}

    query_ids = [c.params["callback_query_id"] for c in fake.calls_to("answerCallbackQuery")]
    assert query_ids == [press["callback_query"]["id"], again["callback_query"]["id"], query_ids[2]]
    [edit, _legacy_edit] = fake.calls_to("editMessageReplyMarkup")
    assert edit.params == {"chat_id": CHAT, "message_id": offered_id}  # no markup: removed
    assert "reply_markup" not in (fake.message(CHAT, offered_id) or {})
    assert offer.params["reply_markup"]["inline_keyboard"]  # it had one
    assert fake.sent_texts(CHAT)[1] == "Anh/chị đã chọn: confirm:no"


# --- what citizens send --------------------------------------------------------------------


async def test_location_pin_becomes_geopoint(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        fake.inject_location(CHAT, 21.028511, 105.804817)
        [message] = await received(conversation)
        await fake.wait_for("sendMessage")
    assert message.location == GeoPoint(21.028511, 105.804817)
    assert message.text == ""


async def test_photo_with_caption_is_attachment_and_text(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        update = fake.inject_photo(CHAT, "Ổ gà trên phố Kim Mã", content=b"\xff\xd8" + b"x" * 5000)
        [message] = await received(conversation)
        await fake.wait_for("sendMessage")
    largest = update["message"]["photo"][-1]
    assert message.text == "Ổ gà trên phố Kim Mã"
    assert message.attachments == (
        Attachment(largest["file_id"], "photo", "image/jpeg", largest["file_size"]),
    )


async def test_sticker_voice_document_video_become_attachments(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        sticker = fake.inject_sticker(CHAT)
        voice = fake.inject_voice(CHAT)
        document = fake.inject_document(CHAT, caption="Đơn khiếu nại")
        video = fake.inject_video(CHAT)
        await received(conversation, 4)
        await fake.wait_for("sendMessage", 4)

    kinds = [(m.attachments[0].kind, m.attachments[0].mime_type) for m in conversation.received]
    assert kinds == [
        ("sticker", "image/webp"),
        ("voice", "audio/ogg"),
        ("document", "application/pdf"),
        ("video", "video/mp4"),
    ]
    ids = [m.attachments[0].file_id for m in conversation.received]
    assert ids == [
        sticker["message"]["sticker"]["file_id"],
        voice["message"]["voice"]["file_id"],
        document["message"]["document"]["file_id"],
        video["message"]["video"]["file_id"],
    ]
    assert conversation.received[2].text == "Đơn khiếu nại"
    assert all(len(m.attachments) == 1 and m.attachments[0].size for m in conversation.received)


async def test_edited_message_is_flagged_with_its_own_id(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        original = fake.inject_text(CHAT, "Đường Láng bị ngập")
        edit = fake.inject_edit(original, "Đường Láng bị ngập sâu")
        await received(conversation, 2)
        await fake.wait_for("sendMessage", 2)
    first, second = conversation.received
    assert not first.edited and second.edited
    assert second.text == "Đường Láng bị ngập sâu"
    assert second.message_id == str(edit["update_id"]) != first.message_id
    assert second.metadata["telegram_message_id"] == first.metadata["telegram_message_id"]


async def test_redelivered_update_keeps_its_message_id(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    async with polling(fake, conversation):
        update = fake.inject_text(CHAT, "Tin nhắn gửi lại")
        await received(conversation)
    # As if the bot had crashed before confirming the offset: the next start gets it again.
    fake.redeliver(update)
    async with polling(fake, conversation):
        await received(conversation, 2)
    first, second = conversation.received
    assert first.message_id == second.message_id == str(update["update_id"])


async def test_group_chats_are_ignored(fake: FakeTelegram, conversation: EchoConversation) -> None:
    async with polling(fake, conversation):
        fake.inject_text(-100123, "Ai biết thủ tục không?", user_id=CHAT, chat_type="supergroup")
        fake.inject_text(CHAT, "Riêng tư")
        await received(conversation)
        await fake.wait_for("sendMessage")
    assert [m.text for m in conversation.received] == ["Riêng tư"]
    assert fake.sent_texts(-100123) == []


# --- long texts and bursts -----------------------------------------------------------------


async def test_long_reply_is_split_and_long_message_passes(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    paragraph = "Thủ tục cấp giấy phép xây dựng gồm các bước sau đây. " * 4
    long_reply = "\n".join(f"{i}. {paragraph}" for i in range(60))[:10_000]
    assert len(long_reply) == 10_000
    conversation.replies = lambda m: Reply(long_reply, buttons=BUTTONS)
    incoming = "a" * 10_000
    async with polling(fake, conversation):
        fake.inject_text(CHAT, incoming)
        [message] = await received(conversation)
        await fake.wait_for("sendMessage", 3)

    assert message.text == incoming
    sent = fake.calls_to("sendMessage")
    assert len(sent) == 3
    assert all(utf16_length(c.params["text"]) <= 4096 for c in sent)
    # cut at line ends; the splitter drops the spaces it cuts at
    lines = [line.rstrip() for line in long_reply.split("\n")]
    joined = "\n".join(c.params["text"] for c in sent)
    assert [line.rstrip() for line in joined.split("\n")] == lines
    assert [("reply_markup" in c.params) for c in sent] == [False, False, True]


def test_split_text_edges() -> None:
    assert split_text_tg("") == []
    assert split_text_tg("  \n\n ") == []
    assert split_text_tg("một\nhai") == ["một\nhai"]
    one_line = "chữ " * 3000  # 12,000 characters, no line break: cut at spaces
    pieces = split_text_tg(one_line)
    assert all(len(p) <= 4096 for p in pieces) and " ".join(pieces) == one_line.strip()
    emoji = "😀" * 3000  # two UTF-16 units each
    pieces = split_text_tg(emoji)
    assert [utf16_length(p) for p in pieces] == [4096, 1904] and "".join(pieces) == emoji
    no_space = "x" * 5000
    assert [len(p) for p in split_text_tg(no_space)] == [4096, 904]


async def test_burst_in_one_chat_keeps_order_and_other_chat_is_not_blocked(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    conversation.delays = {str(CHAT): 0.05}  # 20 messages: at least one second in all
    async with polling(fake, conversation):
        burst = [fake.inject_text(CHAT, f"tin {i}") for i in range(20)]
        await wait_until(lambda: len(conversation.received) >= 1)
        fake.inject_text(OTHER_CHAT, "tôi ở chat khác")
        await wait_until(lambda: len(conversation.handled_at) >= 21, timeout=10)

    assert conversation.texts(CHAT) == [f"tin {i}" for i in range(20)]
    assert [m.message_id for m in conversation.received if m.chat_id == str(CHAT)] == [
        str(u["update_id"]) for u in burst
    ]
    assert fake.sent_texts(CHAT) == [f"Bạn nói: tin {i}" for i in range(20)]
    other_done = next(t for c, t in conversation.handled_at if c == str(OTHER_CHAT))
    burst_done = [t for c, t in conversation.handled_at if c == str(CHAT)]
    assert other_done < burst_done[9]  # answered while the burst was still being handled


# --- errors --------------------------------------------------------------------------------


async def test_error_handler_logs_apologises_and_bot_keeps_running(
    fake: FakeTelegram, conversation: EchoConversation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.channels.telegram")
    async with polling(fake, conversation):
        boom = fake.inject_text(CHAT, "boom")
        await fake.wait_for("sendMessage")
        fake.inject_text(CHAT, "còn đó không?")
        await fake.wait_for("sendMessage", 2)

    assert fake.sent_texts(CHAT) == [APOLOGY, "Bạn nói: còn đó không?"]
    [record] = [r for r in caplog.records if r.name == "bot.channels.telegram"]
    assert f"update {boom['update_id']} from chat {CHAT} failed" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_polling_survives_server_errors(
    fake: FakeTelegram, conversation: EchoConversation, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("getUpdates", status=500, times=1)
    fake.inject_text(CHAT, "sau sự cố")
    async with polling(fake, conversation):
        await fake.wait_for("sendMessage", timeout=8)
    assert [c.status for c in fake.calls_to("getUpdates")][:2] == [500, 200]
    assert conversation.texts(CHAT) == ["sau sự cố"]
    assert "Telegram polling failed (Internal Server Error); retrying." in caplog.messages


# --- rendering replies ---------------------------------------------------------------------


@asynccontextmanager
async def bot_output(fake: FakeTelegram) -> AsyncIterator[TelegramOutput]:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        yield TelegramOutput(bot)


async def test_too_long_button_data_is_refused_before_sending(fake: FakeTelegram) -> None:
    async with bot_output(fake) as output:
        reply = Reply("Chọn:", buttons=(Button("Dài", "x" * 62 + "ổ"),))  # 63 chars, 65 bytes
        with pytest.raises(ValueError, match="1 to 64 bytes"):
            await output.send(str(CHAT), reply)
        with pytest.raises(ValueError, match="text or an image"):
            await output.send(str(CHAT), Reply("  "))
        assert fake.calls_to("sendMessage") == []
        ok = await output.send(str(CHAT), Reply("Chọn:", buttons=(Button("Vừa", "y" * 64),)))
        assert ok == str(fake.bot_messages(CHAT)[-1]["message_id"])


async def test_image_with_short_caption_is_one_photo(fake: FakeTelegram) -> None:
    async with bot_output(fake) as output:
        url = "https://civicbot.example/charts/phan-anh.png"
        message_id = await output.send(str(CHAT), Reply("Biểu đồ tuần", BUTTONS, url))
        [photo] = fake.calls_to("sendPhoto")
        assert photo.params["photo"] == url and photo.params["caption"] == "Biểu đồ tuần"
        assert len(photo.params["reply_markup"]["inline_keyboard"]) == 2
        assert fake.calls_to("sendMessage") == []
        assert message_id == str(fake.bot_messages(CHAT)[-1]["message_id"])


async def test_image_with_long_text_is_photo_then_text(fake: FakeTelegram) -> None:
    async with bot_output(fake) as output:
        text = "Hướng dẫn chi tiết. " * 80  # 1,600 characters: too long for a caption
        await output.send(str(CHAT), Reply(text, BUTTONS, "https://civicbot.example/a.png"))
        [photo] = fake.calls_to("sendPhoto")
        [message] = fake.calls_to("sendMessage")
        assert "caption" not in photo.params and "reply_markup" not in photo.params
        assert message.params["text"] == text.strip() and "reply_markup" in message.params


async def test_unfetchable_image_is_uploaded_or_linked(fake: FakeTelegram) -> None:
    async with bot_output(fake) as output:
        fake.reject_photo_urls = True
        url = fake.static_url("chart.png", b"\x89PNG\r\n\x1a\nfake-chart")
        await output.send(str(CHAT), Reply("Biểu đồ", image_url=url))
        by_url, uploaded = fake.calls_to("sendPhoto")
        assert by_url.status == 400 and by_url.encoding == "form"
        assert uploaded.encoding == "multipart" and uploaded.status == 200
        assert uploaded.params["photo"].data == b"\x89PNG\r\n\x1a\nfake-chart"
        assert uploaded.params["caption"] == "Biểu đồ"

        missing = f"{fake.url}/static/missing.png"
        await output.send(str(CHAT), Reply("Biểu đồ", image_url=missing))
        assert fake.sent_texts(CHAT)[-1] == f"Biểu đồ\n{missing}"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter()
async def test_flood_control_is_waited_out(fake: FakeTelegram) -> None:
    async with bot_output(fake) as output:
        fake.fail("sendMessage", status=429, retry_after=1, times=1)
        started = time.monotonic()
        assert await output.send(str(CHAT), Reply("Sau khi chờ"))
        assert time.monotonic() - started >= 1
        assert [c.status for c in fake.calls_to("sendMessage")] == [429, 200]


# --- webhook -------------------------------------------------------------------------------


def update_json(update_id: int, text: str) -> dict[str, Any]:
    user = {"id": CHAT, "is_bot": False, "first_name": "Lan"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "text": text,
            "from": user,
            "chat": {"id": CHAT, "type": "private", "first_name": "Lan"},
        },
    }


async def test_webhook_route_checks_secret_and_webhook_is_set(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    url = "https://civicbot.example/telegram/webhook"
    app = make_app(fake, conversation)
    route = telegram_webhook_route(app, SECRET, webhook_path(url))
    asgi = Starlette(routes=[route])
    transport = httpx.ASGITransport(app=asgi)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        post = client.post
        path = "/telegram/webhook"
        assert (
            await post(path, json=update_json(1, "sớm"), headers={SECRET_HEADER: SECRET})
        ).status_code == 503
        async with running_telegram(app, webhook_url=url, secret=SECRET):
            assert fake.calls_to("setWebhook") == []  # a deploy step, not each process's start
            await set_webhook(app.bot, url=url, secret=SECRET)
            [hook] = fake.calls_to("setWebhook")
            assert hook.params["url"] == url and hook.params["secret_token"] == SECRET
            assert hook.params["allowed_updates"] == ["message", "edited_message", "callback_query"]

            missing = await post(path, json=update_json(2, "không có bí mật"))
            wrong = await post(path, json=update_json(3, "sai"), headers={SECRET_HEADER: "x"})
            unicode = await post(
                path,
                content=json.dumps(update_json(4, "lạ")),
                headers=[(SECRET_HEADER.encode(), "bí-mật".encode())],
            )
            garbage = await post(path, content=b"{not json", headers={SECRET_HEADER: SECRET})
            right = await post(path, json=update_json(5, "đúng"), headers={SECRET_HEADER: SECRET})
            await fake.wait_for("sendMessage")
    assert [missing.status_code, wrong.status_code, unicode.status_code] == [403, 403, 403]
    assert garbage.status_code == 400 and right.status_code == 200
    assert [m.text for m in conversation.received] == ["đúng"]
    assert [m.message_id for m in conversation.received] == ["5"]
    assert "getUpdates" not in fake.methods() and "deleteWebhook" not in fake.methods()
    assert fake.webhook is not None  # kept on stop: Telegram holds updates during a restart


async def test_webhook_end_to_end_through_the_apps_own_server(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    app = make_app(fake, conversation)
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[telegram_webhook_route(app, SECRET)]),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        webhook_url = f"http://127.0.0.1:{port}/telegram/webhook"
        async with running_telegram(app, webhook_url=webhook_url, secret=SECRET):
            await set_webhook(app.bot, url=webhook_url, secret=SECRET)
            fake.inject_text(CHAT, "qua webhook")
            fake.inject_location(CHAT, 21.0, 105.8)
            await fake.wait_for("sendMessage", 2)
    finally:
        server.should_exit = True
        await serving
    assert [m.text for m in conversation.received] == ["qua webhook", ""]
    assert conversation.received[1].location == GeoPoint(21.0, 105.8)
    assert [d.status for d in fake.webhook_deliveries] == [200, 200]
    assert fake.pending_updates == []


async def test_webhook_secret_must_be_what_telegram_accepts(
    fake: FakeTelegram, conversation: EchoConversation
) -> None:
    app = make_app(fake, conversation)
    with pytest.raises(ValueError, match="secret"):
        telegram_webhook_route(app, "")
    with pytest.raises(ValueError, match="secret"):
        telegram_webhook_route(app, "has space")
    assert webhook_path("https://x.example/hooks/tg") == "/hooks/tg"
    assert webhook_path(None) == webhook_path("https://x.example") == "/telegram/webhook"


def split_text_tg(text: str) -> list[str]:
    return split_text(text, 4096)
