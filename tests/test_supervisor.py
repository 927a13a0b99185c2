"""The NLU supervisor's decisions, with stand-in children instead of Rasa (fast): restarts
with capped backoff, every child reaped, a child that stops answering replaced.
`tests/test_runtime.py` does the same with the real Rasa inside `civicbot run`."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import httpx
import pytest

from bot.config import settings
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.nlu.supervisor import Supervision, supervise_local


class StandIns:
    """`server.start_async` and `server.status` replaced: each start runs a child that lives
    `lives` seconds; `answers` says whether its /status answers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, lives: float, answers: bool) -> None:
        self.children: list[tuple[float, subprocess.Popen[bytes]]] = []
        self.lives = lives
        self.answers = answers
        monkeypatch.setattr(server, "start_async", self.start)
        monkeypatch.setattr(server, "status", self.status)

    async def start(self, config: Any, *, port: int | None = None, **_: Any) -> Any:
        child = subprocess.Popen(["sleep", str(self.lives)])
        self.children.append((time.monotonic(), child))
        return server.RunningServer(f"http://127.0.0.1:{port}", "t", child)

    async def status(self, http: httpx.AsyncClient, url: str, token: str) -> str:
        return "ready" if self.answers else "down"


async def supervise(client: NluClient, watch: Supervision, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(supervise_local(settings, client, stop, watch))
    modes = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        modes.add(client.mode)
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert modes == {"rasa", "fallback"}
    assert client.mode == "fallback"


async def test_a_child_that_exits_is_reaped_and_restarted_with_capped_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand_ins = StandIns(monkeypatch, lives=0.05, answers=True)
    watch = Supervision(interval=0.02, first_backoff=0.1, max_backoff=0.4, stable=60)
    async with NluClient(f"http://127.0.0.1:{server.free_port()}", "t") as client:
        await supervise(client, watch, seconds=2.5)
    assert watch.starts == len(stand_ins.children) >= 4
    assert watch.waits[:4] == [0.1, 0.2, 0.4, 0.4]  # doubling, capped
    assert all(child.poll() is not None for _, child in stand_ins.children)  # all reaped


async def test_a_child_that_stops_answering_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_ins = StandIns(monkeypatch, lives=60, answers=False)
    watch = Supervision(interval=0.02, failures=3, first_backoff=0.05, max_backoff=0.05)
    async with NluClient(f"http://127.0.0.1:{server.free_port()}", "t") as client:
        stop = asyncio.Event()
        task = asyncio.create_task(supervise_local(settings, client, stop, watch))
        while len(stand_ins.children) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await task
    children = [child for _, child in stand_ins.children]
    assert all(child.poll() is not None for child in children)  # stopped and reaped
    assert children[0].returncode == -15  # asked to stop, not left hanging
