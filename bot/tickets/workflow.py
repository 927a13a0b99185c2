"""What officials and citizens do to a ticket, for every channel and the dashboard.

Each action checks who may do it, changes the ticket (every change an event, via
`queries.update_ticket`; every change of status by the table in `statuses.py`) and queues
the notifications about it, in one transaction: the change and its notifications are stored
together or not at all. Dedupe keys come from the
event, so repeating a call after a crash never sends twice.

Errors: `ActionRefused` (not allowed: wrong account, wrong unit, wrong status) carries the
Vietnamese sentence to show; nothing is changed then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from bot.conversation.messages import Button, OutgoingFile, Reply
from bot.conversation.texts import CATEGORY_NAMES, OFFICIAL_STATUS_NAMES, say, say_in
from bot.directory.deadlines import deadlines_for, handled_by
from bot.tickets import access, proof
from bot.tickets.intake import calendar, expected, new_ticket_notice, official_buttons
from bot.tickets.notices import notify_chat, notify_citizen, notify_officials
from bot.tickets.statuses import Action, allowed, next_status
from storage import queries
from storage.db import begin_write
from storage.models import (
    Attachment,
    Channel,
    HumanRequest,
    HumanRequestStatus,
    Official,
    Ticket,
    TicketEvent,
    TicketEventKind,
    TicketStatus,
    TicketUpdate,
    Unit,
)

logger = logging.getLogger(__name__)

ACTING_ROLES = access.ACTING_ROLES
ACTOR_SYSTEM = "system"  # changes the workflow makes by itself (deadlines, escalation)
OPEN_STATUSES = queries.OPEN_STATUSES


class ActionRefused(Exception):
    """An action that is not allowed; `message` is what the person is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unit_name(session: Session, unit_id: str | None) -> str:
    """A unit's name, or its id when the directory does not know it."""
    unit = session.get(Unit, unit_id) if unit_id else None
    return unit.name if unit else (unit_id or "—")


def actor_of(official: Official) -> str:
    """How an official appears in a ticket's history."""
    return f"official:{official.id}:{official.name}"


def check_can_act(session: Session, official: Official | None, ticket: Ticket) -> Official:
    """The official, if they may act on `ticket` (`access.can_act`); else ActionRefused and a
    log line. A ticket they may not even read is answered as if it did not exist."""
    reader = access.Reader.of(session, official)
    if reader is None or official is None:
        access.log_refusal(reader, "act on", ticket)
        raise ActionRefused(say("utter_official_refused_unlinked"))
    if not access.can_read(reader, ticket):
        access.log_refusal(reader, "act on", ticket)
        raise ActionRefused(say("utter_official_ticket_not_found", code=ticket.code))
    if not access.can_act(reader, ticket):
        access.log_refusal(reader, "act on", ticket)
        raise ActionRefused(say("utter_official_refused_unit", code=ticket.code))
    return official


def _require(ticket: Ticket, action: Action) -> None:
    """ActionRefused (nothing changed) unless the table allows `action` on this ticket now."""
    if not allowed(action, ticket.status):
        raise ActionRefused(
            say(
                "utter_official_refused_status",
                code=ticket.code,
                status=OFFICIAL_STATUS_NAMES[ticket.status.value],
            )
        )


def _last_event_id(session: Session, ticket: Ticket) -> int:
    """The newest event's id: the dedupe keys of the notifications about it."""
    event_id = session.exec(
        select(TicketEvent.id)
        .where(TicketEvent.ticket_id == ticket.id)
        .order_by(col(TicketEvent.id).desc())
        .limit(1)
    ).first()
    assert event_id is not None
    return event_id


def _lead_officials(session: Session, ticket: Ticket) -> Sequence[Official]:
    assert ticket.lead_unit_id is not None
    return queries.officials_of_unit(session=session, unit_id=ticket.lead_unit_id)


def _change(
    session: Session,
    ticket: Ticket,
    update: TicketUpdate,
    *,
    actor: str,
    note: str | None,
    now: datetime,
    action: Action | None = None,
) -> int:
    """Apply `update` in the open transaction; the id of its (last) event. The status moves
    only by `action`, as the table says, from the status read under the row's lock (a change
    made meanwhile by someone else is refused, not overwritten)."""
    if "status" in update.model_fields_set:
        raise ValueError("A ticket's status changes only by an action of the table.")
    if action is not None:
        session.refresh(ticket, with_for_update=True)
        _require(ticket, action)
        update.status = next_status(action, ticket.status)
    queries.update_ticket(
        session=session, db_ticket=ticket, ticket_in=update, actor=actor, note=note, at=now,
        commit=False,
    )  # fmt: skip
    return _last_event_id(session, ticket)


