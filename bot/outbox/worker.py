"""Delivery: every notification goes out through the stored outbox, once, whatever happens.

`OutboxWorker` claims due rows of `outbox_message` (a lease: a sender that dies leaves them due
again when the lease is over), renders each with its channel's `OutputChannel`, and in one
transaction marks the row sent and stores the message as an outgoing `Message` with the
channel's message id (so every message sent is stored, as chat replies are). A failure is
classified by the channel's output (`classify_error` of `bot.channels.telegram` and `.zalo`;
`bot.outbox.failures` for what no channel claims):

- flood control (Telegram 429 ``retry_after``): due again exactly after ``retry_after``, and
  the channel pauses until then, in every process that sends (`queries.pause_channel`:
  Telegram's limits are per bot as much as per chat; PTB's own rate limiter pauses all
  requests too). The attempt is given back: waiting for our turn is
  nothing wrong with the message, and it must not use up the attempts meant for real
  failures. What bounds it instead is age: a message still refused after `max_age` fails;
- transient (network, time-out, 5xx, bad token, Zalo 429/408): due again after the backoff of
  `storage.queries.outbox_backoff` (30 s doubling to 1 h), failed after `max_attempts`;
- permanent (the user blocked the bot, chat not found, any other 400, an invalid reply):
  failed at once with the reason.

Rows of a channel without an output stay pending (claimed by nobody, logged once). A stop
request lets the message being sent finish and gives the rest of the batch back at once.
A message sent whose row could not then be marked (the database failed in between) is sent
again after the lease: delivery is at least once, and exactly once unless that happens or a
send times out after the channel got it.

`wake()` (also called after any commit that queued a message, see `_on_commit`) makes a running
worker look at once instead of at its next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, event
from sqlalchemy.orm import Session as OrmSession

from bot.conversation.messages import OutputChannel, Reply, reply_from_payload
from bot.outbox.failures import ClassifiesErrors, Failure, classify_generic
from storage import queries
from storage.db import get_session
from storage.models import Channel, OutboxMessage, OutboxStatus, utcnow

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE = timedelta(days=1)
MISSING_OUTPUT_CHECK_SECONDS = 60.0
RECORD_RETRIES = (0.5, 2.0)  # seconds between tries to record a message that went out


# --- Classifying failures -------------------------------------------------------------------


Classifier = Callable[[Channel, Exception], Failure]


def classify_error(channel: Channel, error: Exception) -> Failure:
    """What an error no channel output claimed means (see `bot.outbox.failures`)."""
    return classify_generic(error)


def _own_classification(output: OutputChannel, error: Exception) -> Failure | None:
    """The output's own reading of its channel's error, if it has one."""
    return output.classify_error(error) if isinstance(output, ClassifiesErrors) else None


# --- The worker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A claimed row, read out of its session (nothing is held while sending)."""

    id: int
    channel: Channel
    recipient: str
    payload: dict[str, Any]
    dedupe_key: str | None
    attempts: int  # after the claim: identifies it (`queries.release_outbox`)
    created_at: datetime
    reply_to_id: int | None = None

    @classmethod
    def of(cls, row: OutboxMessage | Row[Any]) -> Claim:
        """The claim of a claimed row (a model, or a row of `queries.claim_outbox`)."""
        assert row.id is not None
        return cls(
            row.id, Channel(row.channel), row.recipient, dict(row.payload), row.dedupe_key,
            row.attempts, row.created_at, row.reply_to_id,
        )  # fmt: skip

    def context(self) -> str:
        key = f", key {self.dedupe_key}" if self.dedupe_key else ""
        return f"outbox {self.id} ({self.channel} → {self.recipient}{key}, try {self.attempts})"


def stored_payload(reply: Reply, outbox_id: int, reply_to: int | None = None) -> dict[str, Any]:
    """What is stored with the outgoing message: like a chat reply's, plus the outbox row
    (and the incoming message it answers) and the files without their contents."""
    return {
        "buttons": [asdict(b) for b in reply.buttons],
        "image_url": reply.image_url,
        "files": [
            {
                "kind": f.kind,
                "file_id": f.file_id,
                "filename": f.filename,
                "mime_type": f.mime_type,
                "size": len(f.content) if f.content else None,
            }
            for f in reply.files
        ],
        "outbox_id": outbox_id,
        **({"reply_to": reply_to} if reply_to is not None else {}),
    }


