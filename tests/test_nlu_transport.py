"""The NLU client's loopback transport, against a small HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from bot.nlu.client import NluClient
from bot.nlu.transport import LoopbackTransport, serves

Answer = Callable[[bytes], bytes]  # request head -> raw answer


def json_answer(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


class Server:
    """Answers each request with `answer(head)`; counts connections; may close after each."""

    def __init__(self, answer: Answer, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.heads: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.heads.append(head)
                answer = self.answer(head)
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def drop_connections(self) -> None:
        for writer in self.writers:
            writer.close()


Serve = Callable[..., Awaitable[tuple[Server, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer = lambda _: json_answer(), **kwargs: bool) -> tuple[Server, str]:
        server = Server(answer, **kwargs)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(listening)
        port = listening.sockets[0].getsockname()[1]
        return server, f"http://127.0.0.1:{port}"

    yield start
    for listening in servers:
        listening.close()


async def test_only_plain_http_to_this_machine() -> None:
    assert serves(httpx.URL("http://127.0.0.1:5005/model/parse"))
    assert serves(httpx.URL("http://localhost:5005"))
    assert not serves(httpx.URL("https://127.0.0.1:5005"))
    assert not serves(httpx.URL("http://rasa.internal:5005"))


async def test_connections_are_kept_alive_and_the_answer_is_read(serve: Serve) -> None:
    server, url = await serve()
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        for _ in range(3):
            response = await client.post("/model/parse", params={"token": "t"}, json={"text": "a"})
            assert response.status_code == 200
            assert response.json() == {"ok": True}
    assert server.connections == 1
    assert server.heads[0].startswith(b"POST /model/parse?token=t HTTP/1.1\r\n")
    assert b"content-type: application/json" in server.heads[0].lower()


async def test_a_connection_the_server_closed_is_replaced(serve: Serve) -> None:
    server, url = await serve()
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        assert (await client.get("/")).status_code == 200
        server.drop_connections()
        await asyncio.sleep(0.05)
        assert (await client.get("/")).status_code == 200
    assert server.connections == 2


async def test_a_reused_connection_closed_unseen_is_retried_on_a_new_one(serve: Serve) -> None:
    # The server reads the request, then closes without answering: once, as if its
    # keep-alive timer had run out just as the request came.
    answers = iter([json_answer(), b"", json_answer()])

    def answer(_: bytes) -> bytes:
        value = next(answers)
        if not value:
            server.drop_connections()
        return value

    server, url = await serve(answer)
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/")).status_code == 200
    assert server.connections == 2


async def test_chunked_and_close_delimited_answers(serve: Serve) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
    )
    server, url = await serve(lambda _: chunked)
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        assert (await client.get("/")).text == "Wikipedia"
        assert (await client.get("/")).text == "Wikipedia"
    assert server.connections == 1

    closing = b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"
    server, url = await serve(lambda _: closing, close_after=True)
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        assert (await client.get("/")).text == "all of it"
        assert (await client.get("/")).text == "all of it"
    assert server.connections == 2


async def test_connection_close_is_honoured(serve: Serve) -> None:
    server, url = await serve(lambda _: json_answer(extra=b"connection: close\r\n"))
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        await client.get("/")
        await client.get("/")
    assert server.connections == 2


async def test_errors_are_httpx_errors(serve: Serve) -> None:
    _, url = await serve(lambda _: b"")  # never answers
    async with httpx.AsyncClient(
        base_url=url, transport=LoopbackTransport(), timeout=0.2
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/")
    _, url = await serve(
        lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", close_after=True
    )
    async with httpx.AsyncClient(base_url=url, transport=LoopbackTransport()) as client:
        with pytest.raises(httpx.ReadError):
            await client.get("/")
    async with httpx.AsyncClient(
        base_url="http://127.0.0.1:9", transport=LoopbackTransport()
    ) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")


async def test_the_nlu_client_uses_it_for_a_local_server(serve: Serve) -> None:
    rasa = json_answer(b'{"intent": {"name": "greet", "confidence": 0.9}, "entities": []}')
    server, url = await serve(lambda _: rasa)
    async with NluClient(url, "t") as client:
        for _ in range(3):
            result = await client.parse("xin chào")
            assert (result.intent, result.source) == ("greet", "rasa")
    assert server.connections == 1
