"""What several processes on one PostgreSQL do once: migrations, secrets, locks, jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pg
import pytest

from storage import migrate

CIVICBOT = str(Path(sys.executable).with_name("civicbot"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({f"CIVICBOT_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.mark.parametrize("attempt", range(2))
def test_two_processes_upgrading_at_once_both_succeed(
    postgres: pg.PostgresServer, attempt: int
) -> None:
    url = postgres.create_database(f"migrate_{attempt}_{uuid.uuid4().hex[:8]}")
    env = _env(database_url=url)
    processes = [
        subprocess.Popen(
            [CIVICBOT, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [
        (p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in processes
    ]
    assert [code for code, _ in results] == [0, 0], results
    assert migrate.current_revision(url) == migrate.head_revision()
