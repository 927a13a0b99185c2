"""Hostile text at the channel edge: lone surrogates, control and bidi characters, deeply
nested and oversized JSON, invite-code look-alikes. Fuzzed through the real web chat and the
real Telegram webhook, with the real conversation and database: no 5xx, every accepted
message stored, no reply carrying a hidden character."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_telegram import FakeTelegram
from seed import two_wards_and_city
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.channels.common import (
    BadBody,
    clean_incoming,
    clean_reply,
    clean_text,
    parse_json,
)
from bot.channels.telegram import SECRET_HEADER, build_application, running_telegram
from bot.channels.telegram import telegram_webhook_route as webhook_route
from bot.config import Settings
from bot.conversation.engine import Conversation
from bot.conversation.messages import Button, IncomingMessage, Reply
from bot.nlu.client import NluClient
from bot.officials.desk import Desk
from bot.officials.invites import find_invite_code, invite_official
from bot.web.app import create_app
from storage.models import Channel, Direction, Message, OfficialRole
from storage.models import Conversation as StoredConversation

SECRET = "fuzz-secret_0123"
# What must never reach anyone: C0/C1 controls (but tab and newline), bidi controls,
# lone surrogates.
HIDDEN = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
NASTY = (
    "\ud800", "\udfff", "\udc00\ud800", "\u202e", "\u202d", "\u2066", "\u2067", "\u2068",
    "\u2069", "\u200e", "\u200f", "\u061c", "\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\x9b",
    "\r", "\u2028", "\ufeff", "\u200b", "\u200d", "😀", "🙏🏽", "e\u0301", "\U0010ffff",
)  # fmt: skip
WORDS = (
    "rác", "thải", "ngõ", "5", "phường", "Kim", "Liên", "vỉa", "hè", "bị", "lấn", "chiếm",
    "đèn", "đường", "hỏng", "làm", "hộ", "chiếu", "hết", "bao", "nhiêu", "tiền", "PA-2026-000001",
    "0987654321", "CB-7KQ2-M9XD", "cb7kq2m9xd", "CBXXXXXXXX", "hello", "<b>", "'; DROP", "/start",
)  # fmt: skip


def hostile_text(rng: random.Random) -> str:
    """A message of words and nasty characters, sometimes long."""
    parts = [
        rng.choice(NASTY) if rng.random() < 0.35 else rng.choice(WORDS)
        for _ in range(rng.randint(1, 12))
    ]
    text = " ".join(parts)
    if rng.random() < 0.02:
        text = (text + " ") * rng.randint(50, 300)
    return text[:4000]


class FallbackNlu:
    """The app's client with no Rasa behind it: the keyword fallback answers at once."""

    def __init__(self) -> None:
        self.client = NluClient("http://127.0.0.1:9", "x", timeout=0.2)

    async def parse(self, text: str) -> Any:
        return await self.client.parse(text)


@pytest.fixture
async def fallback_nlu() -> AsyncIterator[FallbackNlu]:
    nlu = FallbackNlu()
    yield nlu
    await nlu.client.aclose()


def incoming_count(engine: Engine, channel: Channel) -> int:
    with Session(engine) as session:
        return session.exec(
            select(func.count())
            .select_from(Message)
            .where(Message.channel == channel, Message.direction == Direction.incoming)
        ).one()


def outgoing_texts(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(
            session.exec(select(Message.text).where(Message.direction == Direction.outgoing))
        )


# --- the cleaning function -------------------------------------------------------------------


def test_clean_text_keeps_words_and_drops_what_hides() -> None:
    assert clean_text("Việt Nam 😀 👨\u200d👩\u200d👧") == "Việt Nam 😀 👨\u200d👩\u200d👧"
    assert clean_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert clean_text("abc\u202eevil\u202c.exe\u2066x\u2069") == "abcevil.exex"
    assert clean_text("a\x00b\x07c\x1b[0m\x7fd\x9be") == "abc[0mde"
    assert clean_text("dòng 1\r\ndòng 2\rdòng 3\u2028dòng 4\tcột") == (
        "dòng 1\ndòng 2\ndòng 3\ndòng 4\tcột"
    )
    assert clean_text("plain ascii") == "plain ascii"


def test_cleaned_message_keeps_the_raw_text_as_sent() -> None:
    sent = "rác \ud83d ở ngõ \u202e5"
    message = IncomingMessage("web", "c", "u", "m", text=sent, display_name="Lan\u202e")
    cleaned = clean_incoming(message)
    assert cleaned.text == "rác \ufffd ở ngõ 5" and cleaned.display_name == "Lan"
    raw = bytes.fromhex(cleaned.metadata["raw_text"]).decode("utf-16-be", "surrogatepass")
    assert raw == sent
    assert clean_incoming(IncomingMessage("web", "c", "u", "m", text="sạch")).metadata == {}


def test_replies_never_carry_hidden_characters() -> None:
    reply = clean_reply(Reply("Đã nhận: \u202eabc\x1b", buttons=(Button("Có\u2066", "yes"),)))
    assert reply.text == "Đã nhận: abc" and reply.buttons == (Button("Có", "yes"),)


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 2000 + "1" + "}" * 2000, "[" * 33 + "]" * 33, "{x"],
    ids=["deep-list", "deep-object", "depth-33", "not-json"],
)
def test_deep_or_broken_json_is_refused(body: str) -> None:
    with pytest.raises(BadBody) as refused:
        parse_json(body)
    assert refused.value.status == 400


