"""One-time codes that link an official to their Telegram or Zalo account.

`civicbot official invite` creates the official (or finds them) and prints a code such as
`CB-7KQ2-M9XD`; the official sends it to the bot (or opens t.me/<bot>?start=CB7KQ2M9XD).
Only the code's SHA-256 is stored, with an expiry; using it clears both.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from bot.conversation.messages import Reply
from bot.conversation.texts import say
from bot.officials import signin
from bot.tickets.notices import notify_chat
from storage.db import begin_write
from storage.models import Channel, Conversation, DirectoryChange, Official, OfficialRole, Unit

INVITE_VALIDITY = timedelta(days=7)
OFFICIAL_STATES = "official"  # the desk's steps in Conversation.state (bot/officials/desk.py)
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read over the phone
# The whole message, as generated ("CB-7KQ2-M9XD") or as the deep link sends it
# ("/start CB7KQ2M9XD"); letters in either case, since codes are read out. Anything else is
# a citizen's words: a word inside a sentence that looks like a code is never one.
_CODE = re.compile(
    r"CB-([2-9A-HJ-NP-Z]{4})-([2-9A-HJ-NP-Z]{4})|/START CB([2-9A-HJ-NP-Z]{4})([2-9A-HJ-NP-Z]{4})"
)


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def find_invite_code(text: str) -> str | None:
    """The invite code that is the whole message ("CB-7KQ2-M9XD", "/start CB7KQ2M9XD", any
    case, spaces around allowed), else None."""
    match = _CODE.fullmatch(text.strip().upper())
    if match is None:
        return None
    first, second = (group for group in match.groups() if group)
    return f"CB-{first}-{second}"


def invite_official(
    *,
    session: Session,
    unit_id: str,
    name: str,
    role: OfficialRole,
    now: datetime,
    actor: str = "cli",
) -> tuple[Official, str]:
    """A new code for the official `name` of `unit_id` (created if new); the code is shown once."""
    if session.get(Unit, unit_id) is None:
        raise ValueError(f"Unknown unit: {unit_id}")
    code = "CB-" + "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(2))
    begin_write(session)
    official = session.exec(
        select(Official).where(Official.unit_id == unit_id, Official.name == name)
    ).first()
    if official is None:
        official = Official(name=name, unit_id=unit_id, role=role)
    official.role = role
    official.active = True  # inviting a removed official again takes them back
    official.invite_code_hash = _hash(code)
    official.invite_expires_at = now + INVITE_VALIDITY
    session.add(official)
    session.flush()
    session.add(
        DirectoryChange(
            at=now, actor=actor, entity="official", entity_id=str(official.id), change="invited",
            new_value={"name": name, "unit_id": unit_id, "role": role.value},
        )
    )  # fmt: skip
    session.commit()
    session.refresh(official)
    return official, code


def remove_official(*, session: Session, official_id: int, actor: str, now: datetime) -> Official:
    """Deactivate an official: their chat account is unlinked and every dashboard session
    of theirs ends, in one transaction. ValueError when there is no such official."""
    begin_write(session)
    official = session.get(Official, official_id, with_for_update=True)
    if official is None:
        session.rollback()
        raise ValueError(f"No official #{official_id}.")
    channel, chat_id = official.channel, official.chat_id
    _deactivate(session, official, actor=actor, now=now)
    if channel is not None and chat_id is not None:
        _tell_removed(session, official, channel, chat_id, now)
    session.commit()
    session.refresh(official)
    return official


def _tell_removed(
    session: Session, official: Official, channel: Channel, chat_id: str, now: datetime
) -> None:
    """The chat that was the official's: its pending desk step dropped (a reason typed
    after the removal began a citizen's complaint form), and a message saying why."""
    conversation = session.exec(
        select(Conversation).where(Conversation.channel == channel, Conversation.chat_id == chat_id)
    ).first()
    if conversation is not None and conversation.state.startswith(OFFICIAL_STATES):
        conversation.state, conversation.data = "idle", {}
        session.add(conversation)
    notify_chat(
        session=session,
        channel=channel,
        chat_id=chat_id,
        reply=Reply(say("utter_official_removed", name=official.name)),
        key=f"official-removed:{official.id}:{now.isoformat()}",
    )


def _deactivate(
    session: Session, official: Official, *, actor: str, now: datetime, why: str | None = None
) -> None:
    """`remove_official`'s changes, in the caller's transaction."""
    assert official.id is not None
    old = {"active": official.active, "channel": official.channel, "chat_id": official.chat_id}
    official.active = False
    official.channel = official.external_user_id = official.chat_id = None
    official.invite_code_hash = official.invite_expires_at = None
    session.add(official)
    session.flush()
    ended = signin.end_official_sessions(
        session=session, official_id=official.id, now=now, commit=False
    )
    new_value: dict[str, Any] = {"active": False, "sessions_ended": ended}
    if why:
        new_value["why"] = why
    session.add(
        DirectoryChange(
            at=now,
            actor=actor,
            entity="official",
            entity_id=str(official.id),
            change="removed",
            old_value=old,
            new_value=new_value,
        )
    )


def link_official(
    *,
    session: Session,
    code: str,
    channel: Channel,
    external_user_id: str,
    chat_id: str,
    now: datetime,
) -> Official | None:
    """Link the account that sent a valid, unexpired code; None when the code is not valid.

    An account can belong to one official: linking moves it from any earlier official, who
    is removed as `remove_official` removes (a moved official keeps no old-unit session).
    """
    begin_write(session)
    official = session.exec(
        select(Official).where(Official.invite_code_hash == _hash(code))
    ).first()
    if official is None or official.invite_expires_at is None or official.invite_expires_at < now:
        session.rollback()
        return None
    previous = session.exec(
        select(Official).where(
            Official.channel == channel, Official.external_user_id == external_user_id
        )
    ).first()
    if previous is not None and previous.id != official.id:
        # The person behind the account left that post (moved to another unit or role):
        # the post's dashboard sessions must not keep its unit's tickets open to them.
        actor = f"{channel.value}:{external_user_id}"
        why = f"account linked to official #{official.id}"
        _deactivate(session, previous, actor=actor, now=now, why=why)
    official.channel = channel
    official.external_user_id = external_user_id
    official.chat_id = chat_id
    official.linked_at = now
    official.invite_code_hash = None
    official.invite_expires_at = None
    session.add(official)
    session.add(
        DirectoryChange(
            at=now, actor=f"{channel.value}:{external_user_id}", entity="official",
            entity_id=str(official.id), change="linked",
            new_value={"channel": channel.value, "external_user_id": external_user_id},
        )
    )  # fmt: skip
    session.commit()
    session.refresh(official)
    return official
