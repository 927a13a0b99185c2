"""The Zalo channel against a fake Zalo Bot API server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fake_zalo import FakeZalo, event_update, image_update, text_update

from bot.channels.common import hide_token_in_logs, split_text
from bot.channels.zalo import (
    ChoiceMemory,
    ZaloApiError,
    ZaloClient,
    ZaloOutput,
    files_not_sent_note,
    run_polling,
    update_to_message,
    zalo_webhook_route,
)
from bot.config import Settings
from bot.conversation.messages import (
    Attachment,
    Button,
    IncomingMessage,
    OutgoingFile,
    OutputChannel,
    Reply,
)
from bot.web.app import create_app

SECRET = "webhook-secret-0123456789"
MENU = Reply(
    "Anh/chị cần gì ạ?",
    buttons=(
        Button("Hỏi thủ tục", "intent:ask_procedure"),
        Button("Gửi phản ánh", "intent:report"),
    ),
)
PARAGRAPH = "Hồ sơ gồm tờ khai, giấy chứng sinh và giấy tờ tùy thân của người đi đăng ký. " * 8


class ScriptedConversation:
    """A small conversation for tests: records messages and answers by a simple script."""

    def __init__(self, script: Callable[[IncomingMessage], list[Reply]] | None = None) -> None:
        self.messages: list[IncomingMessage] = []
        self.script = script or self.default_script
        self.received = asyncio.Event()

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        self.messages.append(message)
        self.received.set()
        for reply in self.script(message):
            await output.send(message.chat_id, reply)

    @staticmethod
    def default_script(message: IncomingMessage) -> list[Reply]:
        if message.button:
            return [Reply(f"Đã chọn {message.button}")]
        if message.metadata.get("unsupported"):
            return [Reply("Xin lỗi, tôi chưa đọc được loại tin nhắn này.")]
        if message.attachments:
            return [Reply(f"Đã nhận {message.attachments[0].kind}. {message.text}".strip())]
        if message.text == "dài":
            return [Reply("\n\n".join([PARAGRAPH] * 7))]
        if message.text == "bản đồ":
            return [Reply("Vị trí trụ sở UBND phường", image_url="https://example.org/map.png")]
        return [MENU]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[IncomingMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} messages, expected {count}")
            await asyncio.sleep(0.01)
        return self.messages


@pytest.fixture
def zalo() -> Iterator[FakeZalo]:
    with FakeZalo() as fake:
        yield fake


@asynccontextmanager
async def polling(
    zalo: FakeZalo, conversation: ScriptedConversation, **options: Any
) -> AsyncIterator[ZaloClient]:
    """Run the polling loop against the fake for the duration of the block."""
    client = ZaloClient(zalo.token, zalo.base_url, timeout=5.0)
    stop = asyncio.Event()
    options.setdefault("poll_timeout", 5)
    options.setdefault("retry_delay", 0.01)
    task = asyncio.create_task(run_polling(client, conversation, stop, **options))
    try:
        yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=3)
        await client.aclose()


# --- Polling ---------------------------------------------------------------------------------


async def test_polling_delivers_text_and_replies_with_numbered_choices(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(text_update("chào bạn", chat_id="c1", message_id="z-1"))
        sent = await zalo.wait_for("sendMessage")

    (message,) = conversation.messages
    assert (message.channel, message.chat_id, message.user_id) == ("zalo", "c1", "c1")
    assert (message.text, message.message_id, message.button) == ("chào bạn", "z-1", None)
    assert message.display_name == "Nguyễn Văn A"
    assert message.metadata["event_name"] == "message.text.received"
    assert sent[0].params == {"chat_id": "c1", "text": MENU.as_plain_text()}
    assert "1. Hỏi thủ tục\n2. Gửi phản ánh" in sent[0].params["text"]
    assert zalo.calls_to("getUpdates")[0].params == {"timeout": "5"}
    assert zalo.calls_to("sendChatAction")[0].params == {"chat_id": "c1", "action": "typing"}


async def test_answering_a_number_or_a_label_comes_back_as_button_data(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(text_update("chào", chat_id="c1"))
        await zalo.wait_for("sendMessage", 1)
        zalo.inject(text_update("2", chat_id="c1"))
        await zalo.wait_for("sendMessage", 2)
        zalo.inject(text_update("xin chào", chat_id="c1"))
        await zalo.wait_for("sendMessage", 3)
        zalo.inject(text_update("hoi thu tuc", chat_id="c1"))  # the label, without accents
        await zalo.wait_for("sendMessage", 4)
        zalo.inject(text_update("1", chat_id="c1"))  # choices were consumed: plain text
        await zalo.wait_for("sendMessage", 5)

    buttons = [m.button for m in conversation.messages]
    assert buttons == [None, "intent:report", None, "intent:ask_procedure", None]
    assert conversation.messages[1].text == "2"
    assert zalo.texts()[1] == "Đã chọn intent:report"


async def test_image_update_becomes_a_photo_attachment_with_its_caption(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(image_update("https://zalo.example/p/abc.jpg", "rác ở ngõ 12"))
        await zalo.wait_for("sendMessage")

    (message,) = conversation.messages
    assert message.attachments == (
        Attachment(file_id="https://zalo.example/p/abc.jpg", kind="photo"),
    )
    assert message.text == "rác ở ngõ 12"
    assert zalo.texts() == ["Đã nhận photo. rác ở ngõ 12"]


async def test_sticker_and_unsupported_messages_are_handled_without_crash(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(event_update("message.sticker.received", sticker="st-1", url="https://s/1"))
        zalo.inject(event_update("message.unsupported.received"))
        zalo.inject(event_update("message.something.new", text="?"))  # unknown: ignored
        zalo.inject(text_update("vẫn chạy"))
        await zalo.wait_for("sendMessage", 3)

    sticker, unsupported, text = conversation.messages
    assert sticker.attachments == (Attachment(file_id="st-1", kind="sticker"),)
    assert sticker.text == ""
    assert unsupported.metadata["unsupported"] is True
    assert (unsupported.text, unsupported.attachments) == ("", ())
    assert text.text == "vẫn chạy"
    assert zalo.texts()[1] == "Xin lỗi, tôi chưa đọc được loại tin nhắn này."


async def test_long_reply_is_split_within_the_limit(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(text_update("dài"))
        await zalo.wait_for("sendMessage", 3)
        await asyncio.sleep(0.1)

    texts = zalo.texts()
    full = "\n\n".join([PARAGRAPH] * 7).strip()
    assert len(full) > 4000 and len(texts) == 3
    assert all(len(t) <= 2000 for t in texts)
    assert " ".join(" ".join(texts).split()) == " ".join(full.split())


async def test_split_limit_is_configurable(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation) as client:
        await client.delete_webhook()  # harmless when none is set
        output = ZaloOutput(client, max_chars=300)
        await output.send("c9", Reply(PARAGRAPH * 2))
    texts = zalo.texts()
    assert len(texts) == 5 and all(len(t) <= 300 for t in texts)


async def test_image_reply_goes_out_as_photo_with_caption(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(text_update("bản đồ", chat_id="c2"))
        (call,) = await zalo.wait_for("sendPhoto")
    assert call.params == {
        "chat_id": "c2",
        "photo": "https://example.org/map.png",
        "caption": "Vị trí trụ sở UBND phường",
    }
    assert zalo.calls_to("sendMessage") == []


async def test_polling_recovers_after_errors(zalo: FakeZalo) -> None:
    zalo.fail(3, methods=("getUpdates",), status=502, error_code=502, description="Bad gateway")
    zalo.inject(text_update("sau khi lỗi"))
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        await zalo.wait_for("sendMessage")
    assert [m.text for m in conversation.messages] == ["sau khi lỗi"]
    assert len(zalo.calls_to("getUpdates")) >= 4


async def test_failing_send_does_not_stop_polling(zalo: FakeZalo) -> None:
    zalo.fail(1, methods=("sendMessage",))
    conversation = ScriptedConversation()
    async with polling(zalo, conversation):
        zalo.inject(text_update("một"))
        await zalo.wait_for("sendMessage", 1)
        zalo.inject(text_update("hai"))
        await zalo.wait_for("sendMessage", 2)
    assert [m.text for m in conversation.messages] == ["một", "hai"]


async def test_stop_aborts_a_long_poll_at_once(zalo: FakeZalo) -> None:
    zalo.max_poll_seconds = 30
    conversation = ScriptedConversation()
    client = ZaloClient(zalo.token, zalo.base_url)
    stop = asyncio.Event()
    task = asyncio.create_task(run_polling(client, conversation, stop, poll_timeout=30))
    await zalo.wait_for("getUpdates")
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert time.monotonic() - started < 0.5
    await client.aclose()


async def test_a_slow_chat_does_not_hold_up_others(zalo: FakeZalo) -> None:
    gate = asyncio.Event()

    class Slow(ScriptedConversation):
        async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
            if message.chat_id == "slow":
                await gate.wait()
            await super().handle(message, output)

    conversation = Slow()
    async with polling(zalo, conversation):
        zalo.inject(text_update("chậm", chat_id="slow"))
        zalo.inject(text_update("nhanh", chat_id="fast"))
        await conversation.wait_for(1)
        assert conversation.messages[0].chat_id == "fast"
        gate.set()
        await conversation.wait_for(2)


# --- Client ---------------------------------------------------------------------------------


async def test_client_methods_and_errors(zalo: FakeZalo) -> None:
    zalo.max_poll_seconds = 0.1
    async with ZaloClient(zalo.token, zalo.base_url) as client:
        assert (await client.get_me())["account_name"] == "bot.Fake"
        assert (await client.set_webhook("https://civic.example/zalo/webhook", SECRET))["url"]
        assert (await client.get_webhook_info())["url"] == "https://civic.example/zalo/webhook"
        with pytest.raises(ZaloApiError) as webhook_set:
            await client.get_updates(timeout=1)
        assert webhook_set.value.error_code == 400
        await client.delete_webhook()
        assert (await client.get_webhook_info())["url"] == ""
        assert await client.get_updates(timeout=1) == []  # 408: no update
        assert (await client.send_message("c1", "xin chào") or "").startswith("bot-msg-")

    async with ZaloClient("999:wrong-token", zalo.base_url) as client:
        with pytest.raises(ZaloApiError) as unauthorized:
            await client.send_message("c1", "xin chào")
    assert (unauthorized.value.error_code, unauthorized.value.status_code) == (401, 401)
    assert "wrong-token" not in str(unauthorized.value)


async def test_network_errors_become_zalo_errors_without_the_token() -> None:
    with FakeZalo() as stopped:
        base_url = stopped.base_url
    async with ZaloClient("123:secret-token", base_url, timeout=1) as client:
        with pytest.raises(ZaloApiError) as error:
            await client.get_me()
    assert "network error" in str(error.value) and "secret-token" not in str(error.value)


# --- Updates, choices, splitting -------------------------------------------------------------


def test_same_update_twice_gives_the_same_message_id() -> None:
    update = text_update("chào", message_id="abc123")
    assert update_to_message(update) == update_to_message(update)
    assert update_to_message(update).message_id == "abc123"  # type: ignore[union-attr]

    del update["result"]["message"]["message_id"]
    first, second = update_to_message(update), update_to_message(dict(update))
    assert first is not None and second is not None
    assert first.message_id == second.message_id and first.message_id.startswith("sha256:")


def test_update_variants() -> None:
    bare = text_update("chào", chat_id="c7")["result"]
    assert update_to_message(bare) is not None  # the result object alone is accepted
    from_bot = text_update("chào")
    from_bot["result"]["message"]["from"]["is_bot"] = True
    assert update_to_message(from_bot) is None
    assert update_to_message({"ok": True, "result": {"event_name": "user.follow"}}) is None
    assert update_to_message({"ok": True, "result": None}) is None
    legacy = text_update("chào")
    legacy["result"]["message"]["from"] = {"id": "u1", "first_name": "Trần Thị B"}
    message = update_to_message(legacy)
    assert message is not None and message.display_name == "Trần Thị B"
    photo = event_update("message.image.received", photo="https://p/1.jpg")  # documented name
    assert update_to_message(photo).attachments[0].file_id == "https://p/1.jpg"  # type: ignore[union-attr]


def test_choice_memory() -> None:
    now = [0.0]
    memory = ChoiceMemory(max_chats=2, ttl_seconds=60, clock=lambda: now[0])
    buttons = (Button("Có", "yes"), Button("Không", "no"), Button("Đường Láng", "lang"))
    memory.remember("a", buttons)
    assert memory.resolve("a", " số 2. ") == "no"
    assert memory.resolve("a", "2") is None  # consumed
    memory.remember("a", buttons)
    assert memory.resolve("a", "duong lang!") == "lang"
    memory.remember("a", buttons)
    assert memory.resolve("a", "9") is None
    memory.remember("a", buttons)
    now[0] = 61
    assert memory.resolve("a", "1") is None  # expired
    for chat in ("a", "b", "c"):
        memory.remember(chat, buttons)
    assert len(memory) == 2 and memory.offered("a") == ()


def test_split_text() -> None:
    assert split_text("  ngắn  ", 2000) == ["ngắn"]
    assert split_text("", 2000) == []
    emoji = "😀" * 1500  # 3000 UTF-16 units, no spaces: hard cuts
    pieces = split_text(emoji, 2000)
    assert "".join(pieces) == emoji
    assert [len(p.encode("utf-16-le")) // 2 for p in pieces] == [2000, 1000]
    words = " ".join(["phường"] * 1000)
    assert all(len(p) <= 100 and not p.endswith(" ") for p in split_text(words, 100))


# --- Webhook --------------------------------------------------------------------------------


async def test_webhook_checks_the_secret(zalo: FakeZalo) -> None:
    conversation = ScriptedConversation()
    async with ZaloClient(zalo.token, zalo.base_url) as client:
        app = create_app(
            conversation, extra_routes=[zalo_webhook_route(conversation, client, SECRET)]
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            update = text_update("chào", chat_id="w1")
            missing = await http.post("/zalo/webhook", json=update)
            wrong = await http.post(
                "/zalo/webhook", json=update, headers={"X-Bot-Api-Secret-Token": SECRET + "x"}
            )
            not_ascii = await http.post(
                "/zalo/webhook", json=update, headers={b"X-Bot-Api-Secret-Token": "bí mật".encode()}
            )
            assert [missing.status_code, wrong.status_code, not_ascii.status_code] == [403] * 3
            assert conversation.messages == [] and zalo.calls == []

            good = {"X-Bot-Api-Secret-Token": SECRET}
            accepted = await http.post("/zalo/webhook", json=update, headers=good)
            assert (accepted.status_code, accepted.json()) == (200, {"ok": True})
            await conversation.wait_for(1)
            await zalo.wait_for("sendMessage")
            again = await http.post("/zalo/webhook", json=update, headers=good)
            assert again.status_code == 200
            await conversation.wait_for(2)

            bad_json = await http.post("/zalo/webhook", content=b"{nope", headers=good)
            assert bad_json.status_code == 400
            get = await http.get("/zalo/webhook", headers=good)
            assert get.status_code == 405

    first, second = conversation.messages
    assert first.chat_id == "w1" and first.message_id == second.message_id  # redelivery
    assert zalo.calls_to("sendMessage")[0].params["chat_id"] == "w1"


async def test_polling_warns_when_a_webhook_is_set(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    zalo.webhook_url = "https://civic.example/zalo/webhook"
    async with polling(zalo, ScriptedConversation()):
        await zalo.wait_for("getUpdates")
    assert "A Zalo webhook is set" in caplog.text
    assert zalo.calls_to("deleteWebhook") == []  # changes nothing by itself


async def test_cancelling_the_polling_task_leaves_nothing_running(zalo: FakeZalo) -> None:
    async with ZaloClient(zalo.token, zalo.base_url) as client:
        task = asyncio.create_task(run_polling(client, ScriptedConversation(), asyncio.Event()))
        await zalo.wait_for("getUpdates")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


def test_client_from_settings() -> None:
    assert ZaloClient.from_settings(Settings(zalo_bot_token=None)) is None
    client = ZaloClient.from_settings(Settings(zalo_bot_token="1:abc"))
    assert isinstance(client, ZaloClient)
    asyncio.run(client.aclose())


async def test_the_token_is_hidden_in_httpx_logs(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="httpx"):
        async with ZaloClient(zalo.token, zalo.base_url) as client:
            await client.get_me()
    assert "/bot<token>/getMe" in caplog.text and zalo.token not in caplog.text


async def test_a_token_inside_another_still_hides_the_whole_longer_one(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    for start in range(1, len(zalo.token) - 8):  # other bots' tokens, ends of this one's
        hide_token_in_logs(zalo.token[start:])
    with caplog.at_level("INFO", logger="httpx"):
        async with ZaloClient(zalo.token, zalo.base_url) as client:
            await client.get_me()
    assert "/bot<token>/getMe" in caplog.text, caplog.text


def test_files_zalo_cannot_show_are_named_in_one_line() -> None:
    files = [
        OutgoingFile("photo", file_id="p1"),
        OutgoingFile("photo", file_id="p2"),
        OutgoingFile("document", content=b"%PDF", filename="ket-qua.pdf"),
    ]
    assert files_not_sent_note(files) == (
        "(Tin nhắn này có kèm 2 ảnh và 1 tệp (ket-qua.pdf); Zalo chưa hiển thị được tệp đính "
        "kèm, anh/chị vui lòng xem trên kênh khác.)"
    )
    assert files_not_sent_note([]) is None
