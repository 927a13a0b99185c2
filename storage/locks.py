"""PostgreSQL advisory locks: what several processes sharing one database do once.

- `held(url, name)`: wait for a session-level lock for a block (migrations at start-up);
- `leadership(url, name, job, stop)`: run `job` only while this process holds the lock,
  trying again every `retry` seconds while another holds it (the jobs' leader, the pollers);
  the lock lives on a connection of its own, checked every `retry` seconds: when that
  connection is lost the job is stopped, since another process may then take the lock;
- `lock_in_transaction(session, name)`: a transaction-level lock, released at the commit
  (a job's write checked and made by one process at a time).

On SQLite every process that shares the file is on one machine and SQLite's own write lock
(`BEGIN IMMEDIATE`, `storage.db.begin_write`) serialises writers, so these take nothing
there and a process is always the leader: SQLite serves one app process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy.engine import URL
from sqlmodel import Session

from storage.db import normalize_url

logger = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Awaitable[Any]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"civicbot:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def is_postgres(url: str | URL) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return normalize_url(url).get_backend_name() == "postgresql"


def _libpq_url(url: str | URL) -> str:
    parsed = normalize_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


@contextlib.contextmanager
def held(url: str | URL, name: str) -> Iterator[None]:
    """Hold the lock `name` for the block, waiting for it (nothing on SQLite)."""
    if not is_postgres(url):
        yield
        return
    with psycopg.connect(_libpq_url(url), autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))


def lock_in_transaction(session: Session, name: str) -> None:
    """Wait for the lock `name` until the end of the session's transaction (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(
            "SELECT pg_advisory_xact_lock(%(key)s)", {"key": lock_key(name)}
        )


async def _try_lock(url: str, name: str) -> psycopg.AsyncConnection[Any] | None:
    """A connection holding the lock `name`, or None when another session holds it."""
    # Operators see who holds which lock in pg_stat_activity: "civicbot lock jobs pid 1234".
    label = f"civicbot lock {name} pid {os.getpid()}"
    connection = await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name=label[:63]
    )
    try:
        cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
        row = await cursor.fetchone()
    except BaseException:
        await connection.close()
        raise
    if row is not None and row[0]:
        return connection
    await connection.close()
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _keep(
    connection: psycopg.AsyncConnection[Any], stop: asyncio.Event, retry: float
) -> None:
    """Return when `stop` is set or the lock's connection fails."""
    while not stop.is_set():
        await _wait(stop, retry)
        try:
            await connection.execute("SELECT 1")
        except psycopg.Error:
            logger.error("Lost the database connection that held a lock.")
            return


async def leadership(
    url: str | URL,
    name: str,
    job: Job,
    stop: asyncio.Event,
    *,
    retry: float = 5.0,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Run `job(its_stop)` while holding the lock `name`, until `stop` is set.

    While another process holds it, try again every `retry` seconds (`on_wait` is called
    once, the first time: to log it). On SQLite, run `job` at once.
    """
    if not is_postgres(url):
        await job(stop)
        return
    libpq = _libpq_url(url)
    told = False
    while not stop.is_set():
        try:
            connection = await _try_lock(libpq, name)
        except psycopg.Error as error:
            logger.warning("Lock %s: database unreachable (%s); trying again.", name, error)
            connection = None
        if connection is None:
            if not told and on_wait is not None:
                on_wait()
            told = True
            await _wait(stop, retry)
            continue
        logger.info("Lock %s taken: this process runs it.", name)
        async with connection:
            inner = asyncio.Event()
            running = asyncio.ensure_future(job(inner))
            keeper = asyncio.ensure_future(_keep(connection, stop, retry))
            await asyncio.wait({running, keeper}, return_when=asyncio.FIRST_COMPLETED)
            inner.set()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            try:
                await running
            except Exception:
                logger.exception("Job under lock %s failed; trying again.", name)
        told = False
        if not stop.is_set():
            await _wait(stop, retry)