def accept(*, session: Session, ticket: Ticket, official: Official | None, now: datetime) -> None:
    """The unit takes the ticket on; the citizen is told who and by when."""
    official = check_can_act(session, official, ticket)
    _require(ticket, Action.accept)
    # 1207/QĐ-UBND: an urgent ticket is handled within 4 working hours of its acceptance.
    sooner = handled_by(
        severity=ticket.severity, accepted_at=now, current=ticket.resolve_by, calendar=calendar()
    )
    update = TicketUpdate()
    if sooner is not None:  # set only when it moves (an unset field is left alone)
        update.resolve_by = sooner
    begin_write(session)
    event = _change(
        session, ticket, update, actor=actor_of(official), note=None, now=now,
        action=Action.accept,
    )  # fmt: skip
    ticket.accepted_at = ticket.accepted_at or now
    session.add(ticket)
    notify_citizen(
        session=session, ticket=ticket, key=f"event:{event}",
        reply=lambda lang: Reply(
            say_in(
                lang, "utter_ticket_accepted", code=ticket.code,
                unit=unit_name(session, ticket.lead_unit_id),
                resolve_by=expected(ticket.resolve_by, lang), note="",
            )
        ),
    )  # fmt: skip
    session.commit()


AwaitAnswer = Callable[[Session, Ticket], None]


def ask_info(
    *,
    session: Session,
    ticket: Ticket,
    official: Official | None,
    question: str,
    now: datetime,
    await_answer: AwaitAnswer,
) -> None:
    """Ask the citizen for more information; their answer comes back to the ticket.

    `await_answer` is the citizen dialogue's (`bot.conversation.dialogue.tickets`): it makes
    the citizen's next message the answer, in the same transaction as the question."""
    official = check_can_act(session, official, ticket)
    _require(ticket, Action.ask)
    question = question.strip()
    if not question:
        raise ActionRefused(say("utter_official_ask_question", code=ticket.code))
    begin_write(session)
    event = _change(
        session, ticket, TicketUpdate(),
        actor=actor_of(official), note=question, now=now, action=Action.ask,
    )  # fmt: skip
    if ticket.accepted_at is None:
        ticket.accepted_at = now  # asking is taking the ticket on
        session.add(ticket)
    await_answer(session, ticket)
    notify_citizen(  # the reporter is asked; followers hear the answer's outcome
        session=session, ticket=ticket, key=f"event:{event}", followers=False,
        reply=lambda lang: Reply(
            say_in(
                lang, "utter_ticket_question", code=ticket.code,
                unit=unit_name(session, ticket.lead_unit_id), question=question,
            ),
            (answer_button(ticket.code, lang),),
        ),
    )  # fmt: skip
    session.commit()


def citizen_answer(
    *, session: Session, ticket: Ticket, text: str, now: datetime, photos: Sequence[str] = ()
) -> None:
    """The citizen's answer to a question: recorded, sent to the unit, back to `accepted`.
    `photos` (file ids of the ticket's channel) may be the answer, or come with it: they are
    the ticket's, and go to the unit with the answer."""
    _require(ticket, Action.answer)
    channel = ticket.channel
    if photos and channel is None:
        raise ValueError("Photos need the channel whose file ids they are.")
    moved_to = _resolve_by_after_wait(session, ticket, now)
    begin_write(session)
    if photos:
        text = " ".join(filter(None, (say("utter_answer_photos_note", count=len(photos)), text)))
    event = _change(
        session, ticket, TicketUpdate(),
        actor="citizen", note=text, now=now, action=Action.answer,
    )  # fmt: skip
    files: tuple[OutgoingFile, ...] = ()
    if channel is not None:
        for file_id in photos:
            session.add(
                Attachment(ticket_id=ticket.id, channel=channel, file_id=file_id, kind="photo")
            )
        files = tuple(OutgoingFile("photo", file_id=f, channel=channel) for f in photos)
    answer = say("utter_official_citizen_answer", code=ticket.code, text=text)
    if moved_to is not None:
        _change(
            session, ticket, TicketUpdate(resolve_by=moved_to),
            actor=ACTOR_SYSTEM, note=say("utter_deadline_paused_note"), now=now,
        )  # fmt: skip
        answer += "\n" + say("utter_official_deadline_moved", resolve_by=expected(moved_to))
    notify_officials(
        session=session, officials=_lead_officials(session, ticket), key=f"event:{event}",
        reply=Reply(answer, official_buttons(ticket.code, ticket.status), files=files),
    )  # fmt: skip
    session.commit()


