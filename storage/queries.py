"""Query functions: keyword-only, each takes a `Session`, and those that write commit.

A function that writes commits what the session already holds, does its work in a new
transaction and commits it (`storage.db.begin_write`): compose them freely, but do not count on
rolling back a caller's pending changes after calling one.

Inserts that may race (a redelivered update, the same outbox key, a new chat) use
`INSERT … ON CONFLICT` on the unique constraint, so the loser of a race gets the winner's row
instead of an error. Both SQLite (3.35+) and PostgreSQL support it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, col, select

from storage.db import begin_write
from storage.models import (
    Attachment,
    AttachmentCreate,
    Channel,
    ChannelIdentity,
    ChannelPause,
    Citizen,
    Conversation,
    Direction,
    HumanRequest,
    Message,
    Official,
    OfficialRole,
    OutboxMessage,
    OutboxMessageCreate,
    OutboxStatus,
    Ticket,
    TicketCounter,
    TicketCreate,
    TicketEvent,
    TicketEventCreate,
    TicketEventKind,
    TicketStatus,
    TicketUpdate,
    Unit,
    utcnow,
)

# --- Helpers --------------------------------------------------------------------------------


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT construct (it has `on_conflict_do_nothing/update`)."""
    return _dialect_insert(_dialect(session), table)


def _core(session: Session, statement: Any, params: Any) -> sa.CursorResult[Any]:
    """Run a Core statement on the session's connection. The turn's statements go this way:
    through the ORM's execution layer a small SELECT costs 42 µs of CPU on SQLite, here 17."""
    return session.connection().execute(statement, params)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _dialect_insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"Unsupported database: {dialect}")


# The statements of every citizen's turn are built once and take their values as parameters:
# building a statement (an upsert most of all) costs more CPU than running it on SQLite. Its
# writes are Core statements (per database kind): the ORM's handling of DML on a model costs
# several times the statement too.
_CITIZEN_ID_OF_ACCOUNT = select(ChannelIdentity.citizen_id).where(
    ChannelIdentity.channel == sa.bindparam("channel"),
    ChannelIdentity.external_user_id == sa.bindparam("external_user_id"),
)
_EXISTING_INCOMING = select(Message.id).where(
    Message.channel == sa.bindparam("channel"),
    Message.chat_id == sa.bindparam("chat_id"),
    Message.direction == Direction.incoming,
    Message.channel_message_id == sa.bindparam("channel_message_id"),
)
_STATE_OF_CHAT = select(Conversation.state, Conversation.data).where(
    Conversation.channel == sa.bindparam("channel"), Conversation.chat_id == sa.bindparam("chat_id")
)
_CONVERSATION_OF_CHAT = select(Conversation).where(
    Conversation.channel == sa.bindparam("channel"), Conversation.chat_id == sa.bindparam("chat_id")
)
_OFFICIAL_OF_ACCOUNT = select(Official.id).where(
    Official.channel == sa.bindparam("channel"),
    Official.external_user_id == sa.bindparam("external_user_id"),
    col(Official.active),
)
_MESSAGE = Message.__table__  # type: ignore[attr-defined]
_CONVERSATION = Conversation.__table__  # type: ignore[attr-defined]
# Sets the columns named in the parameters, on the message `message_id`.
_UPDATE_MESSAGE = sa.update(_MESSAGE).where(_MESSAGE.c.id == sa.bindparam("message_id"))
_HANDLED_AT = select(Message.handled_at).where(Message.id == sa.bindparam("message_id"))
_SET_CITIZEN = _UPDATE_MESSAGE.where(_MESSAGE.c.citizen_id.is_(None))
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_INSERT_OUTBOX = sa.insert(_OUTBOX).returning(_OUTBOX.c.id)
_PAUSE = ChannelPause.__table__  # type: ignore[attr-defined]


@cache
def _insert_incoming(dialect: str) -> Any:
    return (
        _dialect_insert(dialect, _MESSAGE)
        .on_conflict_do_nothing(
            index_elements=["channel", "chat_id", "direction", "channel_message_id"]
        )
        .returning(_MESSAGE.c.id)
    )


@cache
def _claim_chat(dialect: str) -> Any:
    """Claim a chat for one turn: its row created (idle), its lapsed claim taken over, or
    its claim renewed by the turn that holds it (which starts the turn of an older message
    of the chat in it); nothing is returned while another turn's claim holds (`start_turn`)."""
    insert = _dialect_insert(dialect, _CONVERSATION)
    lapsed = sa.or_(
        _CONVERSATION.c.claim_until.is_(None),
        _CONVERSATION.c.claim_until < sa.bindparam("now", type_=_CONVERSATION.c.claim_until.type),
        _CONVERSATION.c.claim_token == insert.excluded.claim_token,
    )
    return insert.on_conflict_do_update(
        index_elements=["channel", "chat_id"],
        set_={
            "claim_token": insert.excluded.claim_token,
            "claim_until": insert.excluded.claim_until,
        },
        where=lapsed,
    ).returning(_CONVERSATION.c.state, _CONVERSATION.c.data)


# The chat's oldest message stored and not handled (the partial index ix_message_chat_unhandled).
_FIRST_UNHANDLED = (
    sa.select(
        _MESSAGE.c.id,
        _MESSAGE.c.user_id,
        _MESSAGE.c.channel_message_id,
        _MESSAGE.c.text,
        _MESSAGE.c.payload,
    )
    .where(
        _MESSAGE.c.channel == sa.bindparam("channel"),
        _MESSAGE.c.chat_id == sa.bindparam("chat_id"),
        _MESSAGE.c.direction == Direction.incoming,
        _MESSAGE.c.handled_at.is_(None),
    )
    .order_by(_MESSAGE.c.id)
    .limit(1)
)
# A claimed chat, changed by its claim's holder only.
_CLAIMED_CHAT = sa.update(_CONVERSATION).where(
    _CONVERSATION.c.channel == sa.bindparam("b_channel"),
    _CONVERSATION.c.chat_id == sa.bindparam("b_chat_id"),
    _CONVERSATION.c.claim_token == sa.bindparam("token"),
)
_RENEW_CLAIM = _CLAIMED_CHAT.values(
    claim_until=sa.bindparam("b_until", type_=_CONVERSATION.c.claim_until.type)
)
# The end of a claimed turn: the claim given back (and the state written).
_RELEASE_CLAIM = _CLAIMED_CHAT.values(claim_token=None, claim_until=None)
_SAVE_CLAIMED = _RELEASE_CLAIM.values(
    state=sa.bindparam("b_state"),
    data=sa.bindparam("b_data", type_=_CONVERSATION.c.data.type),
    citizen_id=sa.func.coalesce(
        sa.bindparam("b_citizen_id", type_=sa.Integer), _CONVERSATION.c.citizen_id
    ),
    updated_at=sa.bindparam("b_now", type_=_CONVERSATION.c.updated_at.type),
)