def test_json_within_the_depth_limit_is_read() -> None:
    assert parse_json("[" * 32 + "]" * 32) is not None
    assert parse_json('{"update_id": 1, "message": {"chat": {"id": 1}}}')["update_id"] == 1


# --- the invite code ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("CB-7KQ2-M9XD", "CB-7KQ2-M9XD"),
        ("  cb-7kq2-m9xd\n", "CB-7KQ2-M9XD"),
        ("/start CB7KQ2M9XD", "CB-7KQ2-M9XD"),
        ("toi gui ma CB-7KQ2-M9XD", None),
        ("CB7KQ2M9XD", None),
        ("CB 7KQ2 M9XD", None),
        ("cbxyzwtuvq", None),
        ("CB-7KQ2-M9X0", None),  # 0 is not in the alphabet
        ("CB-7KQ2-M9XD-", None),
    ],
)
def test_invite_code_only_in_its_exact_format(text: str, code: str | None) -> None:
    assert find_invite_code(text) == code


def test_generated_codes_are_recognised(engine: Engine) -> None:
    with Session(engine) as session:
        two_wards_and_city(session)
        for _ in range(20):
            _, code = invite_official(
                session=session, unit_id="ward-a", name="Cán bộ", role=OfficialRole.handler,
                now=datetime(2026, 12, 6, tzinfo=UTC),
            )  # fmt: skip
            assert find_invite_code(code) == code
            assert find_invite_code(f"/start {code.replace('-', '')}") == code


async def test_a_code_like_word_does_not_take_over_a_citizens_form(
    engine: Engine, fallback_nlu: FallbackNlu
) -> None:
    desk = Desk(Conversation(nlu=fallback_nlu, engine=engine), engine=engine)
    with Session(engine) as session:
        session.add(
            StoredConversation(
                channel=Channel.telegram, chat_id="42", state="ask_place", data={"k": 1}
            )
        )
        session.commit()

    class Output:
        async def send(self, chat_id: str, reply: Reply) -> str | None:
            return None

    for index, text in enumerate(["CB-2345-6789", "/start CB23456789"]):
        message = IncomingMessage("telegram", "42", "42", f"m{index}", text=text)
        await desk.handle(message, Output())
    with Session(engine) as session:
        stored = session.exec(select(StoredConversation)).one()
        assert (stored.state, stored.data) == ("ask_place", {"k": 1})


# --- fuzzing through the real web chat and Telegram webhook ------------------------------

FUZZ_MESSAGES = 1200


def assert_nothing_hidden(texts: list[str]) -> None:
    shown = [t for t in texts if HIDDEN.search(t)]
    assert not shown, f"{len(shown)} replies carry hidden characters, e.g. {shown[0]!r}"


@pytest.fixture
async def web(
    engine: Engine, tmp_path: Path, fallback_nlu: FallbackNlu
) -> AsyncIterator[httpx.AsyncClient]:
    desk = Desk(Conversation(nlu=fallback_nlu, engine=engine), engine=engine)
    unlimited = "1000000 per second"  # the rate limits are not what is tested here
    config = Settings(
        upload_dir=tmp_path / "uploads", web_messages_per_client=unlimited,
        web_messages_per_session=unlimited, web_sessions_per_client=unlimited,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(desk, engine=engine, settings=config))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def escaped(payload: dict[str, Any]) -> bytes:
    """JSON as a browser or a script sends it: lone surrogates as \\uXXXX escapes."""
    return json.dumps(payload).encode()