def question_asked(session: Session, ticket: Ticket) -> TicketEvent | None:
    """The event that put a `need_info` ticket there: when, and the question (its note)."""
    if ticket.status != TicketStatus.need_info:
        return None
    return session.exec(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == TicketEventKind.status)
        .order_by(col(TicketEvent.id).desc())
        .limit(1)
    ).first()


def _resolve_by_after_wait(session: Session, ticket: Ticket, now: datetime) -> datetime | None:
    """The resolve deadline moved on by the working time the citizen took to answer (the
    clock stops while they are asked); None when there is nothing to move."""
    asked = question_asked(session, ticket)
    if asked is None or ticket.resolve_by is None:
        return None
    waited = calendar().working_hours_between(asked.at, now)
    if waited <= 0:
        return None
    return calendar().add_working_hours(ticket.resolve_by, waited)


def transfer(
    *,
    session: Session,
    ticket: Ticket,
    official: Official | None,
    to_unit_id: str,
    reason: str,
    now: datetime,
) -> None:
    """Hand the ticket to another unit (with a reason); it starts there as `received`."""
    official = check_can_act(session, official, ticket)
    _require(ticket, Action.transfer)
    target = session.get(Unit, to_unit_id)
    if target is not None and access.accuses(ticket, target.ward_code):
        logger.warning("Refused: %s to the accused's unit %s.", ticket.code, to_unit_id)
    if target is None or not access.may_receive(target, ticket):
        raise ActionRefused(say("utter_official_pick_unit", code=ticket.code))
    if not reason.strip():
        raise ActionRefused(say("utter_official_ask_transfer_reason", code=ticket.code,
                                unit=target.name))  # fmt: skip
    from_unit = unit_name(session, ticket.lead_unit_id)
    accept_by = deadlines_for(
        category=ticket.category, filed_at=now, calendar=calendar(), text=ticket.description
    ).accept_by
    begin_write(session)
    event = _change(
        session, ticket,
        TicketUpdate(
            lead_unit_id=to_unit_id, accept_by=accept_by, accept_escalation=0,
            resolve_escalation=0,
        ),
        actor=actor_of(official), note=reason.strip(), now=now, action=Action.transfer,
    )  # fmt: skip
    ticket.accepted_at = None
    session.add(ticket)
    notify_citizen(
        session=session, ticket=ticket, key=f"event:{event}",
        reply=lambda lang: Reply(say_in(lang, "utter_ticket_transferred", code=ticket.code,
                                        unit=target.name, reason=reason.strip())),
    )  # fmt: skip
    notice = new_ticket_notice(ticket, photos_of(session, ticket))
    notify_officials(
        session=session, officials=_lead_officials(session, ticket), key=f"event:{event}",
        reply=Reply(
            say("utter_official_transferred_in", code=ticket.code, from_unit=from_unit,
                reason=reason.strip()) + "\n\n" + notice.text,
            notice.buttons, files=notice.files,
        ),
    )  # fmt: skip
    session.commit()


def unreached_warning(session: Session, ticket: Ticket) -> str:
    """A warning for the official who handed the ticket to a unit none of whose officials
    is linked to a chat (nobody there is told); else ""."""
    if ticket.lead_unit_id is None or _lead_officials(session, ticket):
        return ""
    return say("utter_official_unit_unreached", unit=unit_name(session, ticket.lead_unit_id))


def _close(
    session: Session,
    ticket: Ticket,
    official: Official | None,
    action: Action,
    note: str,
    *,
    ask: str,
    now: datetime,
) -> tuple[Official, int]:
    """Resolve or reject an open ticket; the note is required (`ask` asks for it).

    Returns the acting official and the id of the status event."""
    official = check_can_act(session, official, ticket)
    _require(ticket, action)
    if not note.strip():
        raise ActionRefused(say(ask, code=ticket.code))
    begin_write(session)
    event = _change(
        session, ticket, TicketUpdate(),
        actor=actor_of(official), note=note.strip(), now=now, action=action,
    )  # fmt: skip
    return official, event


