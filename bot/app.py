"""`civicbot run`: the database, the NLU, the conversation and every configured channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from starlette.routing import BaseRoute

from bot.channels.telegram import (
    application_from_settings,
    running_telegram,
    telegram_webhook_route,
    webhook_path,
)
from bot.channels.zalo import ZaloClient, ZaloOutput, run_polling, zalo_webhook_route
from bot.config import Settings
from bot.conversation.engine import Conversation
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.web.app import create_app
from storage.migrate import upgrade

logger = logging.getLogger(__name__)


async def serve(config: Settings) -> None:
    """Run until interrupted: web chat and webhooks on one ASGI server, polling beside it."""
    upgrade(config.database_url)
    with server.local_server(config) as (nlu_url, nlu_token):
        async with (
            NluClient.from_settings(nlu_url, nlu_token, config) as nlu,
            contextlib.AsyncExitStack() as stack,
        ):  # fmt: skip
            conversation = Conversation(nlu=nlu)
            routes: list[BaseRoute] = []
            telegram = application_from_settings(conversation, config)
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
            zalo = ZaloClient.from_settings(config)
            if zalo is not None:
                await stack.enter_async_context(zalo)
                output = ZaloOutput(zalo)
                routes.append(
                    zalo_webhook_route(
                        conversation, zalo, config.zalo_webhook_secret, output=output
                    )
                )
                await stack.enter_async_context(_polling_zalo(zalo, conversation, output))
            app = create_app(conversation, extra_routes=routes)
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
async def _polling_zalo(
    client: ZaloClient, conversation: Conversation, output: ZaloOutput
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_polling(client, conversation, stop, output=output))
    try:
        yield
    finally:
        stop.set()
        await task
