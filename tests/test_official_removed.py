"""An official removed in the middle of a step (found trying the product,
docs/usability-review.md, session 4): the reason they typed next began a citizen's complaint
form ("Việc này xảy ra ở đâu ạ?"), and nothing told them they had been removed."""

from __future__ import annotations

from seed import kim_lien_with_a_handler, outbox_to
from sqlalchemy import Engine
from sqlmodel import Session, select
from test_access import NOW, Chat
from test_dashboard import NoConversation

from bot.conversation.texts import say
from bot.officials.desk import Desk
from bot.officials.invites import remove_official
from storage import queries
from storage.models import Channel, Conversation, Official, TicketStatus


async def test_removal_drops_the_pending_step_and_says_so(engine: Engine) -> None:
    code = kim_lien_with_a_handler(engine, NOW)
    desk = Desk(NoConversation(), engine=engine, clock=lambda: NOW)  # type: ignore[arg-type]
    chat = Chat(engine, desk, "handler")
    assert "lý do" in await chat.send(button=f"t:rej:{code}")
    with Session(engine) as session:
        official = session.exec(select(Official).where(Official.chat_id == "handler")).one()
        assert official.id is not None
        remove_official(session=session, official_id=official.id, actor="cli", now=NOW)
        removed = say("utter_official_removed", name=official.name)
        assert outbox_to(session, "handler")[-1] == removed
        conversation = session.exec(
            select(Conversation).where(
                Conversation.channel == Channel.telegram, Conversation.chat_id == "handler"
            )
        ).one()
        assert conversation.state == "idle" and conversation.data == {}
    await chat.send("Không thuộc thẩm quyền")  # now a citizen's message, no desk step
    with Session(engine) as session:
        ticket = queries.get_ticket_by_code(session=session, code=code)
        assert ticket is not None and ticket.status == TicketStatus.received
