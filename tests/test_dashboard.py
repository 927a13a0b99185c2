"""The officials' web dashboard (bot/web/dashboard/).

(a) Through Starlette's TestClient on SQLite and PostgreSQL: sign-in by a code sent to the
official's chat (and by a one-time link), unit isolation, leaders, the actions (the same
functions as the Telegram buttons: the same events and notifications), CSRF, the digest.
(b) `@pytest.mark.browser`: the real app under uvicorn, driven in Debian's headless Chromium
through Playwright; it saves dashboard-queue.png and dashboard-digest.png (in docs/ with
CIVICBOT_UPDATE_SCREENSHOTS=1, tests/screens.py).
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright
from screens import screenshot_folder
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.cli import main as cli_main
from bot.config import settings
from bot.conversation.dialogue.tickets import await_answer
from bot.conversation.messages import IncomingMessage, OutputChannel, reply_from_payload
from bot.conversation.texts import say
from bot.digest.aggregate import IsoWeek
from bot.nlu.server import free_port
from bot.officials.desk import is_overdue
from bot.officials.invites import invite_official
from bot.officials.signin import (
    MAX_CODE_ATTEMPTS,
    create_signin_link,
    request_signin_code,
    use_signin_link,
    verify_signin_code,
)
from bot.tickets import workflow
from bot.web.app import create_app
from bot.web.dashboard.queries import QueueFilters, queue_tickets
from storage import queries
from storage.models import (
    DashboardSignin,
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
    Unit,
    UnitKind,
    utcnow,
)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CODE = re.compile(r"\b(\d{6})\b")


class NoConversation:
    """The web chat is not under test here."""

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        return None


# --- Seeding ----------------------------------------------------------------------------------


def add_official(
    session: Session, unit: str, chat: str, role: OfficialRole, name: str | None = None
) -> Official:
    """An official linked to the Telegram chat `chat`."""
    return linked_official(session, unit, chat, role, now=utcnow(), name=name)


def add_ticket(
    session: Session,
    unit: str,
    *,
    category: str = "waste",
    ward: tuple[str, str] = ("00001", "Phường A"),
    chat: str = "citizen",
    resolve_in: timedelta = timedelta(days=5),
    at: datetime | None = None,
) -> Ticket:
    return waste_ticket(
        session, unit, now=at or utcnow(), category=category,
        description="Rác đổ trộm đầu ngõ <b>12</b>", ward=ward, location_text="Ngõ 12",
        chat=chat, resolve_in=resolve_in,
    )  # fmt: skip


@pytest.fixture
def people(engine: Engine) -> dict[str, Official]:
    """Two wards and the city; a handler in each ward, a leader in the city."""
    with Session(engine, expire_on_commit=False) as session:  # kept for the tests
        two_wards_and_city(session)
        return {
            "a": add_official(session, "ward-a", "chat-a", OfficialRole.handler),
            "b": add_official(session, "ward-b", "chat-b", OfficialRole.handler),
            "leader": add_official(session, "city", "chat-l", OfficialRole.leader),
        }


@pytest.fixture
def client(engine: Engine, people: dict[str, Official]) -> Iterator[TestClient]:
    app = create_app(NoConversation(), engine=engine)
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def csrf_of(client: TestClient, path: str = "/dashboard/signin") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


def outbox_texts(engine: Engine, recipient: str) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.recipient == recipient)
            .order_by(col(OutboxMessage.id))
        ).all()
        return [reply_from_payload(r.payload).text for r in rows]


def sign_in(client: TestClient, engine: Engine, official: Official) -> None:
    """Ask for a code, read it from the outbox (as the official reads their chat), type it."""
    token = csrf_of(client)
    asked = client.post("/dashboard/signin", data={"csrf": token, "official": str(official.id)})
    assert asked.status_code == 303
    assert official.chat_id is not None
    code = CODE.search(outbox_texts(engine, official.chat_id)[-1])
    assert code is not None
    done = client.post("/dashboard/signin/code", data={"csrf": token, "code": code.group(1)})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"


def ticket_row(engine: Engine, code: str) -> Ticket:
    with Session(engine) as session:
        found = queries.get_ticket_by_code(session=session, code=code)
        assert found is not None
        return found


# --- (a) sign-in ------------------------------------------------------------------------------


def test_without_a_session_every_page_leads_to_sign_in(client: TestClient, engine: Engine) -> None:
    with Session(engine) as session:
        code = add_ticket(session, "ward-a").code
    for path in ("/dashboard", f"/dashboard/tickets/{code}", "/dashboard/digest?week=2026-W47"):
        response = client.get(path)
        assert response.status_code == 303
        target = urlsplit(response.headers["location"])
        assert target.path == "/dashboard/signin"
        assert parse_qs(target.query)["next"] == [path]
    refused = client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": "x"})
    assert refused.status_code == 303
    assert ticket_row(engine, code).status == TicketStatus.received


def test_a_code_goes_to_the_officials_chat_and_signs_them_in(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    a = people["a"]
    token = csrf_of(client)
    asked = client.post(
        "/dashboard/signin", data={"csrf": token, "official": str(a.id), "next": "//evil.example"}
    )
    assert asked.status_code == 303
    assert asked.headers["location"].startswith("/dashboard/signin/code")
    texts = outbox_texts(engine, "chat-a")
    assert len(texts) == 1 and "Mã đăng nhập" in texts[0]
    code = CODE.search(texts[0])
    assert code is not None
    with Session(engine) as session:  # only a keyed hash of the code is stored
        keys = session.exec(select(OutboxMessage.dedupe_key)).all()
        assert len(keys) == 1 and str(keys[0]).startswith("dashboard-signin:")
        hashes = session.exec(select(DashboardSignin.secret_hash)).all()
        assert len(hashes) == 1 and code.group(1) not in hashes[0]

    wrong = "000000" if code.group(1) != "000000" else "111111"
    refused = client.post("/dashboard/signin/code", data={"csrf": token, "code": wrong})
    assert refused.status_code == 400 and "Mã không đúng" in refused.text
    assert client.get("/dashboard").status_code == 303  # still signed out

    done = client.post("/dashboard/signin/code", data={"csrf": token, "code": code.group(1)})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"  # not //evil
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie
    queue = client.get("/dashboard")
    assert queue.status_code == 200 and "Cán bộ chat-a" in queue.text
    assert "script-src" not in queue.headers["content-security-policy"]  # no script at all
    assert queue.headers["cache-control"] == "no-store"

    # Signing out ends the session; the used code does not work a second time.
    signout = client.post("/dashboard/signout", data={"csrf": CSRF.findall(queue.text)[0]})
    assert signout.status_code == 303
    assert client.get("/dashboard").status_code == 303
    token = csrf_of(client)
    again = client.post("/dashboard/signin/code", data={"csrf": token, "code": code.group(1)})
    assert again.status_code in (303, 400)
    assert client.get("/dashboard").status_code == 303


def test_unknown_and_unlinked_officials_get_the_same_page_and_no_message(
    client: TestClient, engine: Engine
) -> None:
    with Session(engine) as session:
        unlinked, _ = invite_official(
            session=session,
            unit_id="ward-a",
            name="Chưa liên kết",
            role=OfficialRole.handler,
            now=utcnow(),
        )
    token = csrf_of(client)
    for number in ("99999", str(unlinked.id)):
        asked = client.post("/dashboard/signin", data={"csrf": token, "official": number})
        assert asked.status_code == 303
        assert asked.headers["location"].startswith("/dashboard/signin/code")
        page = client.get(asked.headers["location"])
        assert page.status_code == 200 and "Nhập mã đăng nhập" in page.text
        refused = client.post("/dashboard/signin/code", data={"csrf": token, "code": "123456"})
        assert refused.status_code == 400
    with Session(engine) as session:
        assert session.exec(select(OutboxMessage)).all() == []
    assert (
        client.post("/dashboard/signin", data={"csrf": token, "official": "abc"}).status_code == 400
    )


def test_wrong_codes_void_a_code_and_requests_are_throttled(
    engine: Engine, people: dict[str, Official]
) -> None:
    a = people["a"]
    assert a.id is not None
    now = utcnow()
    with Session(engine) as session:
        first = request_signin_code(session=session, official_id=a.id, now=now)
        assert first is not None
        code = CODE.search(outbox_texts(engine, "chat-a")[-1])
        assert code is not None
        wrong = "000000" if code.group(1) != "000000" else "111111"
        for _ in range(MAX_CODE_ATTEMPTS):
            assert verify_signin_code(session=session, signin_id=first, code=wrong, now=now) is None
        # The right code no longer works once the tries are used up.
        assert (
            verify_signin_code(session=session, signin_id=first, code=code.group(1), now=now)
            is None
        )

        second = request_signin_code(session=session, official_id=a.id, now=now)
        assert second is not None
        code = CODE.search(outbox_texts(engine, "chat-a")[-1])
        assert code is not None
        late = now + timedelta(minutes=11)
        assert (
            verify_signin_code(session=session, signin_id=second, code=code.group(1), now=late)
            is None
        )
        signed = verify_signin_code(session=session, signin_id=second, code=code.group(1), now=now)
        assert signed is not None and signed.id == a.id
        assert (
            verify_signin_code(session=session, signin_id=second, code=code.group(1), now=now)
            is None
        )

        sent = len(outbox_texts(engine, "chat-a"))
        for _ in range(settings.dashboard_codes_per_official - 2):
            assert request_signin_code(session=session, official_id=a.id, now=now) is not None
        assert request_signin_code(session=session, official_id=a.id, now=now) is None
        assert (
            len(outbox_texts(engine, "chat-a")) == sent + settings.dashboard_codes_per_official - 2
        )
        later = now + timedelta(hours=1, minutes=1)
        assert request_signin_code(session=session, official_id=a.id, now=later) is not None


def test_a_signin_link_from_the_cli_works_once(
    client: TestClient,
    engine: Engine,
    database_url: str,
    people: dict[str, Official],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)
    leader = people["leader"]
    assert (
        cli_main(
            [
                "official",
                "signin-link",
                "--official",
                str(leader.id),
                "--base-url",
                "https://civicbot.example",
            ]
        )
        == 0
    )
    url = capsys.readouterr().out.strip()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "civicbot.example",
        "/dashboard/signin/link",
    )
    link = f"{parts.path}?{parts.query}"
    page = client.get(link)  # showing the page (a link preview) does not use the link up
    assert page.status_code == 200
    token = parse_qs(parts.query)["token"][0]
    csrf = CSRF.search(page.text)
    assert csrf is not None
    done = client.post(link.split("?")[0], data={"csrf": csrf.group(1), "token": token})
    assert done.status_code == 303
    assert client.get("/dashboard").status_code == 200
    client.post("/dashboard/signout", data={"csrf": csrf_of(client, "/dashboard")})
    csrf_again = csrf_of(client)
    again = client.post(link.split("?")[0], data={"csrf": csrf_again, "token": token})
    assert again.status_code == 400
    assert cli_main(["official", "signin-link", "--official", "424242"]) == 1
    with Session(engine) as session:  # expired links are refused too
        stale = create_signin_link(session=session, official_id=people["a"].id or 0, now=utcnow())
        assert (
            use_signin_link(session=session, token=stale, now=utcnow() + timedelta(minutes=11))
            is None
        )


def test_a_deactivated_official_is_signed_out(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    sign_in(client, engine, people["a"])
    assert client.get("/dashboard").status_code == 200
    with Session(engine) as session:
        official = session.get(Official, people["a"].id)
        assert official is not None
        official.active = False
        session.add(official)
        session.commit()
    assert client.get("/dashboard").status_code == 303


# --- (a) what each official sees ---------------------------------------------------------------


def test_officials_see_only_their_units_tickets(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        mine = add_ticket(session, "ward-a").code
        theirs = add_ticket(session, "ward-b", ward=("00002", "Phường B")).code
    sign_in(client, engine, people["a"])
    queue = client.get("/dashboard").text
    assert mine in queue and theirs not in queue
    assert client.get(f"/dashboard/tickets/{mine}").status_code == 200
    assert client.get(f"/dashboard/tickets/{theirs}").status_code == 404
    assert client.get("/dashboard/tickets/PA-2026-999999").status_code == 404
    token = csrf_of(client, "/dashboard")
    for action in ("accept", "reject"):
        refused = client.post(
            f"/dashboard/tickets/{theirs}/{action}", data={"csrf": token, "reason": "x"}
        )
        assert refused.status_code == 404
    assert ticket_row(engine, theirs).status == TicketStatus.received
    # Another unit's filter in the query string changes nothing for a handler.
    assert theirs not in client.get("/dashboard?unit=ward-b&status=all").text


def test_leaders_see_every_unit_and_do_not_act(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        a = add_ticket(session, "ward-a").code
        b = add_ticket(session, "ward-b", ward=("00002", "Phường B")).code
    sign_in(client, engine, people["leader"])
    queue = client.get("/dashboard").text
    assert a in queue and b in queue and "Toàn thành phố" in queue
    only_b = client.get("/dashboard?unit=ward-b").text
    assert b in only_b and a not in only_b
    page = client.get(f"/dashboard/tickets/{b}")
    assert page.status_code == 200 and "/accept" not in page.text and "chỉ xem" in page.text
    token = CSRF.findall(page.text)[0]
    refused = client.post(f"/dashboard/tickets/{b}/accept", data={"csrf": token})
    assert refused.status_code == 303
    shown = client.get(refused.headers["location"]).text
    assert html.escape(say("utter_official_refused_unit", code=b)) in shown
    assert ticket_row(engine, b).status == TicketStatus.received


def test_the_queue_filters(client: TestClient, engine: Engine, people: dict[str, Official]) -> None:
    with Session(engine) as session:
        waste = add_ticket(session, "ward-a").code
        late = add_ticket(
            session,
            "ward-a",
            category="sidewalk",
            ward=("00003", "Phường C"),
            resolve_in=timedelta(days=-1),
        ).code
        done = add_ticket(session, "ward-a", category="water")
        handler = session.get(Official, people["a"].id)
        workflow.accept(session=session, ticket=done, official=handler, now=utcnow())
        workflow.resolve(session=session, ticket=done, official=handler, note="Xong", now=utcnow())
        resolved = done.code
    sign_in(client, engine, people["a"])

    def codes(query: str) -> set[str]:
        page = client.get(f"/dashboard?{query}")
        assert page.status_code == 200
        return set(re.findall(r"PA-\d{4}-\d{6}", page.text))

    assert codes("") == {waste, late}  # open ones by default
    assert codes("status=all") == {waste, late, resolved}
    assert codes("status=resolved") == {resolved}
    assert codes("category=sidewalk") == {late}
    assert codes("ward=00001") == {waste}
    assert codes("overdue=1") == {late}
    assert codes("status=bogus&category=nope") == {waste, late}  # unknown values: no filter
    assert "Phường C" in client.get("/dashboard").text  # the ward filter offers its wards


def test_queue_overdue_filter_agrees_with_the_desk(
    engine: Engine, people: dict[str, Official]
) -> None:
    from bot.officials.desk import is_overdue, open_tickets

    now = utcnow()
    with Session(engine) as session:
        for days in (-2, -1, 1, 3):
            add_ticket(session, "ward-a", resolve_in=timedelta(days=days))
        old = add_ticket(session, "ward-a", at=now - timedelta(days=1))  # missed accept_by only
        assert old.accept_by is not None and old.accept_by < now
        found, total = queue_tickets(
            session=session, unit_id="ward-a", filters=QueueFilters(overdue=True), now=now
        )
        expected_codes = {
            t.code for t in open_tickets(session=session, unit_id="ward-a") if is_overdue(t, now)
        }
        assert {t.code for t in found} == expected_codes and total == len(expected_codes) == 3


# --- (a) actions --------------------------------------------------------------------------------


def _trail(engine: Engine, code: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    """A ticket's events and its notifications, with what differs between twins masked."""
    ticket = ticket_row(engine, code)
    with Session(engine) as session:
        events = session.exec(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(col(TicketEvent.id))
        ).all()
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        # Deadlines are minutes apart at most; the times in the texts are masked.
        texts = [
            re.sub(r"\d{2}:\d{2}", "<hh:mm>", reply_from_payload(r.payload).text).replace(
                code, "<code>"
            )
            for r in rows
            if code in reply_from_payload(r.payload).text
        ]

    def masked(value: dict[str, Any] | None) -> Any:
        if value is None:
            return None
        return {
            k: ("<time>" if k.endswith("_by") else "<code>" if k == "code" else v)
            for k, v in value.items()
        }

    return [
        (e.kind, e.actor, e.note, masked(e.old_value), masked(e.new_value)) for e in events
    ], texts