@cache
def _upsert_conversation(dialect: str) -> Any:
    insert = _dialect_insert(dialect, _CONVERSATION)
    return insert.on_conflict_do_update(
        index_elements=["channel", "chat_id"],
        set_={
            "state": insert.excluded.state,
            "data": insert.excluded.data,
            "updated_at": insert.excluded.updated_at,
            "citizen_id": sa.func.coalesce(insert.excluded.citizen_id, _CONVERSATION.c.citizen_id),
        },
    ).returning(_CONVERSATION.c.id)


# --- Citizens ---------------------------------------------------------------------------


def _citizen_id(
    session: Session, channel: Channel, external_user_id: str, display_name: str | None
) -> int:
    """The id of the citizen behind an account, created in the caller's write transaction on
    first contact."""
    account = {"channel": channel, "external_user_id": external_user_id}
    found: int | None = _core(session, _CITIZEN_ID_OF_ACCOUNT, account).scalar()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            citizen = Citizen(display_name=display_name)
            session.add(citizen)
            session.flush()
            assert citizen.id is not None
            identity = ChannelIdentity(
                citizen_id=citizen.id,
                channel=channel,
                external_user_id=external_user_id,
                display_name=display_name,
            )
            session.add(identity)
            session.flush()
            return citizen.id
    except IntegrityError:  # another request created this account just now (PostgreSQL)
        created: int = _core(session, _CITIZEN_ID_OF_ACCOUNT, account).scalar_one()
        return created


# --- Messages -------------------------------------------------------------------------------


def store_incoming(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    channel_message_id: str,
    text: str,
    payload: dict[str, Any],
    user_id: str | None = None,
    citizen_id: int | None = None,
    conversation_id: int | None = None,
) -> tuple[Message, bool]:
    """Store an incoming message before anything else is done with it.

    Returns the stored row and True, or, when the channel delivered this message before,
    the row stored then and False (the caller must not handle it again).
    """
    begin_write(session)
    values = _incoming_values(
        channel=channel, chat_id=chat_id, channel_message_id=channel_message_id, text=text,
        payload=payload, user_id=user_id, citizen_id=citizen_id, conversation_id=conversation_id,
    )  # fmt: skip
    message_id, new = _insert_incoming_row(session, values)
    session.commit()
    if new:
        # The row as inserted, in the session as if loaded: no SELECT to read it back.
        message = Message(id=message_id, **values)
        make_transient_to_detached(message)
        session.add(message)
        return message, True
    return session.get_one(Message, message_id), False


def _incoming_values(**values: Any) -> dict[str, Any]:
    """The columns of an incoming message."""
    return {**values, "direction": Direction.incoming, "created_at": utcnow()}


def _insert_incoming_row(session: Session, values: dict[str, Any]) -> tuple[int, bool]:
    """Insert an incoming message in the caller's write transaction: its id and True, or the
    id of the same channel message stored before and False."""
    inserted = _core(session, _insert_incoming(_dialect(session)), values)
    new_id: int | None = inserted.scalar_one_or_none()
    if new_id is not None:
        return new_id, True
    keys = ("channel", "chat_id", "channel_message_id")
    existing: int = _core(session, _EXISTING_INCOMING, {k: values[k] for k in keys}).scalar_one()
    return existing, False


def store_outgoing(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    text: str,
    payload: dict[str, Any] | None = None,
    channel_message_id: str | None = None,
    citizen_id: int | None = None,
    conversation_id: int | None = None,
) -> Message:
    """Record a message sent (or about to be sent) to a citizen."""
    begin_write(session)
    message = Message(
        direction=Direction.outgoing,
        channel=channel,
        chat_id=chat_id,
        text=text,
        payload=payload or {},
        channel_message_id=channel_message_id,
        citizen_id=citizen_id,
        conversation_id=conversation_id,
    )
    session.add(message)
    session.commit()
    session.refresh(message)
    return message


def flag_message(*, session: Session, message_id: int, **flags: Any) -> None:
    """Add flags to a stored message's payload (e.g. `human_request=True`)."""
    begin_write(session)
    message = session.get_one(Message, message_id)
    message.payload = {**message.payload, **flags}
    session.add(message)
    session.commit()


def store_inbox(*, session: Session, messages: Sequence[dict[str, Any]]) -> list[tuple[int, bool]]:
    """The inbox: store incoming messages as a channel receives them, before it acknowledges
    them (one transaction for a batch). Each dict has the columns of `store_incoming`
    (channel, chat_id, channel_message_id, text, payload, user_id), and for a button press
    `keyboard`, the channel id of our message it was pressed on; returns each one's id and
    whether it is new (a redelivery finds the row stored before, handled or not; a second
    press of a keyboard is stored handled, flagged `second_press`, and is not new)."""
    if not messages:
        return []
    begin_write(session)
    stored = []
    for m in messages:
        values = {"citizen_id": None, "conversation_id": None, **m}
        keyboard = values.pop("keyboard", None)
        row_id, new = _insert_incoming_row(session, _incoming_values(**values))
        if new and keyboard is not None and not _first_press(session, values, keyboard):
            # A second press of a keyboard (from any process): stored, needs nothing.
            flagged = {**values["payload"], "second_press": True}
            handled = {"message_id": row_id, "handled_at": utcnow(), "payload": flagged}
            _core(session, _UPDATE_MESSAGE, handled)
            new = False
        stored.append((row_id, new))
    session.commit()
    return stored


_PRESS = (
    sa.update(_MESSAGE)
    .where(
        _MESSAGE.c.channel == sa.bindparam("b_channel"),
        _MESSAGE.c.chat_id == sa.bindparam("b_chat_id"),
        _MESSAGE.c.direction == Direction.outgoing,
        _MESSAGE.c.channel_message_id == sa.bindparam("keyboard"),
        sa.or_(_MESSAGE.c.pressed_by.is_(None), _MESSAGE.c.pressed_by == sa.bindparam("press")),
    )
    .values(pressed_by=sa.bindparam("press"))
)
_PRESSED_BY = select(Message.pressed_by).where(
    Message.channel == sa.bindparam("channel"),
    Message.chat_id == sa.bindparam("chat_id"),
    Message.direction == Direction.outgoing,
    Message.channel_message_id == sa.bindparam("keyboard"),
)


def _first_press(session: Session, message: dict[str, Any], keyboard: str) -> bool:
    """Whether an incoming button press is the first of the keyboard on our message
    `keyboard` (the chat's outgoing message with that channel id; one we did not record, e.g.
    sent before records were kept, counts as first). Redelivering the same press counts as
    first too."""
    chat = {"b_channel": message["channel"], "b_chat_id": message["chat_id"]}
    press = {**chat, "keyboard": keyboard, "press": message["channel_message_id"]}
    if _core(session, _PRESS, press).rowcount:
        return True
    where = {"channel": message["channel"], "chat_id": message["chat_id"], "keyboard": keyboard}
    return _core(session, _PRESSED_BY, where).first() is None


