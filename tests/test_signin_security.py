"""Issue 12, items 3 and 5, as the attacker: sign-in code budgets (per official, per client
address, overall; the official's own chat budget untouched by anonymous requests), counted
under a lock by parallel requests on the real PostgreSQL, codes told to the official when
guessed wrong and redacted once delivered; server-side sessions (a replayed cookie after
sign-out or removal, a guessed session id, Secure over HTTPS)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner
from seed import linked_official, two_wards_and_city
from sqlalchemy import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session, col, select
from starlette.testclient import TestClient
from test_dashboard import CODE, NoConversation, add_official, csrf_of, outbox_texts, sign_in

from bot.cli import main as cli_main
from bot.config import settings
from bot.conversation.messages import CollectingOutput, IncomingMessage
from bot.officials import signin
from bot.officials.desk import Desk
from bot.outbox.worker import OutboxWorker
from bot.web.app import create_app
from bot.web.dashboard import SESSION_COOKIE
from storage.db import create_db_engine
from storage.models import (
    Channel,
    DashboardSession,
    DirectoryChange,
    Message,
    Official,
    OfficialRole,
    OutboxMessage,
    utcnow,
)


@pytest.fixture
def people(engine: Engine) -> dict[str, Official]:
    with Session(engine, expire_on_commit=False) as session:
        two_wards_and_city(session)
        return {
            "a": add_official(session, "ward-a", "chat-a", OfficialRole.handler),
            "b": add_official(session, "ward-b", "chat-b", OfficialRole.handler),
        }


@pytest.fixture
def client(engine: Engine, people: dict[str, Official]) -> Iterator[TestClient]:
    with TestClient(create_app(NoConversation(), engine=engine), follow_redirects=False) as c:
        yield c


def _ask(engine: Engine, official: Official, client: str | None) -> int | None:
    assert official.id is not None
    with Session(engine) as session:
        return signin.request_signin_code(
            session=session, official_id=official.id, now=utcnow(), client=client
        )


# --- Codes: budgets -----------------------------------------------------------------------------


def test_anonymous_requests_cannot_lock_the_official_out(
    engine: Engine, people: dict[str, Official]
) -> None:
    a = people["a"]
    assert a.id is not None
    limit = settings.dashboard_codes_per_official
    issued = [_ask(engine, a, f"10.0.0.{n}") for n in range(limit + 3)]
    assert sum(i is not None for i in issued) == limit  # the chat gets no more than that
    assert len(outbox_texts(engine, "chat-a")) == limit
    # The official's own chat still gets a sign-in link: its budget is its own.
    with Session(engine) as session:
        assert signin.request_chat_signin(session=session, official_id=a.id, now=utcnow())
    link = outbox_texts(engine, "chat-a")[-1]
    assert "/dashboard/signin/link?token=" in link
    # ... within its own limit.
    with Session(engine) as session:
        for _ in range(settings.dashboard_chat_signins_per_official - 1):
            assert signin.request_chat_signin(session=session, official_id=a.id, now=utcnow())
        assert not signin.request_chat_signin(session=session, official_id=a.id, now=utcnow())


def test_one_address_and_everyone_together_have_budgets(
    engine: Engine, people: dict[str, Official], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        many = [
            add_official(session, "ward-a", f"chat-{n}", OfficialRole.handler) for n in range(8)
        ]
    monkeypatch.setattr(settings, "dashboard_codes_per_client", 4)
    from_one = [_ask(engine, o, "203.0.113.9") for o in many]
    assert sum(i is not None for i in from_one) == 4  # sequential ids: one address, 4 codes
    monkeypatch.setattr(settings, "dashboard_codes_overall", 6)
    from_many = [_ask(engine, o, f"198.51.100.{n}") for n, o in enumerate(many)]
    assert sum(i is not None for i in from_many) == 2  # 6 in all this hour


@pytest.mark.parametrize("who", ["official", "client"])
def test_parallel_requests_never_overspend_a_budget(
    database_url: str, people: dict[str, Official], who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 requests at once, each on its own connection (PostgreSQL: 30 server processes)."""
    monkeypatch.setattr(settings, "dashboard_codes_per_official", 5)
    monkeypatch.setattr(settings, "dashboard_codes_per_client", 5)
    parallel = create_db_engine(database_url, poolclass=NullPool)
    with Session(parallel, expire_on_commit=False) as session:
        others = [
            add_official(session, "ward-b", f"p-{n}", OfficialRole.handler) for n in range(30)
        ]
    targets = [people["a"]] * 30 if who == "official" else others
    start = threading.Barrier(30)

    def request(n: int) -> int | None:
        start.wait()
        return _ask(parallel, targets[n], f"192.0.2.{n}" if who == "official" else "192.0.2.1")

    try:
        with ThreadPoolExecutor(30) as pool:
            issued = list(pool.map(request, range(30)))
    finally:
        parallel.dispose()
    assert sum(i is not None for i in issued) == 5


