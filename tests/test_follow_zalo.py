"""One problem, one ticket on Zalo: the open ticket is offered as numbered choices through a
fake Zalo Bot API on loopback, and answering "1" follows it (the keyword NLU, both databases)."""

from __future__ import annotations

from fake_zalo import FakeZalo, text_update
from sqlalchemy import Engine
from sqlmodel import Session, select
from test_daily_caps import LATE_EVENING, Citizen, KeywordNlu
from test_zalo import polling

from bot.conversation.engine import Conversation
from storage.models import Ticket, TicketFollower


async def test_a_zalo_neighbour_follows_by_answering_the_number(engine: Engine) -> None:
    reporter = Citizen(engine, "tg-1")
    assert "Mã phản ánh: PA-" in await reporter.complain()
    conversation = Conversation(nlu=KeywordNlu(), engine=engine, clock=lambda: LATE_EVENING)
    with FakeZalo() as zalo:
        async with polling(zalo, conversation):  # type: ignore[arg-type]
            for number, text in enumerate(
                ("vỉa hè phố Huế phường Hai Bà Trưng bị quán nước chiếm hết", "1", "2"), start=1
            ):
                zalo.inject(text_update(text, chat_id="z-1", message_id=f"z-{number}"))
                await zalo.wait_for("sendMessage", number)
            zalo.inject(text_update("1", chat_id="z-1", message_id="z-4"))
            await zalo.wait_for("sendMessage", 4)
        texts = zalo.texts()
    # Photos (skip), anonymous, then the open ticket as numbered choices.
    assert "đang được xử lý" in texts[2]
    assert "1. Theo dõi phản ánh này\n2. Gửi phản ánh mới\n3. Hủy" in texts[2]
    assert "đang theo dõi phản ánh" in texts[3]
    with Session(engine) as session:
        assert len(session.exec(select(Ticket)).all()) == 1
        follower = session.exec(select(TicketFollower)).one()
        assert (follower.channel.value, follower.chat_id) == ("zalo", "z-1")
