"""Issue 12, item 1: one rule for what an official may read and do (bot/tickets/access.py),
tried as the attacker on both databases: an official of another unit typing sequential codes
and pressing buttons in chat, the accused's unit reading a complaint about its officials, a
transfer to the accused's unit, and the same on the dashboard."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient
from test_dashboard import NoConversation, csrf_of, sign_in, ticket_row

from bot.conversation.messages import CollectingOutput, IncomingMessage
from bot.conversation.texts import say
from bot.directory.routing import route
from bot.officials.desk import Desk
from bot.outbox.worker import OutboxWorker
from bot.tickets import access
from bot.web.app import create_app
from storage.models import (
    Channel,
    HumanRequest,
    Official,
    OfficialRole,
    OutboxMessage,
    OutboxStatus,
    RoutingRule,
    Ticket,
    TicketStatus,
    Unit,
    UnitKind,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội
NOT_FOUND = "Không tìm thấy phản ánh"


@dataclass
class World:
    officials: dict[str, Official]
    waste: str  # ward-a's ticket
    misconduct: str  # about ward-a's officials, at the inspectorate
    misrouted: str  # about ward-a's officials, led by ward-a (a bad routing rule)


@pytest.fixture
def world(engine: Engine) -> World:
    with Session(engine, expire_on_commit=False) as session:
        two_wards_and_city(session)
        session.add(
            Unit(id="thanh-tra", name="Thanh tra Thành phố", kind=UnitKind.city, parent_id="city")
        )
        session.commit()
        people = {
            name: linked_official(session, unit, name, role, now=NOW)
            for name, unit, role in (
                ("handler-a", "ward-a", OfficialRole.handler),
                ("chief-a", "ward-a", OfficialRole.supervisor),
                ("leader-a", "ward-a", OfficialRole.leader),
                ("handler-b", "ward-b", OfficialRole.handler),
                ("inspector", "thanh-tra", OfficialRole.handler),
                ("leader", "city", OfficialRole.leader),
            )
        }
        waste = waste_ticket(session, "ward-a", now=NOW)
        misconduct = waste_ticket(
            session,
            "thanh-tra",
            now=NOW,
            category="misconduct",
            description="Cán bộ một cửa phường A đòi tiền bồi dưỡng",
            ward=("00001", "Phường A"),
        )
        misrouted = waste_ticket(session, "ward-a", now=NOW, category="misconduct")
        # The notifications so far went out before the test (the outbox worker).
        session.execute(sa.update(OutboxMessage).values(status=OutboxStatus.sent))
        session.commit()
        return World(people, waste.code, misconduct.code, misrouted.code)


class Chat:
    """An official's Telegram chat with the desk."""

    def __init__(self, engine: Engine, desk: Desk, name: str) -> None:
        self.engine, self.desk, self.name = engine, desk, name
        self.output = CollectingOutput()
        self.count = 0

    async def send(self, text: str = "", button: str | None = None) -> str:
        self.count += 1
        message = IncomingMessage(
            channel="telegram",
            chat_id=self.name,
            user_id=self.name,
            message_id=f"{self.name}-{self.count}",
            text=text,
            button=button,
        )
        before = len(self.output.sent)
        await self.desk.handle(message, self.output)
        # What the app's outbox worker does: a reply waiting behind a notification to the
        # same chat goes out after it.
        await OutboxWorker({Channel.telegram: self.output}, engine=self.engine).run_once()
        return "\n".join(r.text for _, r in self.output.sent[before:])

    def buttons(self) -> list[str]:
        return [b.data for b in self.output.sent[-1][1].buttons]


@pytest.fixture
def desk(engine: Engine) -> Desk:
    return Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]


def _same_as_unknown(reply: str, code: str) -> bool:
    """The refusal reads exactly as the answer for a code that does not exist."""
    unknown = "PA-2026-999999"
    return reply == say("utter_official_ticket_not_found", code=code) and reply.replace(
        code, unknown
    ) == say("utter_official_ticket_not_found", code=unknown)