class ProofRequired(ActionRefused):
    """A ticket of a category that needs a photo of the result was resolved without one."""


def resolve(
    *,
    session: Session,
    ticket: Ticket,
    official: Official | None,
    note: str,
    now: datetime,
    photos: Sequence[OutgoingFile] = (),
) -> None:
    """Report the result, with photos of it (`bot.tickets.proof`: required for some
    categories); the citizen gets them and is asked to rate or say it is not fixed."""
    check_can_act(session, official, ticket)
    _require(ticket, Action.resolve)
    photos = tuple(photos[: proof.MAX_PROOF_PHOTOS])
    if proof.needs_proof(ticket.category) and not photos:
        category = ticket.category or ""
        raise ProofRequired(
            say(
                "utter_official_proof_required",
                code=ticket.code,
                category=CATEGORY_NAMES.get(category, category),
            )
        )
    official, event = _close(
        session, ticket, official, Action.resolve, note,
        ask="utter_official_ask_resolution", now=now,
    )  # fmt: skip
    ticket.resolved_at = now
    ticket.accepted_at = ticket.accepted_at or now
    session.add(ticket)
    proof.add_proof(session=session, ticket=ticket, photos=photos, event_id=event)
    unit = unit_name(session, ticket.lead_unit_id)
    links = [url for url in map(proof.public_url, photos) if url]

    def reply(lang: str) -> Reply:
        text = say_in(lang, "utter_ticket_resolved", code=ticket.code, unit=unit, note=note.strip())
        if links:
            text += "\n" + say_in(
                lang, "utter_ticket_resolved_photos", count=len(photos), links="\n".join(links)
            )
        return Reply(
            text,
            rating_buttons(ticket.code, lang),
            image_url=links[0] if links and ticket.channel == Channel.web else None,
            files=proof.for_citizen(photos, ticket.channel),
        )

    notify_citizen(session=session, ticket=ticket, key=f"event:{event}", reply=reply)
    session.commit()


def reject(
    *, session: Session, ticket: Ticket, official: Official | None, reason: str, now: datetime
) -> None:
    """Decline the ticket; a reason is required and the citizen gets it."""
    _, event = _close(
        session, ticket, official, Action.reject, reason,
        ask="utter_official_ask_reject_reason", now=now,
    )  # fmt: skip
    notify_citizen(
        session=session, ticket=ticket, key=f"event:{event}",
        reply=lambda lang: Reply(
            say_in(lang, "utter_ticket_rejected", code=ticket.code,
                   unit=unit_name(session, ticket.lead_unit_id), reason=reason.strip())
        ),
    )  # fmt: skip
    session.commit()


def rate(*, session: Session, ticket: Ticket, rating: int, now: datetime) -> None:
    """The citizen's 1–5 rating of a resolved ticket, which closes it."""
    _require(ticket, Action.rate)
    if not 1 <= rating <= 5:
        raise ValueError("A rating is 1 to 5.")
    begin_write(session)
    event = _change(
        session, ticket, TicketUpdate(rating=rating),
        actor="citizen", note=None, now=now, action=Action.rate,
    )  # fmt: skip
    notify_officials(
        session=session, officials=_lead_officials(session, ticket), key=f"event:{event}",
        reply=Reply(say("utter_official_rated", code=ticket.code, rating=rating)),
    )  # fmt: skip
    session.commit()