# How long a turn holds its chat (`start_turn` with a claim); a process that dies mid-turn
# holds it this long. A running turn renews it every third of it (`renew_claim`, from
# bot/conversation/engine.py); one whose renewals stop (its process stalled) loses the chat
# once it lapses (`ClaimLost`: rolled back, started again).
CHAT_CLAIM = timedelta(seconds=30)


@dataclass(frozen=True)
class StoredIncoming:
    """An incoming message as stored (what a turn needs to handle it)."""

    id: int
    user_id: str | None
    channel_message_id: str | None
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class TurnStart:
    """What a turn starts from (`start_turn`)."""

    citizen_id: int | None  # None for a turn on the officials' desk
    message_id: int
    new: bool  # False: this message was handled before (a redelivery); not handled again
    state: str | None  # the chat's dialogue state; None before its first turn
    data: dict[str, Any]
    # With a claim: False while another turn holds the chat (start again a little later).
    claimed: bool = True
    # With a claim: an older message of the chat stored and not handled, to handle first.
    earlier: StoredIncoming | None = None


# A claim names its process (`claim_token`): a process starting on the same machine gives
# back the chats of processes there that died (`release_dead_claims`) instead of waiting for
# their claims to lapse. The machine by a hash of its name: the column holds 36 characters.
_MACHINE = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def new_claim_token() -> str:
    """A turn's claim token: this machine, this process, and a random part."""
    return f"{_MACHINE}:{os.getpid()}:{secrets.token_hex(6)}"


def release_dead_claims(*, session: Session) -> int:
    """Give back the chats claimed by processes of this machine that no longer run (killed
    mid-turn): their next turn need not wait `CHAT_CLAIM`. Returns how many."""
    held = session.exec(
        select(Conversation.claim_token).where(
            col(Conversation.claim_token).startswith(f"{_MACHINE}:")
        )
    ).all()
    dead = [token for token in held if token is not None and not _running(token)]
    if not dead:
        return 0
    begin_write(session)
    session.exec(
        sa.update(Conversation)
        .where(col(Conversation.claim_token).in_(dead))
        .values(claim_token=None, claim_until=None)
    )
    session.commit()
    return len(dead)


