"""The aiohttp backend of python-telegram-bot (bot/channels/bot_api_request.py): bodies as the
fake Bot API server reads them, and network failures as the errors PTB expects."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fake_telegram import TOKEN, FakeTelegram
from telegram import Bot, InputFile
from telegram.error import NetworkError, TimedOut

from bot.channels.bot_api_request import AiohttpRequest


async def _silent_server() -> tuple[asyncio.Server, int]:
    """A server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def initialized() -> AsyncIterator[AiohttpRequest]:
    backend = AiohttpRequest(connection_limit=2, connect_timeout=1.0, read_timeout=0.3)
    await backend.initialize()
    try:
        yield backend
    finally:
        await backend.shutdown()


async def test_calls_reach_the_fake_form_encoded_and_files_as_multipart() -> None:
    with FakeTelegram() as fake:
        bot = Bot(TOKEN, base_url=fake.base_url, request=AiohttpRequest())
        async with bot:
            sent = await bot.send_message(42, "Xin chào anh/chị", disable_notification=True)
            photo = await bot.send_photo(42, InputFile(b"\x89PNG fake", filename="a.png"))
    text_call, photo_call = fake.calls_to("sendMessage")[-1], fake.calls_to("sendPhoto")[-1]
    assert sent.text == "Xin chào anh/chị" and sent.chat.id == 42
    assert text_call.encoding == "form" and text_call.params["disable_notification"] is True
    assert photo_call.encoding == "multipart" and photo.photo
    assert photo_call.params["photo"].data == b"\x89PNG fake"


async def test_an_unanswered_request_times_out() -> None:
    server, port = await _silent_server()
    async with server, initialized() as request_backend:
        with pytest.raises(TimedOut):
            await request_backend.do_request(f"http://127.0.0.1:{port}/x", "POST")


async def test_a_refused_connection_is_a_network_error() -> None:
    async with initialized() as request_backend:
        with pytest.raises(NetworkError, match=r"aiohttp\.ClientConnectorError"):
            await request_backend.do_request(f"http://127.0.0.1:{_closed_port()}/x", "POST")


async def test_more_requests_than_connections_wait_their_turn() -> None:
    with FakeTelegram() as fake:
        bot = Bot(TOKEN, base_url=fake.base_url, request=AiohttpRequest(connection_limit=2))
        async with bot:
            sent = await asyncio.gather(*(bot.send_message(7, f"tin {i}") for i in range(30)))
    assert sorted(m.text for m in sent) == sorted(f"tin {i}" for i in range(30))


async def test_a_request_before_initialize_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:9/x", "POST")
