"""Database tables (SQLModel) and the shapes callers fill in.

One family per entity, as in the FastAPI full-stack template: `XBase` holds the shared
fields, `X(table=True)` the row, and `XCreate` / `XUpdate` what a caller supplies where one
is used (no `XPublic`: nothing returns rows as they are; Open311 and the pages shape theirs).
Timestamps are `datetime` fields, which SQLModel stores as `UTCDateTime`: aware values in,
aware UTC values out, on SQLite as on PostgreSQL.

Enumerations are stored as short strings (no native PostgreSQL ENUM type), so that adding a
value later needs no `ALTER TYPE`; Python validates them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# Deterministic constraint names: Alembic's batch mode (SQLite) and later migrations refer to
# constraints by name. Set before any table is defined.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSON documents: JSONB on PostgreSQL, JSON text on SQLite. Python `None` is SQL NULL.
JSONType = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _enum(enum_class: type[StrEnum], length: int = 16) -> sa.Enum:
    """A string column holding the enum's values (not its names); no database ENUM type."""
    return sa.Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Channel(StrEnum):
    """Where a citizen talks to the bot."""

    telegram = "telegram"
    zalo = "zalo"
    web = "web"


class Direction(StrEnum):
    """Whether a message came from the citizen or went to them."""

    incoming = "in"
    outgoing = "out"


class TicketStatus(StrEnum):
    """PRODUCT.md §6."""

    received = "received"
    accepted = "accepted"
    need_info = "need_info"
    resolved = "resolved"
    closed = "closed"
    rejected = "rejected"


OPEN311_CLOSED = frozenset({TicketStatus.resolved, TicketStatus.rejected, TicketStatus.closed})


class TicketEventKind(StrEnum):
    """What a ticket event records. Stored as a plain string: other kinds may be added."""

    created = "created"
    status = "status"
    unit = "unit"
    deadline = "deadline"
    content = "content"
    note = "note"
    rating = "rating"
    attachment = "attachment"
    escalation = "escalation"
    question = "question"
    answer = "answer"
    reopened = "reopened"
    summary = "summary"  # the public summary Open311 publishes
    followed = "followed"  # a citizen follows the ticket instead of filing the same problem
    follower_rating = "follower_rating"  # a follower's rating (the reporter's is `rating`)
    merged = "merged"  # a duplicate merged into another ticket (on both tickets)


class UnitKind(StrEnum):
    """A ward or commune People's Committee, a city body, or a public service company."""

    ward = "ward"
    city = "city"
    company = "company"


class OfficialRole(StrEnum):
    """Handlers act on tickets; supervisors also get escalations; leaders see the whole city."""

    handler = "handler"
    supervisor = "supervisor"
    leader = "leader"


class Severity(StrEnum):
    """How fast a category must be handled (deadlines in working time)."""

    urgent = "urgent"
    normal = "normal"
    complex = "complex"


class OutboxStatus(StrEnum):
    """`pending` until sent; `failed` once the attempts are used up."""

    pending = "pending"
    sent = "sent"
    failed = "failed"


# --- Citizens and their identities on each channel ----------------------------------------


class CitizenBase(SQLModel):
    display_name: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=32)


class Citizen(CitizenBase, table=True):
    __tablename__ = "citizen"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)


class ChannelIdentityBase(SQLModel):
    channel: Channel = Field(sa_type=_enum(Channel))
    external_user_id: str = Field(max_length=128)
    display_name: str | None = Field(default=None, max_length=255)


