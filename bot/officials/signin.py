"""Signing officials in to the dashboard (bot/web/dashboard/): one-time codes and links,
their budgets, and the server-side sessions they open.

Officials have no passwords; their chat account, linked by an invite, is the key.

- A 6-digit code (`kind` "code"), asked for on the sign-in page by anyone who types an
  official's number, goes to the official's chat. Anonymous requests have budgets per hour
  (`CIVICBOT_DASHBOARD_CODES_PER_OFFICIAL`, `_PER_CLIENT` for one client address, `_OVERALL`),
  counted while holding a lock (SQLite's write lock; on PostgreSQL the official's row
  `FOR UPDATE` and an advisory lock for the address and overall counts), so parallel requests
  cannot overspend them. A wrong code counts against it (5 void it) and the official is told.
- A one-time link the official asks for in their own chat (`/dangnhap`, kind "chat"): the
  request comes from the linked account, so it has its own budget that anonymous traffic
  cannot spend (`CIVICBOT_DASHBOARD_CHAT_SIGNINS_PER_OFFICIAL`).
- A one-time link printed by `civicbot official signin-link` (kind "link"), for operators.

Only hashes of codes and links are stored. The chat message that carries one is redacted
once delivered (`storage.queries.OUTBOX_REDACTED_TEXT`): neither the outbox row nor the
stored outgoing message keeps it.

Sessions: the signed cookie carries only a random id; the record in ``dashboard_session``
decides (only the id's SHA-256 is kept). Signing out and removing the official end it, so
a copied or replayed cookie signs nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.config import settings
from bot.conversation.messages import Reply, reply_to_payload
from storage import queries
from storage.db import begin_write
from storage.models import (
    DashboardSession,
    DashboardSignin,
    Official,
    OutboxMessageCreate,
)

logger = logging.getLogger(__name__)

CODE_VALIDITY = timedelta(minutes=10)
LINK_VALIDITY = timedelta(minutes=10)
MAX_CODE_ATTEMPTS = 5
CODE_WINDOW = timedelta(hours=1)
SESSION_LIFETIME = timedelta(hours=12)
SIGNIN_LOCK_KEY = 0x43495649  # "CIVI": the advisory lock of code counting on PostgreSQL

SIGNIN_CODE_TEXT = (
    "Mã đăng nhập trang quản lý phản ánh CivicBot của anh/chị: {code}\n"
    "Mã có hiệu lực {minutes} phút và chỉ dùng được một lần. Nếu anh/chị không yêu cầu "
    "đăng nhập, vui lòng bỏ qua tin nhắn này và không chuyển mã cho người khác."
)
SIGNIN_CODE_SENT = "Mã đăng nhập trang quản lý đã được gửi (mã đã xóa khỏi hệ thống sau khi gửi)."
SIGNIN_LINK_TEXT = (
    "Đường dẫn đăng nhập trang quản lý phản ánh CivicBot (dùng một lần, hiệu lực {minutes} "
    "phút):\n{url}\nKhông chuyển đường dẫn này cho người khác."
)
SIGNIN_LINK_SENT = (
    "Đường dẫn đăng nhập trang quản lý đã được gửi (đã xóa khỏi hệ thống sau khi gửi)."
)
SIGNIN_WRONG_TEXT = (
    "⚠️ Có người vừa nhập sai mã đăng nhập trang quản lý của anh/chị ({attempts}/{limit} lần)"
    "{where}. Nếu không phải anh/chị, đừng chuyển mã cho ai; mã bị khóa sau {limit} lần sai. "
    "Anh/chị luôn có thể nhắn /dangnhap tại đây để nhận đường dẫn đăng nhập."
)


def _code_hash(official_id: int, code: str) -> str:
    # Keyed: a 6-digit code's plain hash would be reversed in a moment.
    key = settings.dashboard_secret.encode()
    message = f"dashboard-code:{official_id}:{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- Budgets --------------------------------------------------------------------------------


def _lock_signins(session: Session, official_id: int) -> Official | None:
    """Begin the write that counts and issues; the official's row, locked."""
    begin_write(session)  # SQLite: the database's write lock, held to the commit
    if session.get_bind().dialect.name == "postgresql":
        # The per-address and overall counts span rows no single row lock covers.
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(SIGNIN_LOCK_KEY)))
    return session.exec(
        select(Official).where(Official.id == official_id).with_for_update()
    ).first()


def _count(session: Session, *conditions: Any) -> int:
    count: int = session.exec(
        select(sa.func.count()).select_from(DashboardSignin).where(*conditions)
    ).one()
    return count


