"""python-telegram-bot's networking backend on aiohttp.

PTB sends Bot API calls through a `BaseRequest`; its own (`HTTPXRequest`) costs 1.5–2.4 ms
of CPU per sendMessage on loopback with 16 in flight, mostly in httpcore's pool, which checks
the socket of every idle pooled connection on each request. This one costs about 0.2 ms
(`scripts/bench_bot_api.py`), which matters when the bot answers many chats at once.

Behaviour kept from PTB's backend: form-encoded bodies, multipart when files are sent, the
`User-Agent`, and errors as PTB expects them (`TimedOut`, `NetworkError`). Requests beyond
`connection_limit` wait for a free connection without a time limit (the pool timeout is not
applied), so a burst of replies is delayed, never dropped. aiohttp has no write timeout: a
request with files is bounded as a whole by its write and read timeouts together.
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# A call's timeout: a number, None (no limit), or BaseRequest.DEFAULT_NONE (not given). PTB
# types it with a private alias; `object` is wider, which an override may be.
Timeout = float | None | object


class AiohttpRequest(BaseRequest):
    """Bot API requests over one aiohttp session, at most `connection_limit` connections."""

    __slots__ = (
        "_connect_timeout",
        "_connection_limit",
        "_media_write_timeout",
        "_read_timeout",
        "_session",
    )

    def __init__(
        self,
        *,
        connection_limit: int = 16,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._connection_limit = connection_limit
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The read timeout used when a call gives none."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (in the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                cookie_jar=aiohttp.DummyCookieJar(),  # the Bot API sets no cookies
            )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        write_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        connect_timeout: Timeout = BaseRequest.DEFAULT_NONE,
        pool_timeout: Timeout = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; its status code and body."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        body: aiohttp.FormData | bytes | None = None
        headers = {"User-Agent": self.USER_AGENT}
        if files and request_data is not None:
            body = aiohttp.FormData(request_data.json_parameters)
            for name, (filename, content, mimetype) in files.items():
                body.add_field(name, content, filename=filename, content_type=mimetype)
        elif request_data is not None:
            # Encoded here: aiohttp's own handling of a dict builds a FormData for each call.
            body = request_data.url_encoded_parameters().encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        read = _given(read_timeout, self._read_timeout)
        total = None
        if files:  # an upload: bounded as a whole (aiohttp has no write timeout)
            write = _given(write_timeout, self._media_write_timeout)
            total = None if write is None or read is None else write + read
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None,  # waiting for a pooled connection: no limit (see the module)
            sock_connect=_given(connect_timeout, self._connect_timeout),
            sock_read=read,
        )
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except TimeoutError as error:  # aiohttp's timeouts are TimeoutErrors too
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


def _given(value: Timeout, default: float | None) -> float | None:
    """A call's timeout, or the default when the call gave none (PTB's documented test:
    ``parameter is BaseRequest.DEFAULT_NONE``)."""
    if value is BaseRequest.DEFAULT_NONE:
        return default
    if value is None or isinstance(value, int | float):
        return value
    raise TypeError(f"a timeout is a number or None, not {value!r}")