def _running(token: str) -> bool:
    """Whether the process named by a claim token of this machine runs."""
    pid = token.split(":")[1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


class ClaimLost(Exception):
    """A turn ended after its chat's claim lapsed and another turn took the chat: its
    effects are rolled back (the message stays unhandled, for the chat's next turn)."""


def start_turn(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    user_id: str,
    display_name: str | None,
    channel_message_id: str,
    text: str,
    payload: dict[str, Any],
    claim: str | None = None,
    now: datetime | None = None,
    citizen: bool = True,
) -> TurnStart:
    """Store an incoming message before anything else is done with it (unless the channel's
    inbox stored it already), with the citizen (created on first contact; none for a turn of
    the officials' desk: `citizen` False), and read the chat's dialogue state: one
    transaction. A message stored and not handled yet (taken in by the channel, or left by a
    crash) is new: it is handled now.

    With `claim` (a token unique to this turn), a new message's turn also claims the chat
    for `CHAT_CLAIM`, cluster-wide, from reading the state to `finish_turn` writing it: one
    turn per chat at a time, whichever process runs it. When another turn holds the chat,
    `claimed` is False (nothing is read; start again later); when an older message of the
    chat waits unhandled, it is `earlier`, to be handled first (in order per chat)."""
    begin_write(session)
    now = now or utcnow()
    citizen_id = _citizen_id(session, channel, user_id, display_name) if citizen else None
    values = _incoming_values(
        channel=channel, chat_id=chat_id, channel_message_id=channel_message_id, text=text,
        payload=payload, user_id=user_id, citizen_id=citizen_id, conversation_id=None,
    )  # fmt: skip
    message_id, new = _insert_incoming_row(session, values)
    if not new:
        new = _core(session, _HANDLED_AT, {"message_id": message_id}).scalar() is None
        if new and citizen_id is not None:  # stored by the inbox, before the citizen was known
            _core(session, _SET_CITIZEN, {"message_id": message_id, "citizen_id": citizen_id})
    chat = {"channel": channel, "chat_id": chat_id}
    if claim is None or not new:
        saved = _core(session, _STATE_OF_CHAT, chat).first()
        session.commit()
        state, data = saved if saved is not None else (None, {})
        return TurnStart(citizen_id, message_id, new, state, dict(data))
    row: dict[str, Any] = {
        **chat,
        "state": "idle",
        "data": {},
        "citizen_id": citizen_id,
        "created_at": now,
        "updated_at": now,
        "claim_token": claim,
        "claim_until": now + CHAT_CLAIM,
        "now": now,
    }
    saved = _core(session, _claim_chat(_dialect(session)), row).first()
    if saved is None:  # another turn holds the chat
        session.commit()
        return TurnStart(citizen_id, message_id, new, None, {}, claimed=False)
    first = _core(session, _FIRST_UNHANDLED, chat).first()
    session.commit()
    earlier = None
    if first is not None and first.id != message_id:
        earlier = StoredIncoming(
            first.id, first.user_id, first.channel_message_id, first.text, dict(first.payload)
        )
    return TurnStart(citizen_id, message_id, new, saved.state, dict(saved.data), True, earlier)


def finish_turn(
    *,
    session: Session,
    message_id: int,
    nlu: dict[str, Any] | None,
    channel: Channel,
    chat_id: str,
    state: str | None,
    data: dict[str, Any],
    citizen_id: int | None,
    replies: Sequence[dict[str, Any]],
    claim: str | None = None,
    send_now: timedelta | None = None,
) -> QueuedReplies:
    """The end of a citizen's turn, in one transaction: what the NLU understood of the message
    (if it was asked), the chat's dialogue state, the replies queued in the outbox (payloads
    of `reply_to_payload`, sent in order) and the message marked handled. Returns the ids of
    the queued replies. `state` None leaves the chat's dialogue state as it is. With the
    turn's `claim`, the chat is given back; raises `ClaimLost` (nothing written) when the
    claim lapsed and another turn took the chat. With `send_now` (the outbox's lease), the
    caller sends the replies at once: they are queued claimed for that long, unless an
    earlier message to the chat waits or the channel is paused (then any sender sends them,
    in order: `claimed_until` is None)."""
    begin_write(session)
    now = utcnow()
    values: dict[str, Any] = {"message_id": message_id, "handled_at": now}
    if nlu is not None:
        values["nlu"] = nlu
    _core(session, _UPDATE_MESSAGE, values)
    if claim is not None:
        chat = {"b_channel": channel, "b_chat_id": chat_id, "token": claim}
        if state is None:
            saved = _core(session, _RELEASE_CLAIM, chat)
        else:
            saved = _core(
                session,
                _SAVE_CLAIMED,
                {
                    **chat,
                    "b_state": state,
                    "b_data": data,
                    "b_citizen_id": citizen_id,
                    "b_now": now,
                },
            )
        if saved.rowcount != 1:
            session.rollback()
            raise ClaimLost(f"{channel} chat {chat_id}: the turn's claim was taken over")
    elif state is not None:
        _upsert_conversation_row(session, channel, chat_id, state, data, citizen_id)
    claimed_until = None
    if send_now is not None and replies:
        recipient = {"channel": channel, "chat_id": chat_id, "now": now}
        if not _core(session, _REPLIES_WAIT, recipient).scalar():
            claimed_until = now + send_now
    queued = queue_replies(
        session=session,
        channel=channel,
        chat_id=chat_id,
        reply_to=message_id,
        replies=replies,
        claimed_until=claimed_until,
    )
    session.commit()
    return queued


def renew_claim(*, session: Session, channel: Channel, chat_id: str, claim: str) -> bool:
    """Hold a chat `CHAT_CLAIM` longer for the turn whose `claim` holds it (a long turn's
    heartbeat); False when the claim lapsed and another turn took the chat."""
    begin_write(session)
    chat = {"b_channel": channel, "b_chat_id": chat_id, "token": claim}
    renewed = _core(session, _RENEW_CLAIM, {**chat, "b_until": utcnow() + CHAT_CLAIM}).rowcount
    session.commit()
    return bool(renewed == 1)


def release_chat(*, session: Session, channel: Channel, chat_id: str, claim: str) -> None:
    """Give a chat's claim back without writing its state (a turn stopped mid-way)."""
    begin_write(session)
    _core(session, _RELEASE_CLAIM, {"b_channel": channel, "b_chat_id": chat_id, "token": claim})
    session.commit()


def queue_replies(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    reply_to: int,
    replies: Sequence[dict[str, Any]],
    claimed_until: datetime | None = None,
) -> QueuedReplies:
    """Queue the replies to an incoming message, in order, in the caller's write transaction
    (committed with it, a running outbox worker is woken). With `claimed_until`, they are
    queued claimed (one attempt, leased until then) by the caller, who sends them now: no
    worker is woken."""
    now = utcnow()
    ids = QueuedReplies(queued_at=now, claimed_until=claimed_until)
    attempts, due = (0, now) if claimed_until is None else (1, claimed_until)
    for payload in replies:
        row = dict(channel=channel, recipient=chat_id, payload=payload, reply_to_id=reply_to)
        row.update(status=OutboxStatus.pending, attempts=attempts, next_attempt_at=due)
        ids.append(_core(session, _INSERT_OUTBOX, {**row, "created_at": now}).scalar_one())
    if ids and claimed_until is None:
        session.info[OUTBOX_QUEUED] = True
    return ids


class QueuedReplies(list[int]):
    """The outbox ids of a turn's replies, when they were queued, and until when the turn
    holds them (None: queued for any sender)."""

    def __init__(self, *, queued_at: datetime, claimed_until: datetime | None) -> None:
        super().__init__()
        self.queued_at = queued_at
        self.claimed_until = claimed_until


# Whether a reply to a chat would wait: an earlier message to it unsent, or its channel
# paused (see `claim_outbox`).
_REPLIES_WAIT = sa.select(
    sa.exists().where(
        _OUTBOX.c.channel == sa.bindparam("channel"),
        _OUTBOX.c.recipient == sa.bindparam("chat_id"),
        _OUTBOX.c.status == OutboxStatus.pending,
    )
    | sa.exists().where(
        _PAUSE.c.channel == sa.bindparam("channel"),
        _PAUSE.c.until > sa.bindparam("now", type_=_PAUSE.c.until.type),
    )
)


def mark_handled(*, session: Session, message_id: int) -> None:
    """An incoming message needs nothing more (e.g. a second press of the same button)."""
    begin_write(session)
    _core(session, _UPDATE_MESSAGE, {"message_id": message_id, "handled_at": utcnow()})
    session.commit()


def unhandled_incoming(
    *, session: Session, before: datetime, limit: int = 100
) -> Sequence[Message]:
    """Incoming messages stored before `before` and not handled, oldest first: what a crash
    left in the inbox."""
    return session.exec(
        select(Message)
        .where(
            Message.direction == Direction.incoming,
            col(Message.handled_at).is_(None),
            Message.created_at < before,
        )
        .order_by(col(Message.id))
        .limit(limit)
    ).all()


def replies_to(*, session: Session, message_id: int) -> list[dict[str, Any]]:
    """The payloads of the replies queued for an incoming message, in order."""
    rows = session.exec(
        select(OutboxMessage.payload)
        .where(OutboxMessage.reply_to_id == message_id)
        .order_by(col(OutboxMessage.id))
    ).all()
    return [dict(payload) for payload in rows]


def incoming_id(
    *, session: Session, channel: Channel, chat_id: str, channel_message_id: str
) -> int | None:
    """The id of a stored incoming message, by the channel's id."""
    keys = {"channel": channel, "chat_id": chat_id, "channel_message_id": channel_message_id}
    found: int | None = _core(session, _EXISTING_INCOMING, keys).scalar()
    return found


def offered_buttons(
    *, session: Session, channel: Channel, chat_id: str, answer: str
) -> list[dict[str, str]]:
    """The buttons ({label, data}) of the latest message sent to a chat with buttons after
    the chat's incoming message before `answer` (an incoming message's channel id, stored):
    what `answer` may pick by number or label. None when another message of the chat came
    in between (each message consumes the choices), or `answer` is not stored."""
    answer_id = incoming_id(
        session=session, channel=channel, chat_id=chat_id, channel_message_id=answer
    )
    if answer_id is None:
        return []
    chat = (Message.channel == channel) & (Message.chat_id == chat_id)
    before = select(sa.func.max(Message.id)).where(
        chat, Message.direction == Direction.incoming, col(Message.id) < answer_id
    )
    previous = session.exec(before).one() or 0
    sent = session.exec(
        select(Message.payload)
        .where(
            chat,
            Message.direction == Direction.outgoing,
            col(Message.id) > previous,
            col(Message.id) < answer_id,
        )
        .order_by(col(Message.id).desc())
        .limit(20)
    ).all()
    for payload in sent:
        buttons = payload.get("buttons")
        if buttons:
            return [{"label": b["label"], "data": b["data"]} for b in buttons]
    return []


def messages_of_chat(
    *, session: Session, channel: Channel, chat_id: str, limit: int = 50
) -> Sequence[Message]:
    """The latest messages of a chat, oldest first."""
    latest = session.exec(
        select(Message)
        .where(Message.channel == channel, Message.chat_id == chat_id)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc())
        .limit(limit)
    ).all()
    return list(reversed(latest))


# --- Conversations --------------------------------------------------------------------------


