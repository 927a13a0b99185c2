"""The conversation: every message is stored, understood and answered; complaints become tickets.

Channel-free: a channel hands an `IncomingMessage` and an `OutputChannel` to
`Conversation.handle`. The dialogue state of each chat lives in the database, so a restart
in the middle of a complaint form continues where it was.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from civicbot_nlu.normalize import normalize, words
from civicbot_nlu.patterns import find_phones, find_ticket_codes
from sqlalchemy import Engine
from sqlmodel import Session

from bot.catalog.catalog import Procedure, answer, details, load_catalog, suggest
from bot.conversation.messages import Button, IncomingMessage, OutputChannel, Reply
from bot.conversation.texts import CATEGORY_NAMES, STATUS_NAMES, say
from bot.intake import DailyCapReached, expected, file_ticket, request_person
from bot.nlu.location import gazetteer
from bot.nlu.result import CATEGORIES, NluResult
from bot.officials import actions
from bot.officials.actions import ANSWER_INFO, ActionRefused
from storage import queries
from storage.db import get_session
from storage.models import (
    AttachmentCreate,
    Channel,
    Direction,
    MessageCreate,
    Ticket,
    TicketCreate,
    TicketStatus,
    utcnow,
)

logger = logging.getLogger(__name__)

# Dialogue states (Conversation.state).
IDLE = "idle"
ASK_CATEGORY = "ask_category"
ASK_PLACE = "ask_place"
PICK_WARD = "pick_ward"
ASK_DESCRIPTION = "ask_description"
ASK_PHOTOS = "ask_photos"
ASK_CONTACT = "ask_contact"
ASK_PHONE = "ask_phone"
CONFIRM = "confirm"
FORM_STATES = frozenset(
    {
        ASK_CATEGORY,
        ASK_PLACE,
        PICK_WARD,
        ASK_DESCRIPTION,
        ASK_PHOTOS,
        ASK_CONTACT,
        ASK_PHONE,
        CONFIRM,
    }
)

# Button data: "<kind>:<value>", short enough for Telegram's 64 bytes.
MENU_REPORT, MENU_ASK, MENU_STATUS, MENU_HUMAN = (
    "menu:report",
    "menu:ask",
    "menu:status",
    "menu:human",
)
SKIP, DONE, CANCEL, SUBMIT = "form:skip", "form:done", "form:cancel", "form:submit"
TYPED_BUTTONS = "typed_buttons"  # form data: folded label -> button data of the last buttons
ANONYMOUS, GIVE_PHONE = "contact:anonymous", "contact:phone"
WARD_UNKNOWN = "ward:unknown"

CONFIDENT = 0.5  # below this an intent is not acted upon outside a form
MIN_DESCRIPTION_WORDS = 3
COMMANDS = {"/start": "utter_greet", "/help": "utter_help", "/menu": "utter_help"}
MAX_WARD_BUTTONS = 8
MAX_LISTED_TICKETS = 5
MAX_STORED_TEXT = 10_000


class Understanding(Protocol):
    """What the conversation needs of the NLU client."""

    async def parse(self, text: str) -> NluResult: ...


class Conversation:
    """Handles one message at a time per chat; many chats at once."""

    def __init__(
        self,
        *,
        nlu: Understanding,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._nlu = nlu
        self._engine = engine
        self._clock = clock
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        """Store the message first, then understand and answer it (once, in order per chat)."""
        async with self._locks[(message.channel, message.chat_id)]:
            with get_session(self._engine) as session:
                turn = _Turn(session, message, output, self._nlu, self._clock)
                if not turn.store():
                    logger.info(
                        "Redelivered %s message %s ignored.", message.channel, message.message_id
                    )
                    return
                await turn.run()


class _Turn:
    """One incoming message and the replies it gets."""

    def __init__(
        self,
        session: Session,
        message: IncomingMessage,
        output: OutputChannel,
        nlu: Understanding,
        clock: Callable[[], datetime],
    ) -> None:
        self.session = session
        self.message = message
        self.output = output
        self.nlu = nlu
        self.clock = clock
        self.channel = Channel(message.channel)
        self.replies: list[Reply] = []

    # --- storing ----------------------------------------------------------------------------

    def store(self) -> bool:
        """Store the incoming message; False when this exact update was handled before."""
        m = self.message
        payload = {
            "button": m.button,
            "location": asdict(m.location) if m.location else None,
            "attachments": [asdict(a) for a in m.attachments],
            "edited": m.edited,
            "metadata": m.metadata,
        }
        start = queries.start_turn(
            session=self.session, channel=self.channel, chat_id=m.chat_id, user_id=m.user_id,
            display_name=m.display_name, channel_message_id=m.message_id,
            text=m.text[:MAX_STORED_TEXT], payload=payload,
        )  # fmt: skip
        self.citizen_id = start.citizen_id
        self.stored_id = start.message_id
        self.state = start.state or IDLE
        self.data: dict[str, Any] = start.data
        self.nlu_json: dict[str, Any] | None = None  # saved with the dialogue state
        return start.new

    async def run(self) -> None:
        try:
            await self.respond()
        except BaseException:
            self.session.rollback()  # what the failed step left unfinished; the state is saved
            raise
        finally:
            self.remember_buttons()
            queries.save_turn(
                session=self.session, message_id=self.stored_id, nlu=self.nlu_json,
                channel=self.channel, chat_id=self.message.chat_id, state=self.state,
                data=self.data, citizen_id=self.citizen_id,
            )  # fmt: skip
            sent = []
            for reply in self.replies:
                sent_id = await self.output.send(self.message.chat_id, reply)
                sent.append(
                    MessageCreate(
                        direction=Direction.outgoing, channel=self.channel,
                        chat_id=self.message.chat_id, text=reply.text,
                        channel_message_id=sent_id, citizen_id=self.citizen_id,
                        payload={
                            "buttons": [asdict(b) for b in reply.buttons],
                            "image_url": reply.image_url,
                        },
                    )
                )  # fmt: skip
            queries.record_replies(session=self.session, message_id=self.stored_id, replies=sent)

    def reply(self, text: str, buttons: list[Button] | tuple[Button, ...] = ()) -> None:
        self.replies.append(Reply(text=text, buttons=tuple(buttons)))

    def remember_buttons(self) -> None:
        """Keep the labels of the form's last buttons: a citizen may type "bo qua" for one."""
        last = next((r for r in reversed(self.replies) if r.buttons), None)
        if self.state in FORM_STATES and last is not None:
            self.data[TYPED_BUTTONS] = {normalize(b.label): b.data for b in last.buttons}
        elif self.replies or self.state not in FORM_STATES:
            self.data.pop(TYPED_BUTTONS, None)

    def typed_button(self, text: str) -> str | None:
        """The data of the offered button whose label `text` is, diacritics or not."""
        if self.state not in FORM_STATES:
            return None
        offered = self.data.get(TYPED_BUTTONS) or {}
        return offered.get(normalize(text)) if isinstance(offered, dict) else None

    # --- dispatch ---------------------------------------------------------------------------

    async def respond(self) -> None:
        m = self.message
        if m.edited:
            return  # an edit of a message already answered: stored, not answered again
        if m.button is not None:
            await self.on_button(m.button)
            return
        photos = [a for a in m.attachments if a.kind == "photo"]
        if self.state == ASK_PHOTOS and photos:
            self.add_photos()
            return
        if m.location is not None:
            self.on_pin()
            return
        if not m.text.strip():
            self.reply(say("utter_unsupported_media" if m.attachments else "utter_empty_message"))
            return
        command = m.text.strip().split(maxsplit=1)[0].lower()
        if command in COMMANDS:  # Telegram's /start and friends
            self.state, self.data = IDLE, {}
            self.reply(say(COMMANDS[command]), MENU)
            return
        typed = self.typed_button(m.text)
        if typed is not None:
            await self.on_button(typed)
            return
        nlu = await self.nlu.parse(m.text)
        self.nlu_json = nlu.as_json()
        if photos and self.state in FORM_STATES:
            self.add_photos(quiet=True)
        if nlu.intent == "cancel" and nlu.confidence >= CONFIDENT:
            self.cancel()
        elif self.state == ANSWER_INFO:
            self.answer_question(m.text.strip())
        elif self.state in FORM_STATES:
            await self.on_form_text(nlu)
        else:
            await self.on_intent(nlu)

    async def on_intent(self, nlu: NluResult) -> None:
        intent = nlu.intent if nlu.confidence >= CONFIDENT else "not_understood"
        if intent != "not_understood":
            self.data.pop("misunderstood", None)
        match intent:
            case "greet":
                self.reply(say("utter_greet"), MENU)
            case "help":
                self.reply(say("utter_help"), MENU)
            case "goodbye":
                self.reply(say("utter_goodbye"))
            case "thank":
                self.reply(say("utter_thank"))
            case "ask_procedure":
                self.answer_procedure(nlu)
            case "report_problem":
                self.start_report(nlu)
            case "check_status":
                self.check_status(nlu.ticket_code)
            case "human":
                self.request_human()
            case "rate":
                self.rate_from_text()
            case "out_of_scope":
                self.reply(say("utter_out_of_scope"), MENU)
            case _:  # affirm or deny out of context, or not understood
                self.not_understood()

    async def on_button(self, data: str) -> None:
        kind, _, value = data.partition(":")
        if data == CANCEL:
            self.cancel()
        elif data == MENU_REPORT:
            self.state, self.data = IDLE, {}
            self.next_step({})
        elif data == MENU_ASK:
            self.reply(say("utter_procedure_unknown"))
        elif data == MENU_STATUS:
            self.check_status(None)
        elif data == MENU_HUMAN:
            self.request_human()
        elif kind in ("proc", "more") and (procedure := load_catalog().get(value)):
            if kind == "proc":
                self.reply_procedure(procedure)
            else:
                self.reply(details(procedure))
        elif kind in ("rate", "reopen", "ans"):
            self.ticket_button(kind, value)
        elif self.state in FORM_STATES and self.form_button(kind, value, data):
            pass
        else:
            self.reply(say("utter_button_expired"))

    # --- procedures ---------------------------------------------------------------------------

    def answer_procedure(self, nlu: NluResult) -> None:
        procedure = load_catalog().get(nlu.procedure)
        if procedure is not None:
            self.reply_procedure(procedure, nlu.aspect)
            return
        suggestion = suggest(nlu.text)
        buttons = [Button(o.label[:60], f"proc:{o.procedure_id}") for o in suggestion.options]
        self.reply(suggestion.text, buttons)

    def reply_procedure(self, procedure: Procedure, aspect: str | None = None) -> None:
        """The short answer, leading with `aspect`, and a button for the whole entry."""
        self.reply(answer(procedure, aspect).text, [Button("Xem đầy đủ", f"more:{procedure.id}")])

    # --- complaints ---------------------------------------------------------------------------

    def start_report(self, nlu: NluResult) -> None:
        data: dict[str, Any] = {"category": nlu.category}
        descriptive = nlu.category is not None or len(words(nlu.text)) >= 6
        if descriptive:
            data["description"] = nlu.text
        if nlu.location is not None:
            data["place"] = nlu.location.text
            if not self.set_location(data, nlu.location.text):
                data["place_unresolved"] = True  # a street alone: ask for the ward once
        if nlu.phone:
            data["phone"] = nlu.phone
        self.next_step(data)

    def next_step(self, data: dict[str, Any]) -> None:
        """Ask for the first thing the form still needs, or show the summary."""
        self.data = data
        if not data.get("category"):
            self.state = ASK_CATEGORY
            self.reply(say("utter_ask_category"), CATEGORY_BUTTONS)
        elif "place" not in data and "lat" not in data:
            self.state = ASK_PLACE
            self.reply(say("utter_ask_place"), [CANCEL_BUTTON])
        elif data.get("candidates") and not data.get("ward_code") and not data.get("ward_skipped"):
            self.state = PICK_WARD
            buttons = [Button(c["ward_name"], f"ward:{c['ward_code']}") for c in data["candidates"]]
            self.reply(
                say("utter_pick_ward", place=data["place"]),
                [*buttons[:MAX_WARD_BUTTONS], Button("Không rõ", WARD_UNKNOWN)],
            )
        elif data.get("place_unresolved") and not data.get("place_asked_again"):
            self.state = ASK_PLACE
            data["place_asked_again"] = True
            self.reply(say("utter_place_unknown", place=data["place"]), [CANCEL_BUTTON])
        elif not data.get("description"):
            self.state = ASK_DESCRIPTION
            self.reply(say("utter_ask_description"), [CANCEL_BUTTON])
        elif not data.get("photos_done"):
            self.state = ASK_PHOTOS
            self.reply(say("utter_ask_photos"), [Button("Bỏ qua", SKIP), CANCEL_BUTTON])
        elif not data.get("contact_done"):
            self.state = ASK_CONTACT
            if data["category"] == "misconduct":
                text, buttons = (
                    say("utter_ask_contact_misconduct"),
                    [ANONYMOUS_BUTTON, PHONE_BUTTON],
                )
            else:
                text, buttons = say("utter_ask_contact"), [PHONE_BUTTON, ANONYMOUS_BUTTON]
            if data.get("phone"):
                buttons.insert(0, Button(f"Dùng số {data['phone']}", "contact:use"))
            self.reply(text, buttons)
        else:
            self.state = CONFIRM
            self.reply(self.summary(data), [Button("Gửi phản ánh", SUBMIT), CANCEL_BUTTON])

    def form_button(self, kind: str, value: str, data: str) -> bool:
        """Handle a form button; False when it does not belong to the current step."""
        form = dict(self.data)
        if kind == "cat" and value in CATEGORIES and self.state == ASK_CATEGORY:
            form["category"] = value
        elif kind == "ward" and self.state == PICK_WARD:
            chosen = [c for c in form.get("candidates", []) if c["ward_code"] == value]
            if chosen:
                form.update(ward_code=value, ward_name=chosen[0]["ward_name"])
            elif data == WARD_UNKNOWN:
                form["ward_skipped"] = True
            else:
                return False
        elif data in (SKIP, DONE) and self.state == ASK_PHOTOS:
            form["photos_done"] = True
        elif data == ANONYMOUS and self.state in (ASK_CONTACT, ASK_PHONE):
            form.update(anonymous=True, contact_done=True, phone=None)
        elif data == GIVE_PHONE and self.state == ASK_CONTACT:
            self.state = ASK_PHONE
            self.reply(say("utter_ask_phone"), [ANONYMOUS_BUTTON])
            return True
        elif data == "contact:use" and self.state == ASK_CONTACT and form.get("phone"):
            form["contact_done"] = True
        elif data == SUBMIT and self.state == CONFIRM:
            self.submit()
            return True
        else:
            return False
        self.next_step(form)
        return True

    async def on_form_text(self, nlu: NluResult) -> None:
        form = dict(self.data)
        text = self.message.text.strip()
        if self.state == ASK_CATEGORY:
            category = nlu.category or (await self.nlu.parse(f"phản ánh {text}")).category
            if category is None:
                self.reply(say("utter_ask_category"), CATEGORY_BUTTONS)
                return
            form["category"] = category
        elif self.state in (ASK_PLACE, PICK_WARD):
            form.pop("ward_code", None)
            form.pop("ward_name", None)
            earlier = None
            if self.state == ASK_PLACE and form.get("place_asked_again"):
                form["ward_skipped"] = True
                earlier = form.get("place")  # the street they gave first, kept as written
            resolved = self.set_location(form, text)
            if resolved and earlier and earlier != text:
                form["place"] = f"{earlier}, {text}"
            if not resolved and not form.get("place_asked_again"):
                form.update(place=text, place_asked_again=True)
                self.data = form
                self.state = ASK_PLACE
                self.reply(say("utter_place_unknown", place=text), [CANCEL_BUTTON])
                return
            form["place"] = form.get("place") or text
        elif self.state == ASK_DESCRIPTION:
            if len(words(text)) < MIN_DESCRIPTION_WORDS:
                self.reply(say("utter_description_too_short"), [CANCEL_BUTTON])
                return
            form["description"] = text
        elif self.state == ASK_PHOTOS:
            form["photos_done"] = True
            if nlu.intent not in ("affirm", "deny") and len(words(text)) >= MIN_DESCRIPTION_WORDS:
                form["description"] = f"{form.get('description', '')}\n{text}".strip()
        elif self.state in (ASK_CONTACT, ASK_PHONE):
            phones = find_phones(text)
            if phones:
                form.update(phone=phones[0].value, contact_done=True, anonymous=False)
            elif nlu.intent == "deny" or "an danh" in normalize(text):
                form.update(anonymous=True, contact_done=True, phone=None)
            else:
                self.reply(say("utter_invalid_phone"), [ANONYMOUS_BUTTON])
                return
        elif self.state == CONFIRM:
            if nlu.intent == "affirm":
                self.submit()
            elif nlu.intent == "deny":
                self.cancel()
            else:
                self.reply(self.summary(form), [Button("Gửi phản ánh", SUBMIT), CANCEL_BUTTON])
            return
        self.next_step(form)

    def set_location(self, form: dict[str, Any], text: str) -> bool:
        """Resolve a typed place into the form; False when the map knows nothing of it."""
        places = gazetteer()
        location = places.resolve(text)
        if location.ward is None and not location.candidates:
            found = places.find(text)
            if not found:
                return False
            location = found[0][2]
        form["place"] = text
        if location.ward is not None:
            form.update(ward_code=location.ward.code, ward_name=location.ward.name, candidates=[])
        else:
            form["candidates"] = [
                {"ward_code": w.code, "ward_name": w.name} for w in location.candidates
            ]
        return True

    def on_pin(self) -> None:
        pin = self.message.location
        assert pin is not None
        if self.state not in (ASK_PLACE, PICK_WARD):
            self.reply(say("utter_not_understood"), MENU)
            return
        form = dict(self.data)
        form.update(
            lat=pin.lat, lon=pin.lon, place=f"Vị trí đã chia sẻ ({pin.lat:.5f}, {pin.lon:.5f})"
        )
        # The map has one reference point per ward, not boundaries: offer the closest wards.
        nearest = gazetteer().nearest(pin.lat, pin.lon)
        form["candidates"] = [{"ward_code": w.code, "ward_name": w.name} for w in nearest]
        form.pop("ward_code", None)
        self.next_step(form)

    def add_photos(self, *, quiet: bool = False) -> None:
        photos = [a.file_id for a in self.message.attachments if a.kind == "photo"]
        form = dict(self.data)
        form["photos"] = [*form.get("photos", []), *photos]
        self.data = form
        if not quiet:
            self.reply(
                say("utter_photo_received", count=len(form["photos"])),
                [Button("Xong", DONE), CANCEL_BUTTON],
            )

    def summary(self, form: dict[str, Any]) -> str:
        place = form.get("place") or "—"
        if form.get("ward_name"):
            place = f"{place} ({form['ward_name']})"
        contact = "Ẩn danh" if form.get("anonymous") else (form.get("phone") or "Không để lại")
        return say(
            "utter_summary",
            category=CATEGORY_NAMES[form["category"]],
            place=place,
            description=_clip(form.get("description") or "", 300),
            photos=len(form.get("photos", [])),
            contact=contact,
        )

    def file(self, form: dict[str, Any], photos: tuple[str, ...]) -> Ticket:
        """The form as a filed ticket. Raises `DailyCapReached`."""
        return file_ticket(
            session=self.session,
            photo_file_ids=photos,
            actor="citizen",
            ticket_in=TicketCreate(
                category=form["category"],
                description=form.get("description") or "",
                location_text=form.get("place"),
                ward_code=form.get("ward_code"),
                ward_name=form.get("ward_name"),
                latitude=form.get("lat"),
                longitude=form.get("lon"),
                anonymous=bool(form.get("anonymous")),
                contact_phone=None if form.get("anonymous") else form.get("phone"),
                citizen_id=self.citizen_id,
                channel=self.channel,
                chat_id=self.message.chat_id,
            ),
            now=self.clock(),
        )

    def submit(self) -> None:
        form = self.data
        photos = tuple(form.get("photos", []))
        try:
            ticket = self.file(form, photos)
        except DailyCapReached as cap:
            self.state, self.data = IDLE, {}
            self.reply(cap.reply_text, MENU)
            return
        assert ticket.id is not None
        for file_id in photos:
            queries.add_attachment(
                session=self.session,
                attachment_in=AttachmentCreate(
                    ticket_id=ticket.id,
                    message_id=self.stored_id,
                    channel=self.channel,
                    file_id=file_id,
                    kind="photo",
                ),
            )
        self.state, self.data = IDLE, {}
        self.reply(
            say(
                "utter_ticket_created", code=ticket.code,
                unit=actions.unit_name(self.session, ticket.lead_unit_id),
                accept_by=expected(ticket.accept_by), resolve_by=expected(ticket.resolve_by),
            ),
            MENU,
        )  # fmt: skip

    # --- after filing: answers to officials' questions, ratings, reopening -----------------

    def own_ticket(self, code: str) -> Ticket | None:
        ticket = queries.get_ticket_by_code(session=self.session, code=code)
        if ticket is None or ticket.citizen_id != self.citizen_id:
            self.reply(say("utter_ticket_not_found", code=code))  # never reveal others'
            return None
        return ticket

    def ticket_button(self, kind: str, value: str) -> None:
        code, _, stars = value.partition(":")
        ticket = self.own_ticket(code)
        if ticket is None:
            return
        if kind == "ans":
            if ticket.status != TicketStatus.need_info:  # answered already, or concluded
                self.reply(say("utter_button_expired"))
                return
            self.state, self.data = ANSWER_INFO, {"ticket": ticket.code}
            self.reply(say("utter_answer_prompt", code=ticket.code), [CANCEL_BUTTON])
            return
        try:
            if kind == "rate" and stars.isdigit() and 1 <= int(stars) <= 5:
                actions.rate(session=self.session, ticket=ticket, rating=int(stars),
                             now=self.clock())  # fmt: skip
                self.reply(say("utter_rating_thanks", rating=stars, code=ticket.code), MENU)
            elif kind == "reopen":
                actions.reopen(session=self.session, ticket=ticket, now=self.clock())
            else:
                self.reply(say("utter_button_expired"))
        except ActionRefused:
            self.reply(say("utter_rating_already", code=ticket.code))

    def answer_question(self, text: str) -> None:
        ticket = self.own_ticket(str(self.data.get("ticket", "")))
        self.state, self.data = IDLE, {}
        if ticket is None:
            return
        if ticket.status != TicketStatus.need_info:
            self.reply(say("utter_button_expired"), MENU)
            return
        actions.citizen_answer(session=self.session, ticket=ticket, text=text, now=self.clock())
        self.reply(
            say("utter_answer_sent", code=ticket.code,
                unit=actions.unit_name(self.session, ticket.lead_unit_id))
        )  # fmt: skip

    def rate_from_text(self) -> None:
        """ "5 sao", "rất hài lòng": rates the citizen's latest resolved ticket, if one waits."""
        waiting = queries.tickets_of_citizen(
            session=self.session, citizen_id=self.citizen_id, statuses=[TicketStatus.resolved],
            limit=1,
        )  # fmt: skip
        stars = re.search(r"\b([1-5])\b", self.message.text)
        if not waiting:
            self.reply(say("utter_rate_thanks"))
        elif stars is None:
            self.reply(
                say("utter_ticket_resolved_ask_rating", code=waiting[0].code),
                actions.rating_buttons(waiting[0].code),
            )
        else:
            actions.rate(session=self.session, ticket=waiting[0], rating=int(stars.group(1)),
                         now=self.clock())  # fmt: skip
            self.reply(say("utter_rating_thanks", rating=stars.group(1), code=waiting[0].code))

    def cancel(self) -> None:
        if self.state == ANSWER_INFO or self.state in FORM_STATES:
            self.state, self.data = IDLE, {}
            self.reply(say("utter_cancelled"), MENU)
        else:
            self.reply(say("utter_nothing_to_cancel"), MENU)

    # --- status, people, misunderstandings -------------------------------------------------

    def check_status(self, code: str | None) -> None:
        codes = find_ticket_codes(self.message.text)
        code = code or (codes[0].value if codes else None)
        if code is not None:
            ticket = self.own_ticket(code)
            if ticket is not None:
                self.reply(self.ticket_line(ticket))
            return
        tickets = queries.tickets_of_citizen(
            session=self.session, citizen_id=self.citizen_id, limit=MAX_LISTED_TICKETS
        )
        if not tickets:
            self.reply(say("utter_no_tickets"), MENU)
            return
        self.reply(
            say("utter_ticket_list", tickets="\n".join(f"• {self.ticket_line(t)}" for t in tickets))
        )

    def ticket_line(self, ticket: Any) -> str:
        events = queries.ticket_events(session=self.session, ticket_id=ticket.id)
        notes = [e.note for e in events if e.note]
        return say(
            "utter_ticket_status",
            code=ticket.code,
            category=CATEGORY_NAMES.get(ticket.category or "other", "Khác"),
            status=STATUS_NAMES[ticket.status.value],
            note=f" Ghi chú: {notes[-1]}" if notes else "",
        )

    def request_human(self) -> None:
        """Stored, sent to the city intake unit's officials, acknowledged."""
        try:
            request_person(
                session=self.session, channel=self.channel, chat_id=self.message.chat_id,
                citizen_id=self.citizen_id, text=self.message.text, message_id=self.stored_id,
                now=self.clock(),
            )  # fmt: skip
        except DailyCapReached as cap:
            self.reply(cap.reply_text)
            return
        self.data = {**self.data, "human_requested_at": self.clock().isoformat()}
        queries.flag_message(session=self.session, message_id=self.stored_id, human_request=True)
        self.reply(say("utter_human_ack"))

    def not_understood(self) -> None:
        count = int(self.data.get("misunderstood", 0)) + 1
        self.data = {**self.data, "misunderstood": count}
        if count >= 2:
            self.data["misunderstood"] = 0
            self.reply(say("utter_offer_menu"), [*MENU, Button("Gặp cán bộ", MENU_HUMAN)])
        else:
            self.reply(say("utter_not_understood"))


def _clip(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


MENU = (
    Button("Gửi phản ánh", MENU_REPORT),
    Button("Hỏi thủ tục", MENU_ASK),
    Button("Tra cứu phản ánh", MENU_STATUS),
)
CATEGORY_BUTTONS = (
    *(Button(name, f"cat:{code}") for code, name in CATEGORY_NAMES.items()),
    Button("Hủy", CANCEL),
)
CANCEL_BUTTON = Button("Hủy", CANCEL)
ANONYMOUS_BUTTON = Button("Gửi ẩn danh", ANONYMOUS)
PHONE_BUTTON = Button("Để lại số điện thoại", GIVE_PHONE)
