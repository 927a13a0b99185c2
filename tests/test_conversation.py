"""The conversation, channel-free: whole Vietnamese dialogues and the rows they leave behind.

The NLU here is the keyword classifier (deterministic); the same dialogues run against the
real Rasa model in the channel tests.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.conversation.dialogue import procedures
from bot.conversation.engine import Conversation
from bot.conversation.messages import (
    Attachment,
    CollectingOutput,
    GeoPoint,
    IncomingMessage,
    Reply,
)
from bot.conversation.texts import say
from bot.nlu import fallback
from bot.nlu.result import LocationResult, NluResult
from storage.models import Attachment as AttachmentRow
from storage.models import Conversation as ConversationRow
from storage.models import Direction, Message, Ticket, TicketStatus

_ids = itertools.count(1)


class KeywordNlu:
    """The fallback classifier as the conversation's NLU, with the location resolved."""

    async def parse(self, text: str) -> NluResult:
        from bot.nlu.client import NluClient

        async with NluClient("http://127.0.0.1:9", "x", timeout=0.2) as client:
            return await client.parse(text)  # unreachable server: keyword fallback


@pytest.fixture
def chat(engine: Engine) -> Chat:
    return Chat(Conversation(nlu=KeywordNlu(), engine=engine), engine)


class Chat:
    """One citizen talking to the bot on the web channel."""

    def __init__(self, conversation: Conversation, engine: Engine, user: str = "u1") -> None:
        self.conversation = conversation
        self.engine = engine
        self.user = user
        self.output = CollectingOutput()

    async def send(self, text: str = "", **fields: object) -> list[Reply]:
        before = len(self.output.sent)
        message = IncomingMessage(
            channel="web", chat_id=self.user, user_id=self.user,
            message_id=str(fields.pop("message_id", next(_ids))), text=text, **fields,  # type: ignore[arg-type]
        )  # fmt: skip
        await self.conversation.handle(message, self.output)
        return [reply for _, reply in self.output.sent[before:]]

    async def press(self, label: str) -> list[Reply]:
        """Press the button with this label on the last reply that has it."""
        for _, reply in reversed(self.output.sent):
            for button in reply.buttons:
                if button.label == label:
                    return await self.send(button=button.data)
        raise AssertionError(f"no button {label!r} in {self.output.sent[-1][1]}")

    def rows(self, model: type) -> list:  # type: ignore[type-arg]
        with Session(self.engine) as session:
            return list(session.exec(select(model)).all())


def labels(replies: list[Reply]) -> list[str]:
    return [b.label for r in replies for b in r.buttons]


async def test_complaint_with_category_and_place_becomes_a_ticket(chat: Chat) -> None:
    replies = await chat.send("Vỉa hè phố Huế, phường Hai Bà Trưng bị quán nước lấn chiếm hết")
    assert "ảnh" in replies[-1].text  # category, place and description known: photos next
    await chat.press("Bỏ qua")
    await chat.press("Để lại số điện thoại")
    replies = await chat.send("0912 345 678")
    assert "Phường Hai Bà Trưng" in replies[-1].text
    assert "Lấn chiếm vỉa hè" in replies[-1].text
    replies = await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    assert ticket.code in replies[-1].text
    assert ticket.code.startswith("PA-")
    assert (ticket.status, ticket.category, ticket.ward_name) == (
        TicketStatus.received, "sidewalk", "Phường Hai Bà Trưng",
    )  # fmt: skip
    assert ticket.contact_phone == "0912345678"
    assert ticket.location_text == "phố Huế"  # as written; the old ward Phố Huế is now here


async def test_an_answer_button_of_a_ticket_no_longer_waiting_is_expired(chat: Chat) -> None:
    await chat.send("Vỉa hè phố Huế, phường Hai Bà Trưng bị quán nước lấn chiếm hết")
    await chat.press("Bỏ qua")
    await chat.press("Gửi ẩn danh")
    await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    assert ticket.status == TicketStatus.received  # no question asked: nothing to answer
    replies = await chat.send(button=f"ans:{ticket.code}")
    assert [r.text for r in replies] == [say("utter_button_expired")]


