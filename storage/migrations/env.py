"""Alembic environment: the tables are `SQLModel.metadata`, the URL comes from the caller.

URL, first found: `config.attributes["database_url"]` (storage.migrate), `-x url=...` on the
alembic command line, then CIVICBOT_DATABASE_URL, then `storage.db.DEFAULT_DATABASE_URL`
(the command line reads no .env: storage reads no settings of the app).
A caller may also hand over an open connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (defines the tables)
from storage.db import DEFAULT_DATABASE_URL, create_db_engine, normalize_url

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata

# Batch mode always (render_as_batch): SQLite can alter tables only by copying them, and batch
# operations on PostgreSQL are plain ALTERs, so one migration script serves both.


def database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CIVICBOT_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )
    return normalize_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Print the SQL (`alembic upgrade head --sql`)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite and not connection.in_transaction():
        # Batch operations drop and recreate tables: no foreign-key actions meanwhile. The
        # pragma works only outside a transaction; the check below reports what broke.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    # SQLite's DDL is transactional too once SQLAlchemy emits BEGIN (storage.db).
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.commit()
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
        if broken:
            raise RuntimeError(f"Foreign keys broken by the migration: {broken[:10]}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = create_db_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
