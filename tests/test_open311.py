"""The Open311 GeoReport v2 API on both databases, through httpx's ASGI transport."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette

from bot.config import settings
from bot.conversation.messages import IncomingMessage, OutputChannel
from bot.conversation.texts import CATEGORY_NAMES
from bot.directory.store import ensure_directory
from bot.tickets.publish import add_public_note, set_public_summary
from bot.web.app import create_app
from bot.web.open311 import open311_routes
from bot.web.open311.answers import ward_point
from bot.web.open311.reading import NewRequestForm, api_key_actor, parse_w3c, resolve_place
from storage import queries
from storage.db import create_db_engine
from storage.models import (
    OPEN311_CLOSED,
    AttachmentCreate,
    Channel,
    Citizen,
    Official,
    OutboxMessage,
    Ticket,
    TicketCreate,
    TicketEventCreate,
    TicketStatus,
    TicketUpdate,
    Unit,
    UnitKind,
    utcnow,
)

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
KEY = "test-open311-key-5b1f"
# Personal data that must never leave through the API.
PHONE = "0987 654 321"
PHONE_DIGITS = "0987654321"
EMAIL = "bimat.nguoidan@example.vn"
CITIZEN_NAME = "Trần Thị Bí Mật"
CHAT_ID = "chat-secret-777"
OFFICIAL = "official:7:Lê Văn Cán Bộ"
SECRETS = (PHONE, PHONE_DIGITS, "987654321", "654 321", EMAIL, CITIZEN_NAME, CHAT_ID, "Lê Văn")


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=open311_routes(engine=engine, clock=lambda: NOW, api_keys=[KEY]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def units(session: Session) -> Official:
    """Two units, and a handler of the ward's (who may publish)."""
    session.add(
        Unit(id="ubnd-hoan-kiem", name="UBND phường Hoàn Kiếm", kind=UnitKind.ward,
             ward_code="00070")
    )  # fmt: skip
    session.add(Unit(id="cap-nuoc", name="Công ty Nước sạch Hà Nội", kind=UnitKind.company))
    handler = Official(name="Lê Văn Cán Bộ", unit_id="ubnd-hoan-kiem")
    session.add(handler)
    session.commit()
    return handler


def make_ticket(
    session: Session, *, at: datetime, status: TicketStatus | None = None, **fields: Any
) -> Ticket:
    """A ticket filed at `at` with personal data in it, then moved to `status` by an official."""
    values: dict[str, Any] = {
        "category": "sidewalk",
        "description": "Vỉa hè phố Tràng Tiền bị lấn chiếm",
        "location_text": "12 phố Tràng Tiền",
        "ward_code": "00070",
        "ward_name": "Phường Hoàn Kiếm",
        "latitude": 21.0245,
        "longitude": 105.8560,
        "contact_phone": PHONE_DIGITS,
        "lead_unit_id": "ubnd-hoan-kiem",
        "resolve_by": at + timedelta(days=5),
        "chat_id": CHAT_ID,
        "channel": Channel.telegram,
    }
    values.update(fields)
    ticket = queries.create_ticket(
        timezone=settings.timezone, session=session, ticket_in=TicketCreate(**values), now=at
    )
    if status is not None and status is not TicketStatus.received:
        queries.update_ticket(
            session=session, db_ticket=ticket, ticket_in=TicketUpdate(status=status),
            actor=OFFICIAL, note=f"Ghi chú: {status.value}", at=at + timedelta(hours=1),
        )  # fmt: skip
    return ticket


