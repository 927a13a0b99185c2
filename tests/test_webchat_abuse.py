"""The web chat against an attacker: floods, fresh sessions, guessed ids, hostile uploads.

Through httpx's ASGI transport and the real app, with small limits in `Settings`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient
from test_daily_caps import KeywordNlu
from test_dashboard import sign_in

from bot.channels.web import SESSION_COOKIE, chat_id_of
from bot.channels.web_limits import WebLimits
from bot.channels.web_photos import clean_photo, portable, store_photo
from bot.config import Settings, settings
from bot.conversation.engine import Conversation
from bot.conversation.messages import IncomingMessage, OutgoingFile, OutputChannel, Reply
from bot.tickets import workflow
from bot.tickets.intake import new_ticket_notice
from bot.tickets.notices import for_channel
from bot.web.app import create_app
from storage import queries
from storage.models import Attachment as AttachmentRow
from storage.models import AttachmentCreate, Channel, OfficialRole, Ticket


class Recorder:
    """Answers every message with one line; keeps what it got."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        self.messages.append(message)
        photos = [a for a in message.attachments if a.kind == "photo"]
        await output.send(message.chat_id, Reply(f"Đã nhận {len(photos)} ảnh" if photos else "Dạ"))


def settings_for(tmp_path: Path, **limits: object) -> Settings:
    return Settings(upload_dir=tmp_path / "uploads", **limits)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def client_of(app: object, address: str = "203.0.113.7", https: bool = False) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))  # type: ignore[arg-type]
    base = "https://chat.example.vn" if https else "http://127.0.0.1"
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def http(recorder: Recorder, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(create_app(recorder, settings=settings_for(tmp_path))) as client:
        yield client


def jpeg(width: int = 2400, height: int = 1800, exif: bool = True) -> bytes:
    image = Image.new("RGB", (width, height), (200, 40, 40))
    out = io.BytesIO()
    info = Image.Exif()
    if exif:
        info[0x010F] = "Camera maker"
        info[0x8825] = {2: (21.0, 1.0, 39.0)}  # GPS latitude: where the citizen lives
    image.save(out, "JPEG", exif=info.tobytes())
    return out.getvalue()


# --- The session: issued by the server, never chosen by the browser --------------------------


async def test_the_page_gets_an_httponly_session_cookie(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax", f"max-age={180 * 86400}"} <= attributes
    assert "secure" not in attributes  # plain HTTP on loopback
    token = http.cookies[SESSION_COOKIE]
    assert chat_id_of(token) is not None and token not in (chat_id_of(token) or "")
    again = await http.get("/")  # the cookie is kept
    assert "set-cookie" not in again.headers


async def test_over_https_the_cookie_is_secure(recorder: Recorder, tmp_path: Path) -> None:
    app = create_app(recorder, settings=settings_for(tmp_path))
    async with client_of(app, https=True) as client:
        cookie = (await client.get("/")).headers["set-cookie"].lower()
    assert "; secure" in cookie


async def test_a_session_id_in_the_body_or_a_guessed_cookie_is_not_trusted(
    recorder: Recorder, tmp_path: Path
) -> None:
    app = create_app(recorder, settings=settings_for(tmp_path))
    async with client_of(app) as victim:
        await victim.post("/api/web/messages", json={"text": "Tôi ở số 5 Tràng Tiền"})
    victim_chat = recorder.messages[0].chat_id
    for cookies in ({}, {SESSION_COOKIE: victim_chat}, {SESSION_COOKIE: "x" * 43}):
        async with client_of(app, address="198.51.100.9") as attacker:
            attacker.cookies.update(cookies)
            body = {"session_id": victim_chat, "message_id": "m-1", "text": "Tôi là nạn nhân"}
            response = await attacker.post("/api/web/messages", json=body)
            assert response.status_code == 200
            assert recorder.messages[-1].chat_id != victim_chat
            # A made-up token is a session of its own (the hash of it), never the victim's.
            token = response.cookies.get(SESSION_COOKIE) or cookies[SESSION_COOKIE]
            assert chat_id_of(token) == recorder.messages[-1].chat_id
    assert len({m.chat_id for m in recorder.messages}) == 4


async def test_a_new_conversation_gets_a_new_session(http: httpx.AsyncClient) -> None:
    await http.get("/")
    first = http.cookies[SESSION_COOKIE]
    response = await http.post("/api/web/session")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert http.cookies[SESSION_COOKIE] != first


# --- Floods ----------------------------------------------------------------------------------


async def test_a_flood_from_one_session_is_cut_politely(
    http: httpx.AsyncClient, recorder: Recorder
) -> None:
    """400 messages at once (issue 12: all were accepted): 8 per 10 s pass, the rest 429."""
    await http.get("/")
    posts = [
        http.post("/api/web/messages", json={"message_id": f"f-{i}", "text": "phản ánh"})
        for i in range(400)
    ]
    responses = await asyncio.gather(*posts)
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 8 and statuses.count(429) == 392
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"] == "rate_limited"
    assert "Anh/chị gửi tin nhắn hơi nhanh" in refused.json()["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.json()["retry_after"] == int(refused.headers["retry-after"])
    assert len(recorder.messages) == 8  # refused messages never reach the conversation


async def test_the_limit_lets_a_patient_citizen_through_again(
    recorder: Recorder, tmp_path: Path
) -> None:
    app = create_app(
        recorder, settings=settings_for(tmp_path, web_messages_per_session="2 per 1 second")
    )
    async with client_of(app) as http:
        send = [http.post("/api/web/messages", json={"text": "chào"}) for _ in range(3)]
        assert [r.status_code for r in await asyncio.gather(*send)].count(429) == 1
        await asyncio.sleep(1.1)
        assert (await http.post("/api/web/messages", json={"text": "chào"})).status_code == 200


async def test_fresh_sessions_do_not_get_round_the_limits(
    recorder: Recorder, tmp_path: Path
) -> None:
    """An attacker who drops the cookie each time is counted per address."""
    app = create_app(
        recorder, settings=settings_for(tmp_path, web_sessions_per_client="5 per hour")
    )
    responses = []
    for _ in range(8):
        async with client_of(app) as attacker:  # no cookie: a new session each time
            responses.append(await attacker.post("/api/web/messages", json={"text": "spam"}))
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert "quá nhiều cuộc trò chuyện mới" in responses[-1].json()["message"]
    async with client_of(app, address="192.0.2.44") as neighbour:  # another address: served
        assert (await neighbour.post("/api/web/messages", json={"text": "chào"})).status_code == 200


async def test_one_address_is_limited_across_its_sessions(
    recorder: Recorder, tmp_path: Path
) -> None:
    app = create_app(
        recorder, settings=settings_for(tmp_path, web_messages_per_client="10 per minute")
    )
    statuses = []
    for _ in range(5):
        async with client_of(app) as http:
            for _ in range(3):
                statuses.append(
                    (await http.post("/api/web/messages", json={"text": "a"})).status_code
                )
    assert statuses.count(200) == 10 and statuses.count(429) == 5


async def test_polling_has_its_own_budget(
    recorder: Recorder, tmp_path: Path, engine: Engine
) -> None:
    limited = settings_for(tmp_path, web_updates_per_session="5 per minute")
    app = create_app(recorder, settings=limited, engine=engine)
    async with client_of(app) as http:
        polls = [(await http.get("/api/updates")).status_code for _ in range(7)]
        assert polls == [200] * 5 + [429] * 2
        assert (await http.post("/api/web/messages", json={"text": "chào"})).status_code == 200


def test_limits_count_nothing_for_a_refused_request() -> None:
    limits = WebLimits(
        {("messages", "client"): "3 per minute", ("messages", "session"): "1 per minute"}
    )
    assert limits.hit("messages", client="a", session="s1") is None
    refused = limits.hit("messages", client="a", session="s1")
    assert refused is not None and refused.whom == "session"
    assert limits.hit("messages", client="a", session="s2") is None  # the refusal cost nothing
    assert limits.hit("messages", client="a", session="s3") is None
    over = limits.hit("messages", client="a", session="s4")
    assert over is not None and over.whom == "client" and 1 <= over.retry_after <= 60


# --- Photos ----------------------------------------------------------------------------------


async def test_a_photo_is_cleaned_stored_and_reaches_the_conversation(
    http: httpx.AsyncClient, recorder: Recorder, tmp_path: Path
) -> None:
    headers = {"Content-Type": "image/jpeg", "X-Message-Id": "p-1"}
    response = await http.post("/api/web/photos", content=jpeg(), headers=headers)
    assert response.status_code == 200 and response.json()[0]["text"] == "Đã nhận 1 ảnh"
    (message,) = recorder.messages
    (photo,) = message.attachments
    assert (photo.kind, photo.mime_type) == ("photo", "image/jpeg")
    assert photo.file_id.startswith("web:") and message.message_id.endswith("/p-1")
    (stored,) = (tmp_path / "uploads").iterdir()
    assert stored.name == photo.file_id.removeprefix("web:") + ".jpg"
    with Image.open(stored) as image:
        assert image.format == "JPEG" and max(image.size) == 1600  # shrunk from 2400
        assert not image.getexif()  # no GPS position, no camera
    again = await http.post("/api/web/photos", content=jpeg(), headers=headers)
    assert again.json() == response.json() and len(recorder.messages) == 1  # a retry: once


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"GIF89a not what we take", 415),
        (b"%PDF-1.7 a document", 415),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 415),
        (jpeg(exif=False)[:400], 415),  # cut off: a JPEG's first bytes only
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 415),
        (b"", 415),
    ],
    ids=["gif", "pdf", "svg", "truncated-jpeg", "broken-png", "empty"],
)
async def test_what_is_not_a_photo_is_refused(
    http: httpx.AsyncClient, recorder: Recorder, tmp_path: Path, content: bytes, status: int
) -> None:
    response = await http.post(
        "/api/web/photos", content=content, headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == status
    assert "JPEG, PNG hoặc WebP" in response.json()["message"]
    assert recorder.messages == [] and not (tmp_path / "uploads").exists()


async def test_too_large_photos_are_refused(recorder: Recorder, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, web_photo_max_bytes=200_000)
    async with client_of(create_app(recorder, settings=settings)) as http:
        big = await http.post("/api/web/photos", content=b"\xff\xd8\xff" + b"\x00" * 200_000)
        assert big.status_code == 413 and "Ảnh lớn quá" in big.json()["message"]
        bomb = io.BytesIO()  # 80 megapixels of one colour: a few kilobytes, gigabytes decoded
        Image.new("1", (10_000, 8_000)).save(bomb, "PNG")
        refused = await http.post("/api/web/photos", content=bomb.getvalue())
        assert refused.status_code == 413 and "kích thước quá lớn" in refused.json()["message"]
    assert recorder.messages == []


async def test_a_photo_flood_is_limited(recorder: Recorder, tmp_path: Path) -> None:
    app = create_app(
        recorder, settings=settings_for(tmp_path, web_photos_per_session="3 per minute")
    )
    photo = jpeg(320, 240)
    async with client_of(app) as http:
        statuses = [
            (await http.post("/api/web/photos", content=photo)).status_code for _ in range(5)
        ]
        refused = await http.post("/api/web/photos", content=photo)
    assert statuses == [200, 200, 200, 429, 429]
    assert "nhiều ảnh" in refused.json()["message"]


def test_a_png_with_transparency_becomes_a_jpeg_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    cleaned = clean_photo(out.getvalue())
    with Image.open(io.BytesIO(cleaned)) as result:
        assert (result.format, result.size, result.getpixel((5, 5))) == (
            "JPEG",
            (40, 30),
            (255, 255, 255),
        )


def test_web_photos_travel_to_officials_as_content(tmp_path: Path) -> None:
    file_id = store_photo(clean_photo(jpeg(320, 240)), tmp_path)
    sent = portable(OutgoingFile("photo", file_id=file_id, channel="web"), tmp_path)
    assert sent.content is not None and sent.content.startswith(b"\xff\xd8\xff")
    assert sent.sendable_on("telegram") and sent.mime_type == "image/jpeg"
    telegram = OutgoingFile("photo", file_id="AgACAg", channel="telegram")
    assert portable(telegram, tmp_path) is telegram
    missing = OutgoingFile("photo", file_id="web:" + "0" * 64, channel="web")
    assert portable(missing, tmp_path) is missing  # named in the notice, not shown


# --- A whole complaint with a photo, through the real dialogue -------------------------------


async def test_a_complaint_with_a_web_photo_reaches_the_officials_notice(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = settings_for(tmp_path)
    monkeypatch.setattr(settings, "upload_dir", limited.upload_dir)
    app = create_app(Conversation(nlu=KeywordNlu(), engine=engine), settings=limited, engine=engine)
    async with client_of(app) as http:
        last: list[dict[str, Any]] = []

        async def say(**fields: object) -> list[dict[str, Any]]:
            nonlocal last
            response = await http.post("/api/web/messages", json=fields)
            assert response.status_code == 200, response.text
            last = response.json()
            return last

        async def press(label: str) -> list[dict[str, Any]]:
            data = next(b["data"] for r in last for b in r["buttons"] if b["label"] == label)
            return await say(text=label, button=data)

        replies = await say(text="Via he pho Hue, phuong Hai Ba Trung bi quan nuoc lan chiem het")
        assert "ảnh" in replies[-1]["text"]
        photo = await http.post("/api/web/photos", content=jpeg(), headers={"X-Message-Id": "p1"})
        assert photo.status_code == 200
        last = photo.json()
        assert "1" in last[-1]["text"]  # the photo counted
        await press("Xong")
        summary = await press("Gửi ẩn danh")
        assert "Ảnh: 1" in summary[-1]["text"]
        filed = await press("Gửi phản ánh")
        assert "Mã phản ánh: PA-" in filed[-1]["text"]

    with Session(engine) as session:
        (ticket,) = session.exec(select(Ticket)).all()
        (photo_row,) = session.exec(select(AttachmentRow)).all()
        assert photo_row.channel == Channel.web and photo_row.file_id.startswith("web:")
        notice = new_ticket_notice(ticket, workflow.photos_of(session, ticket))
    (sent,) = for_channel(notice, Channel.telegram).files  # what a Telegram official gets
    assert sent.content is not None and sent.content.startswith(b"\xff\xd8\xff")


# --- Officials see a web photo on the dashboard, only for tickets they may see ----------------


def test_the_dashboard_shows_web_photos_to_the_tickets_readers(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "upload_dir", tmp_path)
    cleaned = clean_photo(jpeg(800, 600))
    with Session(engine, expire_on_commit=False) as session:
        two_wards_and_city(session)
        now = datetime.now(UTC)
        handler = linked_official(session, "ward-a", "chat-a", OfficialRole.handler, now=now)
        other = linked_official(session, "ward-b", "chat-b", OfficialRole.handler, now=now)
        ticket = waste_ticket(session, "ward-a", now=now)
        assert ticket.id is not None
        for channel, file_id in (
            (Channel.telegram, "AgACTelegramFileId"),  # Telegram's: not kept here
            (Channel.web, store_photo(cleaned, tmp_path)),
        ):
            queries.add_attachment(
                session=session,
                attachment_in=AttachmentCreate(
                    ticket_id=ticket.id, channel=channel, file_id=file_id, kind="photo"
                ),
            )
    photo_url = f"/dashboard/tickets/{ticket.code}/photos/1"
    app = create_app(Recorder(), engine=engine)
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(photo_url).status_code == 303  # signed out: to the sign-in page
        sign_in(client, engine, handler)
        page = client.get(f"/dashboard/tickets/{ticket.code}").text
        assert "2 ảnh" in page and f'<img src="{photo_url}"' in page
        assert page.count("<img ") == 1  # the Telegram photo is counted, not shown
        shown = client.get(photo_url)
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        assert shown.content == cleaned
        for missing in ("photos/0", "photos/2", "photos/-1"):
            assert client.get(f"/dashboard/tickets/{ticket.code}/{missing}").status_code == 404
    with TestClient(app, follow_redirects=False) as client:
        sign_in(client, engine, other)  # another ward's handler
        assert client.get(photo_url).status_code == 404