def reopen(*, session: Session, ticket: Ticket, now: datetime, actor: str = "citizen") -> None:
    """ "Not fixed" (its reporter or a follower says): back to `accepted` with a new deadline;
    the unit and its supervisors hear."""
    _require(ticket, Action.reopen)
    resolve_by = deadlines_for(
        category=ticket.category, filed_at=now, calendar=calendar(), text=ticket.description
    ).resolve_by
    begin_write(session)
    event = _change(
        session, ticket,
        TicketUpdate(
            resolve_by=resolve_by, resolve_escalation=0, reopen_count=ticket.reopen_count + 1,
        ),
        actor=actor, note="Người dân cho biết vấn đề chưa được giải quyết.", now=now,
        action=Action.reopen,
    )  # fmt: skip
    ticket.resolved_at = None
    session.add(ticket)
    unit = unit_name(session, ticket.lead_unit_id)
    notify_citizen(
        session=session, ticket=ticket, key=f"event:{event}",
        reply=lambda lang: Reply(say_in(lang, "utter_ticket_reopened", code=ticket.code,
                                        unit=unit, resolve_by=expected(resolve_by, lang))),
    )  # fmt: skip
    notify_officials(
        session=session, officials=_lead_officials(session, ticket), key=f"event:{event}",
        reply=Reply(
            say("utter_official_reopened", code=ticket.code, count=ticket.reopen_count,
                resolve_by=expected(resolve_by)),
            official_buttons(ticket.code, ticket.status),
        ),
    )  # fmt: skip
    session.commit()


def answer_human_request(
    *,
    session: Session,
    request: HumanRequest,
    official: Official | None,
    text: str,
    now: datetime,
) -> None:
    """An official of the unit on duty answers a citizen who asked for a person."""
    if official is None or official.unit_id != request.unit_id or not official.active:
        logger.warning("Refused: account %s answering human request %s.", official, request.id)
        raise ActionRefused(say("utter_official_refused_unlinked"))
    if not text.strip():
        raise ActionRefused(say("utter_official_ask_human_reply"))
    begin_write(session)
    request.status = HumanRequestStatus.answered
    request.answered_by = official.id
    request.answered_at = now
    session.add(request)
    notify_chat(
        session=session, channel=request.channel, chat_id=request.chat_id,
        key=f"human:{request.id}:answer:{now.isoformat()}",
        reply=lambda lang: Reply(say_in(lang, "utter_human_reply",
                                        unit=unit_name(session, request.unit_id),
                                        text=text.strip())),
    )  # fmt: skip
    session.commit()


def rating_buttons(code: str, language: str = "vi") -> tuple[Button, ...]:
    """1–5 stars and "not fixed" (data read by the citizen's conversation)."""
    stars = tuple(Button(f"{n} ⭐", f"rate:{code}:{n}") for n in range(1, 6))
    return (*stars, Button(say_in(language, "button_not_fixed"), f"reopen:{code}"))


def answer_button(code: str, language: str = "vi") -> Button:
    """ "Trả lời" under a unit's question: the citizen's next message is the answer."""
    return Button(say_in(language, "button_answer"), f"ans:{code}")


def photos_of(session: Session, ticket: Ticket) -> tuple[OutgoingFile, ...]:
    """A ticket's photos, each by the file id of the channel it came through."""
    assert ticket.id is not None
    return tuple(
        OutgoingFile("photo", file_id=a.file_id, channel=a.channel)
        for a in queries.attachments_of_ticket(session=session, ticket_id=ticket.id)
        if a.kind == "photo"
    )


EVENT_NAMES = {
    "created": "người dân gửi phản ánh",
    "deadline": "đổi thời hạn",
    "content": "bổ sung nội dung",
    "note": "ghi chú",
    "rating": "người dân đánh giá",
    "attachment": "thêm tệp",
    "escalation": "báo cáo quá hạn lên cấp trên",
    "question": "hỏi người dân",
    "answer": "người dân trả lời",
    "reopened": "mở lại phản ánh",
    "summary": "tóm tắt công khai (Open311)",
    "followed": "người dân khác theo dõi (cùng việc)",
    "follower_rating": "người theo dõi đánh giá",
    "merged": "gộp phản ánh trùng",
}


def history_lines(session: Session, ticket: Ticket) -> list[str]:
    """A ticket's events as officials read them."""
    assert ticket.id is not None
    lines = []
    for event in queries.ticket_events(session=session, ticket_id=ticket.id):
        when = expected(event.at)
        what = EVENT_NAMES.get(event.kind, event.kind)
        if event.kind == TicketEventKind.status and event.new_value:
            what = OFFICIAL_STATUS_NAMES.get(str(event.new_value.get("status")), what)
        elif event.kind == TicketEventKind.unit and event.new_value:
            what = f"chuyển tới {unit_name(session, str(event.new_value.get('lead_unit_id')))}"
        what += " (công khai)" if event.public and event.kind != TicketEventKind.summary else ""
        note = f": {event.note}" if event.note else ""
        lines.append(f"• {when} — {what}{note}")
    return lines
