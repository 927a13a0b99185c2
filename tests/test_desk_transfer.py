"""An official transfers a ticket to another ward from the chat by typing its name (found
trying the product, docs/usability-review.md #8: only city bodies were offered as buttons,
and a typed ward fell through to the help text)."""

from __future__ import annotations

import pytest
from seed import linked_official, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session
from test_access import NOW, Chat
from test_dashboard import NoConversation

from bot.conversation.texts import say
from bot.directory.store import ensure_directory
from bot.officials.desk import Desk
from storage import queries
from storage.models import OfficialRole

KIM_LIEN, HOAN_KIEM = "ubnd-00229", "ubnd-00070"


@pytest.fixture
def desk(engine: Engine) -> Desk:
    return Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.fixture
def code(engine: Engine) -> str:
    with Session(engine) as session:
        ensure_directory(session=session)
        linked_official(session, KIM_LIEN, "handler", OfficialRole.handler, now=NOW)
        return waste_ticket(session, KIM_LIEN, now=NOW, ward=("00229", "Phường Kim Liên")).code


def lead_unit(engine: Engine, code: str) -> str | None:
    with Session(engine) as session:
        ticket = queries.get_ticket_by_code(session=session, code=code)
        assert ticket is not None
        return ticket.lead_unit_id


async def test_a_ward_typed_by_name_receives_the_transfer(
    engine: Engine, desk: Desk, code: str
) -> None:
    chat = Chat(engine, desk, "handler")
    assert "nhắn tên phường" in await chat.send(button=f"t:tra:{code}")
    asked = await chat.send("p. hoan kiem")
    assert asked == say(
        "utter_official_ask_transfer_reason", code=code, unit="UBND Phường Hoàn Kiếm"
    )
    await chat.send("Địa điểm thuộc phường Hoàn Kiếm")
    assert lead_unit(engine, code) == HOAN_KIEM


async def test_an_old_district_offers_its_wards_and_nonsense_is_asked_again(
    engine: Engine, desk: Desk, code: str
) -> None:
    chat = Chat(engine, desk, "handler")
    await chat.send(button=f"t:tra:{code}")
    assert "không tìm thấy" in (await chat.send("xyz abc")).lower()
    await chat.send("quận Hoàn Kiếm")
    offered = chat.buttons()
    assert f"t:to:{code}:{HOAN_KIEM}" in offered and f"t:to:{code}:{KIM_LIEN}" not in offered
    await chat.send(button=f"t:to:{code}:{HOAN_KIEM}")
    await chat.send("Sai địa bàn")
    assert lead_unit(engine, code) == HOAN_KIEM
