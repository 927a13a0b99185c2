"""Personal data past the retention period (`civicbot purge`, CIVICBOT_RETENTION_DAYS).

What is blanked, in rows older than the cut-off (records stay, so counts and the weekly
digests do not change):

- messages: the text, a shared location and the channel's metadata, and what the NLU read
  out of the text (the text, phone, place, ticket code); the intent, category and procedure
  stay (the digests count procedure questions by them);
- the outbox: the text of messages no longer waiting to be sent;
- citizens: the phone number and display name of citizens who wrote nothing since;
- tickets finished (resolved, rejected, closed) before the cut-off: the contact phone.

And, whatever the period, a dashboard sign-in code or link that was never delivered (given
up on) is blanked an hour after it was queued: delivered ones are blanked at once
(`storage.queries.OUTBOX_REDACTED_TEXT`).

A ticket's description, place and history are the record of the complaint and stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage import queries
from storage.db import begin_write
from storage.models import (
    Citizen,
    Message,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketStatus,
    utcnow,
)

BATCH = 500
# What the NLU result keeps (PRODUCT.md §4 fields that carry nothing of the person).
NLU_KEPT = ("intent", "confidence", "category", "procedure", "aspect", "source", "ranking")
OUTBOX_TEXT = col(OutboxMessage.payload)["text"]
REDACTED = col(OutboxMessage.payload)[queries.OUTBOX_REDACTED_TEXT]
SECRET_GRACE = timedelta(hours=1)  # past the validity of any sign-in code or link
# Message payload keys that say where the person was or who they are on the channel.
PAYLOAD_DROPPED = ("location", "metadata")
FINISHED = (TicketStatus.resolved, TicketStatus.rejected, TicketStatus.closed)


@dataclass(frozen=True)
class Purged:
    """How many rows had something blanked (or would have, in a dry run)."""

    messages: int = 0
    outbox: int = 0
    citizens: int = 0
    tickets: int = 0
    secrets: int = 0

    def lines(self) -> list[str]:
        return [
            f"undelivered sign-in codes and links: {self.secrets}",
            f"messages: {self.messages}",
            f"outbox messages: {self.outbox}",
            f"citizens: {self.citizens}",
            f"tickets (contact phone): {self.tickets}",
        ]


def cutoff(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def purge(
    *, session: Session, before: datetime, dry_run: bool = False, now: datetime | None = None
) -> Purged:
    """Blank the personal data of rows older than `before`; with `dry_run`, only count."""
    begin_write(session)
    purged = Purged(
        secrets=_secrets(session, (now or utcnow()) - SECRET_GRACE),
        messages=_messages(session, before),
        outbox=_outbox(session, before),
        citizens=_citizens(session, before),
        tickets=_tickets(session, before),
    )
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return purged


def _kept_nlu(nlu: dict[str, Any] | None) -> dict[str, Any] | None:
    if nlu is None:
        return None
    return {key: nlu[key] for key in NLU_KEPT if key in nlu}


def _kept_payload(payload: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (payload or {}).items() if k not in PAYLOAD_DROPPED}


def _messages(session: Session, before: datetime) -> int:
    """Messages with a text or a location left, in batches (each one's JSON is rewritten)."""
    table: sa.Table = Message.__table__  # type: ignore[attr-defined]
    blank = (
        table.update()
        .where(table.c.id == sa.bindparam("row_id"))
        .values(text="", nlu=sa.bindparam("kept_nlu"), payload=sa.bindparam("kept_payload"))
    )
    personal = sa.or_(table.c.text != "", table.c.payload["location"].as_string().is_not(None))
    done, last = 0, 0
    while True:
        rows = (
            session.connection()
            .execute(
                sa.select(table.c.id, table.c.nlu, table.c.payload)
                .where(table.c.created_at < before, table.c.id > last, personal)
                .order_by(table.c.id)
                .limit(BATCH)
            )
            .all()
        )
        if not rows:
            return done
        last = rows[-1].id
        kept = [
            {"row_id": r.id, "kept_nlu": _kept_nlu(r.nlu), "kept_payload": _kept_payload(r.payload)}
            for r in rows
        ]
        session.connection().execute(blank, kept)
        done += len(rows)


def _secrets(session: Session, before: datetime) -> int:
    """Sign-in codes and links given up on: only the sentence saying one was sent stays."""
    key = queries.OUTBOX_REDACTED_TEXT
    return _rewrite_outbox(
        session,
        before,
        REDACTED,
        lambda p: {**{k: v for k, v in p.items() if k != key}, "text": p[key]},
    )


def _outbox(session: Session, before: datetime) -> int:
    """The texts of outbox messages sent or given up on (files and buttons too)."""
    return _rewrite_outbox(
        session, before, OUTBOX_TEXT, lambda p: {**p, "text": "", "files": [], "buttons": []}
    )


def _rewrite_outbox(
    session: Session,
    before: datetime,
    present: Any,
    rewrite: Callable[[dict[str, Any]], dict[str, Any]],
) -> int:
    """Rewrite the payloads of the outbox rows older than `before`, no longer pending, whose
    payload has a non-empty `present` value; how many."""
    rows = session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.created_at) < before,
            OutboxMessage.status != OutboxStatus.pending,
            sa.func.coalesce(present.as_string(), "") != "",
        )
    ).all()
    for row in rows:
        row.payload = rewrite(row.payload)
        session.add(row)
    session.flush()
    return len(rows)


def _citizens(session: Session, before: datetime) -> int:
    """Citizens with a phone or name left who have written nothing since the cut-off."""
    recent = (
        select(Message.citizen_id)
        .where(col(Message.created_at) >= before, col(Message.citizen_id).is_not(None))
        .distinct()
    )
    result = session.exec(
        sa.update(Citizen)
        .where(
            col(Citizen.created_at) < before,
            col(Citizen.id).not_in(recent),
            sa.or_(col(Citizen.phone).is_not(None), col(Citizen.display_name).is_not(None)),
        )
        .values(phone=None, display_name=None)
    )
    return int(result.rowcount)


def _tickets(session: Session, before: datetime) -> int:
    """The contact phone of tickets finished before the cut-off."""
    finished_at = sa.func.coalesce(col(Ticket.resolved_at), col(Ticket.updated_at))
    result = session.exec(
        sa.update(Ticket)
        .where(
            col(Ticket.status).in_(FINISHED),
            finished_at < before,
            col(Ticket.contact_phone).is_not(None),
        )
        .values(contact_phone=None)
    )
    return int(result.rowcount)