# --- Codes: wrong tries told, the code not kept ---------------------------------------------------


async def test_wrong_codes_are_told_and_a_delivered_code_is_not_kept(
    engine: Engine, people: dict[str, Official]
) -> None:
    signin_id = _ask(engine, people["a"], "203.0.113.7")
    assert signin_id is not None
    code = CODE.search(outbox_texts(engine, "chat-a")[-1])
    assert code is not None
    wrong = "000000" if code.group(1) != "000000" else "111111"
    with Session(engine) as session:
        for _ in range(signin.MAX_CODE_ATTEMPTS):
            assert not signin.verify_signin_code(
                session=session, signin_id=signin_id, code=wrong, now=utcnow(), client="203.0.113.7"
            )
    told = [t for t in outbox_texts(engine, "chat-a") if "nhập sai" in t]
    assert len(told) == 2 and "203.0.113.7" in told[0] and "(5/5" in told[1]

    output = CollectingOutput()
    worker = OutboxWorker({Channel.telegram: output}, engine=engine)
    while await worker.run_once():
        pass
    assert any(code.group(1) in t for t in output.texts("chat-a"))  # the official got it
    with Session(engine) as session:
        stored = [m.text for m in session.exec(select(Message)).all()]
        outbox = session.exec(select(OutboxMessage)).all()
    assert stored and not any(code.group(1) in t for t in stored)
    assert not any(code.group(1) in json.dumps(r.payload, ensure_ascii=False) for r in outbox)
    assert any("đã xóa" in t for t in stored)


# --- Sessions -------------------------------------------------------------------------------------


def _cookie(client: TestClient) -> str:
    value = client.cookies.get(SESSION_COOKIE)
    assert value is not None
    return value


def _replay(engine: Engine, cookie: str, base_url: str = "http://testserver") -> int:
    app = create_app(NoConversation(), engine=engine)
    with TestClient(app, follow_redirects=False, base_url=base_url) as other:
        other.cookies.set(SESSION_COOKIE, cookie, path="/dashboard")
        return other.get("/dashboard").status_code


def _assert_removed_and_signed_out(
    client: TestClient, engine: Engine, stolen: str, who: Official
) -> None:
    """`who` inactive and unlinked, their session ended (the browser's and a copied cookie
    alike), and the removal in the directory's history."""
    assert client.get("/dashboard").status_code == 303
    assert _replay(engine, stolen) == 303
    with Session(engine) as session:
        official = session.get(Official, who.id)
        assert official is not None and not official.active and official.chat_id is None
        assert session.exec(select(DashboardSession.ended_at)).one() is not None
        change = session.exec(
            select(DirectoryChange).where(DirectoryChange.change == "removed")
        ).one()
        assert change.entity_id == str(who.id)


