"""`civicbot run`: the database, the NLU, the conversation and every configured channel.

SIGTERM or SIGINT shuts it down in order, within `SHUTDOWN_SECONDS`: no new updates (the web
server stops accepting, polling stops), the requests and turns in flight finish (at most
`GRACE_SECONDS` for the web's), the outbox worker hands its claimed rows back, and the Rasa
child stops last; then the process exits 0. Past the limit it kills Rasa and exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator

import uvicorn

from bot import inbox
from bot.channels import registry
from bot.config import Settings
from bot.conversation.engine import Conversation
from bot.directory.store import ensure_directory
from bot.jobs import run_jobs
from bot.metrics import metrics_route
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.nlu.location import gazetteer
from bot.nlu.supervisor import Supervision, supervise_local, watch_remote
from bot.officials.desk import Desk
from bot.outbox.worker import OutboxWorker
from bot.web.app import create_app
from storage import queries
from storage.db import get_session
from storage.migrate import upgrade
from storage.models import utcnow

logger = logging.getLogger(__name__)

GRACE_SECONDS = 10
SHUTDOWN_SECONDS = 45.0


class _WebServer(uvicorn.Server):
    """Uvicorn without its own signal handlers: `serve` handles SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config: Settings, *, supervision: Supervision | None = None) -> None:
    """Run until SIGTERM or SIGINT: web chat and webhooks on one ASGI server, polling beside
    it, the NLU supervised (`supervision`: how; tests read it)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    supervision = supervision or Supervision()
    watchdog = threading.Timer(SHUTDOWN_SECONDS, _overdue, (supervision,))
    watchdog.daemon = True

    def on_signal(signum: signal.Signals) -> None:
        logger.warning("%s: shutting down.", signum.name)
        if not stop.is_set():
            watchdog.start()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    try:
        upgrade(config.database_url)
        with get_session() as session:
            ensure_directory(session=session)
            released = queries.release_dead_claims(session=session)
        if released:  # this machine's process died mid-turn: its chats are free at once
            logger.warning("Released %d chat(s) held by a process that died.", released)
        async with _supervised_nlu(config, supervision) as nlu:
            if not stop.is_set():
                await _serve(config, nlu, stop)
    finally:
        watchdog.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    logger.warning("CivicBot stopped.")


def warm_up() -> None:
    """Build the place names' index on a thread at start-up: built by the first message
    that reads a place, it held the event loop (every chat, the web server) 3 to 7 s."""
    gazetteer().load()


def _overdue(supervision: Supervision) -> None:
    """The shutdown took longer than `SHUTDOWN_SECONDS`: kill Rasa and exit 1 at once."""
    logger.error("Shutdown took over %.0f s; exiting now.", SHUTDOWN_SECONDS)
    running = supervision.running
    if running is not None and running.process.poll() is None:
        running.process.kill()
    os._exit(1)


@contextlib.asynccontextmanager
async def _supervised_nlu(config: Settings, supervision: Supervision) -> AsyncIterator[NluClient]:
    """The NLU client, with the local Rasa child supervised (or the configured servers'
    health watched) beside it; the child stops when the block ends."""
    url = config.nlu_url or f"http://127.0.0.1:{server.free_port()}"
    stop = asyncio.Event()
    async with NluClient.from_settings(url, config.nlu_token, config) as nlu:
        if config.nlu_url:
            watcher = watch_remote(nlu, config.nlu_token, stop, supervision)
        else:
            watcher = supervise_local(config, nlu, stop, supervision)
        task = asyncio.create_task(watcher)
        try:
            yield nlu
        finally:
            stop.set()
            await task


async def _serve(config: Settings, nlu: NluClient, stop: asyncio.Event) -> None:
    """The conversation, the channels and the web server, until `stop` is set."""
    async with contextlib.AsyncExitStack() as stack:
        conversation = Conversation(nlu=nlu)
        desk = Desk(conversation)  # officials' messages first, citizens' behind
        channels = registry.configured(config, desk)
        routes = [route for channel in channels for route in channel.routes()]
        routes.append(metrics_route(config.metrics_token))
        for channel in channels:
            await stack.enter_async_context(channel.running())
        worker = OutboxWorker({channel.name: channel.output for channel in channels})
        conversation.outbox = worker  # turns send through it: one 429 pause per channel
        replay_steps = registry.before_replay(channels)
        await stack.enter_async_context(_background(worker, desk, config, replay_steps))
        app = create_app(desk, extra_routes=routes, nlu=nlu)
        names = ", ".join(channel.name for channel in channels)
        logger.warning("CivicBot at http://%s:%s (%s)", config.http_host, config.http_port, names)
        web = _WebServer(
            uvicorn.Config(
                app, host=config.http_host, port=config.http_port, log_level="warning",
                log_config=None,
                timeout_graceful_shutdown=GRACE_SECONDS,
            )
        )  # fmt: skip
        stopping = asyncio.create_task(_exit_when(stop, web))
        try:
            await web.serve()
        finally:
            stopping.cancel()


async def _exit_when(stop: asyncio.Event, web: uvicorn.Server) -> None:
    await stop.wait()
    web.should_exit = True  # no new connections; requests in flight get GRACE_SECONDS


@contextlib.asynccontextmanager
async def _background(
    worker: OutboxWorker, desk: Desk, config: Settings, replay_steps: inbox.BeforeReplay | None
) -> AsyncIterator[None]:
    """The outbox worker and the inbox (what a crash left stored and unhandled, then the
    sweep) beside the server, and the periodic jobs when this process leads
    (CIVICBOT_RUN_JOBS; bot/jobs.py)."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(_replay_then_sweep(desk, stop, replay_steps)),
    ]
    if config.run_jobs:
        tasks.append(asyncio.create_task(run_jobs(stop, config)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _replay_then_sweep(
    desk: Desk, stop: asyncio.Event, replay_steps: inbox.BeforeReplay | None
) -> None:
    """What a crash left in the inbox, at once (beside new messages: a turn handles its
    chat's older messages first), then the sweep."""
    try:
        replayed = await inbox.replay(desk, before=utcnow(), before_turn=replay_steps)
    except Exception:
        logger.exception("Replaying the inbox failed; the sweep tries again.")
    else:
        if replayed:
            logger.warning("Replayed %d message(s) left unhandled in the inbox.", replayed)
    await inbox.sweep(desk, stop, before_turn=replay_steps)
