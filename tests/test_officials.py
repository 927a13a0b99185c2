"""Officials' invites and ticket actions on both databases: who may act, what changes, which
events are written and who is notified (through the outbox)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from seed import linked_official, outbox_to, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.conversation.dialogue.context import ANSWER_INFO
from bot.conversation.dialogue.tickets import await_answer
from bot.conversation.messages import OutgoingFile, Reply, reply_from_payload, reply_to_payload
from bot.officials.desk import is_overdue, open_tickets
from bot.officials.invites import find_invite_code, invite_official, link_official
from bot.tickets import workflow
from bot.tickets.notices import for_channel
from bot.tickets.workflow import ActionRefused
from storage import queries
from storage.models import (
    AttachmentCreate,
    Channel,
    Conversation,
    DirectoryChange,
    Official,
    OfficialRole,
    OutboxMessage,
    Severity,
    Ticket,
    TicketEvent,
    TicketStatus,
)

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 09:00 in Hà Nội


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        two_wards_and_city(session)
        yield session


def official(session: Session, unit: str, chat: str, role: OfficialRole) -> Official:
    return linked_official(session, unit, chat, role, now=NOW)


def ticket(session: Session, unit: str = "ward-a") -> Ticket:
    return waste_ticket(session, unit, now=NOW)


def ask(session: Session, t: Ticket, person: Official, question: str) -> None:
    """An official's question, the citizen's chat waiting for the answer (as the desk asks)."""
    workflow.ask_info(
        session=session,
        ticket=t,
        official=person,
        question=question,
        now=NOW,
        await_answer=await_answer,
    )


def statuses(session: Session, t: Ticket) -> list[str]:
    events = session.exec(
        select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(col(TicketEvent.id))
    ).all()
    return [str(e.new_value["status"]) for e in events if e.kind == "status" and e.new_value]


# --- invites ----------------------------------------------------------------------------------


def test_invite_codes_link_once_and_expire(session: Session) -> None:
    person, code = invite_official(
        session=session, unit_id="ward-a", name="Nguyễn Văn A", role=OfficialRole.handler, now=NOW
    )
    assert find_invite_code(f"/start {code.replace('-', '').lower()}") == code
    assert person.invite_code_hash and code not in person.invite_code_hash  # only a hash kept
    expired = link_official(
        session=session, code=code, channel=Channel.telegram, external_user_id="u1",
        chat_id="u1", now=NOW + timedelta(days=8),
    )  # fmt: skip
    assert expired is None
    linked = link_official(
        session=session, code=code, channel=Channel.telegram, external_user_id="u1",
        chat_id="u1", now=NOW,
    )  # fmt: skip
    assert linked is not None and linked.chat_id == "u1" and linked.invite_code_hash is None
    reused = link_official(
        session=session, code=code, channel=Channel.zalo, external_user_id="u2",
        chat_id="u2", now=NOW,
    )  # fmt: skip
    assert reused is None
    changes = session.exec(select(DirectoryChange.change)).all()
    assert sorted(changes) == ["invited", "linked"]


def test_invite_for_an_unknown_unit_is_an_error(session: Session) -> None:
    with pytest.raises(ValueError, match="Unknown unit"):
        invite_official(session=session, unit_id="nowhere", name="X", role=OfficialRole.handler,
                        now=NOW)  # fmt: skip


def test_an_account_belongs_to_one_official(session: Session) -> None:
    first = official(session, "ward-a", "same", OfficialRole.handler)
    _, code = invite_official(
        session=session, unit_id="ward-b", name="Other", role=OfficialRole.handler, now=NOW
    )
    second = link_official(
        session=session, code=code, channel=Channel.telegram, external_user_id="same",
        chat_id="same", now=NOW,
    )  # fmt: skip
    assert second is not None
    session.refresh(first)
    assert first.chat_id is None and second.chat_id == "same"
    official_id = queries.official_by_account(
        session=session, channel=Channel.telegram, external_user_id="same"
    )
    assert official_id == second.id


# --- who may act ------------------------------------------------------------------------------


def test_only_the_lead_units_handlers_and_supervisors_act(session: Session) -> None:
    t = ticket(session)
    other = official(session, "ward-b", "b1", OfficialRole.handler)
    leader = official(session, "ward-a", "lead", OfficialRole.leader)
    for person in (None, other, leader):
        with pytest.raises(ActionRefused):
            workflow.accept(session=session, ticket=t, official=person, now=NOW)
    session.refresh(t)
    assert t.status == TicketStatus.received and statuses(session, t) == []
    supervisor = official(session, "ward-a", "sup", OfficialRole.supervisor)
    workflow.accept(session=session, ticket=t, official=supervisor, now=NOW)
    assert t.status == TicketStatus.accepted


def test_a_wrong_status_is_refused_without_change(session: Session) -> None:
    t = ticket(session)
    handler = official(session, "ward-a", "a1", OfficialRole.handler)
    workflow.reject(session=session, ticket=t, official=handler, reason="Trùng lặp", now=NOW)
    with pytest.raises(ActionRefused):
        workflow.accept(session=session, ticket=t, official=handler, now=NOW)
    with pytest.raises(ActionRefused):
        workflow.rate(session=session, ticket=t, rating=5, now=NOW)
    assert statuses(session, t) == ["rejected"]


# --- the workflow -----------------------------------------------------------------------------


def test_accept_ask_answer_resolve_rate(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    official(session, "ward-a", "a2", OfficialRole.handler)
    session.add(Conversation(channel=Channel.telegram, chat_id="citizen-chat", state="idle"))
    session.commit()
    workflow.accept(session=session, ticket=t, official=a1, now=NOW)
    assert t.accepted_at == NOW
    ask(session, t, a1, "Ngõ số mấy?")
    conversation = session.exec(select(Conversation)).one()
    session.refresh(conversation)
    assert (conversation.state, conversation.data) == (ANSWER_INFO, {"ticket": t.code})
    workflow.citizen_answer(session=session, ticket=t, text="Ngõ 5", now=NOW)
    with pytest.raises(ActionRefused):
        workflow.resolve(session=session, ticket=t, official=a1, note="  ", now=NOW)
    workflow.resolve(session=session, ticket=t, official=a1, note="Đã dọn sạch", now=NOW)
    workflow.rate(session=session, ticket=t, rating=4, now=NOW)
    session.refresh(t)
    assert (t.status, t.rating) == (TicketStatus.closed, 4)
    assert statuses(session, t) == ["accepted", "need_info", "accepted", "resolved", "closed"]
    citizen = outbox_to(session, "citizen-chat")
    assert len(citizen) == 3  # accepted, the question, resolved (with rating buttons)
    assert "Ngõ số mấy?" in citizen[1] and "Đã dọn sạch" in citizen[2]
    for chat in ("a1", "a2"):  # both officials hear the answer and the rating
        texts = outbox_to(session, chat)
        assert any("Ngõ 5" in x for x in texts) and any("4/5" in x for x in texts)


def test_accepting_an_urgent_ticket_early_brings_its_deadline_forward(session: Session) -> None:
    """1207/QĐ-UBND: urgent tickets are handled within 4 working hours of acceptance."""
    urgent, normal = ticket(session), ticket(session)
    urgent.severity = Severity.urgent
    session.add(urgent)
    session.commit()
    filed_deadline = normal.resolve_by
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    workflow.accept(session=session, ticket=urgent, official=a1, now=NOW)  # Monday 09:00
    workflow.accept(session=session, ticket=normal, official=a1, now=NOW)
    session.refresh(urgent)
    session.refresh(normal)
    hanoi = ZoneInfo("Asia/Ho_Chi_Minh")
    assert urgent.resolve_by == datetime(2026, 11, 23, 14, tzinfo=hanoi)  # 3 h + 1 h after lunch
    assert normal.resolve_by == filed_deadline  # levels counted in days keep theirs
    deadline_events = session.exec(
        select(TicketEvent).where(
            TicketEvent.ticket_id == urgent.id, TicketEvent.kind == "deadline"
        )
    ).all()
    assert len(deadline_events) == 1 and deadline_events[0].actor == workflow.actor_of(a1)
    assert "Thời hạn trả lời: 14:00 thứ Hai, 23/11/2026" in outbox_to(session, "citizen-chat")[0]
    late = ticket(session)
    late.severity = Severity.urgent
    late.resolve_by = NOW + timedelta(hours=2)
    session.add(late)
    session.commit()
    workflow.accept(session=session, ticket=late, official=a1, now=NOW + timedelta(hours=1))
    session.refresh(late)
    assert late.resolve_by == NOW + timedelta(hours=2)  # a late acceptance gains no time


def test_the_citizens_form_is_not_interrupted_by_a_question(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    session.add(Conversation(channel=Channel.telegram, chat_id="citizen-chat", state="ask_place"))
    session.commit()
    ask(session, t, a1, "Ở đâu?")
    conversation = session.exec(select(Conversation)).one()
    session.refresh(conversation)
    assert conversation.state == "ask_place"  # the question comes with a "Trả lời" button


def test_transfer_starts_again_at_the_new_unit(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    b1 = official(session, "ward-b", "b1", OfficialRole.handler)
    workflow.accept(session=session, ticket=t, official=a1, now=NOW)
    with pytest.raises(ActionRefused):
        workflow.transfer(session=session, ticket=t, official=a1, to_unit_id="ward-b", reason="",
                         now=NOW)  # fmt: skip
    with pytest.raises(ActionRefused):
        workflow.transfer(session=session, ticket=t, official=a1, to_unit_id="nowhere",
                         reason="x", now=NOW)  # fmt: skip
    later = NOW + timedelta(hours=1)
    workflow.transfer(session=session, ticket=t, official=a1, to_unit_id="ward-b",
                     reason="Địa bàn phường B", now=later)  # fmt: skip
    session.refresh(t)
    assert (t.lead_unit_id, t.status, t.accepted_at) == ("ward-b", TicketStatus.received, None)
    assert t.accept_by is not None and t.accept_by > later
    with pytest.raises(ActionRefused):  # the old unit can no longer act
        workflow.accept(session=session, ticket=t, official=a1, now=later)
    assert any("Địa bàn phường B" in x for x in outbox_to(session, "b1"))
    assert any("UBND Phường B" in x for x in outbox_to(session, "citizen-chat"))
    workflow.accept(session=session, ticket=t, official=b1, now=later)


def test_not_fixed_reopens_with_a_new_deadline(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    sup = official(session, "ward-a", "sup", OfficialRole.supervisor)
    workflow.resolve(session=session, ticket=t, official=a1, note="Xong", now=NOW)
    later = NOW + timedelta(days=2)
    workflow.reopen(session=session, ticket=t, now=later)
    session.refresh(t)
    assert (t.status, t.reopen_count, t.resolved_at) == (TicketStatus.accepted, 1, None)
    assert t.resolve_by is not None and t.resolve_by > later
    for chat in ("a1", "sup"):
        assert any("CHƯA được giải quyết" in x for x in outbox_to(session, chat))
    assert sup.role == OfficialRole.supervisor
    with pytest.raises(ActionRefused):
        workflow.reopen(session=session, ticket=t, now=later)  # only a resolved ticket


def test_notifications_are_not_repeated(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    workflow.accept(session=session, ticket=t, official=a1, now=NOW)
    keys = session.exec(select(OutboxMessage.dedupe_key)).all()
    assert len(keys) == len(set(keys)) == 1


def outbox_replies(session: Session, recipient: str) -> list[Reply]:
    rows = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.recipient == recipient)
        .order_by(col(OutboxMessage.id))
    ).all()
    return [reply_from_payload(r.payload) for r in rows]


def test_photos_go_only_where_their_file_ids_mean_something(session: Session) -> None:
    t = ticket(session, unit="ward-b")
    assert t.id is not None
    for channel, file_id in (
        (Channel.telegram, "AgACAgTelegramFileId"),
        (Channel.web, "web-upload-7"),  # an id only this server knows
        (Channel.zalo, "https://photo.zalo.example/p.jpg"),  # a URL: any channel fetches it
    ):
        queries.add_attachment(
            session=session,
            attachment_in=AttachmentCreate(
                channel=channel, file_id=file_id, kind="photo", ticket_id=t.id
            ),
        )
    b1 = official(session, "ward-b", "b1", OfficialRole.handler)
    official(session, "ward-a", "a1", OfficialRole.handler)
    workflow.transfer(
        session=session, ticket=t, official=b1, to_unit_id="ward-a", reason="Sai địa bàn", now=NOW
    )
    [notice] = outbox_replies(session, "a1")
    assert [f.file_id for f in notice.files] == [
        "AgACAgTelegramFileId",
        "https://photo.zalo.example/p.jpg",
    ]
    assert "Kèm 1 ảnh gửi qua web" in notice.text


def test_an_officials_photo_becomes_a_line_for_a_citizen_on_another_channel() -> None:
    reply = Reply("Đã giải quyết", files=(OutgoingFile("photo", "AgAC", channel="telegram"),))
    assert for_channel(reply, Channel.telegram) is reply
    on_zalo = for_channel(reply, Channel.zalo)
    assert on_zalo.files == ()
    assert on_zalo.text.startswith("Đã giải quyết\n\n(Kèm 1 ảnh gửi qua Telegram")
    assert reply_from_payload(reply_to_payload(reply)) == reply  # the origin is stored too


def test_the_resolve_clock_stops_while_the_citizen_is_asked(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    before = t.resolve_by
    assert before is not None
    ask(session, t, a1, "Ngõ số mấy?")
    later = before + timedelta(days=3)  # the citizen answers only after the deadline
    assert not is_overdue(t, later)  # waiting for the citizen is nobody's delay
    assert open_tickets(session=session, unit_id="ward-a", overdue_at=later) == []
    workflow.citizen_answer(session=session, ticket=t, text="Ngõ 5", now=later)
    session.refresh(t)
    calendar = workflow.calendar()
    waited = calendar.working_hours_between(NOW, later)
    assert waited > 0
    assert t.resolve_by == calendar.add_working_hours(before, waited)
    assert not is_overdue(t, later)
    kinds = [e.kind for e in session.exec(select(TicketEvent).order_by(col(TicketEvent.id)))]
    assert kinds[-2:] == ["status", "deadline"]
    assert "Hạn giải quyết lùi đến" in outbox_to(session, "a1")[-1]


def test_an_answer_at_once_moves_no_deadline(session: Session) -> None:
    t = ticket(session)
    a1 = official(session, "ward-a", "a1", OfficialRole.handler)
    before = t.resolve_by
    ask(session, t, a1, "Ảnh rõ hơn?")
    workflow.citizen_answer(session=session, ticket=t, text="Đây ạ", now=NOW)
    session.refresh(t)
    assert t.resolve_by == before
    assert "lùi đến" not in outbox_to(session, "a1")[-1]
