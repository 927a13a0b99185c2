"""The NLU client's HTTP (aiohttp) against a small HTTP server on 127.0.0.1 that decides every
byte: keep-alive, connections the server closed, chunked and close-delimited answers,
time limits, refused connections and answers cut short or not JSON."""

from __future__ import annotations

import asyncio
import socket
import time

from fake_rasa import DROP, HOLD, FakeRasa, Raw, json_answer, serving

from bot.nlu.client import NluClient

GREET = {"intent": {"name": "greet", "confidence": 0.9}, "entities": []}
GREET_BYTES = json_answer(GREET).body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"


async def parse_greetings(url: str, times: int = 3, **kwargs: float) -> list[str]:
    """How each parse was answered ("rasa" or "fallback")."""
    async with NluClient(url, "t", **kwargs) as client:
        return [(await client.parse("xin chào")).source for _ in range(times)]


async def test_connections_are_kept_alive_and_the_answer_is_read() -> None:
    fake = FakeRasa(GREET)
    async with serving(fake) as url:
        assert await parse_greetings(url) == ["rasa"] * 3
    assert fake.connections == 1
    assert fake.requests[0].target == "/model/parse?token=t"
    assert fake.requests[0].headers["content-type"] == "application/json"


async def test_a_name_for_this_machine_works_too() -> None:
    fake = FakeRasa(GREET)
    async with serving(fake) as url:
        assert await parse_greetings(url.replace("127.0.0.1", "localhost")) == ["rasa"] * 3
    assert fake.connections == 1


async def test_a_connection_the_server_closed_is_replaced() -> None:
    fake = FakeRasa(GREET)
    async with serving(fake) as url, NluClient(url, "t") as client:
        assert (await client.parse("alo")).source == "rasa"
        fake.drop_connections()
        await asyncio.sleep(0.05)
        assert (await client.parse("alo")).source == "rasa"
    assert fake.connections == 2
    assert len(fake.requests) == 2  # the closed connection was not tried


async def test_a_reused_connection_closed_unseen_is_retried_on_a_new_one() -> None:
    # The server reads the request, then closes without answering: once, as if its
    # keep-alive timer had run out just as the request came.
    fake = FakeRasa(GREET, DROP, GREET)
    async with serving(fake) as url:
        assert await parse_greetings(url, times=2) == ["rasa", "rasa"]
    assert fake.connections == 2
    assert len(fake.requests) == 3


async def test_chunked_and_close_delimited_answers() -> None:
    fake = FakeRasa(chunked(GREET_BYTES))
    async with serving(fake) as url:
        assert await parse_greetings(url) == ["rasa"] * 3
    assert fake.connections == 1

    closing = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n" + GREET_BYTES
    fake = FakeRasa(closing, close_after=True)
    async with serving(fake) as url:
        assert await parse_greetings(url) == ["rasa"] * 3
    assert fake.connections == 3


async def test_connection_close_is_honoured() -> None:
    fake = FakeRasa(json_answer(GREET, extra=(("connection", "close"),)))
    async with serving(fake) as url:
        assert await parse_greetings(url, times=2) == ["rasa", "rasa"]
    assert fake.connections == 2


async def test_an_unanswered_request_times_out_into_the_fallback() -> None:
    fake = FakeRasa(HOLD)
    async with serving(fake) as url:
        started = time.monotonic()
        assert await parse_greetings(url, times=1, timeout=0.2) == ["fallback"]
        # Two tries of 0.2 s each, then the fallback: not the default 5 s.
        assert time.monotonic() - started < 1.5
    assert len(fake.requests) == 2


async def test_an_answer_cut_short_falls_back() -> None:
    short = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + GREET_BYTES[:10]
    fake = FakeRasa(short, close_after=True)
    async with serving(fake) as url:
        assert await parse_greetings(url, times=1) == ["fallback"]
    assert len(fake.requests) == 2  # a transport error: tried once more


async def test_not_json_or_not_http_falls_back() -> None:
    for answer in (Raw(200, b'{"intent": '), b"SSH-2.0-OpenSSH_9.6\r\n\r\n"):
        fake = FakeRasa(answer, close_after=True)
        async with serving(fake) as url:
            assert await parse_greetings(url, times=1) == ["fallback"]


async def test_a_refused_connection_falls_back() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        started = time.monotonic()
        assert await parse_greetings(f"http://127.0.0.1:{port}", times=1) == ["fallback"]
        assert time.monotonic() - started < 1.0
