"""Monday's digests: each unit's officials get their unit's digest of the week just ended,
the city leaders the city-wide one, through the outbox.

From Monday 08:00 local time (`CIVICBOT_TIMEZONE`) to the end of that week, a call queues
what is still missing for the week just ended: one message (text, chart, CSV) per linked,
active official. A unit's digest goes to its handlers and supervisors (active units only);
the city-wide digest to every leader, whatever their unit. The dedupe key
`digest:{week}:{unit or "city"}:{official id}` makes a second call, a restart or a racing
process send nothing twice; a call after Monday catches up what a stopped app missed, and an
official linked later in the week still gets that week's digest.

A digest is computed only when one of its recipients still lacks it, so calling this every
few minutes costs one indexed query once the week's digests are queued. Computing them is
blocking work (SQL and matplotlib): run it in a thread from an event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta, tzinfo

from sqlmodel import Session, col, select

from bot.config import settings
from bot.conversation.messages import OutgoingFile, Reply, reply_to_payload
from bot.digest.aggregate import (
    IsoWeek,
    LeagueStanding,
    ProcedureQuestions,
    as_tz,
    city_procedure_questions,
)
from bot.digest.render import chart_png, csv_bytes, message_text
from bot.digest.scorecard import digest_with_league, league_standings
from storage import queries
from storage.db import begin_write
from storage.models import Official, OfficialRole, OutboxMessage, OutboxMessageCreate, Unit

SEND_AT = time(8)  # Monday, local time
CITY = "city"


def due_week(now: datetime, tz: tzinfo) -> IsoWeek | None:
    """The week whose digests are due at `now`: the last one, once Monday 08:00 has come."""
    local = now.astimezone(tz)
    current = IsoWeek.containing(local, tz)
    send_at = current.start(tz) + timedelta(hours=SEND_AT.hour, minutes=SEND_AT.minute)
    return current.previous() if local >= send_at else None


def dedupe_key(week: IsoWeek, unit_id: str | None, official_id: int) -> str:
    """The outbox key of one official's digest of one week."""
    return f"digest:{week}:{unit_id or CITY}:{official_id}"


def digest_recipients(*, session: Session) -> dict[str | None, list[Official]]:
    """Who gets which digest: unit id (None for the city-wide one) to linked officials."""
    linked = select(Official).where(
        col(Official.active), col(Official.chat_id).is_not(None), col(Official.channel).is_not(None)
    )
    recipients: dict[str | None, list[Official]] = {}
    leaders = session.exec(
        linked.where(Official.role == OfficialRole.leader).order_by(col(Official.id))
    ).all()
    if leaders:
        recipients[None] = list(leaders)
    staff = session.exec(
        linked.join(Unit, col(Unit.id) == col(Official.unit_id))
        .where(col(Unit.active), Official.role != OfficialRole.leader)
        .order_by(col(Official.unit_id), col(Official.id))
    ).all()
    for official in staff:
        recipients.setdefault(official.unit_id, []).append(official)
    return recipients


def digest_reply(
    *,
    session: Session,
    week: IsoWeek,
    unit_id: str | None,
    tz: tzinfo,
    procedures: ProcedureQuestions | None = None,
    standings: dict[str, LeagueStanding] | None = None,
) -> Reply:
    """The message officials get: the short text (with a ward's place in the league), the
    chart (PNG) and the CSV."""
    digest = digest_with_league(
        session=session,
        week=week,
        unit_id=unit_id,
        tz=tz,
        min_tickets=settings.scorecard_min_tickets,
        procedures=procedures,
        standings=standings,
    )
    stem = f"bao-cao-tuan-{week}-{unit_id or 'toan-thanh-pho'}"
    return Reply(
        message_text(digest),
        files=(
            OutgoingFile(
                "photo", content=chart_png(digest), filename=f"{stem}.png", mime_type="image/png"
            ),
            OutgoingFile(
                "document", content=csv_bytes(digest), filename=f"{stem}.csv", mime_type="text/csv"
            ),
        ),
    )


def _queued_keys(session: Session, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    found = session.exec(
        select(OutboxMessage.dedupe_key).where(col(OutboxMessage.dedupe_key).in_(list(keys)))
    ).all()
    return {key for key in found if key is not None}


def enqueue_weekly_digests(
    *, session: Session, now: datetime, tz: tzinfo | str | None = None
) -> int:
    """Queue the due weekly digests not queued yet; returns how many messages were queued."""
    zone = as_tz(tz if tz is not None else settings.timezone)
    week = due_week(now, zone)
    if week is None:
        return 0
    # Each official's key and address, read before a commit expires the rows.
    sends = {
        unit_id: [(dedupe_key(week, unit_id, o.id or 0), o.channel, o.chat_id) for o in officials]
        for unit_id, officials in digest_recipients(session=session).items()
    }
    done = _queued_keys(session, [key for unit in sends.values() for key, _, _ in unit])
    queued = 0
    procedures: ProcedureQuestions | None = None  # city-wide: read once for all units
    standings: dict[str, LeagueStanding] | None = None  # the wards' league: once too
    for unit_id, unit_sends in sends.items():
        missing = [send for send in unit_sends if send[0] not in done]
        if not missing:
            continue
        if procedures is None:
            procedures = city_procedure_questions(session=session, week=week, tz=zone)
        if standings is None:
            standings = league_standings(
                session=session, week=week, tz=zone, min_tickets=settings.scorecard_min_tickets
            )
        payload = reply_to_payload(
            digest_reply(
                session=session,
                week=week,
                unit_id=unit_id,
                tz=zone,
                procedures=procedures,
                standings=standings,
            )
        )
        begin_write(session)
        # Checked again inside the write transaction: another process may have queued some.
        already = _queued_keys(session, [key for key, _, _ in missing])
        for key, channel, chat_id in missing:
            if key in already or channel is None or chat_id is None:
                continue
            queries.enqueue_outbox(
                session=session,
                message_in=OutboxMessageCreate(
                    channel=channel, recipient=chat_id, payload=payload, dedupe_key=key
                ),
                commit=False,
            )
            queued += 1
        session.commit()
    return queued
