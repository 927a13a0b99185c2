"""The complaint form as a state table: one small step object per state.

Each step says when it is needed, how it asks, and how it reads what comes back — text,
its own buttons, a location pin. `next_step` walks the table in order and asks the first
step the form still needs; a complaint about an official takes another path through the
same steps (anonymity first, then when, where, who and what).
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from enum import Enum
from typing import Literal

from civicbot_nlu.normalize import normalize
from civicbot_nlu.patterns import find_phones

from bot.conversation.dialogue import places, reading
from bot.conversation.dialogue.context import Context
from bot.conversation.dialogue.form import Form, WardChoice
from bot.conversation.messages import Button, GeoPoint
from bot.conversation.texts import CATEGORY_NAMES, CATEGORY_NAMES_EN
from bot.nlu.location import Ward
from bot.nlu.result import CATEGORIES
from storage import queries
from storage.models import Ticket

MIN_DESCRIPTION_WORDS = 3  # words of content, beyond "tôi muốn phản ánh"
MAX_WARD_BUTTONS = 8
# A complaint this soon after the citizen's last ticket is offered that ticket's place.
FOLLOW_UP_WINDOW = timedelta(hours=2)

# Button data: "<kind>:<value>", short enough for Telegram's 64 bytes.
SKIP, DONE, CANCEL, SUBMIT = "form:skip", "form:done", "form:cancel", "form:submit"
ANONYMOUS, GIVE_PHONE, USE_PHONE = "contact:anonymous", "contact:phone", "contact:use"
WARD_UNKNOWN = "ward:unknown"
SAME_PLACE, OTHER = "place:same", "place:other"
FOLLOW, FILE_NEW = "dup:follow", "dup:new"


class Outcome(Enum):
    ADVANCE = "advance"  # the form changed: ask what it needs next
    STAY = "stay"  # the step replied and waits for a better answer
    SUBMIT = "submit"
    CANCEL = "cancel"
    DONE = "done"  # the step ended the form itself (the citizen follows an open ticket)


class Step:
    state: str = ""

    def needed(self, form: Form, ctx: Context) -> bool:
        raise NotImplementedError

    def ask(self, ctx: Context, form: Form) -> None:
        raise NotImplementedError

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        raise NotImplementedError

    def takes(self, ctx: Context, form: Form) -> bool:
        """The message is an answer to this step's question, by the step's own reader: read
        by the step before the NLU's intent or category may start something else."""
        return False

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        """None: not a button of this step."""
        return None

    def read_location(self, ctx: Context, form: Form, pin: GeoPoint) -> Outcome:
        """A pin at any step is the place: the closest wards become the choices."""
        form.lat, form.lon = pin.lat, pin.lon
        form.place = f"Vị trí đã chia sẻ ({pin.lat:.5f}, {pin.lon:.5f})"
        form.set_ward(None)
        form.candidates = [WardChoice.of(w) for w in places.nearest(pin.lat, pin.lon)]
        form.duplicate_checked = False  # another place: another open ticket may cover it
        return Outcome.ADVANCE


def cancel_button(ctx: Context) -> Button:
    return ctx.button("cancel", CANCEL)


def take_place(form: Form, reading_: places.PlaceReading) -> None:
    """A place reading into the form: its ward, or its candidate wards."""
    form.place = reading_.text
    form.set_ward(reading_.ward)
    form.candidates = [WardChoice.of(w) for w in reading_.candidates] if not reading_.ward else []


def _is_address(text: str, *, beside: int = MIN_DESCRIPTION_WORDS) -> bool:
    """An address and fewer than `beside` words of anything else ("ngõ 8 phố Hoàng Cầu,
    phường Ô Chợ Dừa"; "UBND phường Giảng Võ" in answer to "where")."""
    if not (places.is_street(text) or places.read_answer(text).found):
        return False
    return reading.content_words(places.without_places(text)) < beside