async def test_vague_complaint_asks_category_place_description_without_diacritics(
    chat: Chat,
) -> None:
    replies = await chat.send("toi muon phan anh")
    assert "Rác thải, vệ sinh môi trường" in labels(replies)
    replies = await chat.press("Rác thải, vệ sinh môi trường")
    assert "ở đâu" in replies[-1].text
    replies = await chat.send("ngo 12 phuong dich vong hau quan cau giay")
    assert {"Phường Cầu Giấy", "Phường Nghĩa Đô"} <= set(labels(replies))  # split old ward
    await chat.press("Phường Cầu Giấy")
    replies = await chat.send("rac do dau ngo 3 ngay chua ai don, boc mui")
    await chat.send(attachments=(Attachment("photo-1", "photo"),))
    await chat.send(attachments=(Attachment("photo-2", "photo"),))
    await chat.press("Xong")
    await chat.press("Gửi ẩn danh")
    replies = await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    assert (ticket.category, ticket.ward_name, ticket.anonymous, ticket.contact_phone) == (
        "waste", "Phường Cầu Giấy", True, None,
    )  # fmt: skip
    assert ticket.location_text == "ngo 12 phuong dich vong hau quan cau giay"  # as typed
    assert sorted(a.file_id for a in chat.rows(AttachmentRow)) == ["photo-1", "photo-2"]


async def test_button_labels_typed_instead_of_pressed_act_as_the_buttons(chat: Chat) -> None:
    replies = await chat.send(
        "via he pho hue phuong hai ba trung bi quan nuoc lan chiem het ko di dc"
    )
    assert "Bỏ qua" in labels(replies)
    replies = await chat.send("bo qua")  # typed, no diacritics: skip the photos, not cancel
    assert "Gửi ẩn danh" in labels(replies)
    replies = await chat.send("Gửi ẩn danh!")
    assert "Gửi phản ánh" in labels(replies)
    replies = await chat.send("gui phan anh")
    (ticket,) = chat.rows(Ticket)
    assert ticket.code in replies[-1].text and ticket.anonymous
    replies = await chat.send("bo qua")  # no form any more: an ordinary message
    assert len(chat.rows(Ticket)) == 1


class StreetNlu(KeywordNlu):
    """The keyword NLU, plus the street a real model tags as a location."""

    async def parse(self, text: str) -> NluResult:
        result = await super().parse(text)
        if "kim ma" in text and "phuong" not in text:
            result.location = LocationResult(text="ngo 12 kim ma")
        return result


@pytest.mark.parametrize("street_found", [True, False], ids=["model-finds-it", "typed-later"])
async def test_a_street_without_its_ward_is_asked_about_once_and_kept(
    engine: Engine, street_found: bool
) -> None:
    chat = Chat(
        Conversation(nlu=StreetNlu() if street_found else KeywordNlu(), engine=engine), engine
    )
    replies = await chat.send("rac do trom o ngo 12 kim ma may hom nay ko ai don")
    if not street_found:
        assert "ở đâu" in replies[-1].text
        replies = await chat.send("ngo 12 kim ma")
    assert "ngo 12 kim ma" in replies[-1].text and "phường/xã" in replies[-1].text
    replies = await chat.send("phuong giang vo")
    assert "Bỏ qua" in labels(replies)  # category, place and description known: photos
    await chat.press("Bỏ qua")
    await chat.press("Gửi ẩn danh")
    await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    assert ticket.ward_name == "Phường Giảng Võ"
    assert ticket.location_text == "ngo 12 kim ma, phuong giang vo"


