"""What an official publishes about a ticket through Open311 (issue 12 item 2).

The public summary replaces the citizen's own text in the public API; a public note becomes
its ``status_notes``. Both are written by an official of the lead unit, recorded in the
ticket's history, and still pass through `bot.masking` when published.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.tickets.workflow import ActionRefused, actor_of, check_can_act
from storage import queries
from storage.models import Official, Ticket, TicketEventCreate, TicketEventKind

MAX_PUBLIC_CHARS = 1000


def _checked(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ActionRefused("Nội dung công khai không được để trống.")
    if len(text) > MAX_PUBLIC_CHARS:
        raise ActionRefused(f"Nội dung công khai dài quá {MAX_PUBLIC_CHARS} ký tự.")
    return text


def set_public_summary(
    *, session: Session, ticket: Ticket, official: Official | None, text: str, now: datetime
) -> None:
    """Write or approve the summary Open311 publishes instead of the citizen's text."""
    official = check_can_act(session, official, ticket)
    summary = _checked(text)
    old = ticket.public_summary
    ticket.public_summary = summary
    queries.add_ticket_event(
        session=session,
        ticket=ticket,
        at=now,
        event_in=TicketEventCreate(
            kind=TicketEventKind.summary,
            actor=actor_of(official),
            note=summary,
            old_value={"public_summary": old},
            new_value={"public_summary": summary},
        ),
    )


def add_public_note(
    *, session: Session, ticket: Ticket, official: Official | None, text: str, now: datetime
) -> None:
    """A note for the public (Open311 ``status_notes``): what is being done, the result."""
    official = check_can_act(session, official, ticket)
    queries.add_ticket_event(
        session=session,
        ticket=ticket,
        at=now,
        event_in=TicketEventCreate(
            kind=TicketEventKind.note, actor=actor_of(official), note=_checked(text), public=True
        ),
    )
