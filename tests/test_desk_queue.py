"""The chat desk's queue names the deadline the unit works to now (found trying the product,
docs/usability-review.md, session 4: a new ticket, and one late for acceptance in /quahan,
showed only the later resolution deadline as "hạn")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from seed import kim_lien_with_a_handler
from sqlalchemy import Engine
from sqlmodel import Session
from test_access import NOW, Chat
from test_dashboard import NoConversation

from bot.officials.desk import Desk
from bot.tickets.intake import expected
from storage import queries

KIM_LIEN = "ubnd-00229"


@pytest.fixture
def code(engine: Engine) -> str:
    return kim_lien_with_a_handler(engine, NOW)


def _deadlines(engine: Engine, code: str) -> tuple[str, str]:
    with Session(engine) as session:
        ticket = queries.get_ticket_by_code(session=session, code=code)
        assert ticket is not None
        return expected(ticket.accept_by), expected(ticket.resolve_by)


async def test_the_queue_shows_acceptance_then_resolution_deadline(
    engine: Engine, code: str
) -> None:
    desk = Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]
    chat = Chat(engine, desk, "handler")
    accept_by, resolve_by = _deadlines(engine, code)
    queue = await chat.send("/hangdoi")
    assert f"hạn tiếp nhận {accept_by}" in queue and resolve_by not in queue
    await chat.send(button=f"t:acc:{code}")
    queue = await chat.send("/hangdoi")
    assert f"hạn giải quyết {resolve_by}" in queue and "hạn tiếp nhận" not in queue


async def test_a_ticket_late_for_acceptance_shows_the_missed_deadline(
    engine: Engine, code: str
) -> None:
    later = NOW + timedelta(hours=9)  # past the 8 hours to accept, days before resolution
    desk = Desk(NoConversation(), engine=engine, clock=lambda: later)  # type: ignore[arg-type]
    chat = Chat(engine, desk, "handler")
    accept_by, _ = _deadlines(engine, code)
    overdue = await chat.send("/quahan")
    assert code in overdue and f"hạn tiếp nhận {accept_by}" in overdue


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("hàng đợi", "Phản ánh đang mở"),
        ("Hang Doi", "Phản ánh đang mở"),
        ("/hangdoi@civicbot_test_bot", "Phản ánh đang mở"),
        ("/HangDoi", "Phản ánh đang mở"),
        ("quá hạn", "không có phản ánh nào"),
        ("/quahan@civicbot_test_bot", "không có phản ánh nào"),
        ("đăng nhập", "Đường dẫn đăng nhập"),
    ],
)
async def test_commands_typed_as_words_or_picked_from_the_menu(
    engine: Engine, code: str, typed: str, answer: str
) -> None:
    """Found trying the product (session 4): "hàng đợi" and "/hangdoi@bot" (as Telegram
    sends a command picked from its menu) got the help text."""
    desk = Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]
    assert answer in await Chat(engine, desk, "handler").send(typed)


async def test_a_sentence_holding_a_command_word_is_no_command(engine: Engine, code: str) -> None:
    desk = Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]
    reply = await Chat(engine, desk, "handler").send("hàng đợi hôm nay dài quá")
    assert reply.startswith("Anh/chị là cán bộ")