def get_conversation(*, session: Session, channel: Channel, chat_id: str) -> Conversation | None:
    """The saved dialogue state of a chat, if any."""
    return session.exec(
        _CONVERSATION_OF_CHAT, params={"channel": channel, "chat_id": chat_id}
    ).first()


def save_conversation(
    *,
    session: Session,
    channel: Channel,
    chat_id: str,
    state: str,
    data: dict[str, Any],
    citizen_id: int | None = None,
) -> int:
    """Create or replace the dialogue state of a chat (one row per chat, race-safe); returns
    the row's id."""
    begin_write(session)
    conversation_id = _upsert_conversation_row(session, channel, chat_id, state, data, citizen_id)
    session.commit()
    return conversation_id


def _upsert_conversation_row(
    session: Session,
    channel: Channel,
    chat_id: str,
    state: str,
    data: dict[str, Any],
    citizen_id: int | None,
) -> int:
    now = utcnow()
    values = {
        "channel": channel,
        "chat_id": chat_id,
        "state": state,
        "data": data,
        "citizen_id": citizen_id,
        "created_at": now,
        "updated_at": now,
    }
    conversation_id: int = _core(
        session, _upsert_conversation(_dialect(session)), values
    ).scalar_one()
    return conversation_id


# --- Tickets --------------------------------------------------------------------------------

# Separators may stand between the parts only: "PA-26-000123" is no code, not year 2600.
TICKET_CODE = re.compile(r"^PA[\s\-_./–—]*(\d{4})[\s\-_./–—]*(\d{1,7})$", re.IGNORECASE)


def format_ticket_code(year: int, number: int) -> str:
    """`PA-YYYY-NNNNNN`."""
    return f"PA-{year:04d}-{number:06d}"


def normalize_ticket_code(text: str) -> str | None:
    """The canonical code for what a citizen typed: any case, dashes or not.

    "pa2026000123", "PA 2026 123" and "pa-2026-000123" all give "PA-2026-000123";
    anything else gives None.
    """
    match = TICKET_CODE.match(text.strip())
    if match is None:
        return None
    return format_ticket_code(int(match[1]), int(match[2]))


def next_ticket_code(*, session: Session, year: int) -> str:
    """Take the next number of `year`, atomically, in the caller's transaction.

    An upsert on the year's counter row: concurrent callers queue on that row (PostgreSQL)
    or on the write lock (SQLite), so no two get the same number, and a rolled-back ticket
    gives its number back. The caller commits (`create_ticket` does).
    """
    insert = _insert(session, TicketCounter).values(year=year, last_value=1)
    table = TicketCounter.__table__  # type: ignore[attr-defined]
    statement = insert.on_conflict_do_update(
        index_elements=["year"], set_={"last_value": table.c.last_value + 1}
    ).returning(table.c.last_value)
    number: int = session.exec(statement).scalar_one()
    return format_ticket_code(year, number)


def create_ticket(
    *,
    session: Session,
    ticket_in: TicketCreate,
    timezone: str,
    actor: str = "citizen",
    now: datetime | None = None,
    commit: bool = True,
) -> Ticket:
    """File a ticket: a new code in the year of filing in `timezone` (the city's), and a
    `created` event.

    `commit=False` joins the caller's write transaction (see `enqueue_outbox`)."""
    if commit:
        begin_write(session)
    filed_at = now or utcnow()
    year = filed_at.astimezone(ZoneInfo(timezone)).year
    code = next_ticket_code(session=session, year=year)
    ticket = Ticket.model_validate(
        ticket_in, update={"code": code, "created_at": filed_at, "updated_at": filed_at}
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    session.add(
        TicketEvent(
            ticket_id=ticket.id,
            kind=TicketEventKind.created,
            actor=actor,
            new_value={
                "status": ticket.status.value,
                "code": code,
                "lead_unit_id": ticket.lead_unit_id,
            },
            at=filed_at,
        )
    )
    if commit:
        session.commit()
        session.refresh(ticket)
    else:
        session.flush()
    return ticket


def ticket_filed_from(*, session: Session, message_id: int) -> Ticket | None:
    """The ticket the turn of incoming message `message_id` filed, if any."""
    return session.exec(select(Ticket).where(Ticket.source_message_id == message_id)).first()


def get_ticket_by_code(*, session: Session, code: str) -> Ticket | None:
    """The ticket a citizen names, however they typed the code."""
    normalized = normalize_ticket_code(code)
    if normalized is None:
        return None
    return session.exec(select(Ticket).where(Ticket.code == normalized)).first()


def tickets_of_citizen(
    *,
    session: Session,
    citizen_id: int,
    statuses: Sequence[TicketStatus] | None = None,
    limit: int = 20,
) -> Sequence[Ticket]:
    """A citizen's tickets, newest first."""
    statement = select(Ticket).where(Ticket.citizen_id == citizen_id)
    if statuses:
        statement = statement.where(col(Ticket.status).in_(list(statuses)))
    statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return session.exec(statement.limit(limit)).all()


def count_filed_since(
    *,
    session: Session,
    kind: Literal["tickets", "person_requests"],
    since: datetime,
    citizen_id: int | None,
    channel: Channel | None = None,
    chat_id: str | None = None,
) -> int:
    """Tickets filed or people asked for since `since` by a citizen (or, without one, from a
    chat; 0 when neither is known)."""
    table: type[Ticket] | type[HumanRequest] = Ticket if kind == "tickets" else HumanRequest
    if citizen_id is not None:
        who = col(table.citizen_id) == citizen_id
    elif channel is not None and chat_id is not None:
        who = (col(table.channel) == channel) & (col(table.chat_id) == chat_id)
    else:
        return 0
    statement = (
        select(sa.func.count()).select_from(table).where(who, col(table.created_at) >= since)
    )
    return session.exec(statement).one()


def add_ticket_event(
    *, session: Session, ticket: Ticket, event_in: TicketEventCreate, at: datetime | None = None
) -> TicketEvent:
    """Append one event to a ticket's audit trail."""
    begin_write(session)
    assert ticket.id is not None
    event = TicketEvent.model_validate(
        event_in, update={"ticket_id": ticket.id, "at": at or utcnow()}
    )
    session.add(event)
    ticket.updated_at = event.at
    session.add(ticket)
    session.commit()
    session.refresh(event)
    return event


def ticket_events(*, session: Session, ticket_id: int) -> Sequence[TicketEvent]:
    """A ticket's audit trail in the order it happened."""
    return session.exec(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket_id)
        .order_by(col(TicketEvent.at), col(TicketEvent.id))
    ).all()