async def test_typed_cancel_label_leaves_the_form(chat: Chat) -> None:
    await chat.send("rac do trom dau ngo 5 pho hue chua ai don")
    replies = await chat.send("Hủy")
    assert "hủy" in replies[-1].text.lower()
    (row,) = chat.rows(ConversationRow)
    assert row.state == "idle" and "typed_buttons" not in row.data


async def test_misconduct_offers_anonymity_first(chat: Chat) -> None:
    replies = await chat.send("can bo phuong Kim Lien doi tien moi giai quyet ho so cho toi")
    assert labels(replies)[0] == "Gửi ẩn danh"
    assert "Luật Tố cáo 2018" in replies[-1].text


async def test_cancel_leaves_the_form_cleanly(chat: Chat) -> None:
    await chat.send("tôi muốn phản ánh")
    replies = await chat.send("thôi hủy")
    assert "Đã hủy" in replies[-1].text
    assert chat.rows(Ticket) == []
    (state,) = chat.rows(ConversationRow)
    assert (state.state, state.data) == ("idle", {})


async def test_restart_in_the_middle_of_the_form_continues(chat: Chat) -> None:
    await chat.send("mất nước 3 ngày nay ở phường Kim Liên")
    restarted = Chat(Conversation(nlu=KeywordNlu(), engine=chat.engine), chat.engine)
    replies = await restarted.send(button="form:skip")
    assert "số điện thoại" in replies[-1].text


async def test_the_same_update_delivered_twice_is_answered_once(chat: Chat) -> None:
    first = await chat.send("xin chào", message_id="m-42")
    second = await chat.send("xin chào", message_id="m-42")
    assert len(first) == 1
    assert second == []
    incoming = [m for m in chat.rows(Message) if m.direction == Direction.incoming]
    assert len(incoming) == 1


async def test_every_message_and_reply_is_stored_with_its_nlu_result(chat: Chat) -> None:
    await chat.send("lam giay khai sinh can nhung gi")
    messages = chat.rows(Message)
    incoming = [m for m in messages if m.direction == Direction.incoming]
    outgoing = [m for m in messages if m.direction == Direction.outgoing]
    assert incoming[0].nlu is not None
    assert incoming[0].nlu["procedure"] == "khai_sinh"
    assert incoming[0].handled_at is not None
    assert outgoing and "Hồ sơ" in outgoing[0].text


