"""The officials' side of the chat, in front of the citizens' conversation.

`Desk.handle` is what channels call. A message from a linked official, an invite code, or an
officials' button ("t:…", "h:…") is handled here; everything else goes to the citizens'
`Conversation`. Like the conversation, the desk stores each message before acting on it and
keeps an official's pending step (e.g. "type the reason") in the chat's stored state.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from civicbot_nlu.normalize import fold
from civicbot_nlu.patterns import find_ticket_codes
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.conversation.dialogue import places
from bot.conversation.dialogue.tickets import await_answer
from bot.conversation.engine import MAX_STORED_TEXT, Chats, ChatTurn, Conversation
from bot.conversation.messages import (
    Button,
    IncomingMessage,
    OutgoingFile,
    OutputChannel,
    Reply,
    incoming_payload,
    reply_to_payload,
)
from bot.conversation.texts import CATEGORY_NAMES, OFFICIAL_STATUS_NAMES, say
from bot.directory import store
from bot.duplicates import merge
from bot.officials import signin
from bot.officials.invites import find_invite_code, link_official
from bot.outbox.worker import Claim, OutboxWorker
from bot.tickets import access, proof, workflow
from bot.tickets.intake import expected, official_buttons, place_text
from bot.tickets.workflow import ActionRefused
from storage import followers, queries
from storage.db import get_session
from storage.models import (
    Channel,
    HumanRequest,
    Official,
    Ticket,
    Unit,
    UnitKind,
    utcnow,
)

logger = logging.getLogger(__name__)

# An official's pending step (Conversation.state of their chat).
OFF_IDLE = "official"
OFF_QUESTION = "official:question"
OFF_RESOLUTION = "official:resolution"
OFF_REJECT_REASON = "official:reject_reason"
OFF_TRANSFER_REASON = "official:transfer_reason"
OFF_TRANSFER_UNIT = "official:transfer_unit"  # the receiving ward may be typed
OFF_HUMAN_REPLY = "official:human_reply"

OFFICIAL_PREFIXES = ("t:", "h:", "off:")
CANCEL = "off:cancel"
CANCEL_BUTTON = Button("Hủy thao tác", CANCEL)
QUEUE_COMMANDS = ("/hangdoi", "/queue")
OVERDUE_COMMANDS = ("/quahan", "/overdue")
SIGNIN_COMMANDS = ("/dangnhap", "/signin")
MERGE_COMMANDS = ("/gop", "/merge")
# The commands typed as words, marks or not ("hàng đợi", "qua han"): the whole message.
WORD_COMMANDS = {"hangdoi": "/hangdoi", "quahan": "/quahan", "dangnhap": "/dangnhap"}
MAX_LISTED = 20
ROLE_NAMES = {"handler": "cán bộ xử lý", "supervisor": "lãnh đạo đơn vị", "leader": "lãnh đạo"}


class Desk:
    """Routes each message to the officials' desk or the citizens' conversation."""

    def __init__(
        self,
        conversation: Conversation,
        *,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.conversation = conversation
        self._engine = engine
        self._clock = clock
        # The chats' turns, the citizens' and the desk's (one claim per chat, cluster-wide):
        # the conversation's, which routes a chat's older unhandled messages here when the
        # desk's. A stand-in conversation (tests): the desk's own.
        if isinstance(conversation, Conversation):
            self._chats = conversation.chats
            conversation.chats.route = self.turn
        else:
            self._chats = Chats(engine, self.turn)
        self._locks = self._chats.lanes  # only the chats in flight
        self._outbox = OutboxWorker({}, engine=engine, clock=clock)

    def accept(self, messages: list[IncomingMessage]) -> list[bool]:
        """The inbox, the same for officials and citizens (`Conversation.accept`)."""
        return self.conversation.accept(messages)

    def offered_buttons(self, channel: str, chat_id: str, answer: str) -> tuple[Button, ...]:
        """The buttons last offered in a chat (`Conversation.offered_buttons`)."""
        return self.conversation.offered_buttons(channel, chat_id, answer)

    def replies_to(self, message: IncomingMessage) -> list[Reply] | None:
        """The replies queued for a message handled before (`Conversation.replies_to`)."""
        return self.conversation.replies_to(message)

    async def handle(self, message: IncomingMessage, output: OutputChannel | None) -> None:
        """An official's message (or invite, or officials' button) here; others to citizens."""
        with get_session(self._engine) as session:
            official_id = self._official_id(session, message)
            session.commit()
        if official_id is not None:
            message = await keep_photos(message, output)
        if not _on_desk(message, official_id):
            await self.conversation.handle(message, output)
            return
        # Through the app's worker when there is one (its 429 pause).
        own = not isinstance(self.conversation, Conversation)
        outbox = self._outbox if own else self.conversation.outbox
        await self._chats.take_turns(
            message, output, lambda session: self._turn(session, message, official_id), outbox
        )

    def turn(self, session: Session, message: IncomingMessage) -> ChatTurn:
        """The turn for a stored message of a chat: the desk's for an official's message (or
        invite, or officials' button), a citizen's otherwise."""
        official_id = self._official_id(session, message)
        if _on_desk(message, official_id):
            return self._turn(session, message, official_id)
        return self.conversation.turn(session, message)

    def _official_id(self, session: Session, message: IncomingMessage) -> int | None:
        """The official linked to the sender's account (never on the web chat)."""
        channel = Channel(message.channel)
        if channel == Channel.web:  # anonymous browser sessions: never an official's account
            return None
        return queries.official_by_account(
            session=session, channel=channel, external_user_id=message.user_id
        )

    def _turn(
        self, session: Session, message: IncomingMessage, official_id: int | None
    ) -> _DeskTurn:
        official = session.get(Official, official_id) if official_id else None
        return _DeskTurn(session, message, Channel(message.channel), official, self._clock())


def _on_desk(message: IncomingMessage, official_id: int | None) -> bool:
    """Whether a message is the desk's: an official's, an invite code or an officials'
    button (not on the web chat: anonymous)."""
    if message.channel == Channel.web.value:
        return False
    button = message.button or ""
    is_invite = find_invite_code(message.text) is not None
    return official_id is not None or is_invite or button.startswith(OFFICIAL_PREFIXES)


class _DeskTurn:
    """One message on the desk and its replies."""

    def __init__(
        self,
        session: Session,
        message: IncomingMessage,
        channel: Channel,
        official: Official | None,
        now: datetime,
    ) -> None:
        self.session = session
        self.message = message
        self.channel = channel
        self.official = official
        self.now = now
        self.replies: list[Reply] = []
        self.state = OFF_IDLE
        self.data: dict[str, Any] = {}
        self.queued: list[int] = []  # the replies' outbox rows
        self.claim = queries.new_claim_token()  # this turn's hold on its chat, cluster-wide

    def store(self) -> queries.TurnStart:
        """Store the message first (unless the channel's inbox did) and claim its chat, as
        a citizen's turn does (`queries.start_turn`, no citizen)."""
        m = self.message
        payload = {**incoming_payload(m), "official_id": getattr(self.official, "id", None)}
        start = queries.start_turn(
            session=self.session, channel=self.channel, chat_id=m.chat_id, user_id=m.user_id,
            display_name=m.display_name, channel_message_id=m.message_id,
            text=m.text[:MAX_STORED_TEXT], payload=payload, claim=self.claim, citizen=False,
        )  # fmt: skip
        self.stored_id = start.message_id
        if start.state is not None and start.state.startswith(OFF_IDLE):
            self.state, self.data = start.state, start.data
        self.started = (self.state, copy.deepcopy(self.data))
        return start

    async def run(self) -> None:
        """Answer, then save; a step that fails is undone, the message handled with an
        apology and the chat's state as it was (the chat's later messages are not held)."""
        try:
            self.respond()
        except Exception:
            self.session.rollback()
            self.replies = [Reply(text=say("utter_official_failed"))]
            self.state, self.data = self.started
            self.save()
            raise
        self.save()

    def claims(self) -> list[Claim]:
        """None: the desk's replies are queued for any sender (`OutboxWorker.send_now`)."""
        return []

    def save(self) -> None:
        """The pending step, the replies (queued in the outbox) and the message handled, the
        chat given back (`queries.ClaimLost` when another turn took it); a refused or wrong
        code leaves the chat's state alone (it stays the citizen's)."""
        state = self.state if self.official is not None else None
        self.queued = queries.finish_turn(
            session=self.session, message_id=self.stored_id, nlu=None, channel=self.channel,
            chat_id=self.message.chat_id, state=state, data=self.data, citizen_id=None,
            replies=[reply_to_payload(r) for r in self.replies], claim=self.claim,
        )  # fmt: skip

    def reply(self, text: str, buttons: tuple[Button, ...] = ()) -> None:
        self.replies.append(Reply(text=text, buttons=buttons))

    # --- dispatch -------------------------------------------------------------------------

    def respond(self) -> None:
        m = self.message
        code = find_invite_code(m.text)
        if code is not None and not m.button:
            self.link(code)
            return
        if self.official is None:
            queries.flag_message(session=self.session, message_id=self.stored_id, refused=True)
            logger.warning(
                "Refused %s from unlinked %s account %s.", m.button or "a message",
                m.channel, m.user_id,
            )  # fmt: skip
            self.reply(say("utter_official_refused_unlinked"))
            return
        try:
            if m.button:
                self.on_button(m.button)
            else:
                self.on_text(m.text.strip())
        except ActionRefused as refused:
            queries.flag_message(session=self.session, message_id=self.stored_id, refused=True)
            self.state, self.data = OFF_IDLE, {}
            self.reply(refused.message)

    def link(self, code: str) -> None:
        m = self.message
        official = link_official(
            session=self.session, code=code, channel=self.channel, external_user_id=m.user_id,
            chat_id=m.chat_id, now=self.now,
        )  # fmt: skip
        if official is None:
            logger.warning("Invalid invite code from %s account %s.", m.channel, m.user_id)
            self.reply(say("utter_official_invite_invalid"))
            return
        self.official = official
        self.state, self.data = OFF_IDLE, {}
        self.reply(
            say(
                "utter_official_linked", name=official.name,
                role=ROLE_NAMES[official.role.value],
                unit=workflow.unit_name(self.session, official.unit_id),
            )
        )  # fmt: skip

    @property
    def reader(self) -> access.Reader | None:
        return access.Reader.of(self.session, self.official)

    def ticket(self, code: str, what: str = "read") -> Ticket:
        """The ticket `code` if the official may read it; else the same refusal whether or
        not it exists (codes are sequential: a difference would tell which exist)."""
        ticket = queries.get_ticket_by_code(session=self.session, code=code)
        reader = self.reader
        if ticket is None or not access.can_read(reader, ticket):
            access.log_refusal(reader, what, code)
            raise ActionRefused(say("utter_official_ticket_not_found", code=code))
        return ticket

    def on_button(self, data: str) -> None:
        parts = data.split(":")
        if data == CANCEL:
            self.state, self.data = OFF_IDLE, {}
            self.reply(say("utter_official_cancelled"))
            return
        if parts[0] == "h" and len(parts) == 3 and parts[1] == "reply":
            request = self.session.get(HumanRequest, int(parts[2])) if parts[2].isdigit() else None
            if request is None or request.unit_id != self.official_unit():
                access.log_refusal(self.reader, "answer person request", parts[2])
                raise ActionRefused(say("utter_official_human_request_not_found", id=parts[2]))
            self.state, self.data = OFF_HUMAN_REPLY, {"request": request.id}
            self.reply(say("utter_official_ask_human_reply"), (CANCEL_BUTTON,))
            return
        if parts[0] != "t" or len(parts) < 3:
            self.reply(say("utter_button_expired"))
            return
        action, code = parts[1], parts[2]
        ticket = self.ticket(code, f"press {action} on")
        if action == "view":
            self.show(ticket)
            return
        workflow.check_can_act(self.session, self.official, ticket)
        if action == "acc":
            workflow.accept(session=self.session, ticket=ticket, official=self.official,
                           now=self.now)  # fmt: skip
            self.done("đã tiếp nhận", ticket)
        elif action == "ask":
            self.pending(OFF_QUESTION, ticket, say("utter_official_ask_question", code=code))
        elif action == "res":
            self.pending(OFF_RESOLUTION, ticket, resolution_prompt(ticket))
        elif action == "rej":
            self.pending(
                OFF_REJECT_REASON, ticket, say("utter_official_ask_reject_reason", code=code)
            )
        elif action == "tra":
            self.offer_units(ticket)
        elif action == "to" and len(parts) == 4:
            unit = self.session.get(Unit, parts[3])
            if unit is None or not access.may_receive(unit, ticket):
                access.log_refusal(self.reader, f"transfer to {parts[3]}", ticket)
                raise ActionRefused(say("utter_official_pick_unit", code=code))
            self.ask_transfer_reason(ticket, unit)
        else:
            self.reply(say("utter_button_expired"))

    def on_text(self, text: str) -> None:
        photos = [
            [_photo_channel(a.file_id, self.channel), a.file_id]
            for a in self.message.attachments
            if a.kind == "photo"
        ]
        command = read_command(text)
        if self.state != OFF_IDLE and (text or photos):
            self.finish_pending(text, photos)
        elif command in QUEUE_COMMANDS:
            self.queue(overdue=False)
        elif command in OVERDUE_COMMANDS:
            self.queue(overdue=True)
        elif command in SIGNIN_COMMANDS:
            self.signin_link()
        elif command in MERGE_COMMANDS:
            self.merge(text)
        elif codes := find_ticket_codes(text):
            self.show(self.ticket(codes[0].value))
        else:
            self.reply(
                say("utter_official_help", unit=workflow.unit_name(self.session,
                                                                  self.official_unit()))
            )  # fmt: skip

    def finish_pending(self, text: str, photos: list[list[str]]) -> None:
        state, data = self.state, self.data
        if state == OFF_HUMAN_REPLY:
            request = self.session.get(HumanRequest, int(data["request"]))
            assert request is not None
            workflow.answer_human_request(
                session=self.session, request=request, official=self.official, text=text,
                now=self.now,
            )  # fmt: skip
            self.state, self.data = OFF_IDLE, {}
            self.reply(say("utter_official_human_answered", id=request.id))
            return
        ticket = self.ticket(str(data["ticket"]), state)
        if state == OFF_TRANSFER_UNIT:
            self.typed_unit(ticket, text)
            return
        common: dict[str, Any] = {"session": self.session, "ticket": ticket,
                                  "official": self.official, "now": self.now}  # fmt: skip
        if state == OFF_QUESTION:
            workflow.ask_info(question=text, await_answer=await_answer, **common)
            what = "đã gửi câu hỏi tới người dân"
        elif state == OFF_RESOLUTION:
            if not self.resolve(ticket, text, photos, common):
                return
            what = "đã báo kết quả giải quyết"
        elif state == OFF_REJECT_REASON:
            workflow.reject(reason=text, **common)
            what = "không tiếp nhận"
        elif state == OFF_TRANSFER_REASON:
            workflow.transfer(to_unit_id=str(data["unit"]), reason=text, **common)
            what = f"đã chuyển tới {workflow.unit_name(self.session, str(data['unit']))}"
        else:
            what = ""
        self.state, self.data = OFF_IDLE, {}
        if what:
            self.done(what, ticket, workflow.unreached_warning(self.session, ticket))

    def merge(self, text: str) -> None:
        """ "/gop PA-A PA-B": the duplicate A merged into B (bot/duplicates/merge.py)."""
        codes = [c.value for c in find_ticket_codes(text)]
        if len(codes) != 2:
            self.reply(say("utter_official_merge_usage"))
            return
        duplicate, into = self.ticket(codes[0], "merge"), self.ticket(codes[1], "merge into")
        merge.merge(
            session=self.session,
            duplicate=duplicate,
            into=into,
            official=self.official,
            now=self.now,
        )
        assert into.id is not None
        count = followers.citizens_behind(session=self.session, tickets=[into])[into.id]
        self.reply(
            say("utter_official_merged", code=duplicate.code, into=into.code, citizens=count),
            official_buttons(into.code, into.status),
        )

    def resolve(
        self, ticket: Ticket, text: str, photos: list[list[str]], common: dict[str, Any]
    ) -> bool:
        """Photos and the note of a result, in any order and several messages: photos are
        kept until the note comes; a note without the photo a category needs is kept until
        a photo comes. True once resolved."""
        kept = [*self.data.get("photos", []), *photos][: proof.MAX_PROOF_PHOTOS]
        note = text or str(self.data.get("note", ""))
        self.data = {**self.data, "photos": kept, "note": note}
        if not note:  # photos without a caption: keep them, wait for the note
            self.reply(
                say("utter_official_proof_received", count=len(kept), code=ticket.code),
                (CANCEL_BUTTON,),
            )
            return False
        files = [OutgoingFile("photo", file_id=file_id, channel=c) for c, file_id in kept]
        try:
            workflow.resolve(note=note, photos=files, **common)
        except workflow.ProofRequired as refused:  # the note is kept, a photo awaited
            kept_note = say("utter_official_proof_note_kept")
            self.reply(f"{refused.message}\n{kept_note}", (CANCEL_BUTTON,))
            return False
        return True

    def signin_link(self) -> None:
        """A one-time dashboard link, through the outbox (redacted once delivered)."""
        assert self.official is not None and self.official.id is not None
        official_id = self.official.id
        if signin.request_chat_signin(session=self.session, official_id=official_id, now=self.now):
            self.reply(say("utter_official_signin_link_sent"))
        else:
            self.reply(say("utter_official_signin_spent"))

    def pending(self, state: str, ticket: Ticket, prompt: str) -> None:
        self.state, self.data = state, {"ticket": ticket.code}
        self.reply(prompt, (CANCEL_BUTTON,))

    def done(self, what: str, ticket: Ticket, note: str = "") -> None:
        """Confirm, with what the official can still do next (nothing once the ticket is
        another unit's)."""
        text = say("utter_official_done", what=what, code=ticket.code)
        acting = access.can_act(self.reader, ticket)
        self.reply(
            f"{text}\n{note}" if note else text,
            official_buttons(ticket.code, ticket.status) if acting else (),
        )

    def citizens(self, tickets: list[Ticket]) -> list[int]:
        """How many citizens stand behind each ticket (its reporter and its followers)."""
        counts = followers.citizens_behind(session=self.session, tickets=tickets)
        return [counts.get(t.id or 0, 0) for t in tickets]

    def official_unit(self) -> str:
        assert self.official is not None
        return self.official.unit_id

    def offer_units(self, ticket: Ticket) -> None:
        """The parent unit and the city bodies; a ward is found by typing its name."""
        current = self.session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
        choices = self.city_bodies(ticket)
        if ticket.ward_code:
            ward = store.ward_unit(session=self.session, ward_code=ticket.ward_code)
            if ward is not None:
                choices.insert(0, ward)
        if current is not None and current.parent_id:
            parent = self.session.get(Unit, current.parent_id)
            if parent is not None and parent not in choices:
                choices.insert(0, parent)
        choices = [u for u in choices if access.may_receive(u, ticket)]
        buttons = tuple(Button(u.name[:60], f"t:to:{ticket.code}:{u.id}") for u in choices[:12])
        self.state, self.data = OFF_TRANSFER_UNIT, {"ticket": ticket.code}
        self.reply(
            say("utter_official_pick_unit_typed", code=ticket.code), (*buttons, CANCEL_BUTTON)
        )

    def typed_unit(self, ticket: Ticket, text: str) -> None:
        """The receiving ward typed by its name, old or new, marks or not ("p. hoan kiem"):
        one ward goes on to the reason, several are offered as buttons."""
        found = places.read_answer(text)
        wards = [found.ward] if found.ward else list(found.candidates)
        units = [
            unit
            for ward in wards
            if (unit := store.ward_unit(session=self.session, ward_code=ward.code)) is not None
            and unit.id != ticket.lead_unit_id
            and access.may_receive(unit, ticket)
        ] or self.city_bodies_named(ticket, text)
        if len(units) == 1:
            self.ask_transfer_reason(ticket, units[0])
            return
        buttons = tuple(Button(u.name[:60], f"t:to:{ticket.code}:{u.id}") for u in units[:12])
        key = "utter_official_pick_unit_of" if units else "utter_official_unit_not_found"
        self.reply(say(key, code=ticket.code, place=text), (*buttons, CANCEL_BUTTON))

    def city_bodies(self, ticket: Ticket) -> list[Unit]:
        """The units other than wards that may receive the ticket, by name."""
        bodies = self.session.exec(
            select(Unit).where(col(Unit.active), Unit.kind != UnitKind.ward).order_by(Unit.name)
        ).all()
        return [u for u in bodies if access.may_receive(u, ticket)]

    def city_bodies_named(self, ticket: Ticket, text: str) -> list[Unit]:
        """The city bodies whose name holds the typed words, marks or not ("so xay dung")."""
        wanted = " ".join(fold(text).split())
        if len(wanted) < 3:
            return []
        return [u for u in self.city_bodies(ticket) if wanted in fold(u.name)]

    def ask_transfer_reason(self, ticket: Ticket, unit: Unit) -> None:
        self.state, self.data = OFF_TRANSFER_REASON, {"ticket": ticket.code, "unit": unit.id}
        self.reply(
            say("utter_official_ask_transfer_reason", code=ticket.code, unit=unit.name),
            (CANCEL_BUTTON,),
        )

    def show(self, ticket: Ticket) -> None:
        place = place_text(ticket)
        self.reply(
            say(
                "utter_official_ticket", code=ticket.code,
                category=CATEGORY_NAMES.get(ticket.category or "other", "Khác"),
                status=OFFICIAL_STATUS_NAMES[ticket.status.value],
                unit=workflow.unit_name(self.session, ticket.lead_unit_id), place=place,
                description=ticket.description, accept_by=expected(ticket.accept_by),
                resolve_by=expected(ticket.resolve_by), citizens=self.citizens([ticket])[0],
                history="\n".join(workflow.history_lines(self.session, ticket)),
            ),
            official_buttons(ticket.code, ticket.status)
            if access.can_act(self.reader, ticket) else (),
        )  # fmt: skip

    def queue(self, *, overdue: bool) -> None:
        unit_id = self.official_unit()
        tickets = open_tickets(session=self.session, unit_id=unit_id, overdue_at=self.now
                               if overdue else None, reader=self.reader)  # fmt: skip
        unit = workflow.unit_name(self.session, unit_id)
        if not tickets:
            self.reply(say("utter_official_queue_empty", unit=unit))
            return
        listed = tickets[:MAX_LISTED]
        lines = [
            f"• {t.code} — {CATEGORY_NAMES.get(t.category or 'other', 'Khác')} — "
            f"{OFFICIAL_STATUS_NAMES[t.status.value]} — {next_deadline(t)} — "
            f"{count} người dân"
            for t, count in zip(listed, self.citizens(listed), strict=True)
        ]
        name = "utter_official_overdue" if overdue else "utter_official_queue"
        buttons = tuple(Button(t.code, f"t:view:{t.code}") for t in tickets[:8])
        self.reply(say(name, unit=unit, count=len(tickets), tickets="\n".join(lines)), buttons)


def read_command(text: str) -> str:
    """The command a message starts with, as "/hangdoi": "/HangDoi", "/hangdoi@bot_name" (as
    Telegram sends a command picked from a menu) and the whole message as words ("hàng
    đợi", "qua han") read alike; "" when there is none."""
    if not text:
        return ""
    first = text.split(maxsplit=1)[0]
    if first.startswith("/"):
        return "/" + fold(first[1:].split("@", 1)[0])
    return WORD_COMMANDS.get("".join(fold(text).split()), "")


def open_tickets(
    *,
    session: Session,
    unit_id: str | None,
    overdue_at: datetime | None = None,
    reader: access.Reader | None = None,
) -> list[Ticket]:
    """Open tickets of a unit (all units: None), oldest deadline first; only late ones when
    `overdue_at` is given (see `is_overdue`), only those `reader` may read when given."""
    statement = select(Ticket).where(col(Ticket.status).in_(workflow.OPEN_STATUSES))
    if reader is not None:
        statement = statement.where(access.readable_clause(reader))
    if unit_id is not None:
        statement = statement.where(Ticket.lead_unit_id == unit_id)
    if overdue_at is not None:
        statement = statement.where(overdue_clause(overdue_at))
    return list(session.exec(statement.order_by(col(Ticket.resolve_by), col(Ticket.id))))


def next_deadline(ticket: Ticket) -> str:
    """The deadline the unit works to now: acceptance until accepted, then resolution."""
    if ticket.status in queries.AWAITING_ACCEPTANCE:
        return f"hạn tiếp nhận {expected(ticket.accept_by)}"
    return f"hạn giải quyết {expected(ticket.resolve_by)}"


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    """Past its acceptance deadline while awaiting acceptance, or past its resolution deadline
    while awaiting resolution (not while the citizen is asked: that clock is stopped)."""
    accept_late = ticket.status in queries.AWAITING_ACCEPTANCE and _before(ticket.accept_by, now)
    resolve_late = ticket.status in queries.AWAITING_RESOLUTION and _before(ticket.resolve_by, now)
    return accept_late or resolve_late


def _before(deadline: datetime | None, now: datetime) -> bool:
    return deadline is not None and deadline < now


def overdue_clause(now: datetime) -> sa.ColumnElement[bool]:
    """`is_overdue` in SQL."""
    return sa.or_(
        sa.and_(col(Ticket.status).in_(queries.AWAITING_ACCEPTANCE), col(Ticket.accept_by) < now),
        sa.and_(col(Ticket.status).in_(queries.AWAITING_RESOLUTION), col(Ticket.resolve_by) < now),
    )


def resolution_prompt(ticket: Ticket) -> str:
    """What an official is asked when they report a result (a photo, when it needs one)."""
    if proof.needs_proof(ticket.category):
        category = ticket.category or ""
        return say(
            "utter_official_ask_resolution_proof",
            code=ticket.code,
            category=CATEGORY_NAMES.get(category, category),
        )
    return say("utter_official_ask_resolution", code=ticket.code)


def _photo_channel(file_id: str, channel: Channel) -> str:
    """Whose file id it is: this server's copy ("web:…", `Desk.keep_photos`) or the channel's."""
    return Channel.web.value if file_id.startswith("web:") else channel.value


@runtime_checkable
class FileSource(Protocol):
    """An output that can also fetch a file sent to it by its channel's file id (Telegram)."""

    async def download(self, file_id: str) -> bytes: ...


async def keep_photos(message: IncomingMessage, output: object) -> IncomingMessage:
    """An official's photos fetched from their channel and kept on this server (checked and
    re-encoded as the web chat's are), as "web:…" file ids: a Telegram file id means nothing
    on Zalo or the web, and a result's photos go to the citizen wherever they are. A photo
    that cannot be fetched keeps its channel's id (Telegram citizens still get it)."""
    if not isinstance(output, FileSource) or not any(
        a.kind == "photo" for a in message.attachments
    ):
        return message
    kept = []
    for attachment in message.attachments:
        if attachment.kind == "photo" and not attachment.file_id.startswith(("web:", "http")):
            try:
                data = await output.download(attachment.file_id)
                stored = await asyncio.to_thread(proof.keep_photo, data)
            except Exception as error:  # the Telegram id still works on Telegram
                logger.warning("An official's photo could not be kept here: %r", error)
            else:
                attachment = dataclasses.replace(attachment, file_id=stored)
        kept.append(attachment)
    return dataclasses.replace(message, attachments=tuple(kept))