async def test_fuzzed_web_chat_gets_no_5xx_and_everything_is_stored(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    rng = random.Random(13)
    statuses: dict[int, int] = {}
    accepted = 0
    replies: list[str] = []
    started = time.monotonic()
    for index in range(FUZZ_MESSAGES):
        if index % 30 == 0:
            web.cookies.clear()  # a new citizen: the server issues a new session
        payload = {"message_id": f"m-{index}", "text": hostile_text(rng)}
        if rng.random() < 0.1:
            payload["button"] = hostile_text(rng)[:200]
        response = await web.post(
            "/api/web/messages", content=escaped(payload),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            accepted += 1
            replies += [r["text"] for r in response.json()] + [
                b["label"] for r in response.json() for b in r["buttons"]
            ]
    seconds = time.monotonic() - started
    assert not [s for s in statuses if s >= 500], statuses
    assert accepted >= FUZZ_MESSAGES * 0.9, statuses  # 4xx only for what is really wrong
    assert incoming_count(engine, Channel.web) == accepted
    assert_nothing_hidden(replies + outgoing_texts(engine))
    print(f"\n{FUZZ_MESSAGES} fuzzed web chat messages in {seconds:.1f} s: {statuses}")


async def test_deep_huge_and_chunked_bodies_get_4xx(web: httpx.AsyncClient) -> None:
    def body(text: str) -> bytes:
        return escaped({"message_id": "m", "text": text})

    deep = b'{"message_id": "m", "text": ' + b"[" * 50_000 + b"]" * 50_000
    nested = b'{"message_id": "m", "x": ' + b'{"a":' * 40 + b"1" + b"}" * 41

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5 * 1024):
            yield b" " * 1024  # 5 MiB without a Content-Length
        yield body("rác")

    headers = {"content-type": "application/json"}
    post = web.post
    answers = [
        await post("/api/web/messages", content=deep, headers=headers),
        await post("/api/web/messages", content=nested, headers=headers),
        await post("/api/web/messages", content=b"[" * 200_000, headers=headers),
        await post("/api/web/messages", content=body("a" * 300_000), headers=headers),
        await post("/api/web/messages", content=chunks(), headers=headers),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 413, 413]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


def update(update_id: int, chat: int, text: str) -> dict[str, Any]:
    user = {"id": chat, "is_bot": False, "first_name": "Lan\u202e", "language_code": "vi"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": int(time.time()), "text": text, "from": user,
            "chat": {"id": chat, "type": "private", "first_name": "Lan"},
        },
    }  # fmt: skip


async def test_fuzzed_telegram_webhook_gets_no_5xx_and_everything_is_stored(
    fake: FakeTelegram, engine: Engine, fallback_nlu: FallbackNlu
) -> None:
    rng = random.Random(12)
    desk = Desk(Conversation(nlu=fallback_nlu, engine=engine), engine=engine)
    application = build_application(desk, token=fake.token, base_url=fake.base_url)
    url = "https://civicbot.example/telegram/webhook"
    route = webhook_route(application, SECRET, "/telegram/webhook")
    app = create_app(desk, extra_routes=[route], engine=engine)
    transport = httpx.ASGITransport(app=app)
    statuses: dict[int, int] = {}
    count = FUZZ_MESSAGES // 3
    async with (
        running_telegram(application, webhook_url=url, secret=SECRET),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        for index in range(1, count + 1):
            response = await client.post(
                "/telegram/webhook", content=escaped(update(index, 100 + index % 30,
                                                            hostile_text(rng))),
                headers={SECRET_HEADER: SECRET, "content-type": "application/json"},
            )  # fmt: skip
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(5 * 1024):
                yield b" " * 1024
            yield escaped(update(count + 1, 100, "rác"))

        too_big = await client.post(
            "/telegram/webhook", content=chunked(), headers={SECRET_HEADER: SECRET}
        )
        deep = await client.post(
            "/telegram/webhook", content=b"[" * 100_000, headers={SECRET_HEADER: SECRET}
        )
        deadline = time.monotonic() + 120
        while incoming_count(engine, Channel.telegram) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    assert statuses == {200: count}
    assert (too_big.status_code, deep.status_code) == (413, 400)
    assert incoming_count(engine, Channel.telegram) == count
    sent = [str(c.params.get("text", "")) for c in fake.calls_to("sendMessage")]
    assert sent
    assert_nothing_hidden(sent + outgoing_texts(engine))
    with Session(engine) as session:  # the raw text is kept where cleaning changed it
        raw = session.exec(
            select(Message.payload).where(
                Message.channel == Channel.telegram, Message.direction == Direction.incoming,
                col(Message.text).contains("\ufffd"),
            )
        ).all()  # fmt: skip
    assert raw and all("raw_text" in p["metadata"] for p in raw)
