"""`civicbot run`: the database, the NLU, the conversation and every configured channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from starlette.routing import BaseRoute

from bot.channels.telegram import (
    TelegramOutput,
    application_from_settings,
    running_telegram,
    telegram_webhook_route,
    webhook_path,
)
from bot.channels.web import WebOutboxOutput
from bot.channels.zalo import ZaloClient, ZaloOutput, run_polling, zalo_webhook_route
from bot.config import Settings
from bot.conversation.engine import Conversation
from bot.conversation.messages import ConversationHandler, OutputChannel
from bot.delivery import OutboxWorker
from bot.digest.schedule import enqueue_weekly_digests
from bot.directory.store import ensure_directory
from bot.intake import calendar
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.officials.desk import Desk
from bot.officials.escalation import run_escalations
from bot.web.app import create_app
from storage.db import get_session
from storage.migrate import upgrade
from storage.models import Channel, utcnow

logger = logging.getLogger(__name__)


async def serve(config: Settings) -> None:
    """Run until interrupted: web chat and webhooks on one ASGI server, polling beside it."""
    upgrade(config.database_url)
    with get_session() as session:
        ensure_directory(session=session)
    with server.local_server(config) as (nlu_url, nlu_token):
        async with (
            NluClient.from_settings(nlu_url, nlu_token, config) as nlu,
            contextlib.AsyncExitStack() as stack,
        ):  # fmt: skip
            conversation = Conversation(nlu=nlu)
            desk = Desk(conversation)  # officials' messages first, citizens' behind
            outputs: dict[Channel, OutputChannel] = {Channel.web: WebOutboxOutput()}
            routes: list[BaseRoute] = []
            telegram = application_from_settings(desk, config)
            if telegram is not None:
                if config.telegram_webhook_url:
                    routes.append(
                        telegram_webhook_route(
                            telegram, config.telegram_webhook_secret,
                            webhook_path(config.telegram_webhook_url),
                        )
                    )  # fmt: skip
                await stack.enter_async_context(
                    running_telegram(
                        telegram, webhook_url=config.telegram_webhook_url,
                        secret=config.telegram_webhook_secret,
                    )
                )  # fmt: skip
                outputs[Channel.telegram] = TelegramOutput(telegram.bot, max_retries=0)
            zalo = ZaloClient.from_settings(config)
            if zalo is not None:
                await stack.enter_async_context(zalo)
                output = ZaloOutput(zalo)
                outputs[Channel.zalo] = output
                routes.append(
                    zalo_webhook_route(desk, zalo, config.zalo_webhook_secret, output=output)
                )
                await stack.enter_async_context(_polling_zalo(zalo, desk, output))
            await stack.enter_async_context(_background(outputs))
            app = create_app(desk, extra_routes=routes)
            logger.warning(
                "CivicBot at http://%s:%s (Telegram %s, Zalo %s)", config.http_host,
                config.http_port, "on" if telegram else "off", "on" if zalo else "off",
            )  # fmt: skip
            web = uvicorn.Server(
                uvicorn.Config(
                    app, host=config.http_host, port=config.http_port, log_level="warning"
                )
            )
            await web.serve()


@contextlib.asynccontextmanager
async def _background(outputs: dict[Channel, OutputChannel]) -> AsyncIterator[None]:
    """The outbox worker, the escalation job and the weekly digests, beside the server."""
    stop = asyncio.Event()
    worker = OutboxWorker(outputs)
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(run_escalations(stop, calendar=calendar())),
        asyncio.create_task(_weekly_digests(stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _weekly_digests(stop: asyncio.Event, interval: float = 60.0) -> None:
    """Every minute, queue the digests that are due (once per unit and week: dedupe keys)."""
    while not stop.is_set():
        try:  # a thread: SQL and charts for every unit on Mondays, not on the event loop
            await asyncio.to_thread(_queue_due_digests)
        except Exception:
            logger.exception("Queueing the weekly digests failed; trying again in %s s.", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def _queue_due_digests() -> None:
    with get_session() as session:
        enqueue_weekly_digests(session=session, now=utcnow())


@contextlib.asynccontextmanager
async def _polling_zalo(
    client: ZaloClient, conversation: ConversationHandler, output: ZaloOutput
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_polling(client, conversation, stop, output=output))
    try:
        yield
    finally:
        stop.set()
        await task
