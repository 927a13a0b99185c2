"""Proof of the fix (issue 19), through the officials' chat desk on both databases: photos of
a result sent on Telegram are fetched (from the fake Bot API), kept and attached to the
resolution; a category configured to need proof is politely refused without a photo (the
note is kept); the citizen gets the photos on Telegram, by URL on Zalo, as a link and an image
in the web chat; the public address serves only proof photos."""

from __future__ import annotations

import html
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_telegram import FakeTelegram
from PIL import Image
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.testclient import TestClient
from telegram import Bot
from test_dashboard import NoConversation, csrf_of, sign_in
from test_officials import outbox_replies

from bot.channels.telegram import TelegramOutput, file_base_url
from bot.channels.web_photos import store_photo
from bot.config import settings
from bot.conversation.messages import Attachment as IncomingAttachment
from bot.conversation.messages import IncomingMessage, Reply
from bot.conversation.texts import say
from bot.officials.desk import Desk
from bot.outbox.worker import OutboxWorker
from bot.tickets import workflow
from bot.web.app import create_app
from storage.models import (
    Attachment,
    Channel,
    OfficialRole,
    Ticket,
    TicketStatus,
)
from storage.models import Official as OfficialRow

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội
HANDLER, CITIZEN = "7100001", "7200001"


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def proof_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Waste needs a photo of the result; uploads in a folder of this test; links to a
    public address."""
    monkeypatch.setattr(settings, "proof_required", ("waste",))
    monkeypatch.setattr(settings, "upload_dir", tmp_path / "uploads")
    monkeypatch.setattr(settings, "dashboard_url", "https://civicbot.example")


@pytest.fixture
def world(engine: Engine) -> Iterator[dict[str, str]]:
    """ward-a's handler on Telegram; a waste ticket from a citizen on each channel."""
    with Session(engine) as session:
        two_wards_and_city(session)
        linked_official(session, "ward-a", HANDLER, OfficialRole.handler, now=NOW)
        codes = {}
        for channel, chat in (
            (Channel.telegram, CITIZEN),
            (Channel.zalo, "citizen-zalo"),
            (Channel.web, "w-" + "a" * 40),
        ):
            ticket = waste_ticket(session, "ward-a", now=NOW, chat=chat)
            ticket.channel = channel
            session.add(ticket)
            codes[channel.value] = ticket.code
        codes["traffic"] = waste_ticket(session, "ward-a", now=NOW, category="traffic").code
        session.commit()
    yield codes


class Official:
    """ward-a's handler talking to the desk through the fake Bot API."""

    def __init__(self, engine: Engine, desk: Desk, output: TelegramOutput) -> None:
        self.engine, self.desk, self.output, self.count = engine, desk, output, 0

    async def send(
        self, text: str = "", *, button: str | None = None, photo: str | None = None
    ) -> None:
        self.count += 1
        attachments = (IncomingAttachment(photo, "photo", "image/jpeg"),) if photo else ()
        message = IncomingMessage(
            channel="telegram",
            chat_id=HANDLER,
            user_id=HANDLER,
            message_id=f"m{self.count}",
            text=text,
            button=button,
            attachments=attachments,
        )
        await self.desk.handle(message, self.output)


@asynccontextmanager
async def telegram_official(engine: Engine) -> AsyncIterator[tuple[Official, FakeTelegram]]:
    with FakeTelegram() as fake:
        bot = Bot(fake.token, base_url=fake.base_url, base_file_url=file_base_url(fake.base_url))
        async with bot:
            desk = Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]
            yield Official(engine, desk, TelegramOutput(bot)), fake


def to(engine: Engine, recipient: str) -> list[Reply]:
    with Session(engine) as session:
        return outbox_replies(session, recipient)


def ticket_of(engine: Engine, code: str) -> tuple[Ticket, list[Attachment]]:
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
        proof = session.exec(
            select(Attachment)
            .where(Attachment.ticket_id == ticket.id, Attachment.kind == "proof")
            .order_by(col(Attachment.id))
        ).all()
        return ticket, list(proof)


def handler_texts(fake: FakeTelegram) -> list[str]:
    return [str(m.get("text") or m.get("caption") or "") for m in fake.bot_messages(int(HANDLER))]


