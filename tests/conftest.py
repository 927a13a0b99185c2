"""Shared fixtures: the real Rasa server and a real PostgreSQL server, each started once for
the whole run, and migrated databases of both kinds (SQLite and PostgreSQL) for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pg
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from bot.config import settings
from bot.nlu import server
from storage import migrate
from storage.db import create_db_engine


@pytest.fixture(scope="session")
def nlu_server() -> Iterator[server.RunningServer]:
    """A real Rasa server on loopback with the trained model (`make test` trains it)."""
    if not settings.nlu_model_path.exists():
        pytest.fail(f"No trained model at {settings.nlu_model_path}: run `make test`.")
    # A token that starts with "-", as generated ones sometimes do: Rasa must still take it.
    config = settings.model_copy(update={"nlu_token": "-" + settings.nlu_token})
    running = server.start(config)
    yield running
    server.stop(running)


# --- Databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    """One real PostgreSQL server for the whole run."""
    try:
        server = pg.start()
    except pg.PostgresUnavailable as error:
        reason = str(error)
    else:
        reason = ""
    if reason:
        pytest.fail(f"PostgreSQL is needed for these tests: {reason}", pytrace=False)
    print(f"\nPostgreSQL {server.version} ready in {server.startup_seconds:.2f} s")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_migrated(postgres: pg.PostgresServer) -> str:
    """A PostgreSQL database migrated once for the run; `database_url` empties it per test."""
    url = postgres.create_database(f"civicbot_test_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(url)
    return url


def emptied(url: str) -> str:
    """Delete every row (and restart the ids) of the database at `url`."""
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    engine = create_db_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # a leak fails, not hangs
            connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new database with no tables, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'civicbot.db'}"
        return
    server: pg.PostgresServer = request.getfixturevalue("postgres")
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated database with no rows, of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'civicbot.db'}"
        migrate.upgrade(url)
        return url
    return emptied(request.getfixturevalue("postgres_migrated"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated database with no rows."""
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()