_EVENT_KIND_OF_FIELD = {
    "status": TicketEventKind.status,
    "lead_unit_id": TicketEventKind.unit,
    "accept_by": TicketEventKind.deadline,
    "resolve_by": TicketEventKind.deadline,
    "rating": TicketEventKind.rating,
    "accept_escalation": TicketEventKind.escalation,
    "resolve_escalation": TicketEventKind.escalation,
    "reopen_count": TicketEventKind.reopened,
}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def update_ticket(
    *,
    session: Session,
    db_ticket: Ticket,
    ticket_in: TicketUpdate,
    actor: str,
    note: str | None = None,
    at: datetime | None = None,
    commit: bool = True,
) -> Ticket:
    """Change a ticket and record each kind of change (status, unit, deadline, rating,
    content) as one event with the old and new values. A rejection needs a reason.

    The ticket's row is locked and read afresh first, so two concurrent changes are applied
    one after the other and each event's old values are the ones it replaced.
    `commit=False` joins the caller's write transaction (see `enqueue_outbox`).
    """
    if commit:
        begin_write(session)
    session.refresh(db_ticket, with_for_update=True)
    changes = ticket_in.model_dump(exclude_unset=True)
    if changes.get("status") == TicketStatus.rejected and not (note and note.strip()):
        raise ValueError("Rejecting a ticket needs a reason (note).")
    when = at or utcnow()
    grouped: dict[TicketEventKind, tuple[dict[str, Any], dict[str, Any]]] = {}
    for field, new in changes.items():
        old = getattr(db_ticket, field)
        if old == new:
            continue
        kind = _EVENT_KIND_OF_FIELD.get(field, TicketEventKind.content)
        olds, news = grouped.setdefault(kind, ({}, {}))
        olds[field] = _json_value(old)
        news[field] = _json_value(new)
    if not grouped:
        return db_ticket
    changed = {field for _olds, news in grouped.values() for field in news}
    db_ticket.sqlmodel_update({field: changes[field] for field in changed})
    db_ticket.updated_at = when
    session.add(db_ticket)
    assert db_ticket.id is not None
    for kind, (olds, news) in grouped.items():
        session.add(
            TicketEvent(
                ticket_id=db_ticket.id,
                kind=kind,
                actor=actor,
                note=note,
                old_value=olds,
                new_value=news,
                at=when,
            )
        )
    if commit:
        session.commit()
        session.refresh(db_ticket)
    else:
        session.flush()
    return db_ticket


# --- Attachments ----------------------------------------------------------------------------


def add_attachment(*, session: Session, attachment_in: AttachmentCreate) -> Attachment:
    """Record a file (by the channel's file id) on a ticket and/or a message."""
    if attachment_in.ticket_id is None and attachment_in.message_id is None:
        raise ValueError("An attachment belongs to a ticket or a message.")
    begin_write(session)
    attachment = Attachment.model_validate(attachment_in)
    session.add(attachment)
    session.commit()
    session.refresh(attachment)
    return attachment


def attachments_of_ticket(*, session: Session, ticket_id: int) -> Sequence[Attachment]:
    return session.exec(
        select(Attachment).where(Attachment.ticket_id == ticket_id).order_by(col(Attachment.id))
    ).all()


# --- Outbox ---------------------------------------------------------------------------------

# A sender that dies mid-send (kill -9) holds its messages, and those behind them in their
# chats, this long; a send takes at most PTB's 10 s read time-out.
OUTBOX_LEASE = timedelta(seconds=20)
OUTBOX_BACKOFF_BASE = timedelta(seconds=30)
OUTBOX_BACKOFF_MAX = timedelta(hours=1)
OUTBOX_MAX_ATTEMPTS = 8
OUTBOX_CLAIM_LOCK = 0x0C1B0C07  # PostgreSQL advisory lock key: one outbox claim at a time


# Set in `session.info` by a transaction that queued a message: on its commit, running outbox
# workers are woken (bot/outbox/worker.py).
OUTBOX_QUEUED = "civicbot.outbox_queued"


def enqueue_outbox(
    *,
    session: Session,
    message_in: OutboxMessageCreate,
    not_before: datetime | None = None,
    commit: bool = True,
) -> OutboxMessage:
    """Queue a message to send. With a `dedupe_key` already queued, returns that row.

    `commit=False` joins the caller's write transaction (begun with `begin_write`), so that a
    change and the notifications about it are stored together or not at all.
    """
    if commit:
        begin_write(session)
    values = message_in.model_dump()
    now = utcnow()
    values.update(
        status=OutboxStatus.pending, attempts=0, next_attempt_at=not_before or now, created_at=now
    )
    statement = _insert(session, OutboxMessage).values(**values)
    if message_in.dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    new_id = session.exec(statement.returning(col(OutboxMessage.id))).scalar_one_or_none()
    if new_id is not None:
        session.info[OUTBOX_QUEUED] = True
    if commit:
        session.commit()
    if new_id is not None:
        return session.get_one(OutboxMessage, new_id)
    return session.exec(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == message_in.dedupe_key)
    ).one()


def claim_due_outbox(
    *,
    session: Session,
    limit: int = 20,
    lease: timedelta = OUTBOX_LEASE,
    now: datetime | None = None,
    channels: Collection[Channel] | None = None,
    ids: Collection[int] | None = None,
) -> Sequence[OutboxMessage]:
    """`claim_outbox`, the claimed rows read back as models (by id)."""
    claimed = claim_outbox(
        session=session, limit=limit, lease=lease, now=now, channels=channels, ids=ids
    )
    if not claimed:
        return []
    return session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.id).in_([row.id for row in claimed]))
        .order_by(col(OutboxMessage.id))
        .execution_options(populate_existing=True)
    ).all()


def claim_outbox(
    *,
    session: Session,
    limit: int = 20,
    lease: timedelta = OUTBOX_LEASE,
    now: datetime | None = None,
    channels: Collection[Channel] | None = None,
    ids: Collection[int] | None = None,
) -> list[sa.Row[Any]]:
    """Claim up to `limit` due messages for sending, in the order they were queued; returns
    the claimed rows (all columns, after the claim), by id.

    One UPDATE … RETURNING: a claimed row counts an attempt and is not due again until the
    lease is over (on PostgreSQL claims queue on an advisory lock, so none claims a row
    another is claiming; SKIP LOCKED in the subquery let PostgreSQL claim more rows than
    `limit`, its LIMIT evaluated again as rows were locked). Call
    `record_outbox_sent` or `mark_outbox_failed` for each. `channels` limits the claim to
    those channels (the others' rows stay untouched), `ids` to those rows.

    In order per recipient: a message is not claimed while an earlier one to the same chat
    waits (backing off, or claimed by a sender, of any process); claimed together, they come
    in order. Nothing is claimed on a channel paused by `pause_channel`.
    """
    if (channels is not None and not channels) or (ids is not None and not ids):
        return []
    begin_write(session)
    if _dialect(session) == "postgresql":
        # Claims one at a time, cluster-wide (SQLite's write lock does it there): the claim
        # below then reads the rows other senders claimed, so no two senders hold messages of
        # one recipient at once (SKIP LOCKED alone lets a claim skip a row being claimed
        # and take the next one of its recipient). A claim takes a millisecond.
        _core(session, _CLAIM_LOCK, {})
    now = now or utcnow()
    params: dict[str, Any] = {"now": now, "lease_until": now + lease, "limit": limit}
    if channels is not None:
        params["channels"] = [Channel(c).value for c in channels]
    if ids is not None:
        params["ids"] = list(ids)
    statement = _claim_statement(ids is not None, channels is not None)
    claimed = sorted(_core(session, statement, params).all(), key=lambda row: row.id)
    session.commit()
    return claimed