async def test_another_units_official_cannot_read_or_act_in_chat(
    engine: Engine, world: World, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    intruder = Chat(engine, desk, "handler-b")
    caplog.set_level(logging.WARNING)
    code = world.waste
    assert _same_as_unknown(await intruder.send(code), code)
    assert _same_as_unknown(await intruder.send(code.replace("-", "").lower()), code)
    assert await intruder.send("PA-2026-999999") == say(
        "utter_official_ticket_not_found", code="PA-2026-999999"
    )
    for action in ("view", "acc", "ask", "res", "rej", "tra"):
        assert _same_as_unknown(await intruder.send(button=f"t:{action}:{code}"), code)
    assert _same_as_unknown(await intruder.send(button=f"t:to:{code}:ward-b"), code)
    assert ticket_row(engine, code).status == TicketStatus.received
    refusals = [r for r in caplog.records if r.getMessage().startswith("Refused")]
    assert len(refusals) >= 9
    assert len(desk._locks) == 0  # the per-chat lock map keeps only chats in flight

    # The unit's own handler reads and acts.
    owner = Chat(engine, desk, "handler-a")
    shown = await owner.send(code)
    assert "Rác đổ trộm" in shown and f"t:acc:{code}" in owner.buttons()
    assert "tiếp nhận" in await owner.send(button=f"t:acc:{code}")
    assert ticket_row(engine, code).status == TicketStatus.accepted


async def test_a_complaint_about_an_official_is_never_shown_to_the_accused_unit(
    engine: Engine, world: World, desk: Desk
) -> None:
    code = world.misconduct
    for name in ("handler-a", "chief-a", "leader-a"):  # every role of the accused's unit
        chat = Chat(engine, desk, name)
        assert _same_as_unknown(await chat.send(code), code)
        assert _same_as_unknown(await chat.send(button=f"t:view:{code}"), code)
        queue = await chat.send("/hangdoi")
        assert code not in queue and world.misrouted not in queue and world.waste in queue
    # The inspectorate reads and acts; the city's leader reads, without action buttons.
    inspector = Chat(engine, desk, "inspector")
    assert "đòi tiền" in await inspector.send(code)
    leader = Chat(engine, desk, "leader")
    assert "đòi tiền" in await leader.send(code)
    assert leader.buttons() == []
    assert "không thuộc đơn vị" in await leader.send(button=f"t:acc:{code}")

    # No transfer to the accused's unit: not offered, and refused when pressed anyway.
    await inspector.send(button=f"t:tra:{code}")
    offered = inspector.buttons()
    assert f"t:to:{code}:city" in offered and f"t:to:{code}:ward-a" not in offered
    refused = await inspector.send(button=f"t:to:{code}:ward-a")
    assert refused == say("utter_official_pick_unit", code=code)
    assert ticket_row(engine, code).lead_unit_id == "thanh-tra"
    # The typed reason of an earlier choice cannot smuggle it there either.
    await inspector.send(button=f"t:to:{code}:ward-b")
    await inspector.send("Đúng địa bàn phường B")
    assert ticket_row(engine, code).lead_unit_id == "ward-b"
    assert "đòi tiền" in await Chat(engine, desk, "handler-b").send(code)


def test_the_rule_itself(engine: Engine, world: World) -> None:
    with Session(engine) as session:
        readers = {
            name: access.Reader.of(session, session.get(Official, o.id))
            for name, o in world.officials.items()
        }
        tickets = {
            name: session.exec(select(Ticket).where(Ticket.code == code)).one()
            for name, code in (("waste", world.waste), ("misconduct", world.misconduct))
        }
    read = {(n, t): access.can_read(r, tickets[t]) for n, r in readers.items() for t in tickets}
    act = {(n, t): access.can_act(r, tickets[t]) for n, r in readers.items() for t in tickets}
    assert {k for k, v in read.items() if v} == {
        ("handler-a", "waste"),
        ("chief-a", "waste"),
        ("leader-a", "waste"),
        ("leader", "waste"),
        ("leader", "misconduct"),
        ("inspector", "misconduct"),
    }
    assert {k for k, v in act.items() if v} == {
        ("handler-a", "waste"),
        ("chief-a", "waste"),
        ("inspector", "misconduct"),
    }
    assert access.can_read(None, tickets["waste"]) is False


@pytest.fixture
def client(engine: Engine, world: World) -> Iterator[TestClient]:
    app = create_app(NoConversation(), engine=engine)
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def test_the_dashboard_applies_the_same_rule(
    client: TestClient, engine: Engine, world: World
) -> None:
    people = world.officials
    sign_in(client, engine, people["leader-a"])
    queue = client.get("/dashboard?status=all").text
    assert world.waste in queue
    assert world.misconduct not in queue and world.misrouted not in queue
    assert client.get(f"/dashboard/tickets/{world.misconduct}").status_code == 404
    assert client.get(f"/dashboard/tickets/{world.misrouted}").status_code == 404
    client.post("/dashboard/signout", data={"csrf": csrf_of(client, "/dashboard")})

    sign_in(client, engine, people["handler-a"])
    token = csrf_of(client, "/dashboard")
    for code in (world.misconduct, world.misrouted):
        refused = client.post(f"/dashboard/tickets/{code}/accept", data={"csrf": token})
        assert refused.status_code == 404
    client.post("/dashboard/signout", data={"csrf": token})

    sign_in(client, engine, people["inspector"])
    page = client.get(f"/dashboard/tickets/{world.misconduct}")
    assert page.status_code == 200 and "đòi tiền" in page.text
    assert 'value="ward-a"' not in page.text and 'value="ward-b"' in page.text
    token = csrf_of(client, "/dashboard")
    moved = client.post(
        f"/dashboard/tickets/{world.misconduct}/transfer",
        data={"csrf": token, "unit": "ward-a", "reason": "Chuyển về phường"},
    )
    assert moved.status_code == 303
    assert ticket_row(engine, world.misconduct).lead_unit_id == "thanh-tra"


def test_routing_never_sends_a_misconduct_complaint_to_its_own_ward(
    engine: Engine, world: World
) -> None:
    with Session(engine) as session:
        city = session.get(Unit, "city")
        assert city is not None
        city.intake = True
        session.add(city)
        session.add(RoutingRule(position=1, category="misconduct", to_ward_unit=True))
        session.add(RoutingRule(position=2, category="waste", to_ward_unit=True))
        session.commit()
        misconduct = route(session=session, category="misconduct", ward_code="00001")
        waste = route(session=session, category="waste", ward_code="00001")
    assert (misconduct.unit_id, misconduct.unrouted) == ("city", True)
    assert waste.unit_id == "ward-a"


async def test_a_person_request_of_another_unit_cannot_be_answered(
    engine: Engine, world: World, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    with Session(engine) as session:
        request = HumanRequest(channel="telegram", chat_id="citizen", unit_id="ward-a", text="?")
        session.add(request)
        session.commit()
        request_id = request.id
    caplog.set_level(logging.WARNING)
    intruder = Chat(engine, desk, "handler-b")
    refused = await intruder.send(button=f"h:reply:{request_id}")
    unknown = await intruder.send(button="h:reply:999999")
    assert refused == unknown.replace("999999", str(request_id))
    assert "không thuộc đơn vị" in refused and "Refused" in caplog.text
    assert "Nhập câu trả lời" in await Chat(engine, desk, "handler-a").send(
        button=f"h:reply:{request_id}"
    )
