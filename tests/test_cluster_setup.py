"""What several processes on one PostgreSQL do once: migrations, secrets, locks, jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pg
import psycopg
import pytest
from cluster import wait_until
from fake_telegram import FakeTelegram

from bot.config import Settings
from storage import migrate
from storage.locks import Job, leadership

CIVICBOT = str(Path(sys.executable).with_name("civicbot"))


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({f"CIVICBOT_{k.upper()}": v for k, v in values.items()})
    return env


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


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


def test_run_on_postgresql_refuses_to_start_without_the_shared_secrets(
    postgres_migrated: str,
) -> None:
    env = _env(
        database_url=postgres_migrated,
        telegram_token="123:abc",
        telegram_webhook_url="https://civic.example/telegram/webhook",
        nlu_url="http://127.0.0.1:1",
    )
    result = subprocess.run(
        [CIVICBOT, "run"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    for name in ("DASHBOARD_SECRET", "TELEGRAM_WEBHOOK_SECRET", "NLU_TOKEN"):
        assert f"CIVICBOT_{name}" in result.stderr
    assert "CIVICBOT_ZALO_WEBHOOK_SECRET" not in result.stderr  # Zalo is off


def test_only_postgresql_needs_them() -> None:
    sqlite = Settings(_env_file=None, database_url="sqlite:///x.db")  # type: ignore[call-arg]
    assert sqlite.missing_shared_secrets() == []
    shared = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://civicbot@db/civicbot",
        dashboard_secret="d",
        zalo_bot_token="z",
        zalo_webhook_secret="zalo-secret",
    )
    assert shared.missing_shared_secrets() == []


def test_set_webhook_is_a_deploy_command(fake: FakeTelegram) -> None:
    url = "https://civic.example/telegram/webhook"
    common = {"telegram_token": fake.token, "telegram_base_url": fake.base_url}
    unset = subprocess.run(
        [CIVICBOT, "telegram", "set-webhook", "--url", url],
        env=_env(**common),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unset.returncode == 2 and "CIVICBOT_TELEGRAM_WEBHOOK_SECRET" in unset.stderr
    assert fake.calls_to("setWebhook") == []
    done = subprocess.run(
        [CIVICBOT, "telegram", "set-webhook"],
        env=_env(**common, telegram_webhook_url=url, telegram_webhook_secret="shared-Secret_1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [hook] = fake.calls_to("setWebhook")
    assert hook.params["url"] == url and hook.params["secret_token"] == "shared-Secret_1"


async def test_one_process_holds_a_lock_and_another_takes_over(postgres_migrated: str) -> None:
    """Two holders on two connections (as two processes): one runs the job; when it stops,
    the other takes over within its retry."""
    running: list[str] = []

    def job(name: str) -> Job:
        async def run(stop: asyncio.Event) -> None:
            running.append(name)
            await stop.wait()
            running.remove(name)

        return run

    stops = {"a": asyncio.Event(), "b": asyncio.Event()}
    waited: list[str] = []

    def holder(name: str) -> asyncio.Task[None]:
        return asyncio.create_task(
            leadership(
                postgres_migrated,
                "test-lock",
                job(name),
                stops[name],
                retry=0.1,
                on_wait=lambda: waited.append(name),
            )
        )

    tasks = {name: holder(name) for name in ("a", "b")}
    await _until(lambda: len(running) == 1 and len(waited) == 1)
    await asyncio.sleep(0.5)  # the other keeps trying, and keeps waiting
    [leader] = running
    [other] = waited
    assert leader != other
    stops[leader].set()
    await tasks[leader]
    await _until(lambda: running == [other])
    stops[other].set()
    await tasks[other]
    assert running == []


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_two_workers_run_the_jobs_once_and_hand_over(
    postgres_migrated: str, tmp_path: Path
) -> None:
    """`civicbot worker` twice: one leads (its lock connection names it), the other stands by;
    SIGTERM stops the leader with exit 0 and the other takes over."""
    env = _env(database_url=postgres_migrated, dashboard_secret="d")
    logs = [tmp_path / f"worker-{i}.log" for i in (1, 2)]
    workers = [
        subprocess.Popen(
            [CIVICBOT, "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        for log in logs
    ]
    try:
        first = _wait_for_leader(postgres_migrated, {w.pid for w in workers})
        leader = next(w for w in workers if w.pid == first)
        other = next(w for w in workers if w.pid != first)
        wait_until(
            lambda: any("stands by" in log.read_text() for log in logs), 180, "one stands by"
        )
        leader.send_signal(signal.SIGTERM)
        assert leader.wait(timeout=60) == 0
        assert _wait_for_leader(postgres_migrated, {other.pid}) == other.pid
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _leaders(url: str) -> list[int]:
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(libpq) as connection:
        rows = connection.execute(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE application_name LIKE 'civicbot lock jobs pid %'"
        ).fetchall()
    return [int(str(row[0]).rsplit(" ", 1)[1]) for row in rows]


def _wait_for_leader(url: str, among: set[int]) -> int:
    def one() -> int | None:
        found = _leaders(url)
        return found[0] if len(found) == 1 and found[0] in among else None

    leader: int = wait_until(one, 180, "one leader")
    return leader


def test_secrets_stay_out_of_the_settings_repr() -> None:
    secrets = {
        "database_url": "postgresql://civicbot:db-password@db/civicbot",
        "nlu_token": "nlu-token-value",
        "telegram_token": "123:telegram-token-value",
        "telegram_webhook_secret": "telegram-hook-value",
        "zalo_bot_token": "zalo-token-value",
        "zalo_webhook_secret": "zalo-hook-value",
        "dashboard_secret": "dashboard-secret-value",
        "metrics_token": "metrics-token-value",
    }
    settings = Settings(_env_file=None, **secrets)  # type: ignore[call-arg]
    shown = repr(settings) + str(settings)
    for value in ("db-password", *list(secrets.values())[1:]):
        assert value not in shown
    assert "http_port=8000" in shown  # the rest is still shown
    assert settings.dashboard_secret == "dashboard-secret-value"  # and still readable
