"""A lean HTTP/1.1 transport for httpx, for the NLU client's requests to a server on loopback.

httpx's default transport (httpcore) checks the socket of every pooled connection on each
request and goes through anyio and h11; that cost about 0.5 ms of CPU per parse, as much as
all of a turn's SQL. The Rasa server on 127.0.0.1 needs none of it: this keeps idle
keep-alive connections in a list and speaks just enough HTTP/1.1 (a body with Content-Length
or chunked, or up to the end when the server closes).

Idle connections are dropped after `keepalive_expiry` seconds or once the server has closed
them; a request that finds its reused connection closed before any answer is sent again on a
new one. Errors are httpx's (`ConnectError`, `ReadTimeout`, …), so the client handles them as
before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def serves(url: httpx.URL) -> bool:
    """Whether this transport is meant for `url`: plain HTTP to this machine."""
    return url.scheme == "http" and url.host in LOOPBACK_HOSTS


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self, now: float, expiry: float) -> bool:
        return not (
            self.reader.at_eof() or self.writer.is_closing() or now - self.idle_since > expiry
        )

    def close(self) -> None:
        self.writer.close()


class _Reused(Exception):
    """A reused connection turned out closed before any answer came."""


class LoopbackTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio streams (no TLS, no proxy, no HTTP/2)."""

    def __init__(self, keepalive_expiry: float = 5.0) -> None:
        self._idle: list[_Connection] = []
        self._expiry = keepalive_expiry

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        head = _request_head(request)
        body = await request.aread()
        while True:
            connection, reused = self._idle_connection(), True
            if connection is None:
                connection, reused = await _connect(request.url, timeouts.get("connect")), False
            try:
                response, keep = await _exchange(
                    connection, head + body, timeouts, reused, bodiless=request.method == "HEAD"
                )
            except _Reused:
                connection.close()
                continue
            except BaseException:
                connection.close()
                raise
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return response

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now, self._expiry):
                return connection
            connection.close()
        return None

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _connect(url: httpx.URL, timeout: float | None) -> _Connection:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(url.host, url.port or 80)
    except TimeoutError as error:
        raise httpx.ConnectTimeout(f"connecting to {url.host}:{url.port}") from error
    except OSError as error:
        raise httpx.ConnectError(str(error)) from error
    return _Connection(reader, writer)


async def _exchange(
    connection: _Connection,
    data: bytes,
    timeouts: dict[str, float | None],
    reused: bool,
    bodiless: bool,
) -> tuple[httpx.Response, bool]:
    """Send one request, read its answer; also whether the connection may be used again."""
    reader = connection.reader
    try:
        async with asyncio.timeout(timeouts.get("write")):
            connection.writer.write(data)
            await connection.writer.drain()
        async with asyncio.timeout(timeouts.get("read")):
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                if reused and not error.partial:
                    raise _Reused from error
                raise
            status_line, *header_lines = raw[:-4].split(b"\r\n")
            version, status_code, *_ = status_line.split(b" ", 2)
            status = int(status_code)
            headers = [tuple(line.split(b":", 1)) for line in header_lines]
            fields = {name.strip().lower(): value.strip() for name, value in headers}
            length = fields.get(b"content-length")
            chunked = fields.get(b"transfer-encoding", b"").lower() == b"chunked"
            if bodiless or status in (204, 304):
                content, length = b"", b"0"
            elif chunked:
                content = await _read_chunked(reader)
            elif length is not None:
                content = await reader.readexactly(int(length))
            else:
                content = await reader.read()
    except (ConnectionResetError, BrokenPipeError) as error:
        if reused:
            raise _Reused from error
        raise httpx.ReadError(str(error)) from error
    except TimeoutError as error:
        raise httpx.ReadTimeout("the server did not answer in time") from error
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as error:
        raise httpx.ReadError(f"the server broke off its answer: {error!r}") from error
    except ValueError as error:  # a status line or a length that is not a number
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {error}") from error
    keep = (
        version == b"HTTP/1.1"
        and fields.get(b"connection", b"").lower() != b"close"
        and (chunked or length is not None)
    )
    response = httpx.Response(
        status,
        headers=[(name.strip(), value.strip()) for name, value in headers],
        content=content,
        extensions={"http_version": version},
    )
    return response, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