async def test_a_failing_step_keeps_the_message_its_nlu_result_and_the_state(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    await chat.send("xin chào")

    def broken(*_: object) -> None:
        raise RuntimeError("a step of the dialogue failed")

    monkeypatch.setattr(procedures, "answer_question", broken)
    with pytest.raises(RuntimeError):
        await chat.send("lam giay khai sinh can nhung gi")
    failed = [m for m in chat.rows(Message) if m.text == "lam giay khai sinh can nhung gi"]
    assert len(failed) == 1 and failed[0].nlu is not None
    assert failed[0].nlu["procedure"] == "khai_sinh"
    [conversation] = chat.rows(ConversationRow)
    assert conversation.state == "idle"
    monkeypatch.undo()
    replies = await chat.send("lam giay khai sinh can nhung gi")  # the next message is answered
    assert replies and "Hồ sơ" in replies[0].text


async def test_procedure_answer_leads_with_the_aspect_and_offers_details(chat: Chat) -> None:
    replies = await chat.send("làm hộ chiếu lệ phí bao nhiêu")
    assert replies[0].text.startswith("Lệ phí")
    replies = await chat.press("Xem đầy đủ")
    assert "Căn cứ" in replies[0].text or "Căn cứ pháp lý" in replies[0].text


async def test_check_status_only_shows_own_tickets(chat: Chat, engine: Engine) -> None:
    await chat.send("đèn đường ngõ 5 phường Láng hỏng cả tuần")
    await chat.press("Bỏ qua")
    await chat.press("Gửi ẩn danh")
    await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    replies = await chat.send(f"phản ánh {ticket.code.lower().replace('-', '')} đến đâu rồi")
    assert ticket.code in replies[0].text and "chờ đơn vị tiếp nhận" in replies[0].text
    stranger = Chat(chat.conversation, engine, user="u2")
    replies = await stranger.send(f"tra cứu {ticket.code}")
    assert "Không tìm thấy" in replies[0].text
    replies = await stranger.send("đơn của tôi đến đâu rồi")
    assert "chưa gửi phản ánh nào" in replies[0].text


async def test_two_misunderstood_messages_offer_the_menu_and_a_person(chat: Chat) -> None:
    first = await chat.send("ừm")
    second = await chat.send("ờ")
    assert "chưa hiểu" in first[0].text
    assert "Gặp cán bộ" in labels(second)


async def test_human_request_is_stored_and_acknowledged(chat: Chat) -> None:
    replies = await chat.send("cho tôi gặp cán bộ")
    assert "cán bộ" in replies[0].text
    (incoming,) = [m for m in chat.rows(Message) if m.direction == Direction.incoming]
    assert incoming.payload["human_request"] is True


@pytest.mark.parametrize(
    "fields",
    [
        {"attachments": (Attachment("st-1", "sticker"),)},
        {"attachments": (Attachment("v-1", "voice"),)},
        {"text": "   "},
        {"button": "no-such-button"},
        {"location": GeoPoint(21.0, 105.8)},
        {"text": "vỉa hè " * 2000},
    ],
    ids=["sticker", "voice", "blank", "unknown-button", "pin-out-of-form", "10k-chars"],
)
async def test_odd_input_gets_a_polite_answer_and_is_stored(
    chat: Chat, fields: dict[str, object]
) -> None:
    replies = await chat.send(**fields)  # type: ignore[arg-type]
    assert replies and all(r.text for r in replies)
    assert any(m.direction == Direction.incoming for m in chat.rows(Message))


async def test_edited_message_is_stored_but_not_answered(chat: Chat) -> None:
    replies = await chat.send("xin chào", edited=True)
    assert replies == []
    assert len(chat.rows(Message)) == 1


async def test_location_pin_offers_the_nearest_wards(chat: Chat) -> None:
    await chat.send("tôi muốn phản ánh")
    await chat.press("Hạ tầng đô thị")
    # Hồ Gươm, in Phường Hoàn Kiếm.
    replies = await chat.send(location=GeoPoint(21.02880, 105.85240))
    assert "Phường Hoàn Kiếm" in labels(replies)
    replies = await chat.press("Phường Hoàn Kiếm")
    assert "mô tả" in replies[-1].text
    (state,) = chat.rows(ConversationRow)
    form = state.data["form"]
    assert (form["ward_name"], form["lat"]) == ("Phường Hoàn Kiếm", 21.0288)


def test_fallback_is_what_the_keyword_nlu_uses() -> None:
    assert fallback.classify("mất nước").category == "water"


async def test_a_chat_mid_form_before_the_state_table_goes_on(chat: Chat) -> None:
    await chat.send("xin chào")
    with Session(chat.engine) as session:
        row = session.exec(select(ConversationRow)).one()
        row.state = "ask_photos"  # as the dialogue of before stored it: keys at the top level
        row.data = {
            "category": "waste",
            "place": "ngõ 5 phường Kim Liên",
            "ward_code": "00229",
            "ward_name": "Phường Kim Liên",
            "candidates": [],
            "description": "rác đổ trộm 3 ngày",
        }
        session.add(row)
        session.commit()
    replies = await chat.send("không có ảnh")
    assert "Gửi ẩn danh" in labels(replies)
    await chat.press("Gửi ẩn danh")
    await chat.press("Gửi phản ánh")
    (ticket,) = chat.rows(Ticket)
    assert (ticket.category, ticket.ward_name) == ("waste", "Phường Kim Liên")