class OutboxWorker:
    """Sends what the outbox holds through `outputs`, one channel output per channel."""

    def __init__(
        self,
        outputs: Mapping[Channel, OutputChannel],
        *,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch: int = 20,
        classify: Classifier = classify_error,
        lease: timedelta = queries.OUTBOX_LEASE,
        max_attempts: int = queries.OUTBOX_MAX_ATTEMPTS,
        max_age: timedelta = DEFAULT_MAX_AGE,
    ) -> None:
        self.outputs = dict(outputs)
        self._engine = engine
        self._clock = clock
        self._batch = batch
        self._classify = classify
        self._lease = lease
        self._max_attempts = max_attempts
        self._max_age = max_age
        self._paused: dict[Channel, datetime] = {}
        self._reported_missing: set[Channel] = set()
        self._missing_checked_at: float | None = None
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.last_claimed = 0

    # --- waking -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due messages now rather than at the next interval (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._woken.set()
        else:
            loop.call_soon_threadsafe(self._woken.set)

    # --- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Send due messages until `stop` is set: at once when woken, else every `interval`
        seconds, without pause while full batches come."""
        self._loop, self._stop = asyncio.get_running_loop(), stop
        _running_workers.add(self)
        try:
            while not stop.is_set():
                self._woken.clear()
                try:
                    await self.run_once()
                except Exception:  # e.g. the database is down: try again later
                    logger.exception("The outbox worker failed; trying again.")
                    self.last_claimed = 0
                if stop.is_set():
                    break
                if self.last_claimed < self._batch:
                    await self._wait(stop, interval)
        finally:
            _running_workers.discard(self)
            self._stop = None

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._woken.wait())}
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def run_once(self) -> int:
        """Claim the due messages (one batch) and send each; returns how many were sent."""
        now = self._clock()
        self._report_missing_outputs()
        channels = [c for c in self.outputs if self._paused.get(c, now) <= now]
        with get_session(self._engine) as session:
            rows = queries.claim_outbox(
                session=session, limit=self._batch, lease=self._lease, now=now, channels=channels
            )
            claims = [Claim.of(row) for row in rows]
        self.last_claimed = len(claims)
        return await self._send_in_order(claims, now)

    async def send_now(
        self,
        ids: list[int],
        output: OutputChannel | None = None,
        claimed: Sequence[Claim] = (),
    ) -> int:
        """Send these queued messages now (a turn's replies), through `output` or the
        channel's; those waiting behind an earlier message of their chat are left to the
        worker, as are failures. `claimed`: messages the caller queued claimed (see
        `queries.finish_turn`), sent without claiming them again. Returns how many were
        sent."""
        now = max(self._clock(), utcnow())  # queued just now, by the wall clock
        claims = list(claimed)
        if ids:
            channels = [c for c in Channel if self._paused.get(c, now) <= now]
            with get_session(self._engine) as session:
                rows = queries.claim_outbox(
                    session=session,
                    limit=len(ids),
                    lease=self._lease,
                    now=now,
                    channels=channels,
                    ids=ids,
                )
            claims = sorted(claims + [Claim.of(row) for row in rows], key=lambda c: c.id)
        return await self._send_in_order(claims, now, output)

    @property
    def lease(self) -> timedelta:
        """How long a claim holds a message."""
        return self._lease

    async def _send_in_order(
        self, claims: list[Claim], now: datetime, output: OutputChannel | None = None
    ) -> int:
        """Send claims in order; after a failure the later messages of that chat wait."""
        sent = 0
        held: set[tuple[Channel, str]] = set()
        for index, claim in enumerate(claims):
            if self._stopping() or self._clock() - now > self._lease / 2:
                # Stopping, or so slow the lease may run out: give the rest back now.
                self._release_all(claims[index:])
                break
            paused = self._paused.get(claim.channel)
            if paused is not None and paused > self._clock():
                self._release(claim, paused)
                continue
            chat = (claim.channel, claim.recipient)
            if chat in held:  # behind a message of its chat that failed: due after it
                self._release(claim, self._clock())
                continue
            channel_output = output or self.outputs.get(claim.channel)
            if channel_output is None:
                self._release(claim, self._clock())
                continue
            if await self._deliver(claim, channel_output):
                sent += 1
            else:
                held.add(chat)
        return sent

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    # --- one message --------------------------------------------------------------------

    async def _deliver(self, claim: Claim, output: OutputChannel) -> bool:
        try:
            reply = reply_from_payload(claim.payload)
        except Exception as error:  # written by something else than reply_to_payload
            self._fail(claim, Failure(f"unreadable payload: {error!r}", permanent=True))
            return False
        try:
            channel_message_id = await output.send(claim.recipient, reply)
        except Exception as error:
            self._failed(claim, error, output)
            return False
        await self._record_sent(claim, reply, channel_message_id)
        return True

    async def _record_sent(
        self, claim: Claim, reply: Reply, channel_message_id: str | None
    ) -> None:
        """Mark the row sent and store the message; retried a little, since failing here
        means sending it again after the lease."""
        for delay in (*RECORD_RETRIES, None):
            try:
                with get_session(self._engine) as session:
                    queries.record_outbox_sent(
                        session=session, message_id=claim.id, text=reply.text,
                        payload=stored_payload(reply, claim.id, claim.reply_to_id),
                        channel_message_id=channel_message_id, now=self._clock(),
                    )  # fmt: skip
                return
            except Exception:
                if delay is None:
                    logger.exception(
                        "%s was sent but could not be recorded: it will be sent again.",
                        claim.context(),
                    )
                    return
                logger.warning("Recording %s failed; retrying.", claim.context(), exc_info=True)
                await asyncio.sleep(delay)

    def _failed(self, claim: Claim, error: Exception, output: OutputChannel) -> None:
        try:
            failure = _own_classification(output, error) or self._classify(claim.channel, error)
        except Exception:
            logger.exception("Classifying %r failed.", error)
            failure = Failure(f"{type(error).__name__}: {error}")
        if failure.retry_after is None or failure.permanent:
            self._fail(claim, failure, error)
            return
        now = self._clock()
        if now - claim.created_at > self._max_age:
            self._fail(claim, Failure(f"{failure.reason}; queued too long", permanent=True), error)
            return
        retry_at = now + timedelta(seconds=max(failure.retry_after, 0.0))
        self._paused[claim.channel] = max(self._paused.get(claim.channel, retry_at), retry_at)
        self._pause_everywhere(claim.channel, retry_at)
        logger.warning(
            "%s: %s; %s paused until %s.",
            claim.context(), failure.reason, claim.channel, retry_at.isoformat(),
        )  # fmt: skip
        self._release(claim, retry_at, failure.reason)

    def _pause_everywhere(self, channel: Channel, until: datetime) -> None:
        """The pause for every process that sends (the claims skip a paused channel)."""
        try:
            with get_session(self._engine) as session:
                queries.pause_channel(session=session, channel=channel, until=until)
        except Exception:  # this process still pauses; the message is released below
            logger.exception("Storing the %s pause failed.", channel)

    def _fail(self, claim: Claim, failure: Failure, error: Exception | None = None) -> None:
        """Record a failed attempt: due again after the backoff, or failed for good."""
        with get_session(self._engine) as session:
            row = session.get(OutboxMessage, claim.id)
            if row is None or row.status != OutboxStatus.pending or row.attempts != claim.attempts:
                logger.warning(
                    "%s failed (%s), but is no longer ours.", claim.context(), failure.reason
                )
                return
            row = queries.mark_outbox_failed(
                session=session, message=row, error=failure.reason, now=self._clock(),
                max_attempts=self._max_attempts, permanent=failure.permanent,
            )  # fmt: skip
            status, next_attempt = row.status, row.next_attempt_at
        if failure.permanent:  # e.g. the user blocked the bot: nothing to fix here
            logger.warning("%s failed for good: %s", claim.context(), failure.reason)
        elif status == OutboxStatus.failed:
            logger.error(
                "%s failed for good after %d tries: %s", claim.context(), claim.attempts,
                failure.reason, exc_info=error,
            )  # fmt: skip
        else:
            logger.warning(
                "%s failed: %s; next try at %s.",
                claim.context(), failure.reason, next_attempt.isoformat(),
            )  # fmt: skip

    def _release(self, claim: Claim, at: datetime, error: str | None = None) -> None:
        with get_session(self._engine) as session:
            queries.release_outbox(
                session=session, message_id=claim.id, attempts=claim.attempts, at=at, error=error
            )

    def _release_all(self, claims: list[Claim]) -> None:
        now = self._clock()
        for claim in claims:
            self._release(claim, max(now, self._paused.get(claim.channel, now)))

    # --- channels without an output -------------------------------------------------------

    def _report_missing_outputs(self) -> None:
        """Log once per channel that its messages wait for an output that is not configured."""
        unreported = set(Channel) - set(self.outputs) - self._reported_missing
        checked = self._missing_checked_at
        if not unreported or (
            checked is not None and time.monotonic() - checked < MISSING_OUTPUT_CHECK_SECONDS
        ):
            return
        self._missing_checked_at = time.monotonic()
        with get_session(self._engine) as session:
            counts = queries.pending_outbox_counts(session=session)
        for channel in sorted(unreported & set(counts)):
            self._reported_missing.add(channel)
            logger.warning(
                "%d outbox message(s) for %s wait: %s is not configured, so they stay pending.",
                counts[channel], channel, channel,
            )  # fmt: skip


@contextlib.asynccontextmanager
async def running_outbox(worker: OutboxWorker, *, interval: float = 1.0) -> AsyncIterator[None]:
    """Run `worker` in the background for the duration of the block; stop it gracefully."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, interval), name="outbox-worker")
    try:
        yield
    finally:
        stop.set()
        await task


# --- Waking running workers when a transaction queued a message -----------------------------

_running_workers: weakref.WeakSet[OutboxWorker] = weakref.WeakSet()


@event.listens_for(OrmSession, "after_commit")
def _on_commit(session: OrmSession) -> None:
    if session.info.pop(queries.OUTBOX_QUEUED, False):
        for worker in list(_running_workers):
            worker.wake()


@event.listens_for(OrmSession, "after_rollback")
def _on_rollback(session: OrmSession) -> None:
    session.info.pop(queries.OUTBOX_QUEUED, None)