async def test_a_result_needs_a_photo_and_the_telegram_citizen_gets_it(
    engine: Engine,
    world: dict[str, str],
) -> None:
    async with telegram_official(engine) as (official, fake):
        code = world["telegram"]
        await official.send(button=f"t:res:{code}")
        assert "cần ảnh chụp kết quả" in handler_texts(fake)[-1]
        # A note alone is politely refused, and kept.
        await official.send("Đã thu gom hết rác, lắp biển cấm đổ rác.")
        refusal = handler_texts(fake)[-1]
        assert refusal.startswith(
            say("utter_official_proof_required", code=code, category="Rác thải, vệ sinh môi trường")
        )
        assert say("utter_official_proof_note_kept") in refusal
        assert ticket_of(engine, code)[0].status == TicketStatus.received
        # The photo comes: fetched from Telegram, kept here, and the ticket is resolved with it.
        file_id = fake.add_file(jpeg((20, 160, 60)), "photos", "jpg")
        await official.send(photo=file_id)
        ticket, proof = ticket_of(engine, code)
        assert ticket.status == TicketStatus.resolved
        assert [(p.channel, p.file_id[:4]) for p in proof] == [(Channel.web, "web:")]
        stored = settings.upload_dir / f"{proof[0].file_id[4:]}.jpg"
        assert stored.is_file() and stored.read_bytes().startswith(b"\xff\xd8")
        [notice] = to(engine, CITIZEN)
        assert "Đã thu gom hết rác" in notice.text
        link = f"https://civicbot.example/anh-ket-qua/{proof[0].file_id[4:]}.jpg"
        assert link in notice.text
        assert [f.kind for f in notice.files] == ["photo"] and notice.files[0].content  # uploaded
        assert "đã báo kết quả giải quyết" in handler_texts(fake)[-1]
        # Delivered to the citizen's Telegram chat: the photo, then the text with the buttons.
        await OutboxWorker({Channel.telegram: official.output}, engine=engine).run_once()
        sent = fake.bot_messages(int(CITIZEN))
        assert [bool(m.get("photo")) for m in sent] == [True, False]
        assert "Đã thu gom hết rác" in sent[-1]["text"]


async def test_photos_first_then_the_note_on_any_channel(
    engine: Engine,
    world: dict[str, str],
) -> None:
    async with telegram_official(engine) as (official, fake):
        for channel in ("zalo", "web"):
            code = world[channel]
            await official.send(button=f"t:res:{code}")
            for colour in ((200, 30, 30), (30, 30, 200)):
                await official.send(photo=fake.add_file(jpeg(colour), "photos", "jpg"))
            assert handler_texts(fake)[-1].startswith("Đã nhận 2 ảnh kết quả")
            assert ticket_of(engine, code)[0].status == TicketStatus.received
            await official.send("Đã dọn sạch.")
            ticket, proof = ticket_of(engine, code)
            assert ticket.status == TicketStatus.resolved and len(proof) == 2
            links = [f"https://civicbot.example/anh-ket-qua/{p.file_id[4:]}.jpg" for p in proof]
            [notice] = to(engine, f"citizen-{channel}" if channel == "zalo" else "w-" + "a" * 40)
            assert all(link in notice.text for link in links)
            if channel == "zalo":  # Zalo fetches photos by URL
                assert [f.file_id for f in notice.files] == links
            else:  # the web chat shows the first photo and the links
                assert notice.image_url == links[0] and notice.files == ()
        # A category that needs no proof is resolved with a note alone, as before.
        await official.send(button=f"t:res:{world['traffic']}")
        assert handler_texts(fake)[-1] == say(
            "utter_official_ask_resolution", code=world["traffic"]
        )
        await official.send("Đã điều tiết giao thông.")
        assert ticket_of(engine, world["traffic"])[0].status == TicketStatus.resolved


def test_the_workflow_refuses_without_proof_and_keeps_photos_of_other_channels(
    engine: Engine, world: dict[str, str]
) -> None:
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == world["telegram"])).one()
        official = linked_official(session, "ward-a", "7100009", OfficialRole.handler, now=NOW)
        with pytest.raises(workflow.ProofRequired):
            workflow.resolve(
                session=session, ticket=ticket, official=official, note="Xong", now=NOW
            )
        zalo_photo = "https://photo.zalo.example/result.jpg"
        workflow.resolve(
            session=session,
            ticket=ticket,
            official=official,
            note="Xong",
            now=NOW,
            photos=[workflow.OutgoingFile("photo", file_id=zalo_photo, channel="zalo")],
        )
    ticket_now, proof = ticket_of(engine, world["telegram"])
    assert ticket_now.status == TicketStatus.resolved
    assert [(p.channel, p.file_id) for p in proof] == [(Channel.zalo, zalo_photo)]
    [notice] = to(engine, CITIZEN)
    assert zalo_photo in notice.text and [f.file_id for f in notice.files] == [zalo_photo]


