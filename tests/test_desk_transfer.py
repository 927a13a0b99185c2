"""An official transfers a ticket to another ward from the chat by typing its name (found
trying the product, docs/usability-review.md #8: only city bodies were offered as buttons,
and a typed ward fell through to the help text)."""

from __future__ import annotations

import pytest
from seed import kim_lien_with_a_handler, linked_official
from sqlalchemy import Engine
from sqlmodel import Session
from test_access import NOW, Chat
from test_dashboard import NoConversation

from bot.conversation.texts import say
from bot.officials.desk import Desk
from storage import queries
from storage.models import OfficialRole

KIM_LIEN, HOAN_KIEM = "ubnd-00229", "ubnd-00070"


@pytest.fixture
def desk(engine: Engine) -> Desk:
    return Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]


@pytest.fixture
def code(engine: Engine) -> str:
    return kim_lien_with_a_handler(engine, NOW)


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


async def test_after_a_transfer_no_action_is_offered_and_an_unreached_unit_is_said(
    engine: Engine, desk: Desk, code: str
) -> None:
    """Found trying the product (docs/usability-review.md, session 4): the confirmation of a
    transfer offered accept, ask, resolve… on a ticket now another unit's, and nobody said
    that the receiving unit had no official linked to be told."""
    chat = Chat(engine, desk, "handler")
    await chat.send(button=f"t:tra:{code}")
    await chat.send("p. hoan kiem")
    done = await chat.send("Địa điểm thuộc phường Hoàn Kiếm")
    assert lead_unit(engine, code) == HOAN_KIEM
    assert chat.buttons() == []
    assert say("utter_official_unit_unreached", unit="UBND Phường Hoàn Kiếm") in done


async def test_a_transfer_to_a_unit_with_a_linked_official_warns_nothing(
    engine: Engine, desk: Desk, code: str
) -> None:
    with Session(engine) as session:
        linked_official(session, HOAN_KIEM, "hk", OfficialRole.handler, now=NOW)
    chat = Chat(engine, desk, "handler")
    await chat.send(button=f"t:tra:{code}")
    await chat.send(button=f"t:to:{code}:{HOAN_KIEM}")
    done = await chat.send("Sai địa bàn")
    assert say("utter_official_done", what="đã chuyển tới UBND Phường Hoàn Kiếm", code=code) in done
    assert "Lưu ý" not in done


@pytest.mark.parametrize("typed", ["so xay dung", "Sở Xây dựng", "SỞ XÂY DỰNG HÀ NỘI"])
async def test_a_city_body_typed_by_name_receives_the_transfer(
    engine: Engine, desk: Desk, code: str, typed: str
) -> None:
    chat = Chat(engine, desk, "handler")
    await chat.send(button=f"t:tra:{code}")
    asked = await chat.send(typed)
    assert asked == say("utter_official_ask_transfer_reason", code=code, unit="Sở Xây dựng Hà Nội")
    await chat.send("Đèn chiếu sáng do Sở quản lý")
    assert lead_unit(engine, code) == "so-xay-dung"


async def test_several_city_bodies_by_one_word_are_offered(
    engine: Engine, desk: Desk, code: str
) -> None:
    chat = Chat(engine, desk, "handler")
    await chat.send(button=f"t:tra:{code}")
    await chat.send("cong an")
    offered = chat.buttons()
    assert f"t:to:{code}:cong-an-tp" in offered and f"t:to:{code}:pccc-cong-an-tp" in offered
    assert f"t:to:{code}:so-xay-dung" not in offered
    assert lead_unit(engine, code) == KIM_LIEN
