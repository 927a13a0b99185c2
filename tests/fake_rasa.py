"""A fake Rasa server on loopback for the NLU client's tests: a small HTTP/1.1 server on
asyncio streams, so that a test decides every byte of the answer (chunked, close-delimited,
cut short), or none (the connection dropped, or held without an answer).

`FakeRasa(*answers)` answers each request with the next answer (the last one repeats):

- a dict: 200 with it as JSON;
- `Raw(status, body, content_type)`: that status and body;
- bytes: written as they are (a whole HTTP answer, or part of one);
- `DROP`: the connection is closed without an answer;
- `HOLD`: no answer at all (the client's time limit ends it);
- a callable: called with the `Request`, returns one of the above.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Silence(Enum):
    DROP = "drop"
    HOLD = "hold"


DROP = Silence.DROP
HOLD = Silence.HOLD


@dataclass(frozen=True)
class Request:
    """A request as the fake read it."""

    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.target).query))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Raw:
    """An answer with this status and body."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} Fake", f"content-type: {self.content_type}"]
        head += [f"{name}: {value}" for name, value in self.headers]
        head.append(f"content-length: {len(self.body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


Plain = dict[str, Any] | Raw | bytes | Silence
Answer = Plain | Callable[[Request], Plain]


def json_answer(body: dict[str, Any] | list[Any], extra: tuple[tuple[str, str], ...] = ()) -> Raw:
    return Raw(200, json.dumps(body).encode(), headers=extra)


class FakeRasa:
    """The answers to give, and what came: requests, connections (see the module).
    `close_after`: close each connection after one answer (HTTP/1.0 style)."""

    def __init__(self, *answers: Answer, close_after: bool = False) -> None:
        self.answers = list(answers)
        self.close_after = close_after
        self.requests: list[Request] = []
        self.connections = 0  # opened so far
        self.open_connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def texts(self) -> list[str]:
        return [request.json()["text"] for request in self.requests]

    def drop_connections(self) -> None:
        """Close every connection now, as a server whose keep-alive timer ran out."""
        for writer in self._writers:
            writer.close()

    def _next(self, request: Request) -> Plain:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self._writers.append(writer)
        try:
            while await self._answer_one(reader, writer) and not self.close_after:
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            self.open_connections -= 1
            writer.close()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; whether the connection stays open."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in lines)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body)
        self.requests.append(request)
        answer = self._next(request)
        if answer is DROP:
            return False
        if answer is HOLD:
            await reader.read()  # until the client gives up
            return False
        if isinstance(answer, dict):
            answer = json_answer(answer)
        writer.write(answer.encode() if isinstance(answer, Raw) else answer)
        await writer.drain()
        return True


@asynccontextmanager
async def serving(fake: FakeRasa) -> AsyncIterator[str]:
    """`fake` listening on 127.0.0.1 for the block; its base URL."""
    listening = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listening.close()
        fake.drop_connections()