def test_the_public_address_serves_proof_photos_only(engine: Engine, world: dict[str, str]) -> None:
    proof_id = store_photo(jpeg((10, 10, 10)), settings.upload_dir)
    citizens_id = store_photo(jpeg((250, 250, 250)), settings.upload_dir)  # a citizen's
    with Session(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.code == world["web"])).one()
        assert ticket.id is not None
        for file_id, kind in ((proof_id, "proof"), (citizens_id, "photo")):
            session.add(
                Attachment(ticket_id=ticket.id, channel=Channel.web, file_id=file_id, kind=kind)
            )
        session.commit()
    with TestClient(create_app(NoConversation(), engine=engine)) as client:
        shown = client.get(f"/anh-ket-qua/{proof_id[4:]}.jpg")
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        assert shown.content == (settings.upload_dir / f"{proof_id[4:]}.jpg").read_bytes()
        for name in (
            f"{citizens_id[4:]}.jpg",  # a citizen's photo: never here
            f"{proof_id[4:]}",
            f"{proof_id[4:].upper()}.jpg",
            "..%2F..%2Fcivicbot.db",
            "x" * 500,
        ):
            assert client.get(f"/anh-ket-qua/{name}").status_code == 404


# --- The dashboard's form ----------------------------------------------------------------------


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (40, 30), (0, 120, 255, 128)).save(out, "PNG")
    return out.getvalue()


def test_the_dashboard_resolves_with_uploaded_photos(engine: Engine, world: dict[str, str]) -> None:
    with Session(engine, expire_on_commit=False) as session:
        handler = session.exec(select(OfficialRow).where(OfficialRow.chat_id == HANDLER)).one()
    code = world["telegram"]
    path = f"/dashboard/tickets/{code}"
    with TestClient(create_app(NoConversation(), engine=engine), follow_redirects=False) as client:
        sign_in(client, engine, handler)
        page = client.get(path).text
        assert 'enctype="multipart/form-data"' in page
        assert "Ảnh kết quả (bắt buộc với lĩnh vực này)" in page
        token = csrf_of(client, path)

        def resolve(files: list[tuple[str, tuple[str, bytes, str]]]) -> str:
            answer = client.post(
                f"{path}/resolve", data={"csrf": token, "note": "Đã dọn sạch."}, files=files
            )
            assert answer.status_code == 303, answer.text
            return html.unescape(client.get(answer.headers["location"]).text)

        # No photo (the browser sends an empty file part): the form says why, nothing changes.
        shown = resolve([("photos", ("", b"", "application/octet-stream"))])
        refusal = say(
            "utter_official_proof_required", code=code, category="Rác thải, vệ sinh môi trường"
        )
        assert refusal in shown
        assert "Tệp này không phải ảnh" in resolve(
            [("photos", ("a.jpg", b"GIF89a...", "image/jpeg"))]
        )
        assert ticket_of(engine, code)[0].status == TicketStatus.received
        # Two photos: resolved, both kept, the citizen gets their links, the page shows them.
        shown = resolve(
            [
                ("photos", ("a.jpg", jpeg((0, 200, 0)), "image/jpeg")),
                ("photos", ("b.png", png(), "image/png")),
            ]
        )
        assert "Đã báo kết quả giải quyết phản ánh" in shown
        ticket, proof = ticket_of(engine, code)
        assert ticket.status == TicketStatus.resolved
        assert [p.file_id[:4] for p in proof] == ["web:", "web:"]
        [notice] = to(engine, CITIZEN)
        for p in proof:
            assert f"https://civicbot.example/anh-ket-qua/{p.file_id[4:]}.jpg" in notice.text
            assert f'src="/anh-ket-qua/{p.file_id[4:]}.jpg"' in shown
            photo = client.get(f"/anh-ket-qua/{p.file_id[4:]}.jpg")
            assert photo.status_code == 200 and photo.content.startswith(b"\xff\xd8")
        # Too many files or too large a body: refused as a bad form, nothing stored.
        other = world["zalo"]
        answer = client.post(
            f"/dashboard/tickets/{other}/resolve",
            data={"csrf": token, "note": "x"},
            files=[("photos", (f"{i}.jpg", jpeg((i, i, i)), "image/jpeg")) for i in range(11)],
        )
        assert answer.status_code == 403
        assert ticket_of(engine, other)[0].status == TicketStatus.received
