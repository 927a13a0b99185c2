"""The local web chat and the ASGI app, through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot.channels.web import SESSION_COOKIE, WebOutput, chat_id_of, parse_message, reply_to_json
from bot.conversation.messages import Button, GeoPoint, IncomingMessage, OutputChannel, Reply
from bot.web.app import create_app

MENU = Reply(
    "Chào anh/chị! Anh/chị cần gì ạ?",
    buttons=(
        Button("Hỏi thủ tục", "intent:ask_procedure"),
        Button("Gửi phản ánh", "intent:report"),
    ),
)


class EchoConversation:
    """Replies to text with a menu, to a button or a location with what it got."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[IncomingMessage] = []
        self.delay = delay
        self.fail_next = False

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        self.messages.append(message)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the conversation broke")
        if message.button:
            await output.send(message.chat_id, Reply(f"Đã chọn: {message.button}"))
        elif message.location:
            loc = message.location
            await output.send(message.chat_id, Reply(f"Vị trí {loc.lat}, {loc.lon}"))
            await output.send(
                message.chat_id, Reply("Bản đồ", image_url="https://example.org/map.png")
            )
        else:
            await output.send(message.chat_id, MENU)


@pytest.fixture
def conversation() -> EchoConversation:
    return EchoConversation()


@pytest.fixture
async def http(conversation: EchoConversation) -> AsyncIterator[httpx.AsyncClient]:
    async def extra(request: object) -> PlainTextResponse:
        return PlainTextResponse("extra")

    app = create_app(conversation, extra_routes=[Route("/extra", extra)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def body(text: str | None = None, message_id: str = "m-1", **fields: object) -> dict[str, object]:
    payload: dict[str, object] = {"message_id": message_id, **fields}
    if text is not None:
        payload["text"] = text
    return payload


async def test_the_chat_page_loads_with_its_assets(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert '<html lang="vi">' in html and "Gửi vị trí" in html and "Nhập tin nhắn" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets)  # nothing from a CDN
    for asset in assets:
        response = await http.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["x-content-type-options"] == "nosniff"
    script = (await http.get("/static/app.js")).text
    assert "/api/web/messages" in script and "localStorage" in script
    assert "geolocation" in script and "message_id" in script
    assert (await http.get("/extra")).text == "extra"


async def test_health(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True, "nlu": "fallback"})


async def test_a_message_round_trips_with_buttons(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    response = await http.post("/api/web/messages", json=body("chào bạn"))
    assert response.status_code == 200
    assert response.json() == [
        {
            "text": "Chào anh/chị! Anh/chị cần gì ạ?",
            "buttons": [
                {"label": "Hỏi thủ tục", "data": "intent:ask_procedure"},
                {"label": "Gửi phản ánh", "data": "intent:report"},
            ],
            "image_url": None,
        }
    ]
    session = chat_id_of(http.cookies[SESSION_COOKIE])  # the server started the session
    (message,) = conversation.messages
    assert session is not None and session.startswith("w-")
    assert (message.channel, message.chat_id, message.user_id) == ("web", session, session)
    assert (message.text, message.button, message.message_id) == (
        "chào bạn",
        None,
        f"{session}/m-1",
    )


async def test_a_button_round_trips(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    response = await http.post(
        "/api/web/messages", json=body("Gửi phản ánh", button="intent:report")
    )
    assert response.status_code == 200
    assert response.json()[0]["text"] == "Đã chọn: intent:report"
    assert conversation.messages[0].button == "intent:report"
    assert conversation.messages[0].text == "Gửi phản ánh"


async def test_a_location_round_trips(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    response = await http.post(
        "/api/web/messages", json=body(location={"lat": 21.0278, "lon": 105.8342})
    )
    assert response.status_code == 200
    first, second = response.json()
    assert first["text"] == "Vị trí 21.0278, 105.8342"
    assert second == {"text": "Bản đồ", "buttons": [], "image_url": "https://example.org/map.png"}
    assert conversation.messages[0].location == GeoPoint(21.0278, 105.8342)


async def test_a_retried_message_id_is_handled_once(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    first = await http.post("/api/web/messages", json=body("chào", message_id="retry-1"))
    again = await http.post("/api/web/messages", json=body("chào", message_id="retry-1"))
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(conversation.messages) == 1
    http.cookies.clear()  # another session
    assert (
        await http.post("/api/web/messages", json=body("chào", message_id="retry-1"))
    ).status_code == 200
    assert len(conversation.messages) == 2  # ids are per session


async def test_a_retry_during_handling_waits_for_the_first(
    conversation: EchoConversation,
) -> None:
    conversation.delay = 0.2
    transport = httpx.ASGITransport(app=create_app(conversation))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        await http.get("/")  # the session, before the retries
        posts = [http.post("/api/web/messages", json=body("chào", message_id="x")) for _ in "123"]
        responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len({json.dumps(r.json()) for r in responses}) == 1
    assert len(conversation.messages) == 1


async def test_a_failure_is_not_remembered(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    conversation.fail_next = True
    failed = await http.post("/api/web/messages", json=body("chào", message_id="f-1"))
    assert failed.status_code == 500
    assert "thử lại" in failed.json()["message"]
    retried = await http.post("/api/web/messages", json=body("chào", message_id="f-1"))
    assert retried.status_code == 200 and len(conversation.messages) == 2


async def test_too_long_text_is_refused_politely(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    too_long = await http.post("/api/web/messages", json=body("ạ" * 10_001))
    assert too_long.status_code == 413
    assert too_long.json()["error"] == "text_too_long"
    assert "10.000 ký tự" in too_long.json()["message"]
    assert conversation.messages == []
    longest = await http.post("/api/web/messages", json=body("a" * 10_000, message_id="m-2"))
    assert longest.status_code == 200
    huge = await http.post("/api/web/messages", content=b'{"text": "' + b"a" * 300_000 + b'"}')
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"


async def test_bad_json_and_bad_fields_are_400(
    http: httpx.AsyncClient, conversation: EchoConversation
) -> None:
    bad = await http.post("/api/web/messages", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_json"
    payloads: list[object] = [
        [],
        body(""),
        body("   "),
        body(123),  # type: ignore[arg-type]
        body(button=7),
        body(location={"lat": 91, "lon": 105}),
        body(location={"lat": True, "lon": 105}),
        body(location="Hà Nội"),
        body("chào", message_id="id có dấu cách"),
    ]
    for payload in payloads:
        response = await http.post("/api/web/messages", json=payload)
        assert response.status_code == 400, payload
        assert response.json()["error"] == "bad_request" and response.json()["message"]
    assert conversation.messages == []
    assert (await http.get("/api/web/messages")).status_code == 405


def test_parse_message_and_output() -> None:
    message = parse_message({"session_id": "other", "text": "chào"}, session_id="s")
    assert message.chat_id == "s" and message.message_id.startswith(
        "s/"
    )  # no client id: one is made up
    output = WebOutput()
    asyncio.run(output.send("s", MENU))
    assert output.as_json() == [reply_to_json(MENU)]