async def get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(f"/open311/v2/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def codes_of(items: list[dict[str, Any]]) -> list[str]:
    return [item["service_request_id"] for item in items]


def assert_error(response: httpx.Response, status: int) -> list[str]:
    """The spec's error format (JSON or XML) with `status`; the descriptions."""
    assert response.status_code == status, response.text
    if response.headers["content-type"] == "text/xml; charset=utf-8":
        root = ET.fromstring(response.content)
        assert root.tag == "errors" and all(error.tag == "error" for error in root)
        body: Any = [{item.tag: item.text for item in error} for error in root]
        body = [{**item, "code": int(item["code"])} for item in body]
    else:
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        body = response.json()
    assert isinstance(body, list) and body
    assert all(set(item) == {"code", "description"} and item["code"] == status for item in body)
    assert all(isinstance(item["description"], str) and item["description"] for item in body)
    return [item["description"] for item in body]


# --- Services --------------------------------------------------------------------------------


async def test_services_are_the_complaint_categories(client: httpx.AsyncClient) -> None:
    services = await get(client, "services.json")
    assert [s["service_code"] for s in services] == list(CATEGORY_NAMES)
    for service in services:
        assert service["service_name"] == CATEGORY_NAMES[service["service_code"]]
        assert service["metadata"] is False
        assert service["type"] == "realtime"
        assert service["description"] and service["group"] and service["keywords"]


async def test_one_service_and_an_unknown_one(client: httpx.AsyncClient) -> None:
    assert await get(client, "services/water.json") == {"service_code": "water", "attributes": []}
    assert_error(await client.get("/open311/v2/services/potholes.json"), 404)
    assert_error(await client.get("/open311/v2/nothing.xml"), 404)
    assert_error(await client.get("/open311/v2/services.csv"), 404)
    assert_error(await client.get("/open311/v2/services/potholes.xml"), 404)


@pytest.mark.usefixtures("units")
async def test_the_app_serves_the_api(engine: Engine, session: Session) -> None:
    class Silent:
        async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
            return None

    code = make_ticket(session, at=utcnow() - timedelta(days=1)).code
    transport = httpx.ASGITransport(app=create_app(Silent(), engine=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        services = await client.get("/open311/v2/services.json")
        found = await client.get("/open311/v2/requests.json")
    assert services.status_code == 200
    assert len(services.json()) == len(CATEGORY_NAMES)
    assert codes_of(found.json()) == [code]


# --- Reading requests ------------------------------------------------------------------------


@pytest.mark.usefixtures("units")
async def test_status_open_or_closed_for_every_ticket_status(
    client: httpx.AsyncClient, session: Session
) -> None:
    codes = {
        status: make_ticket(session, at=NOW - timedelta(days=1), status=status).code
        for status in TicketStatus
    }
    everything = await get(client, "requests.json")
    assert sorted(codes_of(everything)) == sorted(codes.values())
    status_of = {item["service_request_id"]: item["status"] for item in everything}
    for status, code in codes.items():
        assert status_of[code] == ("closed" if status in OPEN311_CLOSED else "open"), status
    closed = {codes[s] for s in (TicketStatus.resolved, TicketStatus.rejected, TicketStatus.closed)}
    assert set(codes_of(await get(client, "requests.json", status="closed"))) == closed
    assert set(codes_of(await get(client, "requests.json", status="open"))) == (
        set(codes.values()) - closed
    )
    assert len(await get(client, "requests.json", status="open,closed")) == len(TicketStatus)
    assert_error(await client.get("/open311/v2/requests.json", params={"status": "resolved"}), 400)


@pytest.mark.usefixtures("units")
async def test_filter_by_service_code(client: httpx.AsyncClient, session: Session) -> None:
    day = NOW - timedelta(days=2)
    waste = make_ticket(session, at=day, category="waste").code
    water = make_ticket(session, at=day, category="water", lead_unit_id="cap-nuoc").code
    make_ticket(session, at=day, category="sidewalk")
    uncategorized = make_ticket(session, at=day, category=None).code
    assert codes_of(await get(client, "requests.json", service_code="waste")) == [waste]
    found = await get(client, "requests.json", service_code="waste,water")
    assert sorted(codes_of(found)) == sorted([waste, water])
    by_code = {item["service_request_id"]: item for item in found}
    assert by_code[water]["agency_responsible"] == "Công ty Nước sạch Hà Nội"
    assert by_code[water]["service_name"] == CATEGORY_NAMES["water"]
    assert codes_of(await get(client, "requests.json", service_code="other")) == [uncategorized]
    assert_error(
        await client.get("/open311/v2/requests.json", params={"service_code": "graffiti"}), 400
    )


@pytest.mark.usefixtures("units")
async def test_complaints_about_officials_are_never_listed(
    client: httpx.AsyncClient, session: Session
) -> None:
    day = NOW - timedelta(days=2)
    public = make_ticket(session, at=day, category="waste").code
    hidden = make_ticket(session, at=day, category="misconduct").code
    assert codes_of(await get(client, "requests.json")) == [public]
    assert codes_of(await get(client, "requests.json", service_code="misconduct")) == []
    assert codes_of(await get(client, "requests.json", service_request_id=hidden)) == []
    assert_error(await client.get(f"/open311/v2/requests/{hidden}.json"), 404)


@pytest.mark.usefixtures("units")
async def test_dates_window_and_order(client: httpx.AsyncClient, session: Session) -> None:
    old = make_ticket(session, at=NOW - timedelta(days=100)).code
    month = make_ticket(session, at=NOW - timedelta(days=30)).code
    yesterday = make_ticket(session, at=NOW - timedelta(days=1)).code
    # Default: the last 90 days, newest first.
    assert codes_of(await get(client, "requests.json")) == [yesterday, month]
    # Local dates without an offset are read in Hà Nội time; with one, as given.
    assert codes_of(
        await get(client, "requests.json", start_date="2025-11-25", end_date="2026-02-09")
    ) == [month, old]
    start = (NOW - timedelta(days=2)).astimezone().isoformat()
    assert codes_of(await get(client, "requests.json", start_date=start)) == [yesterday]
    end = "2026-03-01T00:00:00+07:00"
    assert codes_of(await get(client, "requests.json", end_date=end)) == [month]
    # An unescaped "+" arrives as a space.
    raw = await client.get("/open311/v2/requests.json?end_date=2026-03-01T00:00:00+07:00")
    assert codes_of(raw.json()) == [month]
    too_long = {"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}
    assert_error(await client.get("/open311/v2/requests.json", params=too_long), 400)
    backwards = {"start_date": "2026-03-01", "end_date": "2026-02-01"}
    assert_error(await client.get("/open311/v2/requests.json", params=backwards), 400)
    assert_error(
        await client.get("/open311/v2/requests.json", params={"start_date": "hôm qua"}), 400
    )
    # Every bad argument is named at once, in the resource's format.
    wrong = {"start_date": "hôm qua", "status": "pending", "service_code": "graffiti"}
    descriptions = assert_error(await client.get("/open311/v2/requests.xml", params=wrong), 400)
    assert len(descriptions) == 3 and "start_date" in descriptions[2]
    # Ids override the other filters, even wrong ones.
    ids = {"service_request_id": f"{yesterday},{old}", "status": "pending"}
    assert codes_of(await get(client, "requests.json", **ids)) == [yesterday, old]


@pytest.mark.usefixtures("units")
async def test_id_lists_override_the_other_filters(
    client: httpx.AsyncClient, session: Session
) -> None:
    old = make_ticket(session, at=NOW - timedelta(days=200), status=TicketStatus.closed).code
    new = make_ticket(session, at=NOW - timedelta(days=1), category="waste").code
    make_ticket(session, at=NOW - timedelta(days=1))
    typed = new.lower().replace("-", "")
    found = await get(
        client, "requests.json", service_request_id=f"{old}, {typed},PA-2020-999999,rác",
        status="open", service_code="water",
    )  # fmt: skip
    assert sorted(codes_of(found)) == sorted([old, new])
    assert await get(client, "requests.json", service_request_id="rác, abc") == []


HOAN_KIEM_POINT = ward_point("00070")


async def test_one_request_with_the_spec_fields(
    client: httpx.AsyncClient, session: Session, units: Official
) -> None:
    filed = NOW - timedelta(days=3)
    ticket = make_ticket(session, at=filed)
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(status=TicketStatus.need_info),
        actor=OFFICIAL, note="Anh/chị cho biết số nhà cụ thể.", at=filed + timedelta(hours=2),
    )  # fmt: skip
    # Only notes an official marks public are status notes.
    [answered] = await get(client, f"requests/{ticket.code}.json")
    assert answered["status_notes"] is None
    assert answered["status"] == "open"
    add_public_note(
        session=session,
        ticket=ticket,
        official=units,
        now=filed + timedelta(hours=3),
        text="Phường đã cử tổ trật tự đến kiểm tra.",
    )
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(status=TicketStatus.rejected),
        actor=OFFICIAL, note="Vỉa hè này thuộc phường khác.", at=filed + timedelta(hours=4),
    )  # fmt: skip
    queries.add_ticket_event(
        session=session, ticket=ticket, at=filed + timedelta(hours=5),
        event_in=TicketEventCreate(kind="note", actor=OFFICIAL, note="Ghi chú nội bộ"),
    )  # fmt: skip
    assert ticket.id is not None
    # Channel file ids, even one that looks like a URL, are not media URLs.
    for file_id in ("AgACAgUAAx-telegram", "https://img.example/a.jpg"):
        queries.add_attachment(
            session=session,
            attachment_in=AttachmentCreate(
                ticket_id=ticket.id, channel=Channel.telegram, file_id=file_id, kind="photo",
            ),
        )  # fmt: skip
    queries.add_attachment(
        session=session,
        attachment_in=AttachmentCreate(
            ticket_id=ticket.id, channel=Channel.web, file_id="https://img.example/b.jpg",
            kind="photo", meta={"url": "https://img.example/b.jpg"},
        ),
    )  # fmt: skip
    session.refresh(ticket)

    typed = ticket.code.lower().replace("-", "")
    [item] = await get(client, f"requests/{typed}.json")
    assert HOAN_KIEM_POINT is not None and HOAN_KIEM_POINT != (21.0245, 105.8560)
    assert item == {
        "service_request_id": ticket.code,
        "status": "closed",
        "status_notes": "Phường đã cử tổ trật tự đến kiểm tra.",
        "service_name": CATEGORY_NAMES["sidewalk"],
        "service_code": "sidewalk",
        # No summary yet: the category and the ward, not the citizen's words.
        "description": f"{CATEGORY_NAMES['sidewalk']} — Phường Hoàn Kiếm",
        "agency_responsible": "UBND phường Hoàn Kiếm",
        "service_notice": None,
        "requested_datetime": "2026-03-07T10:00:00+07:00",
        "updated_datetime": "2026-03-07T15:00:00+07:00",
        "expected_datetime": "2026-03-12T10:00:00+07:00",
        "address": "Phường Hoàn Kiếm",  # the ward, not "12 phố Tràng Tiền"
        "address_id": None,
        "zipcode": None,
        "lat": HOAN_KIEM_POINT[0],  # the ward's reference point, not the pin
        "long": HOAN_KIEM_POINT[1],
        "media_url": "https://img.example/b.jpg",
    }
    assert await get(client, "requests.json") == [item]
    assert_error(await client.get("/open311/v2/requests/PA-2026-999999.json"), 404)
    assert_error(await client.get("/open311/v2/requests/abc.json"), 404)

    set_public_summary(
        session=session,
        ticket=ticket,
        official=units,
        now=NOW,
        text="Quán nước lấn chiếm vỉa hè phố Tràng Tiền; phường đã nhắc nhở.",
    )
    [summarised] = await get(client, f"requests/{ticket.code}.json")
    assert (
        summarised["description"]
        == "Quán nước lấn chiếm vỉa hè phố Tràng Tiền; phường đã nhắc nhở."
    )
    history = queries.ticket_events(session=session, ticket_id=ticket.id)
    assert [e.kind for e in history][-1] == "summary" and history[-1].actor.startswith("official:")


# Every way issue 12 saw personal data leave, typed by a citizen into a complaint.
LEAKS = (
    "CMND 012345678",
    "cccd 001 089 012 345",
    "nguyen.van.an @ gmail.com",
    "0912 345 678",
    "Nguyễn Văn An",
    "số nhà 47",
    "29A-123.45",
)


async def test_no_personal_data_in_any_answer(
    client: httpx.AsyncClient, session: Session, units: Official
) -> None:
    """The attacker reads every resource in both formats for what the citizen typed."""
    citizen = Citizen(display_name=CITIZEN_NAME, phone=PHONE_DIGITS)
    session.add(citizen)
    session.commit()
    ticket = make_ticket(
        session, at=NOW - timedelta(days=1), citizen_id=citizen.id, anonymous=True,
        description=f"Tôi tên là Nguyễn Văn An, CMND 012345678, cccd 001 089 012 345, mail "
        f"nguyen.van.an @ gmail.com, gọi 0912 345 678 hoặc {PHONE} hoặc {EMAIL}. Hàng xóm "
        "số nhà 47 ngõ 12 đỗ xe 29A-123.45 chắn lối đi",
        location_text=f"số nhà 47 ngõ 12 phố Tràng Tiền (gọi {PHONE_DIGITS})",
        latitude=21.02461, longitude=105.85517,
    )  # fmt: skip
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=TicketUpdate(status=TicketStatus.resolved),
        actor=OFFICIAL, note=f"Đã xử lý, đã gọi anh An số {PHONE} để báo.", at=NOW,
    )  # fmt: skip
    # An official who copies personal data into what is published is caught by the masking.
    add_public_note(
        session=session,
        ticket=ticket,
        official=units,
        now=NOW,
        text="Đã làm việc với chủ xe 29A-123.45 ở số nhà 47, SĐT 0912.345.678.",
    )
    paths = [
        "requests.{}",
        f"requests.{{}}?service_request_id={ticket.code}",
        f"requests/{ticket.code}.{{}}",
    ]
    bodies = [
        (await client.get("/open311/v2/" + path.format(fmt))).text
        for path in paths
        for fmt in ("json", "xml")
    ]
    [item] = (await client.get(f"/open311/v2/requests/{ticket.code}.json")).json()
    assert item["description"] == f"{CATEGORY_NAMES['sidewalk']} — Phường Hoàn Kiếm"
    assert item["address"] == "Phường Hoàn Kiếm"
    assert (item["lat"], item["long"]) == HOAN_KIEM_POINT
    assert item["status_notes"] == "Đã làm việc với chủ xe [đã ẩn] ở số nhà [đã ẩn], SĐT [đã ẩn]."
    for body in bodies:
        for secret in (*SECRETS, *LEAKS, "012345678", "001089012345", "21.02461", "105.85517"):
            assert secret not in body
        assert "contact_phone" not in body and "citizen" not in body and "chat_id" not in body


# --- Pure helpers ----------------------------------------------------------------------------


def test_w3c_dates() -> None:
    assert parse_w3c("2026-03-01", "start_date") == datetime(2026, 2, 28, 17, tzinfo=UTC)
    assert parse_w3c("2026-03-01T08:00:00Z", "x") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert parse_w3c("2026-03-01T08:00:00 07:00", "x") == datetime(2026, 3, 1, 1, tzinfo=UTC)


def test_api_keys_are_checked() -> None:
    actor = api_key_actor(KEY, ["other", KEY])
    assert actor is not None and actor.startswith("open311:") and KEY not in actor
    assert api_key_actor(KEY, [KEY]) == actor  # stable: the same key, the same actor
    assert api_key_actor("other", ["other", KEY]) != actor
    for wrong in ("", None, KEY + "x", KEY[:-1], "khoá-sai"):
        assert api_key_actor(wrong, [KEY, ""]) is None
    assert api_key_actor("", [""]) is None
    assert api_key_actor(KEY, []) is None


# --- Filing requests -------------------------------------------------------------------------

FORM = {
    "service_code": "sidewalk",
    "description": "Quán nước lấn chiếm hết vỉa hè, người đi bộ phải xuống lòng đường",
    "address_string": "số 20 phố Huế, phường Hai Bà Trưng",
    "phone": PHONE,
    "email": EMAIL,
    "first_name": "Bí Mật",
    "last_name": "Trần Thị",
    "media_url": "https://img.example/via-he.jpg",
    "jurisdiction_id": "hanoi",
}


async def test_post_needs_a_valid_api_key(client: httpx.AsyncClient, session: Session) -> None:
    url = "/open311/v2/requests.json"
    assert_error(await client.post(url, data=FORM), 403)
    assert_error(await client.post(url, data={**FORM, "api_key": "sai"}), 403)
    assert_error(await client.post(url, json={**FORM, "api_key": KEY.upper()}), 403)
    assert_error(await client.post(url, data=FORM, headers={"X-Api-Key": "sai"}), 403)
    assert session.exec(select(Ticket)).all() == []


async def test_post_checks_its_fields(client: httpx.AsyncClient, session: Session) -> None:
    url = "/open311/v2/requests.json"
    descriptions = assert_error(await client.post(url, data={"api_key": KEY}), 400)
    assert len(descriptions) == 2  # service_code, place: description is optional
    cases: list[dict[str, str]] = [
        {"description": "x" * 4001},
        {"address_string": "", "lat": "21.02"},
        {"address_string": "", "lat": "10.77", "long": "106.70"},  # Sài Gòn
        {"address_string": "", "lat": "nan", "long": "105.85"},
        {"address_string": "", "lat": "abc", "long": "105.85"},
        {"media_url": "javascript:alert(1)"},
        {"media_url": "file:///etc/passwd"},
    ]
    for change in cases:
        assert_error(await client.post(url, data={**FORM, **change, "api_key": KEY}), 400)
    # The spec: an unknown service_code is "not found".
    assert_error(
        await client.post(url, data={**FORM, "service_code": "graffiti", "api_key": KEY}), 404
    )
    big = await client.post(url, data={**FORM, "description": "x" * 70_000, "api_key": KEY})
    assert_error(big, 413)
    assert_error(
        await client.post(url, content=b"[1, 2]", headers={"content-type": "application/json"}), 400
    )
    files = {"media": ("a.jpg", b"\xff\xd8", "image/jpeg")}
    assert_error(await client.post(url, data={**FORM, "api_key": KEY}, files=files), 400)
    assert session.exec(select(Ticket)).all() == []


async def test_a_json_body_nested_very_deep_is_a_400(
    client: httpx.AsyncClient, session: Session
) -> None:
    """It was a 500 (json.loads' RecursionError escaped); within the 64 KiB body limit."""
    deep = b'{"service_code": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    for fmt in ("json", "xml"):
        response = await client.post(
            f"/open311/v2/requests.{fmt}",
            content=deep,
            headers={"content-type": "application/json", "x-api-key": KEY},
        )
        assert "JSON" in assert_error(response, 400)[0]
    assert session.exec(select(Ticket)).all() == []


@pytest.mark.usefixtures("directory")
async def test_a_post_with_only_the_required_arguments(
    client: httpx.AsyncClient, session: Session
) -> None:
    """service_code and a place: description, names, e-mail and phone are optional."""
    for place in (
        {"address_string": "phố Huế, Hai Bà Trưng"},
        {"lat": "21.0285", "long": "105.8542"},
    ):
        filed = await client.post(
            "/open311/v2/requests.json", data={"api_key": KEY, "service_code": "waste", **place}
        )
        assert filed.status_code == 200, filed.text
    tickets = session.exec(select(Ticket)).all()
    assert [t.ward_code for t in tickets] == ["00256", "00070"]
    assert all(
        t.description == f"{CATEGORY_NAMES['waste']} (gửi qua Open311, không kèm mô tả)"
        for t in tickets
    )


def test_resolve_place_by_address_and_by_coordinates() -> None:
    def place(**params: str) -> Any:
        return resolve_place(NewRequestForm.parse(params))

    by_name = place(address_string="20 phố Huế, phường Hai Bà Trưng")
    assert (by_name.ward_code, by_name.ward_name) == ("00256", "Phường Hai Bà Trưng")
    assert by_name.lat is None and by_name.text == "20 phố Huế, phường Hai Bà Trưng"
    by_pin = place(lat="21.0285", long="105.8542")  # Hồ Gươm
    assert (by_pin.ward_code, by_pin.text) == ("00070", None)
    assert (by_pin.lat, by_pin.lon) == (21.0285, 105.8542)
    # An old ward split in two: the pin chooses between its candidates only.
    split = place(address_string="ngõ 10 p. Dich Vong Hau", lat="21.0285", long="105.8542")
    assert split.ward_code in {"00166", "00160"}
    unsure = place(address_string="ngõ 10 p. Dich Vong Hau")
    assert unsure.ward_code is None and unsure.text == "ngõ 10 p. Dich Vong Hau"


@pytest.fixture
def directory(session: Session) -> dict[str, Official]:
    """The bundled directory, with one linked official in every unit (unit id → official)."""
    ensure_directory(session=session)
    linked = {}
    for number, unit in enumerate(session.exec(select(Unit)).all()):
        official = Official(
            name=f"Cán bộ {number}", unit_id=unit.id, channel=Channel.telegram,
            chat_id=str(90_000 + number), external_user_id=str(90_000 + number),
        )  # fmt: skip
        session.add(official)
        linked[unit.id] = official
    session.commit()
    return linked


async def test_a_post_files_a_routed_ticket(
    client: httpx.AsyncClient, session: Session, directory: dict[str, Official]
) -> None:
    response = await client.post("/open311/v2/requests.json", data={**FORM, "api_key": KEY})
    assert response.status_code == 200, response.text
    [answer] = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert answer["account_id"] is None
    code = answer["service_request_id"]
    assert code == "PA-2026-000001"

    ticket = session.exec(select(Ticket).where(Ticket.code == code)).one()
    assert ticket.lead_unit_id is not None and not ticket.unrouted
    unit = session.get_one(Unit, ticket.lead_unit_id)
    assert unit.name in answer["service_notice"]
    assert ticket.accept_by is not None and ticket.accept_by > NOW
    assert ticket.resolve_by is not None and ticket.resolve_by > ticket.accept_by
    assert (ticket.category, ticket.ward_code, ticket.location_text) == (
        "sidewalk", "00256", FORM["address_string"],
    )  # fmt: skip
    assert ticket.channel is None and ticket.chat_id is None and ticket.citizen_id is None
    assert ticket.contact_phone == PHONE_DIGITS  # for the officials only
    assert ticket.created_at == NOW
    assert ticket.id is not None
    [event] = queries.ticket_events(session=session, ticket_id=ticket.id)
    assert event.actor == api_key_actor(KEY, [KEY])
    [photo] = queries.attachments_of_ticket(session=session, ticket_id=ticket.id)
    assert photo.meta["url"] == FORM["media_url"]
    # The lead unit's official, and no one else, is told.
    queued = session.exec(select(OutboxMessage)).all()
    assert [m.recipient for m in queued] == [directory[unit.id].chat_id]

    [item] = await get(client, f"requests/{code}.json")
    assert item["agency_responsible"] == unit.name
    assert item["status"] == "open"
    assert item["media_url"] == FORM["media_url"]
    assert item["expected_datetime"] is not None and item["expected_datetime"].endswith("+07:00")
    assert item["address"] == "Phường Hai Bà Trưng"
    assert item["description"] == f"{CATEGORY_NAMES['sidewalk']} — Phường Hai Bà Trưng"
    bodies = [response.text, (await client.get("/open311/v2/requests.json")).text]
    for body in bodies:
        for secret in (*SECRETS, FORM["first_name"], FORM["last_name"]):
            assert secret not in body


@pytest.mark.usefixtures("directory")
async def test_a_json_post_with_coordinates_only(
    client: httpx.AsyncClient, session: Session
) -> None:
    payload = {
        "api_key": KEY, "service_code": "infrastructure", "lat": 21.0285, "long": 105.8542,
        "description": "Đèn đường hỏng cả dãy phố, tối om",
    }  # fmt: skip
    response = await client.post("/open311/v2/requests.json", json=payload)
    assert response.status_code == 200, response.text
    [answer] = response.json()
    [item] = await get(client, f"requests/{answer['service_request_id']}.json")
    assert (item["lat"], item["long"]) == ward_point("00070") != (21.0285, 105.8542)
    assert item["address"] == "Phường Hoàn Kiếm"
    assert item["service_code"] == "infrastructure" and item["media_url"] is None
    ticket = session.exec(select(Ticket)).one()
    assert ticket.ward_code == "00070" and ticket.lead_unit_id is not None
    assert item["agency_responsible"] == session.get_one(Unit, ticket.lead_unit_id).name


async def test_a_database_failure_is_a_500_in_the_spec_format(tmp_path: Path) -> None:
    broken = create_db_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    app = Starlette(routes=open311_routes(engine=broken, clock=lambda: NOW, api_keys=[KEY]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert_error(await client.get("/open311/v2/requests.json"), 500)
            assert_error(await client.get("/open311/v2/requests/PA-2026-000001.json"), 500)
            filed = await client.post("/open311/v2/requests.json", data={**FORM, "api_key": KEY})
            assert_error(filed, 500)
    finally:
        broken.dispose()


async def test_api_keys_come_from_the_settings(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Starlette(routes=open311_routes(engine=engine, clock=lambda: NOW))
    transport = httpx.ASGITransport(app=app)
    url = "/open311/v2/requests.json"
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        monkeypatch.setattr(settings, "open311_api_keys", [])
        assert_error(await client.post(url, data={"api_key": KEY}), 403)
        monkeypatch.setattr(settings, "open311_api_keys", ["another", KEY])
        assert_error(await client.post(url, data={"api_key": "sai"}), 403)
        # Past the key: refused for its missing fields instead.
        assert_error(await client.post(url, data={"api_key": KEY}), 400)
        assert_error(await client.post(url, json={}, headers={"X-Api-Key": KEY}), 400)
