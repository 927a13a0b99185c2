"""Keeping the NLU up: a supervised local Rasa child, or health checks of remote servers.

`supervise_local` starts Rasa, watches it (the child's exit, and `/status` every `interval`),
and when it exits or stops answering `failures` times in a row, reaps it and starts it again
after a backoff (doubling from `first_backoff` up to `max_backoff`, back to the first once it
has run for `stable` seconds). `watch_remote` checks configured servers the same way. Both mark
servers up or down in the `NluClient`, which answers with the keyword fallback meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import httpx

from bot.config import Settings
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.nlu.exceptions import NluServerError

logger = logging.getLogger(__name__)


@dataclass
class Supervision:
    """How the NLU is watched, and what happened so far (read by tests and the logs)."""

    interval: float = 1.0
    failures: int = 3
    first_backoff: float = 1.0
    max_backoff: float = 60.0
    stable: float = 120.0
    check_timeout: float = 2.0
    starts: int = 0
    running: server.RunningServer | None = None
    waits: list[float] = field(default_factory=list)  # each backoff, in order


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def supervise_local(
    config: Settings, client: NluClient, stop: asyncio.Event, watch: Supervision
) -> None:
    """Run the local Rasa server until `stop` is set, then stop it; the client's only server
    is marked up while Rasa answers."""
    [backend] = client.backends
    backend.up = False  # until Rasa answers
    port = httpx.URL(backend.url).port
    backoff = watch.first_backoff
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                watch.running = await _start(config, port, stop)
            except NluServerError as error:
                logger.error("Rasa did not start (%s); trying again in %.0f s.", error, backoff)
            else:
                if watch.running is None:  # stopped while starting
                    return
                watch.starts += 1
                client.set_up(backend.url, True)
                reason = await _watch(watch.running, stop, watch)
                client.set_up(backend.url, False)
                await asyncio.to_thread(server.stop, watch.running)  # reaped, whatever state
                if stop.is_set():
                    return
                logger.error("Rasa %s; restarting it in %.0f s.", reason, backoff)
            if time.monotonic() - started > watch.stable:
                backoff = watch.first_backoff
            watch.waits.append(backoff)
            await _sleep_unless(stop, backoff)
            backoff = min(backoff * 2, watch.max_backoff)
    finally:
        client.set_up(backend.url, False)
        if watch.running is not None:
            await asyncio.shield(asyncio.to_thread(server.stop, watch.running))


async def _start(
    config: Settings, port: int | None, stop: asyncio.Event
) -> server.RunningServer | None:
    """Rasa started on `port`, or None when `stop` came first (then it is stopped)."""
    starting = asyncio.ensure_future(server.start_async(config, port=port))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        return starting.result()
    starting.cancel()  # start_async stops the child it spawned
    with contextlib.suppress(asyncio.CancelledError, NluServerError):
        await starting
    return None


async def _watch(running: server.RunningServer, stop: asyncio.Event, watch: Supervision) -> str:
    """Wait until Rasa exits, stops answering or `stop` is set; say which."""
    failed = 0
    async with httpx.AsyncClient(timeout=watch.check_timeout) as http:
        while not stop.is_set():
            await _sleep_unless(stop, watch.interval)
            code = running.process.poll()
            if code is not None:
                return f"exited with code {code}"
            if stop.is_set():
                break
            answer = await server.status(http, running.url, running.token)
            failed = 0 if answer == "ready" else failed + 1
            if failed >= watch.failures:
                return f"did not answer {failed} health checks"
    return "stopped"


async def watch_remote(
    client: NluClient, token: str, stop: asyncio.Event, watch: Supervision
) -> None:
    """Check every configured server's `/status`; mark each up or down in the client."""
    failed = {backend.url: 0 for backend in client.backends}
    async with httpx.AsyncClient(timeout=watch.check_timeout) as http:
        while not stop.is_set():
            for backend in client.backends:
                answer = await server.status(http, backend.url, token)
                failed[backend.url] = 0 if answer == "ready" else failed[backend.url] + 1
                if answer == "ready" or failed[backend.url] >= watch.failures:
                    client.set_up(backend.url, answer == "ready")
            await _sleep_unless(stop, watch.interval)