@pytest.mark.parametrize(
    "steps",
    [
        [
            ("accept", {}),
            ("ask", {"question": "Ngõ số mấy ạ?"}),
            ("resolve", {"note": "Đã thu gom, vệ sinh sạch sẽ."}),
        ],
        [("transfer", {"unit": "ward-b", "reason": "Địa điểm thuộc Phường B."})],
        [("reject", {"reason": "Phản ánh trùng với PA trước."})],
    ],
    ids=["accept-ask-resolve", "transfer", "reject"],
)
def test_dashboard_actions_are_the_chat_actions(
    client: TestClient,
    engine: Engine,
    people: dict[str, Official],
    steps: list[tuple[str, dict[str, str]]],
) -> None:
    """Each form calls the same function as the Telegram button: a twin ticket handled by
    `bot.tickets.workflow` directly gets the same events and the same notifications."""
    functions: dict[str, Callable[..., None]] = {
        "accept": workflow.accept,
        "ask": partial(workflow.ask_info, await_answer=await_answer),
        "transfer": workflow.transfer,
        "resolve": workflow.resolve,
        "reject": workflow.reject,
    }
    names = {"question": "question", "note": "note", "reason": "reason", "unit": "to_unit_id"}
    filed = utcnow()
    with Session(engine) as session:
        web = add_ticket(session, "ward-a", chat="citizen-web", at=filed).code
        direct = add_ticket(session, "ward-a", chat="citizen-direct", at=filed).code
    sign_in(client, engine, people["a"])
    for action, form in steps:
        token = csrf_of(client, f"/dashboard/tickets/{web}")
        done = client.post(f"/dashboard/tickets/{web}/{action}", data={"csrf": token, **form})
        assert done.status_code == 303
        shown = client.get(done.headers["location"])
        assert 'class="flash ok"' in shown.text, shown.text
        with Session(engine) as session:
            twin = queries.get_ticket_by_code(session=session, code=direct)
            official = session.get(Official, people["a"].id)
            arguments = {names[k]: v for k, v in form.items()}
            functions[action](
                session=session, ticket=twin, official=official, now=utcnow(), **arguments
            )
    web_trail, direct_trail = _trail(engine, web), _trail(engine, direct)
    assert web_trail == direct_trail
    assert len(web_trail[0]) > len(steps)  # `created` and at least one event per step
    assert web_trail[1], "the citizen is notified"
    final = ticket_row(engine, web)
    expected_status = {"resolve": "resolved", "transfer": "received", "reject": "rejected"}
    assert final.status.value == expected_status[steps[-1][0]]
    if steps[-1][0] == "transfer":
        assert final.lead_unit_id == "ward-b"
        # No longer the unit's: the official is sent back to the queue and cannot see it.
        assert client.get(f"/dashboard/tickets/{web}").status_code == 404


