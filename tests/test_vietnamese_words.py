"""What Vietnamese readers see carries no English word of the code: an official reads the
channel a citizen asks for a person on by its name, and a person who opens a wrong address
or sends the wrong kind of request reads Vietnamese, not Starlette's "Not Found" (Open311's
answers keep their standard English values: that is their contract)."""

from __future__ import annotations

import re

import pytest
from seed import linked_official, outbox_to
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.testclient import TestClient
from test_dashboard import NoConversation

from bot.conversation.texts import say
from bot.directory.store import ensure_directory, intake_unit
from bot.tickets.intake import request_person
from bot.web.app import create_app
from storage.models import Channel, OfficialRole, utcnow


def test_officials_read_the_channel_of_a_person_request_by_its_name(engine: Engine) -> None:
    now = utcnow()
    with Session(engine) as session:
        ensure_directory(session=session)
        duty = intake_unit(session=session).id
        linked_official(session, duty, "duty-chat", OfficialRole.handler, now=now)
        for channel in Channel:
            request_person(
                session=session,
                channel=channel,
                chat_id=f"citizen-{channel.value}",
                citizen_id=None,
                text="Tôi muốn gặp cán bộ",
                message_id=None,
                now=now,
            )
        notices = [text for text in outbox_to(session, "duty-chat") if "cần gặp cán bộ" in text]
    assert len(notices) == 3
    assert "kênh Telegram)" in notices[0]
    assert "kênh Zalo)" in notices[1]
    assert "kênh trò chuyện trên trang web)" in notices[2]
    for notice in notices:
        assert not re.search(r"kênh (telegram|zalo|web)\b", notice), notice


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(NoConversation(), engine=engine), follow_redirects=False)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "status", "name"),
    [
        ("GET", "/khong-co-trang-nay", 404, "web_not_found"),
        ("GET", "/static/khong-co.js", 404, "web_not_found"),
        ("GET", "/dashboard/tickets/PA-2026-000001/photos/x", 404, "web_not_found"),
        ("PUT", "/dashboard", 405, "web_method_not_allowed"),
        ("POST", "/healthz", 405, "web_method_not_allowed"),
    ],
)
def test_a_wrong_address_or_method_is_answered_in_vietnamese(
    client: TestClient, method: str, path: str, status: int, name: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == status
    assert answer.text == say(name)
    assert answer.headers["content-type"].startswith("text/plain; charset=utf-8")
    if status == 405:
        assert answer.headers["allow"]  # which methods it does take, as before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_says_it_in_json(client: TestClient) -> None:
    missing = client.get("/api/khong-co")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": say("web_not_found")}
    wrong = client.get("/api/web/messages")
    assert wrong.status_code == 405
    assert wrong.json() == {
        "error": "method_not_allowed",
        "message": say("web_method_not_allowed"),
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_open311_keeps_its_own_errors(client: TestClient) -> None:
    answer = client.get("/open311/v2/khong-co")
    assert answer.status_code == 404
    assert answer.json()[0]["code"] == 404