def spent_budget(
    *, session: Session, official_id: int, kind: str, client: str | None, now: datetime
) -> str | None:
    """Which hourly budget a new sign-in of `kind` would overspend ("official", "client",
    "overall"), or None. Call it holding the lock (`_lock_signins`)."""
    recent = col(DashboardSignin.created_at) > now - CODE_WINDOW
    limit = (
        settings.dashboard_codes_per_official
        if kind == "code"
        else settings.dashboard_chat_signins_per_official
    )
    mine = (DashboardSignin.official_id == official_id, DashboardSignin.kind == kind)
    if _count(session, recent, *mine) >= limit:
        return "official"
    if kind != "code":
        return None  # asked from the official's own chat: their budget only
    anonymous = DashboardSignin.kind == "code"
    if client is not None and (
        _count(session, recent, anonymous, DashboardSignin.client == client)
        >= settings.dashboard_codes_per_client
    ):
        return "client"
    if _count(session, recent, anonymous) >= settings.dashboard_codes_overall:
        return "overall"
    return None


def _queue_secret(session: Session, official: Official, text: str, redacted: str, key: str) -> None:
    """Queue `text` to the official's chat; once delivered only `redacted` is kept."""
    assert official.channel is not None and official.chat_id is not None
    payload = {**reply_to_payload(Reply(text)), queries.OUTBOX_REDACTED_TEXT: redacted}
    queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(
            channel=official.channel, recipient=official.chat_id, payload=payload, dedupe_key=key
        ),
        commit=False,
    )


# --- Codes ----------------------------------------------------------------------------------


