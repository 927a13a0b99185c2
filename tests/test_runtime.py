"""The product as an operator runs it: `civicbot run` as a process, its supervised Rasa child
(killed, reaped, restarted; the fallback answering meanwhile), `/healthz` and `/readyz`, the
secrets Rasa does not get, and a graceful stop on SIGTERM and SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster import wait_until

from bot.nlu import server
from bot.nlu.client import NluClient
from bot.nlu.supervisor import Supervision, watch_remote

pytestmark = pytest.mark.rasa

TOKEN = "-tok3n-Only_Rasa-may-know"
SECRET = "dashboard-secret-never-in-rasa"
RASA_START_SECONDS = 300.0  # over a minute seen on a busy machine


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """Whether `pid` has exited and been reaped (a zombie is not gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "X"
    except OSError:
        return True


def secrets_in(pid: int) -> list[str]:
    """Where the token or an app secret shows in the process's command line or environment."""
    proc = Path("/proc") / str(pid)
    shown = []
    for name in ("cmdline", "environ"):
        data = (proc / name).read_bytes()
        for secret in (TOKEN, SECRET, "CIVICBOT_"):
            if secret.encode() in data:
                shown.append(f"{secret} in {name}")
    return shown


class App:
    """`civicbot run` in its own process, on a free port, with a SQLite database."""

    def __init__(self, tmp: Path) -> None:
        self.port = server.free_port()
        self.log = tmp / "app.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")},
            "CIVICBOT_DATABASE_URL": f"sqlite:///{tmp / 'civicbot.db'}",
            "CIVICBOT_HTTP_PORT": str(self.port),
            "CIVICBOT_NLU_TOKEN": TOKEN,
            "CIVICBOT_DASHBOARD_SECRET": SECRET,
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run"], env=env, stdout=log, stderr=log
            )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.citizens: dict[str, httpx.Client] = {}

    def get(self, path: str) -> httpx.Response | None:
        try:
            return self.http.get(path)
        except httpx.TransportError:
            return None

    def ready(self) -> dict[str, Any] | None:
        answer = self.get("/readyz")
        return answer.json() if answer is not None and answer.status_code == 200 else None

    def fallback(self) -> bool:
        answer = self.get("/readyz")
        return answer is not None and (answer.status_code, answer.json()) == (
            503, {"database": "ok", "nlu": "fallback"},
        )  # fmt: skip

    def say(self, citizen: str, message_id: str, text: str) -> list[str]:
        """What the web chat answers `citizen` (each has their own session cookie)."""
        if citizen not in self.citizens:
            self.citizens[citizen] = httpx.Client(base_url=self.http.base_url, timeout=30)
        payload = {"message_id": message_id, "text": text}
        answer = self.citizens[citizen].post("/api/web/messages", json=payload)
        assert answer.status_code == 200, answer.text
        return [reply["text"] for reply in answer.json()]

    def rasa(self) -> int:
        [child] = wait_until(lambda: children(self.process.pid), 60, "Rasa started")
        return int(child)

    def stop(self, signum: int, within: float) -> int:
        started = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout=within)
        print(
            f"\n{signal.Signals(signum).name}: exited {code} in {time.monotonic() - started:.1f} s"
        )
        return code

    def close(self) -> None:
        self.http.close()
        for client in self.citizens.values():
            client.close()
        if self.process.poll() is None:
            for child in children(self.process.pid):
                os.kill(child, signal.SIGKILL)
            self.process.kill()
            self.process.wait()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    running = App(tmp_path)
    yield running
    running.close()
    print(running.log.read_text(errors="replace")[-3000:])


def test_rasa_is_supervised_and_stops_with_the_app(app: App) -> None:
    wait_until(lambda: app.get("/healthz"), 120, "the web server answers")
    assert app.fallback()  # Rasa still loading: the fallback answers meanwhile
    assert wait_until(app.ready, RASA_START_SECONDS, "Rasa ready") == {
        "database": "ok", "nlu": "rasa",
    }  # fmt: skip
    first = app.rasa()
    assert secrets_in(first) == []
    assert app.get("/healthz").json() == {"ok": True, "nlu": "rasa"}  # type: ignore[union-attr]
    assert "ảnh" in app.say("citizen", "1", "vỉa hè phố Huế bị lấn chiếm hết chỗ đi")[0]

    os.kill(first, signal.SIGKILL)
    wait_until(app.fallback, 15, "/readyz says fallback")
    wait_until(lambda: gone(first), 15, "the killed Rasa reaped")
    # The fallback answers: a new complaint, and the form begun with Rasa goes on.
    assert app.say("other", "1", "đèn đường ngõ 20 phường Kim Liên hỏng cả tuần")
    assert app.say("citizen", "2", "Bỏ qua")

    wait_until(app.ready, RASA_START_SECONDS, "Rasa restarted and ready")
    second = app.rasa()
    assert second != first and secrets_in(second) == []
    assert app.say("other", "2", "Bỏ qua")  # the form begun with the fallback goes on
    assert "Rasa exited with code -9; restarting it in 1 s." in app.log.read_text()

    assert app.stop(signal.SIGTERM, within=60) == 0
    assert gone(second) and children(app.process.pid) == []


def test_sigint_while_rasa_starts_stops_it_and_exits_0(app: App) -> None:
    child = app.rasa()
    assert app.stop(signal.SIGINT, within=60) == 0
    wait_until(lambda: gone(child), 5, "Rasa stopped")


def test_rasa_gets_its_token_by_pipe_and_no_secret(nlu_server: server.RunningServer) -> None:
    pid = nlu_server.process.pid
    for name in ("cmdline", "environ"):
        data = (Path("/proc") / str(pid) / name).read_bytes()
        assert nlu_server.token.encode() not in data
    environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"CIVICBOT_")]
    assert httpx.get(f"{nlu_server.url}/status", params={"token": nlu_server.token}).is_success
    assert httpx.get(f"{nlu_server.url}/status", params={"token": "wrong"}).status_code == 401


async def test_several_servers_in_turn_with_health_checks(
    nlu_server: server.RunningServer,
) -> None:
    dead = f"http://127.0.0.1:{server.free_port()}"
    stop = asyncio.Event()
    async with NluClient(f"{dead},{nlu_server.url}", nlu_server.token, timeout=1.0) as client:
        watch = Supervision(interval=0.1, failures=1)
        watcher = asyncio.create_task(watch_remote(client, nlu_server.token, stop, watch))
        try:
            while [b.up for b in client.backends] != [False, True]:
                await asyncio.sleep(0.05)
            results = [await client.parse("mất nước 2 ngày rồi") for _ in range(4)]
            assert {r.source for r in results} == {"rasa"} and client.mode == "rasa"
        finally:
            stop.set()
            await watcher
        client.set_up(nlu_server.url, False)  # as failed checks would
        assert client.mode == "fallback"
        assert (await client.parse("mất nước 2 ngày rồi")).source == "fallback"
