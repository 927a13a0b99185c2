"""Engines and sessions.

SQLite (the default, a file under `var/`) runs in WAL mode with foreign keys on and a busy
timeout. Its transactions are begun by SQLAlchemy rather than by the sqlite3 module (whose
legacy mode skips BEGIN before SELECT and breaks SAVEPOINT): reads begin a deferred
transaction, and the query functions that write begin theirs with `BEGIN IMMEDIATE`
(`begin_write`), so concurrent writers queue on the busy timeout instead of failing with
"database is locked" when a read snapshot turns out to be stale.

PostgreSQL goes through psycopg 3: a `postgresql://` URL is read as `postgresql+psycopg://`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "civicbot_sqlite_begin"
# Without settings (the `alembic` command line): a SQLite file under the repository's var/.
DEFAULT_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent.parent / 'var' / 'civicbot.db'}"
_app_database_url: Callable[[], str] | None = None
_app_pool: Callable[[], dict[str, Any]] | None = None


def use_database(
    url: Callable[[], str], *, pool: Callable[[], dict[str, Any]] | None = None
) -> None:
    """Where the app's database is: `url()` is read when the app's engine is first made, and
    by the migrations given no URL; `pool()` gives the PostgreSQL pool's options (size,
    overflow, timeout). The app's settings call this (bot/config.py); storage itself reads
    no settings."""
    global _app_database_url, _app_pool
    _app_database_url = url
    _app_pool = pool
    get_engine.cache_clear()


def app_database_url() -> str:
    """The app's database URL (see `use_database`); the default when none was given."""
    return _app_database_url() if _app_database_url is not None else DEFAULT_DATABASE_URL


def normalize_url(url: str | URL) -> URL:
    """The URL with the driver this app uses: psycopg 3 for PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_db_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: the app's, `app_database_url`), set up for its backend."""
    parsed = normalize_url(url if url is not None else app_database_url())
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:  # each process's share of the server's max_connections
        for option, value in (_app_pool() if _app_pool is not None else {}).items():
            kwargs.setdefault(option, value)
    return create_engine(parsed, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN (see `_on_begin`); sqlite3 would otherwise do it late.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def begin_write(session: Session) -> None:
    """Start a new transaction that will write (the query functions that write call it).

    Commits what the session holds first (those functions commit anyway), so the same
    happens on both databases. On SQLite the new transaction is `BEGIN IMMEDIATE`: it takes
    the write lock up front, waiting up to the busy timeout, so what is read next is checked
    under that lock. PostgreSQL takes no lock here: a writer that checks before it writes
    must lock what it checks (`with_for_update`, or `storage.locks.lock_in_transaction`).
    """
    if session.in_transaction():
        session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})


@cache
def get_engine() -> Engine:
    """The app's engine (`app_database_url`), created on first use."""
    return create_db_engine()


@contextmanager
def get_session(engine: Engine | None = None) -> Iterator[Session]:
    """A session on `engine` (default: the app's); rolled back on error, always closed."""
    with Session(engine if engine is not None else get_engine()) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