def request_signin_code(
    *, session: Session, official_id: int, now: datetime, client: str | None = None
) -> int | None:
    """Queue a new 6-digit code to the official's linked chat (asked for from address
    `client`); the sign-in's id, or None when the official is unknown, inactive or not
    linked, or a budget is spent."""
    official = _lock_signins(session, official_id)
    if (
        official is None
        or not official.active
        or official.channel is None
        or official.chat_id is None
    ):
        session.rollback()
        return None
    spent = spent_budget(
        session=session, official_id=official_id, kind="code", client=client, now=now
    )
    if spent is not None:
        session.rollback()
        logger.warning(
            "Dashboard sign-in code for official %s from %s refused: %s budget spent.",
            official_id,
            client,
            spent,
        )
        return None
    code = f"{secrets.randbelow(10**6):06d}"
    signin = DashboardSignin(
        official_id=official_id,
        kind="code",
        secret_hash=_code_hash(official_id, code),
        expires_at=now + CODE_VALIDITY,
        created_at=now,
        client=client,
    )
    session.add(signin)
    session.flush()
    assert signin.id is not None
    signin_id = signin.id
    minutes = int(CODE_VALIDITY.total_seconds() // 60)
    _queue_secret(
        session,
        official,
        SIGNIN_CODE_TEXT.format(code=code, minutes=minutes),
        SIGNIN_CODE_SENT,
        key=f"dashboard-signin:{signin_id}",
    )
    session.commit()
    return signin_id


def verify_signin_code(
    *, session: Session, signin_id: int, code: str, now: datetime, client: str | None = None
) -> Official | None:
    """The official, when `code` is the unused, unexpired code of sign-in `signin_id`; a wrong
    code counts against the sign-in (voided after MAX_CODE_ATTEMPTS), and the official is
    told of the first wrong try and of the last."""
    begin_write(session)
    signin = session.get(DashboardSignin, signin_id, with_for_update=True)
    if (
        signin is None
        or signin.kind != "code"
        or signin.used_at is not None
        or signin.expires_at <= now
        or signin.attempts >= MAX_CODE_ATTEMPTS
    ):
        session.rollback()
        return None
    typed = "".join(code.split())
    if not hmac.compare_digest(signin.secret_hash, _code_hash(signin.official_id, typed)):
        signin.attempts += 1
        session.add(signin)
        if signin.attempts in (1, MAX_CODE_ATTEMPTS):
            _tell_wrong_code(session, signin, client)
        session.commit()
        logger.warning(
            "Wrong dashboard sign-in code for official %s from %s.", signin.official_id, client
        )
        return None
    return _use(session, signin, now)


def _tell_wrong_code(session: Session, signin: DashboardSignin, client: str | None) -> None:
    official = session.get(Official, signin.official_id)
    if official is None or official.channel is None or official.chat_id is None:
        return
    where = f" từ địa chỉ {client}" if client else ""
    text = SIGNIN_WRONG_TEXT.format(attempts=signin.attempts, limit=MAX_CODE_ATTEMPTS, where=where)
    queries.enqueue_outbox(
        session=session,
        message_in=OutboxMessageCreate(
            channel=official.channel,
            recipient=official.chat_id,
            payload=reply_to_payload(Reply(text)),
            dedupe_key=f"dashboard-signin:{signin.id}:wrong:{signin.attempts}",
        ),
        commit=False,
    )


# --- Links ----------------------------------------------------------------------------------


def _add_link(session: Session, official_id: int, kind: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardSignin(
            official_id=official_id,
            kind=kind,
            secret_hash=_sha256(token),
            expires_at=now + LINK_VALIDITY,
            created_at=now,
        )
    )
    return token


def create_signin_link(*, session: Session, official_id: int, now: datetime) -> str:
    """A one-time sign-in token for an active official (the secret part of the URL)."""
    begin_write(session)
    official = session.get(Official, official_id)
    if official is None or not official.active:
        session.rollback()
        raise ValueError(f"No active official #{official_id}.")
    token = _add_link(session, official_id, "link", now)
    session.commit()
    return token


def request_chat_signin(*, session: Session, official_id: int, now: datetime) -> bool:
    """The official asked in their own chat: queue them a one-time link; False when their
    chat budget is spent (or they are not an active, linked official)."""
    official = _lock_signins(session, official_id)
    if official is None or not official.active or official.chat_id is None:
        session.rollback()
        return False
    if spent_budget(session=session, official_id=official_id, kind="chat", client=None, now=now):
        session.rollback()
        logger.warning("Dashboard sign-in links for official %s: budget spent.", official_id)
        return False
    token = _add_link(session, official_id, "chat", now)
    minutes = int(LINK_VALIDITY.total_seconds() // 60)
    text = SIGNIN_LINK_TEXT.format(minutes=minutes, url=signin_link_url(token))
    _queue_secret(
        session, official, text, SIGNIN_LINK_SENT, key=f"dashboard-link:{_sha256(token)[:32]}"
    )
    session.commit()
    return True


def signin_link_url(token: str, base_url: str | None = None) -> str:
    """The URL of a sign-in link (default base: CIVICBOT_DASHBOARD_URL, else
    CIVICBOT_HTTP_HOST and _PORT)."""
    base = (base_url or settings.web_base_url).rstrip("/")
    return f"{base}/dashboard/signin/link?{urlencode({'token': token})}"


def use_signin_link(*, session: Session, token: str, now: datetime) -> Official | None:
    """The official of an unused, unexpired sign-in link, which is then used up."""
    begin_write(session)
    signin = session.exec(
        select(DashboardSignin)
        .where(
            DashboardSignin.secret_hash == _sha256(token),
            col(DashboardSignin.kind).in_(("link", "chat")),
        )
        .with_for_update()
    ).first()
    if signin is None or signin.used_at is not None or signin.expires_at <= now:
        session.rollback()
        return None
    return _use(session, signin, now)


def _use(session: Session, signin: DashboardSignin, now: datetime) -> Official | None:
    signin.used_at = now
    session.add(signin)
    official = session.get(Official, signin.official_id)
    session.commit()
    if official is None or not official.active:
        return None
    session.refresh(official)
    return official


# --- Sessions -------------------------------------------------------------------------------


def start_session(*, session: Session, official_id: int, now: datetime) -> str:
    """A new session for the official; the id to put in the cookie."""
    token = secrets.token_urlsafe(32)
    begin_write(session)
    session.add(
        DashboardSession(
            official_id=official_id,
            token_hash=_sha256(token),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.commit()
    return token


def session_official(*, session: Session, token: str, now: datetime) -> int | None:
    """The official of a live session (not ended, not expired), or None."""
    official_id: int | None = session.exec(
        select(DashboardSession.official_id).where(
            DashboardSession.token_hash == _sha256(token),
            col(DashboardSession.ended_at).is_(None),
            col(DashboardSession.expires_at) > now,
        )
    ).first()
    return official_id


def end_session(*, session: Session, token: str, now: datetime) -> bool:
    """Sign-out: end the session; False when it was not live."""
    return _end(session, DashboardSession.token_hash == _sha256(token), now) > 0


def end_official_sessions(
    *, session: Session, official_id: int, now: datetime, commit: bool = True
) -> int:
    """End every live session of an official (removed, deactivated); how many.
    `commit=False` joins the caller's write transaction."""
    return _end(session, DashboardSession.official_id == official_id, now, commit=commit)


def _end(session: Session, which: Any, now: datetime, *, commit: bool = True) -> int:
    if commit:
        begin_write(session)
    result = session.exec(
        sa.update(DashboardSession)
        .where(which, col(DashboardSession.ended_at).is_(None))
        .values(ended_at=now)
    )
    if commit:
        session.commit()
    return int(result.rowcount)