class ChannelIdentity(ChannelIdentityBase, table=True):
    """One account of a citizen on one channel; an account belongs to one citizen."""

    __tablename__ = "channel_identity"
    __table_args__ = (sa.UniqueConstraint("channel", "external_user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


# --- Conversations: the dialogue state of one chat, persisted across restarts ---------------


class ConversationBase(SQLModel):
    channel: Channel = Field(sa_type=_enum(Channel))
    chat_id: str = Field(max_length=128)
    state: str = Field(default="idle", max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class Conversation(ConversationBase, table=True):
    """One row per chat. `data` holds the form being filled in; replace it, don't mutate it."""

    __tablename__ = "conversation"
    __table_args__ = (sa.UniqueConstraint("channel", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int | None = Field(
        default=None, foreign_key="citizen.id", index=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The turn that holds the chat, cluster-wide, until `claim_until` (queries.start_turn).
    claim_token: str | None = Field(default=None, max_length=36)
    claim_until: datetime | None = None


# --- Messages: every update in and every reply out ---------------------------------------


class MessageBase(SQLModel):
    direction: Direction = Field(sa_type=_enum(Direction, length=8))
    channel: Channel = Field(sa_type=_enum(Channel))
    chat_id: str = Field(max_length=128)
    user_id: str | None = Field(default=None, max_length=128)
    channel_message_id: str | None = Field(default=None, max_length=128)
    text: str = ""
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    nlu: dict[str, Any] | None = Field(default=None, sa_type=JSONType)


class Message(MessageBase, table=True):
    """`(channel, chat_id, direction, channel_message_id)` is unique: a redelivered update is
    found, not stored twice. Outgoing messages may have no channel id (NULLs never clash)."""

    __tablename__ = "message"
    __table_args__ = (
        sa.UniqueConstraint(
            "channel", "chat_id", "direction", "channel_message_id", name="uq_message_channel_id"
        ),
        sa.Index("ix_message_chat_created", "channel", "chat_id", "created_at"),
        # Weekly digests: the week's procedure questions.
        sa.Index("ix_message_created_at", "created_at"),
        # The inbox: incoming messages stored and not handled yet (replayed after a crash).
        sa.Index("ix_message_unhandled", "direction", "handled_at"),
        # … and a chat's, oldest first (a turn handles the older ones of its chat first).
        sa.Index(
            "ix_message_chat_unhandled",
            "channel",
            "chat_id",
            "id",
            sqlite_where=sa.text("handled_at IS NULL AND direction = 'in'"),
            postgresql_where=sa.text("handled_at IS NULL AND direction = 'in'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int | None = Field(
        default=None, foreign_key="citizen.id", index=True, ondelete="SET NULL"
    )
    conversation_id: int | None = Field(
        default=None, foreign_key="conversation.id", index=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow)
    handled_at: datetime | None = None
    # An outgoing message with buttons: the update id of the first press of its keyboard
    # (a second press, from any process, is dropped: queries.first_press).
    pressed_by: str | None = Field(default=None, max_length=128)


# --- Tickets (PRODUCT.md §6) ---------------------------------------------------------------


class TicketBase(SQLModel):
    category: str | None = Field(default=None, max_length=32)
    description: str
    location_text: str | None = None
    ward_code: str | None = Field(default=None, max_length=16)
    ward_name: str | None = Field(default=None, max_length=128)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    anonymous: bool = False


class TicketCreate(TicketBase):
    contact_phone: str | None = Field(default=None, max_length=32)
    citizen_id: int | None = None
    channel: Channel | None = None
    chat_id: str | None = Field(default=None, max_length=128)
    lead_unit_id: str | None = Field(default=None, max_length=64)
    accept_by: datetime | None = None
    resolve_by: datetime | None = None
    severity: Severity | None = None
    unrouted: bool = False


class TicketUpdate(SQLModel):
    """Fields an official (or the workflow) may change; each change becomes an event."""

    status: TicketStatus | None = None
    category: str | None = Field(default=None, max_length=32)
    description: str | None = None
    location_text: str | None = None
    ward_code: str | None = Field(default=None, max_length=16)
    ward_name: str | None = Field(default=None, max_length=128)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    contact_phone: str | None = Field(default=None, max_length=32)
    lead_unit_id: str | None = Field(default=None, max_length=64)
    accept_by: datetime | None = None
    resolve_by: datetime | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    severity: Severity | None = None
    unrouted: bool | None = None
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    accept_escalation: int | None = None
    resolve_escalation: int | None = None
    reopen_count: int | None = None


class Ticket(TicketBase, table=True):
    __tablename__ = "ticket"
    __table_args__ = (
        sa.Index("ix_ticket_citizen_created", "citizen_id", "created_at"),
        sa.Index("ix_ticket_unit_status", "lead_unit_id", "status"),
        # Weekly digests (bot/digest): the week's tickets city-wide and per unit, by filing,
        # acceptance and resolution time (created_at alone has its own index below).
        sa.Index("ix_ticket_unit_created", "lead_unit_id", "created_at"),
        sa.Index("ix_ticket_accepted_at", "accepted_at"),
        sa.Index("ix_ticket_unit_accepted", "lead_unit_id", "accepted_at"),
        sa.Index("ix_ticket_resolved_at", "resolved_at"),
        sa.Index("ix_ticket_unit_resolved", "lead_unit_id", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True)
    status: TicketStatus = Field(
        default=TicketStatus.received, sa_type=_enum(TicketStatus), index=True
    )
    contact_phone: str | None = Field(default=None, max_length=32)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", ondelete="SET NULL")
    channel: Channel | None = Field(default=None, sa_type=_enum(Channel))
    # The chat the ticket was filed from: where the citizen hears of every step.
    chat_id: str | None = Field(default=None, max_length=128)
    lead_unit_id: str | None = Field(default=None, max_length=64)
    accept_by: datetime | None = None
    resolve_by: datetime | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    ward_code: str | None = Field(default=None, max_length=16, index=True)
    severity: Severity | None = Field(default=None, sa_type=_enum(Severity))
    # Set when no routing rule matched and the city intake unit got the ticket.
    unrouted: bool = False
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    # How far each missed deadline has been escalated: 0 not yet, 1 supervisors, 2 parent unit.
    accept_escalation: int = 0
    resolve_escalation: int = 0
    reopen_count: int = 0
    # What Open311 publishes instead of the citizen's text: written or approved by an
    # official (bot/tickets/publish.py); until then a category + ward line.
    public_summary: str | None = None
    # Set when an official merged this ticket, a duplicate, into another (closed then).
    merged_into_id: int | None = Field(default=None, foreign_key="ticket.id", ondelete="SET NULL")
    # The incoming message whose turn filed it: a turn replayed after a crash finds the
    # ticket instead of filing it again (bot/tickets/intake.py file_ticket).
    source_message_id: int | None = Field(
        default=None, foreign_key="message.id", unique=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class TicketCounter(SQLModel, table=True):
    """The last sequence number given out in each year (`PA-YYYY-NNNNNN`)."""

    __tablename__ = "ticket_counter"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_value: int = 0


class TicketEventBase(SQLModel):
    kind: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    note: str | None = None
    old_value: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    new_value: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    # An official marked the note public: Open311 may publish it as `status_notes`.
    public: bool = False


class TicketEventCreate(TicketEventBase):
    pass


class TicketEvent(TicketEventBase, table=True):
    """The audit trail: who changed what, when and why. Never updated, never deleted."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        sa.Index("ix_ticket_event_ticket_at", "ticket_id", "at"),
        # Weekly digests: the week's status changes, ratings and reopenings.
        sa.Index("ix_ticket_event_kind_at", "kind", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow)


class TicketFollower(SQLModel, table=True):
    """A citizen who follows a ticket: they chose to instead of filing the same problem
    (`via` "follow"), or their own duplicate was merged into it ("merged"). They hear of
    every step in their chat and may rate the result (`rating`; the ticket's own rating is
    the reporter's)."""

    __tablename__ = "ticket_follower"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "channel", "chat_id"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True, ondelete="CASCADE")
    citizen_id: int | None = Field(
        default=None, foreign_key="citizen.id", index=True, ondelete="SET NULL"
    )
    channel: Channel = Field(sa_type=_enum(Channel))
    chat_id: str = Field(max_length=128)
    via: str = Field(default="follow", max_length=16)
    rating: int | None = Field(default=None, ge=1, le=5)
    rated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


# --- Attachments: files by the channel's own id, on a ticket or a message ------------------


class AttachmentBase(SQLModel):
    channel: Channel = Field(sa_type=_enum(Channel))
    file_id: str = Field(max_length=512)
    kind: str = Field(default="other", max_length=16)
    mime_type: str | None = Field(default=None, max_length=128)
    size: int | None = Field(default=None, ge=0)
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class AttachmentCreate(AttachmentBase):
    ticket_id: int | None = None
    message_id: int | None = None


class Attachment(AttachmentBase, table=True):
    __tablename__ = "attachment"
    __table_args__ = (
        sa.CheckConstraint("ticket_id IS NOT NULL OR message_id IS NOT NULL", name="owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(
        default=None, foreign_key="ticket.id", index=True, ondelete="CASCADE"
    )
    message_id: int | None = Field(
        default=None, foreign_key="message.id", index=True, ondelete="SET NULL"
    )
    created_at: datetime = Field(default_factory=utcnow)


# --- Outbox: messages waiting to be sent, retried with backoff ------------------------------


class OutboxMessageBase(SQLModel):
    channel: Channel = Field(sa_type=_enum(Channel))
    recipient: str = Field(max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    dedupe_key: str | None = Field(default=None, max_length=255)
    reply_to_id: int | None = None  # the incoming message this replies to (a chat's turn)


class OutboxMessageCreate(OutboxMessageBase):
    pass


class OutboxMessage(OutboxMessageBase, table=True):
    """A message to send. `dedupe_key` (when given) makes enqueueing idempotent.

    A claimed row stays `pending` with `next_attempt_at` pushed forward by a lease, so a
    sender that dies mid-send leaves it due again once the lease is over.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key"),
        sa.Index("ix_outbox_message_due", "status", "next_attempt_at"),
        sa.Index("ix_outbox_message_reply_to", "reply_to_id"),
        # A message waits for the earlier unsent ones of its recipient.
        sa.Index("ix_outbox_message_recipient", "channel", "recipient", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=_enum(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = None
    sent_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ChannelPause(SQLModel, table=True):
    """A channel's flood-control pause (Telegram's 429 ``retry_after``), shared by every
    process that sends: none sends on the channel before `until`."""

    __tablename__ = "channel_pause"

    channel: Channel = Field(sa_type=_enum(Channel), primary_key=True)
    until: datetime


# --- Units, officials and routing (the directory, CIVICBOT_UNITS_FILE) ----------------------


class UnitBase(SQLModel):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    kind: UnitKind = Field(sa_type=_enum(UnitKind))
    parent_id: str | None = Field(default=None, max_length=64)
    # The 2025 ward or commune a ward unit is responsible for.
    ward_code: str | None = Field(default=None, max_length=16, index=True)
    # The unit that gets what no rule routes, and citizens' requests for a person.
    intake: bool = False
    active: bool = True


class Unit(UnitBase, table=True):
    """A responsible unit. `parent_id` is where overdue tickets escalate after supervisors."""

    __tablename__ = "unit"

    updated_at: datetime = Field(default_factory=utcnow)


class RoutingRuleBase(SQLModel):
    """First matching rule by `position` wins. `category`/`ward_code` None match anything.

    The target is `unit_id`, or with `to_ward_unit` the People's Committee of the ticket's
    ward (a rule that needs a ward does not match a ticket without one).
    """

    position: int
    category: str | None = Field(default=None, max_length=32)
    ward_code: str | None = Field(default=None, max_length=16)
    unit_id: str | None = Field(default=None, max_length=64)
    to_ward_unit: bool = False


class RoutingRuleCreate(RoutingRuleBase):
    pass


class RoutingRule(RoutingRuleBase, table=True):
    __tablename__ = "routing_rule"

    id: int | None = Field(default=None, primary_key=True)


class OfficialBase(SQLModel):
    name: str = Field(max_length=255)
    unit_id: str = Field(max_length=64, index=True)
    role: OfficialRole = Field(default=OfficialRole.handler, sa_type=_enum(OfficialRole))
    active: bool = True


class Official(OfficialBase, table=True):
    """An official; linked to one channel account by a one-time invite code.

    Only a hash of the code is kept, with its expiry; linking clears both.
    """

    __tablename__ = "official"
    __table_args__ = (sa.UniqueConstraint("channel", "external_user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: Channel | None = Field(default=None, sa_type=_enum(Channel))
    external_user_id: str | None = Field(default=None, max_length=128)
    chat_id: str | None = Field(default=None, max_length=128)
    invite_code_hash: str | None = Field(default=None, max_length=64, unique=True)
    invite_expires_at: datetime | None = None
    linked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class DirectoryChange(SQLModel, table=True):
    """Every change to units, rules and officials, as FixMyStreet keeps its history."""

    __tablename__ = "directory_change"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=128)
    entity: str = Field(max_length=16)  # unit | rule | official
    entity_id: str = Field(max_length=64)
    change: str = Field(max_length=16)  # added | changed | removed | linked | invited
    old_value: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    new_value: dict[str, Any] | None = Field(default=None, sa_type=JSONType)


class HumanRequestStatus(StrEnum):
    open = "open"
    answered = "answered"


class HumanRequest(SQLModel, table=True):
    """A citizen asked for a person; the unit on duty answers through the bot."""

    __tablename__ = "human_request"

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", ondelete="SET NULL")
    channel: Channel = Field(sa_type=_enum(Channel))
    chat_id: str = Field(max_length=128)
    unit_id: str = Field(max_length=64)
    text: str = ""
    message_id: int | None = Field(default=None, foreign_key="message.id", ondelete="SET NULL")
    status: HumanRequestStatus = Field(
        default=HumanRequestStatus.open, sa_type=_enum(HumanRequestStatus)
    )
    answered_by: int | None = Field(default=None, foreign_key="official.id", ondelete="SET NULL")
    answered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


# --- Dashboard sign-in (bot/web/dashboard/) ---------------------------------------------


class DashboardSignin(SQLModel, table=True):
    """A one-time sign-in to the officials' dashboard: a 6-digit code sent to the official's
    linked chat (`kind` "code", asked for on the sign-in page), a link the official asked
    for in their own chat ("chat") or one printed by `civicbot official signin-link` ("link").

    Only a hash is kept; `used_at` is set when it is used, `attempts` counts wrong codes.
    """

    __tablename__ = "dashboard_signin"

    id: int | None = Field(default=None, primary_key=True)
    official_id: int = Field(foreign_key="official.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=8)
    secret_hash: str = Field(max_length=64, index=True)
    attempts: int = 0
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    # The address a code was asked from (kind "code"): the per-address budget counts it.
    client: str | None = Field(default=None, max_length=64, index=True)


class DashboardSession(SQLModel, table=True):
    """A signed-in dashboard session. The cookie carries a random id; only its SHA-256 is
    kept here. Signing out or removing the official ends it (`ended_at`); a cookie whose
    record is missing, ended or expired signs nobody in."""

    __tablename__ = "dashboard_session"

    id: int | None = Field(default=None, primary_key=True)
    official_id: int = Field(foreign_key="official.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ended_at: datetime | None = None
