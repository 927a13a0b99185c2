"""A ticket's page, its photos, and the actions: the same functions as the chat buttons."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import FileResponse, Response

from bot.channels.web_photos import PhotoRefused, photo_path
from bot.config import settings
from bot.conversation.dialogue.tickets import await_answer
from bot.conversation.texts import say
from bot.duplicates.merge import merge
from bot.tickets import access, proof, workflow
from bot.tickets.intake import contact_text, expected, place_text
from bot.tickets.publish import MAX_PUBLIC_CHARS, add_public_note, set_public_summary
from bot.tickets.workflow import ActionRefused
from bot.web.dashboard import cells
from bot.web.dashboard.guard import Viewer, Visit
from bot.web.dashboard.queries import transfer_choices
from storage import followers, queries
from storage.models import Official, Ticket, TicketStatus

MAX_NOTE_CHARS = 2000

Act = Callable[[dict[str, Any], Mapping[str, str]], None]

# Each action with the form fields it takes; the first three are the chat buttons' own.
ACTIONS: dict[str, Act] = {
    "accept": lambda common, text: workflow.accept(**common),
    "ask": lambda common, text: workflow.ask_info(
        question=text["question"], await_answer=await_answer, **common
    ),
    "transfer": lambda common, text: workflow.transfer(
        to_unit_id=text["unit"], reason=text["reason"], **common
    ),
    "resolve": lambda common, text: workflow.resolve(note=text["note"], **common),
    "reject": lambda common, text: workflow.reject(reason=text["reason"], **common),
    "summary": lambda common, text: set_public_summary(text=text["summary"], **common),
    "public_note": lambda common, text: add_public_note(text=text["public_note"], **common),
    "merge": lambda common, text: _merge(common, text["into"]),
}
FIELDS = ("question", "note", "reason", "unit", "summary", "public_note", "into")
DONE = {
    "accept": "Đã tiếp nhận phản ánh {code}.",
    "ask": "Đã gửi câu hỏi tới người phản ánh {code}.",
    "transfer": "Đã chuyển phản ánh {code} tới {unit}.",
    "resolve": "Đã báo kết quả giải quyết phản ánh {code}.",
    "reject": "Đã ghi nhận không tiếp nhận phản ánh {code}.",
    "summary": "Đã lưu tóm tắt công khai của phản ánh {code}.",
    "public_note": "Đã công bố thông báo về phản ánh {code}.",
    "merge": "Đã gộp phản ánh {code} vào {into}; người phản ánh được báo và theo dõi {into}.",
}


def _merge(common: dict[str, Any], into_code: str) -> None:
    """The ticket merged into `into_code` (bot/duplicates/merge.py: the access rule on both);
    a code the official may not act on is refused as not found."""
    session = common["session"]
    into = queries.get_ticket_by_code(session=session, code=into_code)
    if into is None:
        raise ActionRefused(say("utter_official_ticket_not_found", code=into_code.strip()))
    merge(
        session=session,
        duplicate=common["ticket"],
        into=into,
        official=common["official"],
        now=common["now"],
    )


def _readable(visit: Visit, what: str) -> tuple[Viewer, Ticket | None]:
    """The viewer, and the ticket of the path when the viewer may see it (refusals logged)."""
    viewer, code = visit.viewer, visit.path("code")
    assert viewer is not None
    ticket = queries.get_ticket_by_code(session=visit.session, code=code)
    if ticket is None or not viewer.may_see(ticket):
        access.log_refusal(viewer.reader, what, code)
        return viewer, None
    return viewer, ticket


@dataclass(frozen=True)
class Facts:
    """What the page tells about a ticket, besides its text and history."""

    category: str
    status: cells.Status
    unit: str
    place: str
    contact: str
    photos: int
    sent: str
    accept_by: cells.Deadline
    resolve_by: cells.Deadline
    accept_live: bool  # deadlines still running are shown red once passed
    resolve_live: bool
    rating: int | None
    citizens: int  # its reporter and its followers (one problem, one ticket)


def ticket_page(visit: Visit) -> Response:
    """Details, history and (for its unit's handlers) the action and publishing forms."""
    viewer, ticket = _readable(visit, "open")
    if ticket is None:
        return visit.not_found()
    session, now = visit.session, visit.now
    photos = workflow.photos_of(session, ticket)
    facts = Facts(
        category=cells.category(ticket),
        status=cells.status(ticket, now),
        unit=workflow.unit_name(session, ticket.lead_unit_id),
        place=place_text(ticket),
        contact=contact_text(ticket),
        photos=len(photos),
        sent=expected(ticket.created_at),
        accept_by=cells.deadline(ticket.accept_by, now),
        resolve_by=cells.deadline(ticket.resolve_by, now),
        accept_live=ticket.status == TicketStatus.received,
        resolve_live=ticket.status in workflow.OPEN_STATUSES,
        rating=ticket.rating,
        citizens=followers.citizens_behind(session=session, tickets=[ticket]).get(
            ticket.id or 0, 0
        ),
    )
    acting = viewer.may_act(ticket)
    open_ = ticket.status in workflow.OPEN_STATUSES
    return visit.render(
        "ticket.html",
        ticket=ticket,
        facts=facts,
        history=[line.removeprefix("• ") for line in workflow.history_lines(session, ticket)],
        photo_links=[
            (f"/dashboard/tickets/{ticket.code}/photos/{i}", i + 1)
            for i, photo in enumerate(photos)
            if photo.channel == "web" and photo_path(photo.file_id or "", settings.upload_dir)
        ],
        proof_links=[
            url
            for url in (proof.public_url(p, base="") for p in proof.proof_of(session, ticket))
            if url
        ],
        proof_required=proof.needs_proof(ticket.category),
        acting=acting,
        open=open_,
        units=transfer_choices(session=session, ticket=ticket) if acting and open_ else [],
        max_note=MAX_NOTE_CHARS,
        max_public=MAX_PUBLIC_CHARS,
    )


def ticket_photo(visit: Visit) -> Response:
    """A photo of a ticket that the web chat's citizen sent (`bot.channels.web_photos`)."""
    _, ticket = _readable(visit, "photo")
    if ticket is None:
        return visit.not_found()
    index = int(visit.request.path_params["index"])
    photos = workflow.photos_of(visit.session, ticket)
    if not 0 <= index < len(photos) or photos[index].channel != "web":
        return visit.not_found()
    path = photo_path(photos[index].file_id or "", settings.upload_dir)
    if path is None or not path.is_file():
        return visit.not_found()
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private"})


def act(visit: Visit) -> Response:
    """One action from the ticket page; back to it (or the queue) with what happened."""
    action = visit.path("action")
    if action not in ACTIONS:
        return visit.not_found()
    viewer, ticket = _readable(visit, action)
    if ticket is None:
        return visit.not_found()
    page = f"/dashboard/tickets/{ticket.code}"
    text = {k: visit.form.get(k, "") for k in FIELDS}
    if any(len(v) > MAX_NOTE_CHARS for v in text.values()):
        return visit.flash_and_go("error", f"Nội dung dài quá {MAX_NOTE_CHARS} ký tự.", page)
    official = visit.session.get(Official, viewer.id)
    common = {"session": visit.session, "ticket": ticket, "official": official, "now": visit.now}
    try:
        if action == "resolve":  # with the photos of the result, checked and kept here
            common["photos"] = proof.keep_uploads(getattr(visit.request.state, "uploads", []))
        ACTIONS[action](common, text)
    except PhotoRefused as refused:
        return visit.flash_and_go("error", refused.message, page)
    except ActionRefused as refused:
        return visit.flash_and_go("error", refused.message, page)
    unit = workflow.unit_name(visit.session, ticket.lead_unit_id)
    into = queries.normalize_ticket_code(text["into"]) or text["into"]
    done = DONE[action].format(code=ticket.code, unit=unit, into=into)
    if action == "transfer":
        done = f"{done} {workflow.unreached_warning(visit.session, ticket)}".strip()
    # After a transfer the ticket may be another unit's: back to the queue then.
    return visit.flash_and_go("ok", done, page if viewer.may_see(ticket) else "/dashboard")