_CLAIM_LOCK = sa.select(sa.func.pg_advisory_xact_lock(OUTBOX_CLAIM_LOCK))


@cache
def _claim_statement(with_ids: bool, with_channels: bool) -> Any:
    """The claim of `claim_outbox`, built once per kind (building it costs more CPU than
    running it on SQLite)."""
    now = sa.bindparam("now", type_=_OUTBOX.c.next_attempt_at.type)
    earlier = _OUTBOX.alias("earlier")
    waiting = earlier.c.next_attempt_at > now  # backing off, or claimed by a sender
    if with_ids:  # … or not among those to claim
        waiting = sa.or_(waiting, earlier.c.id.not_in(sa.bindparam("ids", expanding=True)))
    held = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.channel == _OUTBOX.c.channel,
            earlier.c.recipient == _OUTBOX.c.recipient,
            earlier.c.status == OutboxStatus.pending,
            earlier.c.id < _OUTBOX.c.id,
            waiting,
        )
        .exists()
    )
    paused = (
        sa.select(_PAUSE.c.channel)
        .where(_PAUSE.c.channel == _OUTBOX.c.channel, _PAUSE.c.until > now)
        .exists()
    )
    due = sa.select(_OUTBOX.c.id).where(
        _OUTBOX.c.status == OutboxStatus.pending, _OUTBOX.c.next_attempt_at <= now, ~held, ~paused
    )
    if with_channels:
        due = due.where(_OUTBOX.c.channel.in_(sa.bindparam("channels", expanding=True)))
    if with_ids:
        due = due.where(_OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)))
    due = due.order_by(_OUTBOX.c.id).limit(sa.bindparam("limit", type_=sa.Integer))
    return (
        sa.update(_OUTBOX)
        .where(
            _OUTBOX.c.id.in_(due.scalar_subquery()),
            _OUTBOX.c.status == OutboxStatus.pending,
            _OUTBOX.c.next_attempt_at <= now,
        )
        .values(
            attempts=_OUTBOX.c.attempts + 1,
            next_attempt_at=sa.bindparam("lease_until", type_=_OUTBOX.c.next_attempt_at.type),
        )
        .returning(*_OUTBOX.c)
    )


def pause_channel(*, session: Session, channel: Channel, until: datetime) -> None:
    """Pause sending on `channel` until `until` for every sender of the cluster (flood
    control); an earlier pause that ends later is kept."""
    begin_write(session)
    insert = _insert(session, ChannelPause).values(channel=channel, until=until)
    table = ChannelPause.__table__  # type: ignore[attr-defined]
    later = sa.case(
        (table.c.until > insert.excluded.until, table.c.until), else_=insert.excluded.until
    )
    session.exec(insert.on_conflict_do_update(index_elements=["channel"], set_={"until": later}))
    session.commit()


def channel_pauses(*, session: Session, now: datetime) -> dict[Channel, datetime]:
    """The channels paused at `now`, and until when."""
    rows = session.exec(select(ChannelPause).where(col(ChannelPause.until) > now)).all()
    return {Channel(row.channel): row.until for row in rows}


def outbox_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, … up to 1 h."""
    exponent = max(attempts - 1, 0)
    if exponent >= 20:
        return OUTBOX_BACKOFF_MAX
    return min(OUTBOX_BACKOFF_BASE * (1 << exponent), OUTBOX_BACKOFF_MAX)


def mark_outbox_failed(
    *,
    session: Session,
    message: OutboxMessage,
    error: str,
    now: datetime | None = None,
    max_attempts: int = OUTBOX_MAX_ATTEMPTS,
    permanent: bool = False,
) -> OutboxMessage:
    """Record a failed attempt: due again after the backoff, or `failed` for good when the
    attempts are used up or the error is `permanent` (e.g. the user blocked the bot)."""
    begin_write(session)
    now = now or utcnow()
    message.last_error = error[:2000]
    if permanent or message.attempts >= max_attempts:
        message.status = OutboxStatus.failed
    else:
        message.next_attempt_at = now + outbox_backoff(message.attempts)
    session.add(message)
    session.commit()
    session.refresh(message)
    return message


# --- Units and officials --------------------------------------------------------------------


def officials_of_unit(
    *,
    session: Session,
    unit_id: str,
    roles: Sequence[OfficialRole] | None = None,
    linked_only: bool = True,
) -> Sequence[Official]:
    """A unit's active officials (those linked to a channel account, by default), by id."""
    statement = select(Official).where(Official.unit_id == unit_id, col(Official.active))
    if roles:
        statement = statement.where(col(Official.role).in_(list(roles)))
    if linked_only:
        statement = statement.where(col(Official.chat_id).is_not(None))
    return session.exec(statement.order_by(col(Official.id))).all()


def official_by_account(*, session: Session, channel: Channel, external_user_id: str) -> int | None:
    """The id of the active official linked to this channel account, if any."""
    account = {"channel": channel, "external_user_id": external_user_id}
    found: int | None = _core(session, _OFFICIAL_OF_ACCOUNT, account).scalar()
    return found


# --- Missed deadlines and their escalation (bot/tickets/escalation.py) --------------------

# Tickets still being handled; the rest (resolved, closed, rejected) are done.
OPEN_STATUSES = (TicketStatus.received, TicketStatus.accepted, TicketStatus.need_info)
# While a ticket waits in these states, its accept (resp. resolve) deadline is running.
AWAITING_ACCEPTANCE = (TicketStatus.received,)
# `need_info` is in neither: the clock stops while the citizen is asked (the resolve deadline
# moves on by the working time waited when they answer, bot/tickets/workflow.py).
AWAITING_RESOLUTION = (TicketStatus.received, TicketStatus.accepted)


def overdue_tickets(
    *, session: Session, now: datetime, step_at_least: timedelta
) -> Sequence[Ticket]:
    """Open tickets that may be due for an escalation step, by id.

    Those past a deadline not yet escalated, and those at level 1 whose deadline is at least
    `step_at_least` of clock time ago (working hours never pass faster than the clock, so this
    only narrows the list; the caller decides in working time). Tickets at level 2 are done.
    """

    def stage(
        statuses: Sequence[TicketStatus], deadline: Any, level: Any
    ) -> sa.ColumnElement[bool]:
        return sa.and_(
            col(Ticket.status).in_(list(statuses)),
            deadline <= now,
            level < 2,
            sa.or_(level == 0, deadline <= now - step_at_least),
        )

    statement = select(Ticket).where(
        sa.or_(
            stage(AWAITING_ACCEPTANCE, col(Ticket.accept_by), col(Ticket.accept_escalation)),
            stage(AWAITING_RESOLUTION, col(Ticket.resolve_by), col(Ticket.resolve_escalation)),
        )
    )
    return session.exec(statement.order_by(col(Ticket.id))).all()


