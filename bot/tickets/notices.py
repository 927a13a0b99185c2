"""Notifications to officials and citizens, always through the stored outbox.

Each notification has a dedupe key derived from what caused it (a ticket event, an escalation
step), so that doing the same work twice (a retry, a restart) never sends twice. The functions
join the caller's write transaction (`storage.db.begin_write`): a change and the notifications
about it are committed together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from sqlmodel import Session

from bot.channels.web_photos import portable
from bot.config import settings
from bot.conversation.messages import Reply, reply_to_payload
from bot.conversation.texts import say_in
from storage import queries
from storage.followers import followers_of
from storage.models import Channel, Official, OutboxMessageCreate, Ticket

CHANNEL_NAMES = {Channel.telegram: "Telegram", Channel.zalo: "Zalo", Channel.web: "web"}

# What a citizen is told: one reply, or a reply in a chat's language ("vi", "en"), worded
# for each chat it goes to (the reporter and each follower may speak differently).
Notice = Reply | Callable[[str], Reply]


def chat_language(*, session: Session, channel: Channel, chat_id: str) -> str:
    """The language the chat's dialogue speaks (its `lang`, kept by the dialogue's state:
    `bot.conversation.dialogue.form.ChatData`); Vietnamese for a chat without one."""
    conversation = queries.get_conversation(session=session, channel=channel, chat_id=chat_id)
    language = (conversation.data or {}).get("lang") if conversation is not None else None
    return language if isinstance(language, str) else "vi"


def for_channel(reply: Reply, channel: Channel, language: str = "vi") -> Reply:
    """`reply` as `channel` can send it: web chat photos as their content, files another
    channel holds as a line of text."""
    files = tuple(portable(f, settings.upload_dir) for f in reply.files)
    if files != reply.files:
        reply = dataclasses.replace(reply, files=files)
    kept = tuple(f for f in reply.files if f.sendable_on(channel.value))
    if len(kept) == len(reply.files):
        return reply
    elsewhere = sorted({f.channel for f in reply.files if f not in kept and f.channel})
    line = say_in(
        language,
        "utter_files_elsewhere",
        count=len(reply.files) - len(kept),
        channel=", ".join(CHANNEL_NAMES.get(Channel(c), c) for c in elsewhere),
    )
    return dataclasses.replace(reply, text=f"{reply.text}\n\n{line}", files=kept)


def notify_officials(
    *, session: Session, officials: Sequence[Official], reply: Reply, key: str
) -> int:
    """Queue `reply` for each linked official; returns how many were queued."""
    queued = 0
    for official in officials:
        if official.channel is None or official.chat_id is None:
            continue  # not linked yet: nowhere to send
        queries.enqueue_outbox(
            session=session,
            message_in=OutboxMessageCreate(
                channel=official.channel,
                recipient=official.chat_id,
                payload=reply_to_payload(for_channel(reply, official.channel)),
                dedupe_key=f"{key}:official:{official.id}",
            ),
            commit=False,
        )
        queued += 1
    return queued


def notify_chat(
    *, session: Session, channel: Channel, chat_id: str, reply: Notice, key: str
) -> None:
    """Queue `reply` for one chat, in its language when `reply` is worded per language."""
    language = chat_language(session=session, channel=channel, chat_id=chat_id)
    if not isinstance(reply, Reply):
        reply = reply(language)
    queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(
            channel=channel,
            recipient=chat_id,
            payload=reply_to_payload(for_channel(reply, channel, language)),
            dedupe_key=key,
        ),
        commit=False,
    )


def notify_citizen(
    *, session: Session, ticket: Ticket, reply: Notice, key: str, followers: bool = True
) -> bool:
    """Queue `reply` for the chat the ticket came from and, with `followers` (every step of
    the ticket; not a question meant for its reporter), for each citizen who follows it.
    False when the ticket has no chat of its own (Open311)."""
    if followers:
        assert ticket.id is not None
        for follower in followers_of(session=session, ticket_id=ticket.id):
            notify_chat(
                session=session,
                channel=follower.channel,
                chat_id=follower.chat_id,
                reply=reply,
                key=f"{key}:follower:{follower.id}",
            )
    if ticket.channel is None or ticket.chat_id is None:
        return False
    notify_chat(
        session=session, channel=ticket.channel, chat_id=ticket.chat_id, reply=reply,
        key=f"{key}:citizen",
    )  # fmt: skip
    return True
