"""An official merges a duplicate filed anyway into the ticket of the same problem.

The duplicate is closed (`closed`, with `merged_into_id`), both tickets get a `merged` event,
its reporter and followers become followers of the other ticket and are told so, through the
outbox, in one transaction. Both tickets must be open and ones the official may act on
(`bot/tickets/access.py`): in practice two tickets of their own unit.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from bot.conversation.messages import Reply
from bot.conversation.texts import say, say_in, status_name
from bot.tickets import workflow
from bot.tickets.notices import notify_citizen
from bot.tickets.statuses import Action, next_status
from bot.tickets.workflow import ActionRefused
from storage import followers, queries
from storage.db import begin_write
from storage.models import (
    Official,
    Severity,
    Ticket,
    TicketEvent,
    TicketEventKind,
    TicketUpdate,
)

_SEVERITY_ORDER = (Severity.urgent, Severity.normal, Severity.complex)


def _stricter_terms(duplicate: Ticket, into: Ticket) -> TicketUpdate | None:
    """The duplicate's severity and deadlines where they are stricter than the kept
    ticket's: an urgent report merged into a normal one stays urgent."""
    changes: dict[str, object] = {}
    for field in ("accept_by", "resolve_by"):
        theirs, ours = getattr(duplicate, field), getattr(into, field)
        if theirs is not None and ours is not None and theirs < ours:
            changes[field] = theirs
    if (
        duplicate.severity is not None
        and into.severity is not None
        and _SEVERITY_ORDER.index(duplicate.severity) < _SEVERITY_ORDER.index(into.severity)
    ):
        changes["severity"] = duplicate.severity
    return TicketUpdate.model_validate(changes) if changes else None


def merge(
    *, session: Session, duplicate: Ticket, into: Ticket, official: Official | None, now: datetime
) -> None:
    """Merge `duplicate` into `into`; `ActionRefused` (nothing changed) when not allowed."""
    official = workflow.check_can_act(session, official, duplicate)
    workflow.check_can_act(session, official, into)
    if duplicate.id == into.id:
        raise ActionRefused(say("utter_official_merge_same", code=duplicate.code))
    for ticket in (duplicate, into):
        if ticket.status not in queries.OPEN_STATUSES:
            raise ActionRefused(say("utter_official_merge_not_open", code=ticket.code))
    assert duplicate.id is not None and into.id is not None
    actor = workflow.actor_of(official)
    begin_write(session)
    # The reporter and followers of the duplicate are told first: then they follow `into`,
    # and hear of it from now on.
    note = say("utter_merged_note", code=into.code)
    queries.update_ticket(
        session=session,
        db_ticket=duplicate,
        ticket_in=TicketUpdate(status=next_status(Action.merge, duplicate.status)),
        actor=actor,
        note=note,
        at=now,
        commit=False,
    )
    duplicate.merged_into_id = into.id
    session.add(duplicate)
    session.add(
        TicketEvent(
            ticket_id=duplicate.id,
            kind=TicketEventKind.merged,
            actor=actor,
            note=note,
            new_value={"merged_into": into.code},
            at=now,
        )
    )
    session.add(
        TicketEvent(
            ticket_id=into.id,
            kind=TicketEventKind.merged,
            actor=actor,
            note=say("utter_merged_in_note", code=duplicate.code),
            new_value={"merged_from": duplicate.code},
            at=now,
        )
    )
    stricter = _stricter_terms(duplicate, into)
    if stricter is not None:  # the duplicate's reporter was promised its dates
        queries.update_ticket(
            session=session,
            db_ticket=into,
            ticket_in=stricter,
            actor=actor,
            note=say("utter_merged_stricter_note", code=duplicate.code),
            at=now,
            commit=False,
        )
    session.flush()
    notify_citizen(
        session=session,
        ticket=duplicate,
        key=f"merged:{duplicate.code}",
        reply=lambda lang: Reply(
            say_in(
                lang,
                "utter_ticket_merged",
                code=duplicate.code,
                into=into.code,
                unit=workflow.unit_name(session, into.lead_unit_id),
                status=status_name(into.status.value, lang),
            )
        ),
    )
    chats = [
        (f.channel, f.chat_id, f.citizen_id)
        for f in followers.followers_of(session=session, ticket_id=duplicate.id)
    ]
    if duplicate.channel is not None and duplicate.chat_id is not None:
        chats.insert(0, (duplicate.channel, duplicate.chat_id, duplicate.citizen_id))
    for channel, chat_id, citizen_id in chats:
        if channel == into.channel and chat_id == into.chat_id:
            continue  # the reporter of `into` hears of it already
        followers.add_follower(
            session=session,
            ticket_id=into.id,
            citizen_id=citizen_id,
            channel=channel,
            chat_id=chat_id,
            via="merged",
            now=now,
        )
    session.commit()