def city_intake_units(*, session: Session) -> Sequence[Unit]:
    """The active units marked `intake` (the city's reception desk; a checked directory file
    has one), by id."""
    return session.exec(
        select(Unit).where(col(Unit.intake), col(Unit.active)).order_by(col(Unit.id))
    ).all()


def city_intake_unit(*, session: Session) -> Unit | None:
    """The city's reception desk, if any."""
    return next(iter(city_intake_units(session=session)), None)


def city_leaders(*, session: Session, linked_only: bool = True) -> Sequence[Official]:
    """Active officials with the `leader` role, in any unit, by id."""
    statement = select(Official).where(Official.role == OfficialRole.leader, col(Official.active))
    if linked_only:
        statement = statement.where(col(Official.chat_id).is_not(None))
    return session.exec(statement.order_by(col(Official.id))).all()


# --- Outbox delivery (bot/outbox/worker.py) ------------------------------------------------------


def release_outbox(
    *,
    session: Session,
    message_id: int,
    attempts: int,
    at: datetime,
    error: str | None = None,
) -> bool:
    """Give a claimed message back unsent, due at `at`, its attempt not counted.

    For flood control (the channel said "wait", nothing is wrong with the message) and for a
    sender that stops mid-batch. Only the claim that counted `attempts` is released: False
    when the lease ran out and another sender claimed the message, or it is done.
    """
    begin_write(session)
    values: dict[str, Any] = {"attempts": attempts - 1, "next_attempt_at": at}
    if error is not None:
        values["last_error"] = error[:2000]
    result = session.exec(
        sa.update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            col(OutboxMessage.status) == OutboxStatus.pending,
            col(OutboxMessage.attempts) == attempts,
        )
        .values(**values)
    )
    session.commit()
    return result.rowcount == 1


# An outbox payload key: the text to keep once the message is delivered, in place of one
# that carries a secret (a dashboard sign-in code or link).
OUTBOX_REDACTED_TEXT = "redacted_text"


def record_outbox_sent(
    *,
    session: Session,
    message_id: int,
    text: str,
    payload: dict[str, Any],
    channel_message_id: str | None,
    now: datetime | None = None,
) -> None:
    """Mark an outbox message sent and store it as an outgoing `Message`, in one transaction
    (two statements built once: this runs for every reply).

    The stored message is linked to the recipient's citizen and conversation when the chat
    has them (an official's chat may have neither).
    """
    begin_write(session)
    now = now or utcnow()
    sent = _core(session, _MARK_SENT, {"b_id": message_id, "b_now": now}).one()
    redacted = sent.payload.get(OUTBOX_REDACTED_TEXT)
    if isinstance(redacted, str):  # it carried a secret: kept neither here nor in the log
        text = redacted
        kept = {k: v for k, v in sent.payload.items() if k != OUTBOX_REDACTED_TEXT}
        _core(session, _SET_OUTBOX_PAYLOAD, {"b_id": message_id, "payload": {**kept, "text": text}})
    recipient = {"channel": sent.channel, "chat": sent.recipient}
    values = {
        **{f"{use}_{key}": value for use in "bic" for key, value in recipient.items()},
        "b_text": text,
        "b_payload": payload,
        "b_channel_message_id": channel_message_id,
        "b_now": now,
    }
    _core(session, _INSERT_SENT, values)
    session.commit()


_MARK_SENT = (
    sa.update(_OUTBOX)
    .where(_OUTBOX.c.id == sa.bindparam("b_id"))
    .values(
        status=OutboxStatus.sent,
        sent_at=sa.bindparam("b_now", type_=_OUTBOX.c.sent_at.type),
        last_error=None,
    )
    .returning(_OUTBOX.c.channel, _OUTBOX.c.recipient, _OUTBOX.c.payload)
)
_SET_OUTBOX_PAYLOAD = sa.update(_OUTBOX).where(_OUTBOX.c.id == sa.bindparam("b_id"))
_IDENTITY = ChannelIdentity.__table__  # type: ignore[attr-defined]
# PostgreSQL deduces one type per parameter: each use of the recipient has its own.
_INSERT_SENT = sa.insert(_MESSAGE).values(
    direction=Direction.outgoing,
    channel=sa.bindparam("b_channel", type_=_MESSAGE.c.channel.type),
    chat_id=sa.bindparam("b_chat", type_=_MESSAGE.c.chat_id.type),
    text=sa.bindparam("b_text", type_=_MESSAGE.c.text.type),
    payload=sa.bindparam("b_payload", type_=_MESSAGE.c.payload.type),
    channel_message_id=sa.bindparam("b_channel_message_id", type_=sa.String),
    citizen_id=sa.select(_IDENTITY.c.citizen_id)
    .where(
        _IDENTITY.c.channel == sa.bindparam("i_channel"),
        _IDENTITY.c.external_user_id == sa.bindparam("i_chat"),
    )
    .scalar_subquery(),
    conversation_id=sa.select(_CONVERSATION.c.id)
    .where(
        _CONVERSATION.c.channel == sa.bindparam("c_channel"),
        _CONVERSATION.c.chat_id == sa.bindparam("c_chat"),
    )
    .scalar_subquery(),
    created_at=sa.bindparam("b_now", type_=_MESSAGE.c.created_at.type),
)


def pending_outbox_counts(*, session: Session) -> dict[Channel, int]:
    """How many messages wait to be sent, per channel."""
    rows = session.exec(
        select(OutboxMessage.channel, sa.func.count())
        .where(OutboxMessage.status == OutboxStatus.pending)
        .group_by(col(OutboxMessage.channel))
    ).all()
    return {Channel(channel): int(count) for channel, count in rows}


def outbox_updates_of_chat(
    *, session: Session, channel: Channel, chat_id: str, after: int = 0, limit: int = 100
) -> tuple[Sequence[Message], int]:
    """Outgoing messages of a chat stored after message id `after` that came from the outbox
    and answer no message of the chat (notifications, not the chat's own replies), oldest
    first, and the id to ask after next time.

    The next id is the last one looked at, outbox message or not, so replies are skipped once.
    """
    rows = session.exec(
        select(Message)
        .where(
            Message.channel == channel,
            Message.chat_id == chat_id,
            Message.direction == Direction.outgoing,
            col(Message.id) > after,
        )
        .order_by(col(Message.id))
        .limit(limit)
    ).all()
    last = rows[-1].id if rows else None
    found = [
        m for m in rows if m.payload.get("outbox_id") is not None and "reply_to" not in m.payload
    ]
    return found, last if last is not None else after