def test_a_cookie_replayed_after_sign_out_is_refused(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    sign_in(client, engine, people["a"])
    stolen = _cookie(client)
    assert _replay(engine, stolen) == 200  # a copy works while the session lives
    assert (
        client.post("/dashboard/signout", data={"csrf": csrf_of(client, "/dashboard")}).status_code
        == 303
    )
    assert _replay(engine, stolen) == 303
    with Session(engine) as session:
        row = session.exec(select(DashboardSession)).one()
        assert row.ended_at is not None and row.official_id == people["a"].id


def test_removing_an_official_ends_their_sessions(
    client: TestClient,
    engine: Engine,
    database_url: str,
    people: dict[str, Official],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign_in(client, engine, people["a"])
    stolen = _cookie(client)
    monkeypatch.setattr(settings, "database_url", database_url)
    assert cli_main(["official", "remove", "--official", str(people["a"].id)]) == 0
    _assert_removed_and_signed_out(client, engine, stolen, people["a"])
    assert cli_main(["official", "remove", "--official", "424242"]) == 1
    capsys.readouterr()
    assert cli_main(["official", "list"]) == 0
    assert f"{people['a'].id}\tward-a\thandler\tremoved" in capsys.readouterr().out
    # Invited again, the official is back: linked, then signed in anew.
    with Session(engine) as session:
        back = linked_official(
            session, "ward-a", "chat-a2", OfficialRole.handler, now=utcnow(), name=people["a"].name
        )
        assert back is not None and back.id == people["a"].id and back.active
    sign_in(client, engine, back)
    assert client.get("/dashboard").status_code == 200


def test_an_official_moved_to_another_unit_loses_the_old_units_sessions(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    """Moved to another unit, an official links their chat account to the new post's
    invite: the old post's dashboard session (on the old unit's tickets) must end with it,
    and the old post is no longer an active official."""
    sign_in(client, engine, people["a"])
    stolen = _cookie(client)
    with Session(engine) as session:
        linked = linked_official(
            session, "ward-b", "chat-a", OfficialRole.handler, now=utcnow(), name=people["a"].name
        )
        assert linked.id != people["a"].id  # a new post: the invite's, linked
        assert linked is not None and linked.unit_id == "ward-b"
    _assert_removed_and_signed_out(client, engine, stolen, people["a"])


def _forged(payload: dict[str, object]) -> str:
    """A cookie signed with the real secret, as Starlette signs them: the attacker's best
    case (the secret leaked) for a session id they must still guess."""
    data = base64.b64encode(json.dumps(payload).encode())
    return TimestampSigner(str(settings.dashboard_secret)).sign(data).decode()


def test_a_guessed_or_old_style_session_signs_nobody_in(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    sign_in(client, engine, people["a"])  # a live session exists
    assert _replay(engine, _forged({"sid": "guessed-session-id"})) == 303
    with Session(engine) as session:
        live = session.exec(select(DashboardSession.token_hash)).one()
    assert _replay(engine, _forged({"sid": live})) == 303  # the stored hash is not the id
    since = utcnow().isoformat()
    assert _replay(engine, _forged({"official": people["a"].id, "since": since})) == 303
    assert _replay(engine, _forged({"sid": ""})) == 303


def test_the_cookie_is_secure_over_https(engine: Engine, people: dict[str, Official]) -> None:
    app = create_app(NoConversation(), engine=engine)
    with TestClient(app, follow_redirects=False, base_url="https://testserver") as secure:
        page = secure.get("/dashboard/signin")
        assert "secure" in page.headers["set-cookie"].lower()
        sign_in(secure, engine, people["b"])
        assert secure.get("/dashboard").status_code == 200
    with TestClient(app, follow_redirects=False) as plain:
        assert "secure" not in plain.get("/dashboard/signin").headers["set-cookie"].lower()


def test_sessions_expire_on_the_server(engine: Engine, people: dict[str, Official]) -> None:
    assert people["a"].id is not None
    now = utcnow()
    with Session(engine) as session:
        token = signin.start_session(session=session, official_id=people["a"].id, now=now)
        assert signin.session_official(session=session, token=token, now=now) == people["a"].id
        later = now + signin.SESSION_LIFETIME + timedelta(seconds=1)
        assert signin.session_official(session=session, token=token, now=later) is None
        assert signin.end_session(session=session, token=token, now=now)
        assert not signin.end_session(session=session, token=token, now=now)
        assert signin.session_official(session=session, token=token, now=now) is None
        ended = session.exec(select(col(DashboardSession.ended_at))).one()
        assert ended is not None


# --- The official's own chat ----------------------------------------------------------------------


async def test_an_official_asks_for_a_link_in_chat(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    desk = Desk(NoConversation(), engine=engine)  # type: ignore[arg-type]
    output = CollectingOutput()
    message = IncomingMessage(
        channel="telegram", chat_id="chat-a", user_id="chat-a", message_id="m1", text="/dangnhap"
    )
    await desk.handle(message, output)
    # The link goes first, the reply waits behind it: the outbox worker sends both in order.
    await OutboxWorker({Channel.telegram: output}, engine=engine).run_once()
    link, reply = output.texts("chat-a")
    assert "Đường dẫn đăng nhập" in reply
    token = link.split("token=")[1].split()[0]
    page = client.get(f"/dashboard/signin/link?token={token}")
    csrf = csrf_of(client, f"/dashboard/signin/link?token={token}")
    assert page.status_code == 200
    done = client.post("/dashboard/signin/link", data={"csrf": csrf, "token": token})
    assert done.status_code == 303 and client.get("/dashboard").status_code == 200
