"""Run the Alembic migrations from code (`civicbot db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage import locks
from storage.db import app_database_url, create_db_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for `url` (default: the app's, `app_database_url`).

    Built in code rather than read from alembic.ini, so that running migrations from the app
    leaves the app's logging configuration alone.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url or app_database_url()
    return config


MIGRATION_LOCK = "migrations"


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """`alembic upgrade head` on `url` (default: the app's database).

    On PostgreSQL under an advisory lock: processes that start together migrate one after
    the other, and the later ones find the schema up to date (without it, two creating the
    same type failed with `UniqueViolation pg_type_typname_nsp_index`).
    """
    with locks.held(url or app_database_url(), MIGRATION_LOCK):
        command.upgrade(alembic_config(url), revision)


def check(url: str | None = None) -> None:
    """`alembic check`: raise if the models and the migrated database differ."""
    command.check(alembic_config(url))


def head_revision() -> str | None:
    """The newest revision in storage/migrations/versions."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at `url` is at (None: not migrated)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