def is_place_answer(text: str) -> bool:
    """An answer to "where": a ward, an old ward or district, a street address, or "không
    rõ" — with no more words than a place answer has ("trước cổng UBND phường Kim Liên")."""
    return places.is_unknown(text) or _is_address(text, beside=2 * MIN_DESCRIPTION_WORDS)


class AskCategory(Step):
    state = "ask_category"

    def needed(self, form: Form, ctx: Context) -> bool:
        return form.category is None

    def ask(self, ctx: Context, form: Form) -> None:
        names = CATEGORY_NAMES_EN if ctx.lang == "en" else CATEGORY_NAMES
        buttons = [Button(name, f"cat:{code}") for code, name in names.items()]
        ctx.reply(ctx.say("utter_ask_category"), [*buttons, cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        nlu = await ctx.parse()
        category = nlu.category or (await ctx.parse(f"phản ánh {ctx.text}")).category
        if category is None:
            self.ask(ctx, form)
            return Outcome.STAY
        form.category = category
        if form.description is None and reading.content_words(ctx.text) >= MIN_DESCRIPTION_WORDS:
            form.description = ctx.text
        if not form.has_place:
            place = places.read_message(ctx.text, nlu.location.text if nlu.location else None)
            if place is not None and place.found:
                take_place(form, place)
        return Outcome.ADVANCE

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        kind, _, value = data.partition(":")
        if kind == "cat" and value in CATEGORIES:
            form.category = value
            return Outcome.ADVANCE
        return None


class AskContact(Step):
    """Anonymous or a phone number. About an official, it comes first and explains."""

    state = "ask_contact"

    def __init__(self, *, first: bool) -> None:
        self.first = first

    def needed(self, form: Form, ctx: Context) -> bool:
        return form.anonymous is None and form.misconduct == self.first

    def ask(self, ctx: Context, form: Form) -> None:
        anonymous, phone = ctx.button("anonymous", ANONYMOUS), ctx.button("phone", GIVE_PHONE)
        if form.misconduct:
            text, buttons = ctx.say("utter_ask_contact_misconduct"), [anonymous, phone]
        else:
            text, buttons = ctx.say("utter_ask_contact"), [phone, anonymous]
        if form.phone:
            buttons.insert(0, Button(ctx.say("button_use_phone", phone=form.phone), USE_PHONE))
        ctx.reply(text, buttons)

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if _read_contact(ctx, form):
            return Outcome.ADVANCE
        if reading.is_yes(ctx.text):
            form.anonymous = False  # a number is asked for next
            return Outcome.ADVANCE
        return _invalid_phone(ctx)

    def takes(self, ctx: Context, form: Form) -> bool:
        return _is_contact(ctx.text) or reading.is_yes(ctx.text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        if data == ANONYMOUS:
            form.anonymous, form.phone = True, None
        elif data == GIVE_PHONE:
            form.anonymous, form.phone = False, None
        elif data == USE_PHONE and form.phone:
            form.anonymous = False
        else:
            return None
        return Outcome.ADVANCE


def _is_contact(text: str) -> bool:
    """A phone number, "ẩn danh" or a plain "không" ("thôi" may mean "cancel": not read)."""
    folded = reading.folded(text)
    return bool(find_phones(text)) or "an danh" in folded or reading.is_plain_no(text)


def _read_contact(ctx: Context, form: Form) -> bool:
    """A phone number, or a wish to stay anonymous, read into the form; False: neither."""
    phones = find_phones(ctx.text)
    folded = reading.folded(ctx.text)
    if phones:
        form.phone, form.anonymous = phones[0].value, False
    elif "an danh" in folded or "anonymous" in folded or reading.is_no(ctx.text):
        form.anonymous, form.phone = True, None
    else:
        return False
    return True


def _invalid_phone(ctx: Context) -> Outcome:
    ctx.reply(ctx.say("utter_invalid_phone"), [ctx.button("anonymous", ANONYMOUS)])
    return Outcome.STAY


class AskPhone(Step):
    state = "ask_phone"

    def needed(self, form: Form, ctx: Context) -> bool:
        return form.anonymous is False and not form.phone

    def ask(self, ctx: Context, form: Form) -> None:
        ctx.reply(ctx.say("utter_ask_phone"), [ctx.button("anonymous", ANONYMOUS)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        return Outcome.ADVANCE if _read_contact(ctx, form) else _invalid_phone(ctx)

    def takes(self, ctx: Context, form: Form) -> bool:
        return _is_contact(ctx.text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        if data == ANONYMOUS:
            form.anonymous, form.phone = True, None
            return Outcome.ADVANCE
        return None


class AskMisconductDetail(Step):
    """When, or who (a position will do), of a complaint about an official: kept as written."""

    def __init__(self, field: Literal["when", "who"]) -> None:
        self.field = field
        self.state = f"ask_{field}"

    def needed(self, form: Form, ctx: Context) -> bool:
        return form.misconduct and getattr(form, self.field) is None

    def ask(self, ctx: Context, form: Form) -> None:
        ctx.reply(ctx.say(f"utter_ask_{self.field}"), [cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        setattr(form, self.field, ctx.text)
        return Outcome.ADVANCE

    def takes(self, ctx: Context, form: Form) -> bool:
        """A time ("chiều hôm qua", "8h sáng thứ 2") or a role ("cán bộ một cửa"), or "không
        nhớ": the answer, whatever the NLU makes of it."""
        said = normalize(ctx.text)
        cues = _WHEN if self.field == "when" else _WHO
        return places.is_unknown(ctx.text) or "khong nho" in said or bool(cues.search(said))


# "không, ", "chỗ khác: " before the other place typed in answer to the place offered.
_REFUSAL = re.compile(
    r"^\s*(không phải|khong phai|không|khong|ko|chỗ khác|cho khac|nơi khác|noi khac)\b[\s,.:;-]*",
    re.IGNORECASE,
)
_WHEN = re.compile(
    r"\b(\d+ ?(h|gio|phut)|hom (nay|qua|kia)|sang|trua|chieu|toi|dem|tuan|thang|nam \d|"
    r"ngay|thu (hai|ba|tu|nam|sau|bay)|chu nhat|luc|vua roi|nay)\b|\d+/\d+"
)
_WHO = re.compile(
    r"\b(can bo|chu tich|pho chu tich|cong an|canh sat|bo phan|nhan vien|truong|pho|"
    r"thu ky|ke toan|dia chinh|tu phap|mot cua|van thu|to truong|bao ve|ong|ba|anh|chi)\b"
)


class AskPlace(Step):
    """Where: read by the one place reader; an address the map cannot place is kept and
    the ward asked for once more; then the complaint goes on without a ward, and says so."""

    state = "ask_place"

    def needed(self, form: Form, ctx: Context) -> bool:
        if not form.has_place:
            return True
        unplaced = form.ward_code is None and not form.candidates and form.lat is None
        return unplaced and not form.place_retry and not form.ward_unknown

    def ask(self, ctx: Context, form: Form) -> None:
        if form.place is not None:  # an address without its ward: ask once more
            form.place_retry = True
            ctx.reply(ctx.say("utter_place_unknown", place=form.place), [cancel_button(ctx)])
        elif form.misconduct:
            ctx.reply(ctx.say("utter_ask_place_misconduct"), [cancel_button(ctx)])
        elif offered := _offered_place(ctx, form):  # right after a ticket: its place
            same, other = ctx.button("same_place", SAME_PLACE), ctx.button("other", OTHER)
            text = ctx.say("utter_same_place", place=_place_of(ctx, offered))
            ctx.reply(text, [same, other, cancel_button(ctx)])
        else:
            ctx.reply(ctx.say("utter_ask_place"), [cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        text = ctx.text
        if form.last_place is not None:  # the last ticket's place was offered
            answer = None if is_place_answer(text) else _same_or_other(text)
            if answer is not None:
                return self.read_button(ctx, form, answer) or Outcome.STAY
            text, form.last_place = _REFUSAL.sub("", text) or text, None  # "không, ở phố Huế"
        earlier = form.place if form.place_retry else None
        if places.is_unknown(text):
            form.ward_unknown = True
            form.place = form.place or text
            return Outcome.ADVANCE
        found = places.read_answer(text)
        if found.found:
            take_place(form, found)
            if earlier and earlier != found.text:
                form.place = f"{earlier}, {found.text}"  # the street first given, kept
            return Outcome.ADVANCE
        if earlier is not None:
            form.place = f"{earlier}, {text}"
            form.ward_unknown = True
            return Outcome.ADVANCE
        form.place = text
        return Outcome.ADVANCE  # asked again (needed) for the ward

    def takes(self, ctx: Context, form: Form) -> bool:
        offered = form.last_place is not None and _same_or_other(ctx.text) is not None
        return offered or is_place_answer(ctx.text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        """The last ticket's place offered: taken ("Đúng, ở đó"), or "ở đâu" asked afresh."""
        if data not in (SAME_PLACE, OTHER) or form.last_place is None:
            return None
        if data == SAME_PLACE:
            ticket = queries.get_ticket_by_code(session=ctx.turn.session, code=form.last_place)
            if ticket is not None:
                form.place = ticket.location_text or ticket.ward_name
                form.ward_code, form.ward_name = ticket.ward_code, ticket.ward_name
                form.lat, form.lon = ticket.latitude, ticket.longitude
        form.last_place = None
        return Outcome.ADVANCE


def _offered_place(ctx: Context, form: Form) -> Ticket | None:
    """The last ticket, when this complaint comes right after it (looked for once)."""
    if not form.last_place_checked:
        form.last_place_checked = True
        recent = recent_ticket(ctx)
        form.last_place = recent.code if recent else None
    if form.last_place is None:
        return None
    return queries.get_ticket_by_code(session=ctx.turn.session, code=form.last_place)


def _same_or_other(text: str) -> str | None:
    """ "có", "vẫn ở đó" take the place offered; "không", "chỗ khác" decline it."""
    if reading.is_yes(text) or reading.is_same_place(text):
        return SAME_PLACE
    if reading.is_no(text) or reading.is_other_place(text):
        return OTHER
    return None


def recent_ticket(ctx: Context) -> Ticket | None:
    """The citizen's last ticket, when it was filed within FOLLOW_UP_WINDOW and has a ward."""
    turn = ctx.turn
    last = queries.tickets_of_citizen(session=turn.session, citizen_id=turn.citizen_id, limit=1)
    if not last or last[0].ward_code is None:
        return None
    filed = last[0].created_at
    filed = filed if filed.tzinfo else filed.replace(tzinfo=UTC)
    return last[0] if turn.clock() - filed <= FOLLOW_UP_WINDOW else None


def _place_of(ctx: Context, ticket: Ticket) -> str:
    """ "ngõ 5 (Phường Kim Liên)": the place as written, with its ward when not in it."""
    place, ward = ticket.location_text or "", ticket.ward_name or ""
    if not place or normalize(ward) in normalize(place):
        return place or ward
    return ctx.say("utter_place_wards", place=place, ward=ward)


class PickWard(Step):
    state = "pick_ward"

    def needed(self, form: Form, ctx: Context) -> bool:
        return bool(form.candidates) and form.ward_code is None and not form.ward_unknown

    def ask(self, ctx: Context, form: Form) -> None:
        buttons = [Button(c.name, f"ward:{c.code}") for c in form.candidates[:MAX_WARD_BUTTONS]]
        place = form.place or ""
        ctx.reply(
            ctx.say("utter_pick_ward", place=place),
            [*buttons, ctx.button("ward_unknown", WARD_UNKNOWN)],
        )

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if places.is_unknown(ctx.text):
            form.ward_unknown = True
            return Outcome.ADVANCE
        candidates = tuple(Ward(c.code, c.name) for c in form.candidates)
        chosen = places.pick(ctx.text, candidates)
        if chosen is not None:
            form.set_ward(chosen)
            return Outcome.ADVANCE
        found = places.read_answer(ctx.text)
        if found.found:
            written = form.place
            take_place(form, found)
            form.place = written if found.ward in candidates else found.text
            return Outcome.ADVANCE
        self.ask(ctx, form)
        return Outcome.STAY

    def takes(self, ctx: Context, form: Form) -> bool:
        candidates = tuple(Ward(c.code, c.name) for c in form.candidates)
        return places.pick(ctx.text, candidates) is not None or is_place_answer(ctx.text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        kind, _, value = data.partition(":")
        if kind != "ward":
            return None
        if data == WARD_UNKNOWN:
            form.ward_unknown = True
            return Outcome.ADVANCE
        chosen = [c for c in form.candidates if c.code == value]
        if not chosen:
            return None
        form.ward_code, form.ward_name = chosen[0].code, chosen[0].name
        form.candidates = []
        return Outcome.ADVANCE


class AskDescription(Step):
    state = "ask_description"

    def needed(self, form: Form, ctx: Context) -> bool:
        return not form.description

    def ask(self, ctx: Context, form: Form) -> None:
        name = "utter_ask_what" if form.misconduct else "utter_ask_description"
        ctx.reply(ctx.say(name), [cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if len(ctx.text.split()) < MIN_DESCRIPTION_WORDS:
            ctx.reply(ctx.say("utter_description_too_short"), [cancel_button(ctx)])
            return Outcome.STAY
        form.description = ctx.text
        return Outcome.ADVANCE


class AskPhotos(Step):
    state = "ask_photos"

    def needed(self, form: Form, ctx: Context) -> bool:
        return not form.photos_done and ctx.turn.message.can_send_photos

    def ask(self, ctx: Context, form: Form) -> None:
        if form.photos:  # sent earlier, with another answer: more, or done
            text = ctx.say("utter_photo_received", count=len(form.photos))
            ctx.reply(text, [ctx.button("done", DONE), cancel_button(ctx)])
            return
        name = "utter_ask_photos_misconduct" if form.misconduct else "utter_ask_photos"
        ctx.reply(ctx.say(name), [ctx.button("skip", SKIP), cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if _is_address(ctx.text):  # a better address: the place, and photos asked again
            found = places.read_answer(ctx.text)
            known = {found.ward.code} if found.ward else {w.code for w in found.candidates}
            if found.found and form.ward_code not in known:
                take_place(form, found)  # another ward: read afresh
            else:
                kept = None if found.found else form.place  # a street: beside the place
                form.place = ", ".join(filter(None, (kept, ctx.text)))
            return Outcome.ADVANCE
        form.photos_done = True
        if any(a.kind == "photo" for a in ctx.turn.message.attachments):
            # a photo with its caption: said received (the form went on without a word, and
            # the citizen did not know it had come); a later photo is still kept
            ctx.reply(ctx.say("utter_photo_kept", count=len(form.photos)))
        if reading.is_no_photo(ctx.text) or reading.is_yes(ctx.text):
            return Outcome.ADVANCE
        if reading.content_words(ctx.text) >= MIN_DESCRIPTION_WORDS:  # more detail: kept
            form.description = f"{form.description or ''}\n{ctx.text}".strip()
        return Outcome.ADVANCE

    def takes(self, ctx: Context, form: Form) -> bool:
        """A photo's caption is part of the photo ("đây ạ, ngay đầu ngõ"), never a new
        complaint; so are "no photo" and a better address."""
        text = ctx.text
        photo = any(a.kind == "photo" for a in ctx.turn.message.attachments)
        return photo or reading.is_no_photo(text) or reading.is_yes(text) or _is_address(text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        if data in (SKIP, DONE):
            form.photos_done = True
            return Outcome.ADVANCE
        return None


class OfferFollow(Step):
    """An open ticket already covers this problem: follow it instead of filing a new one?"""

    state = "offer_follow"

    def needed(self, form: Form, ctx: Context) -> bool:
        if not form.duplicate_checked:  # looked for once, when all else is known
            from bot.conversation.dialogue.complaints import covering_ticket

            form.duplicate_checked = True
            found = covering_ticket(ctx, form)
            form.duplicate = found.code if found else None
        return form.duplicate is not None and not form.file_anyway

    def ask(self, ctx: Context, form: Form) -> None:
        from bot.conversation.dialogue.complaints import duplicate_notice

        ctx.reply(
            duplicate_notice(ctx, form),
            [ctx.button("follow", FOLLOW), ctx.button("file_new", FILE_NEW), cancel_button(ctx)],
        )

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if reading.is_follow(ctx.text) or reading.is_yes(ctx.text):  # "có" follows
            return self.read_button(ctx, form, FOLLOW) or Outcome.STAY
        if reading.is_file_new(ctx.text):  # "không" (do not follow) files anew
            return self.read_button(ctx, form, FILE_NEW) or Outcome.STAY
        if reading.is_no(ctx.text):  # "không gửi nữa", "thôi"
            return Outcome.CANCEL
        self.ask(ctx, form)
        return Outcome.STAY

    def takes(self, ctx: Context, form: Form) -> bool:
        text = ctx.text
        return any(r(text) for r in (reading.is_follow, reading.is_yes, reading.is_file_new))

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        from bot.conversation.dialogue.complaints import follow_instead

        if data == FOLLOW:
            return Outcome.DONE if follow_instead(ctx, form) else Outcome.ADVANCE
        if data == FILE_NEW:
            form.file_anyway = True
            return Outcome.ADVANCE
        return None


class Confirm(Step):
    state = "confirm"

    def needed(self, form: Form, ctx: Context) -> bool:
        return True

    def ask(self, ctx: Context, form: Form) -> None:
        from bot.conversation.dialogue.complaints import summary  # the routing needs the DB

        ctx.reply(summary(ctx, form), [ctx.button("submit", SUBMIT), cancel_button(ctx)])

    async def read_text(self, ctx: Context, form: Form) -> Outcome:
        if reading.is_yes(ctx.text):
            return Outcome.SUBMIT
        if reading.is_no(ctx.text):
            return Outcome.CANCEL
        nlu = await ctx.parse()
        if nlu.intent == "affirm":
            return Outcome.SUBMIT
        if nlu.intent == "deny":
            return Outcome.CANCEL
        self.ask(ctx, form)
        return Outcome.STAY

    def takes(self, ctx: Context, form: Form) -> bool:
        return reading.is_yes(ctx.text) or reading.is_no(ctx.text)

    def read_button(self, ctx: Context, form: Form, data: str) -> Outcome | None:
        return Outcome.SUBMIT if data == SUBMIT else None


# The table: the first step the form still needs is asked next.
TABLE: tuple[Step, ...] = (
    AskCategory(),
    AskContact(first=True),
    AskPhone(),
    AskMisconductDetail("when"),
    AskPlace(),
    PickWard(),
    AskMisconductDetail("who"),
    AskDescription(),
    AskPhotos(),
    AskContact(first=False),
    OfferFollow(),
    Confirm(),
)
BY_STATE: dict[str, Step] = {}
for _step in TABLE:
    BY_STATE.setdefault(_step.state, _step)
FORM_STATES = frozenset(BY_STATE)


def next_step(ctx: Context) -> None:
    """Ask for the first thing the form still needs, or show the summary."""
    form = ctx.form
    step = next(s for s in TABLE if s.needed(form, ctx))
    ctx.state = step.state
    step.ask(ctx, form)