def test_a_transfer_to_a_unit_nobody_is_linked_in_says_so(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    """Found trying the product (docs/usability-review.md, session 4): nobody at the
    receiving unit was told, and the official who transferred was not told that either."""
    with Session(engine) as session:
        ward_c = Unit(id="ward-c", name="UBND Phường C", kind=UnitKind.ward, ward_code="00003")
        session.add(ward_c)
        session.commit()
        code = add_ticket(session, "ward-a").code
    sign_in(client, engine, people["a"])
    token = csrf_of(client, f"/dashboard/tickets/{code}")
    form = {"csrf": token, "unit": "ward-c", "reason": "Địa điểm thuộc Phường C."}
    done = client.post(f"/dashboard/tickets/{code}/transfer", data=form)
    page = client.get(done.headers["location"]).text
    assert 'class="flash ok"' in page
    assert html.escape(say("utter_official_unit_unreached", unit="UBND Phường C")) in page
    assert ticket_row(engine, code).lead_unit_id == "ward-c"


def test_refusals_are_shown_and_change_nothing(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        code = add_ticket(session, "ward-a").code
    sign_in(client, engine, people["a"])
    token = csrf_of(client, f"/dashboard/tickets/{code}")
    empty = client.post(f"/dashboard/tickets/{code}/resolve", data={"csrf": token, "note": " "})
    assert empty.status_code == 303
    page = client.get(empty.headers["location"]).text
    assert 'class="flash error"' in page
    assert html.escape(say("utter_official_ask_resolution", code=code)) in page
    assert ticket_row(engine, code).status == TicketStatus.received
    assert client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": token}).status_code == 303
    twice = client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": token})
    page = client.get(twice.headers["location"]).text
    assert "Không thể thực hiện thao tác này" in page
    bad_unit = client.post(
        f"/dashboard/tickets/{code}/transfer",
        data={"csrf": token, "unit": "nowhere", "reason": "x"},
    )
    assert (
        html.escape(say("utter_official_pick_unit", code=code))
        in client.get(bad_unit.headers["location"]).text
    )
    with Session(engine) as session:
        ticket = queries.get_ticket_by_code(session=session, code=code)
        assert ticket is not None and ticket.id is not None
        kinds = [e.kind for e in queries.ticket_events(session=session, ticket_id=ticket.id)]
    assert kinds == ["created", "status"]  # the one accept
    # Everything a citizen typed is escaped.
    assert "<b>12</b>" not in page and "&lt;b&gt;12&lt;/b&gt;" in page


def test_forms_without_the_sessions_csrf_token_are_refused(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        code = add_ticket(session, "ward-a").code
    assert client.post("/dashboard/signin", data={"official": "1"}).status_code == 403
    sign_in(client, engine, people["a"])
    for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
        refused = client.post(f"/dashboard/tickets/{code}/accept", data=data)
        assert refused.status_code == 403
    assert client.post("/dashboard/signout", data={"csrf": "forged"}).status_code == 403
    assert ticket_row(engine, code).status == TicketStatus.received
    assert client.get("/dashboard").status_code == 200  # still signed in
    # Another browser's token does not work in this session.
    other = TestClient(client.app, follow_redirects=False)
    foreign = csrf_of(other)
    assert (
        client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": foreign}).status_code == 403
    )


def test_a_csrf_token_with_marks_is_refused_not_a_500(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    """hmac.compare_digest raises on non-ASCII text: a token like "é" was a 500."""
    with Session(engine) as session:
        code = add_ticket(session, "ward-a").code
    assert client.post("/dashboard/signin", data={"csrf": "é", "official": "1"}).status_code == 403
    sign_in(client, engine, people["a"])
    for token in ("é", "mã-sai", "\u0000"):
        refused = client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": token})
        assert refused.status_code == 403
    assert ticket_row(engine, code).status == TicketStatus.received


# --- (a) the digest ---------------------------------------------------------------------------


def test_the_digest_page(client: TestClient, engine: Engine, people: dict[str, Official]) -> None:
    zone = ZoneInfo(settings.timezone)
    week = IsoWeek.containing(utcnow(), zone)
    with Session(engine) as session:
        add_ticket(session, "ward-a")
        add_ticket(session, "ward-b", category="water", ward=("00002", "Phường B"))
    sign_in(client, engine, people["a"])
    page = client.get(f"/dashboard/digest?week={week}")
    assert page.status_code == 200
    assert "UBND Phường A" in page.text and 'src="data:image/png;base64,' in page.text
    assert "Phường B" not in page.text.split('class="digest"', 1)[1]  # the unit's only
    assert "Xếp hạng trong các phường, xã" in html.unescape(page.text)  # a ward's league place
    heading = html.unescape(page.text).split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert f"{week.week}/{week.year}" in heading and "-W" not in heading  # as people write it
    policy = page.headers["content-security-policy"]
    assert "'sha256-" in policy and "unsafe-inline" not in policy
    default = client.get("/dashboard/digest")
    assert default.status_code == 200
    assert str(IsoWeek.last_complete(utcnow(), zone)) in default.text
    assert client.get("/dashboard/digest?week=2026-W99").status_code == 400
    assert client.get(f"/dashboard/digest?week={week.next()}").status_code == 400
    csv = client.get(f"/dashboard/digest.csv?week={week}")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "UBND Phường A" in csv.content.decode("utf-8-sig")
    assert "Xếp hạng" in csv.content.decode("utf-8-sig")

    client.post("/dashboard/signout", data={"csrf": csrf_of(client, "/dashboard")})
    sign_in(client, engine, people["leader"])
    city = client.get(f"/dashboard/digest?week={week}").text.split('class="digest"', 1)[1]
    assert "Toàn thành phố Hà Nội" in city and "Phường B" in city
    unit = client.get(f"/dashboard/digest?week={week}&unit=ward-b").text
    assert "UBND Phường B" in unit.split('class="digest"', 1)[1]


# --- (b) in a real browser ----------------------------------------------------------------------


@pytest.fixture
def served(engine: Engine) -> Iterator[str]:
    """The real app (create_app) under uvicorn on a free loopback port, in a thread."""
    app: Starlette = create_app(NoConversation(), engine=engine)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _seed_city(engine: Engine) -> dict[str, Any]:
    """The bundled Hà Nội directory, two officials, and a week of tickets for one ward."""
    from bot.directory.store import ensure_directory

    zone = ZoneInfo(settings.timezone)
    now = utcnow()
    last_week = IsoWeek.last_complete(now, zone)
    monday = last_week.start(zone).astimezone(UTC)
    wards = [("00004", "Phường Ba Đình"), ("00008", "Phường Ngọc Hà"), ("00025", "Phường Giảng Võ")]
    categories = ["sidewalk", "waste", "infrastructure", "construction", "pollution", "parking"]
    with Session(engine, expire_on_commit=False) as session:
        ensure_directory(session=session)
        handler = add_official(
            session, "ubnd-00004", "chat-ba-dinh", OfficialRole.handler, name="Nguyễn Thị Hồng"
        )
        # Last week: filed, taken on, most resolved and rated (the digest's figures).
        for i in range(14):
            at = monday + timedelta(hours=3 + 11 * i)
            t = add_ticket(
                session,
                "ubnd-00004",
                category=categories[i % len(categories)],
                ward=wards[i % 3],
                chat=f"citizen-{i}",
                at=at,
            )
            if i % 5 == 4:
                continue
            workflow.accept(
                session=session, ticket=t, official=handler, now=at + timedelta(hours=2)
            )
            if i % 4 == 3:
                continue
            workflow.resolve(
                session=session,
                ticket=t,
                official=handler,
                note="Đã xử lý xong.",
                now=at + timedelta(hours=20 + 3 * i),
            )
            workflow.rate(
                session=session, ticket=t, rating=5 - i % 3, now=at + timedelta(hours=30 + 3 * i)
            )
        # This week: the open queue, one of them late.
        fresh = []
        for i, category in enumerate(["waste", "sidewalk", "infrastructure", "waste", "traffic"]):
            t = add_ticket(
                session,
                "ubnd-00004",
                category=category,
                ward=wards[i % 3],
                chat=f"new-{i}",
                resolve_in=timedelta(days=-1 if i == 3 else 2 + i),
            )
            fresh.append(t.code)
        add_ticket(session, "ubnd-00008", category="waste", ward=wards[1], chat="other-unit")
        return {"handler": handler, "fresh": fresh, "last_week": last_week}


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_in_chromium_sign_in_filter_act_and_read_the_digest(engine: Engine, served: str) -> None:
    """One database is enough here: the pages are the same, the fast tests cover both."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's chromium "
            "(apt-get install -y chromium).",
            pytrace=False,
        )
    seeded = _seed_city(engine)
    docs = screenshot_folder()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="vi-VN")
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            _sign_in_and_see_the_queue(page, engine, served, seeded, docs)
            _filter_the_queue(page, engine, seeded)
            _accept_and_resolve(page, engine, seeded["fresh"][0])
            _read_the_digest(page, seeded, docs)
            assert errors == [], errors  # no CSP violation, nothing broken
            _see_the_queue_on_a_phone(browser, page, served)
        finally:
            browser.close()
    for name in ("dashboard-queue.png", "dashboard-digest.png"):
        assert (docs / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _sign_in_and_see_the_queue(
    page: Page, engine: Engine, served: str, seeded: dict[str, Any], docs: Path
) -> None:
    """Sign in: the number, then the code from the official's chat."""
    handler: Official = seeded["handler"]
    page.goto(f"{served}/dashboard")
    expect(page.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    page.get_by_label("Số hiệu cán bộ").fill(str(handler.id))
    page.get_by_role("button", name="Gửi mã đăng nhập").click()
    expect(page.get_by_role("heading", name="Nhập mã đăng nhập")).to_be_visible()
    code = CODE.search(outbox_texts(engine, "chat-ba-dinh")[-1])
    assert code is not None
    page.get_by_label("Mã đăng nhập").fill(code.group(1))
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Hàng đợi phản ánh")).to_be_visible()
    expect(page.get_by_text("Nguyễn Thị Hồng")).to_be_visible()
    rows = page.locator("table.queue tbody tr")
    expect(rows).to_have_count(len(open_codes(engine, "ubnd-00004")))
    assert len(open_codes(engine, "ubnd-00004")) > len(seeded["fresh"])
    page.screenshot(path=str(docs / "dashboard-queue.png"))


def _filter_the_queue(page: Page, engine: Engine, seeded: dict[str, Any]) -> None:
    """Waste only, then overdue only."""
    rows = page.locator("table.queue tbody tr")
    page.get_by_label("Lĩnh vực").select_option("waste")
    page.get_by_role("button", name="Lọc").click()
    waste = open_codes(engine, "ubnd-00004", "waste")
    expect(rows).to_have_count(len(waste))
    for i, found in enumerate(waste):
        expect(rows.nth(i)).to_contain_text("Rác thải")
        assert found in page.content()
    page.get_by_role("link", name="Bỏ lọc").click()
    page.get_by_label("Chỉ phản ánh quá hạn").check()
    page.get_by_role("button", name="Lọc").click()
    late = open_codes(engine, "ubnd-00004", overdue=True)
    assert seeded["fresh"][3] in late and seeded["fresh"][0] not in late
    expect(rows).to_have_count(len(late))
    expect(page.locator("table.queue")).to_contain_text(seeded["fresh"][3])


def _accept_and_resolve(page: Page, engine: Engine, target: str) -> None:
    page.get_by_role("link", name="Bỏ lọc").click()
    page.get_by_role("link", name=target).click()
    expect(page.get_by_role("heading", name=f"Phản ánh {target}")).to_be_visible()
    page.locator('form[action$="/accept"] button').click()
    expect(page.locator(".flash.ok")).to_contain_text(f"Đã tiếp nhận phản ánh {target}")
    resolve = page.locator('form[action$="/resolve"]')
    resolve.get_by_label("Kết quả giải quyết").fill("Đã thu gom rác, vệ sinh ngõ.")
    resolve.get_by_role("button", name="Báo đã giải quyết").click()
    expect(page.locator(".flash.ok")).to_contain_text("Đã báo kết quả giải quyết")
    expect(page.locator(".history li")).to_have_count(3)
    assert ticket_row(engine, target).status == TicketStatus.resolved


def _read_the_digest(page: Page, seeded: dict[str, Any], docs: Path) -> None:
    """The digest of last week, with its chart."""
    page.get_by_role("link", name="Báo cáo tuần").click()
    expect(page.get_by_role("heading", name="Báo cáo tuần")).to_be_visible()
    chart = page.locator(".digest img")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 500")
    expect(page.locator(".digest")).to_contain_text("UBND Phường Ba Đình")
    expect(page.locator(".digest")).to_contain_text(
        f"Tuần {seeded['last_week'].week}/{seeded['last_week'].year}"
    )
    page.screenshot(path=str(docs / "dashboard-digest.png"))


def _see_the_queue_on_a_phone(browser: Browser, page: Page, served: str) -> None:
    """On a phone the queue fits the screen (cards, no sideways scrolling)."""
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{served}/dashboard")
    expect(phone.get_by_role("heading", name="Hàng đợi phản ánh")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def open_codes(
    engine: Engine, unit: str, category: str | None = None, *, overdue: bool = False
) -> list[str]:
    """Open tickets of a unit (in a category; overdue ones, as the desk decides)."""
    now = utcnow()
    with Session(engine) as session:
        tickets = session.exec(
            select(Ticket).where(
                Ticket.lead_unit_id == unit, col(Ticket.status).in_(list(workflow.OPEN_STATUSES))
            )
        ).all()
        return [
            t.code
            for t in tickets
            if (category is None or t.category == category) and (not overdue or is_overdue(t, now))
        ]


# --- What Open311 publishes (issue 12 item 2) -------------------------------------------------


def test_an_official_writes_the_public_summary_and_notes_open311_publishes(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        code = add_ticket(session, "ward-a").code
    api = f"/open311/v2/requests/{code}.json"
    [before] = client.get(api).json()
    assert before["description"] == "Rác thải, vệ sinh môi trường — Phường A"
    assert before["status_notes"] is None and "<b>12</b>" not in client.get(api).text
    # Another unit's handler and a leader get no form and cannot post one.
    for other in (people["b"], people["leader"]):
        sign_in(client, engine, other)
        page = client.get(f"/dashboard/tickets/{code}")
        assert "Công khai trên Open311" not in page.text
        if page.status_code == 200:
            token = CSRF.search(page.text)
            assert token is not None
            refused = client.post(
                f"/dashboard/tickets/{code}/summary",
                data={"csrf": token.group(1), "summary": "x"},
            )
            assert 'class="flash error"' in client.get(refused.headers["location"]).text
        client.cookies.clear()
    sign_in(client, engine, people["a"])
    page = client.get(f"/dashboard/tickets/{code}").text
    assert "Công khai trên Open311" in page and "Chưa có: Open311 chỉ công bố" in page
    token = csrf_of(client, f"/dashboard/tickets/{code}")
    for action, field, text in (
        ("summary", "summary", "Rác đổ trộm ở đầu ngõ, chủ nhà số nhà 14 (0912 345 678)"),
        ("public_note", "public_note", "Phường đã thu dọn, lập biên bản."),
    ):
        done = client.post(f"/dashboard/tickets/{code}/{action}", data={"csrf": token, field: text})
        assert 'class="flash ok"' in client.get(done.headers["location"]).text
    empty = client.post(f"/dashboard/tickets/{code}/summary", data={"csrf": token, "summary": " "})
    assert 'class="flash error"' in client.get(empty.headers["location"]).text
    [after] = client.get(api).json()
    # The summary is published, what the official copied into it masked.
    assert after["description"] == "Rác đổ trộm ở đầu ngõ, chủ nhà số nhà [đã ẩn] ([đã ẩn])"
    assert after["status_notes"] == "Phường đã thu dọn, lập biên bản."
    page = client.get(f"/dashboard/tickets/{code}").text
    assert "tóm tắt công khai (Open311)" in page and "ghi chú (công khai)" in page
    assert "Rác đổ trộm ở đầu ngõ, chủ nhà" in page  # prefilled for the next edit
