"""The app's client of the Rasa NLU servers: one long-lived aiohttp session each, a retry, a
fallback.

Several servers (`CIVICBOT_NLU_URL` with commas) are used in turn. A health watcher
(`bot.nlu.supervisor`) marks them up or down; the keyword fallback answers at once, with no
request, while none is up.

aiohttp rather than httpx: with its C HTTP parser a parse costs the app 0.6 ms of CPU against
httpx's 1.4 ms (`scripts/bench_nlu_client.py`, docs/performance.md), and the NLU is on the
path of every citizen message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from yarl import URL

from bot.config import Settings
from bot.measures import NLU_FALLBACKS, NLU_SECONDS
from bot.nlu import fallback
from bot.nlu.exceptions import NluResponseError
from bot.nlu.location import Location, gazetteer
from bot.nlu.result import (
    ASPECTS,
    CATEGORIES,
    INTENTS,
    PROCEDURES,
    LocationResult,
    NluResult,
    RankedIntent,
)

logger = logging.getLogger(__name__)

# Control characters other than tab and newline become spaces (one for one, so that
# offsets still point into the text as the citizen sent it).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_RANKING_SIZE = 5
_JOINER = re.compile(r"[\s.,;:/\-–]*")
# Rasa parses one message at a time; a few requests in flight keep it busy. More would only
# wait in its socket.
MAX_IN_FLIGHT = 8
# Idle connections are closed after this; a server that closes one first (Rasa's Sanic) is
# seen by aiohttp, and a request that meets one closed at that very moment is retried.
KEEPALIVE_SECONDS = 5.0
# A request that failed before any answer: worth trying once more (another server, or a new
# connection). TimeoutError covers connecting, reading and waiting for a free slot.
TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


class _NoServerUp(Exception):
    """Every server is marked down: the fallback answers without trying them."""


class _ServerError(Exception):
    """A 5xx answer: the server is there but failed; tried once more like a transport error."""


# What makes a parse fall back to keywords: the above after the retry, a 5xx after the retry,
# a 4xx (ClientResponseError), an answer that is not JSON (ValueError) or not a parse.
_ANSWERED_BADLY = (aiohttp.ClientError, TimeoutError, _ServerError, NluResponseError, ValueError)


class _Backend:
    """One Rasa server: its parse URL, its own connections, and whether it is up."""

    def __init__(
        self, url: str, token: str, open_session: Callable[[], aiohttp.ClientSession]
    ) -> None:
        self.url = url
        self.token = token
        self.up = True
        # Built once: aiohttp would parse and encode the URL and its query on every request.
        self.parse_url = URL(f"{url}/model/parse").with_query(token=token)
        self._open_session = open_session
        self._session: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        """The server's session, opened at its first request (aiohttp's sessions belong to
        the event loop running when they are made; the client may be made before one runs)."""
        if self._session is None or self._session.closed:
            self._session = self._open_session()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class NluClient:
    """Parses messages with the Rasa servers in turn; falls back to keywords when they are
    down. `base_url`: one URL, or several separated by commas."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 5.0,
        max_chars: int = 1000,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._max_chars = max_chars
        # Requests wait here for a slot, under the same time limit as the request itself.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._slot_timeout = timeout
        urls = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()]
        if not urls:
            raise ValueError("No NLU server URL given.")

        def open_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=max_in_flight, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 2.0)),
                cookie_jar=aiohttp.DummyCookieJar(),  # Rasa sets no cookies
            )

        self.backends = [_Backend(url, token, open_session) for url in urls]
        self._turn = 0

    @classmethod
    def from_settings(cls, base_url: str, token: str, config: Settings) -> NluClient:
        """A client with the configured timeout and NLU text limit."""
        return cls(
            base_url, token, timeout=config.nlu_timeout_seconds, max_chars=config.nlu_max_chars
        )

    async def __aenter__(self) -> NluClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the sessions and their connections."""
        for backend in self.backends:
            await backend.aclose()

    @property
    def mode(self) -> str:
        """What understands messages now: "rasa" (a server is up) or "fallback"."""
        return "rasa" if any(backend.up for backend in self.backends) else "fallback"

    def set_up(self, url: str, up: bool) -> None:
        """Mark the server at `url` up or down (the health watcher's verdict)."""
        for backend in self.backends:
            if backend.url == url.rstrip("/") and backend.up != up:
                backend.up = up
                logger.warning("NLU server %s is %s; NLU: %s.", url, "up" if up else "down",
                               self.mode)  # fmt: skip

    async def parse(self, text: str) -> NluResult:
        """Understand one message. Never raises for bad input or a server that is down."""
        cleaned = _CONTROL.sub(" ", text)
        lead = len(cleaned) - len(cleaned.lstrip())
        # Rasa strips the text it gets; send it stripped and shift offsets back by `lead`.
        sent = cleaned[lead : lead + self._max_chars].rstrip()
        with NLU_SECONDS.time():
            return await self._parse(text, sent, lead)

    async def _parse(self, text: str, sent: str, lead: int) -> NluResult:
        try:
            raw = await self._post_parse(sent)
            return _from_rasa(text, raw, lead)
        except _NoServerUp:  # known to be down: no warning for each message
            return self._fallback(text, lead)
        except _ANSWERED_BADLY as error:
            logger.warning(
                "NLU server unavailable (%s); using the keyword fallback.", error or repr(error)
            )
            return self._fallback(text, lead)

    def _fallback(self, text: str, lead: int) -> NluResult:
        """The keyword classifier's answer, with the place found on the map."""
        NLU_FALLBACKS.inc()
        result = fallback.classify(text)
        found = gazetteer().find(text[: lead + self._max_chars])
        if found:
            result.location = _location_result(found[0][2])
        return result

    def _in_turn(self) -> list[_Backend]:
        """The servers that are up, starting with the next one's turn."""
        backends = self.backends
        if len(backends) == 1:
            return backends if backends[0].up else []
        self._turn = (self._turn + 1) % len(backends)
        turned = backends[self._turn :] + backends[: self._turn]
        return [backend for backend in turned if backend.up]

    async def _post_parse(self, text: str) -> dict[str, Any]:
        """POST /model/parse, retried once (on the next server that is up, if there is
        another) on a transport error or a 5xx answer."""
        backends = self._in_turn()
        if not backends:
            raise _NoServerUp("no NLU server is up")
        for attempt in (1, 2):
            backend = backends[(attempt - 1) % len(backends)]
            try:
                data = await self._post(backend, text)
            except (*TRANSPORT_ERRORS, _ServerError):
                if attempt == 2:
                    raise
                continue
            if not isinstance(data, dict) or "intent" not in data:
                raise NluResponseError(f"unexpected parse answer: {str(data)[:200]}")
            return data
        raise NluResponseError("unreachable")  # pragma: no cover

    async def _post(self, backend: _Backend, text: str) -> Any:
        """One request and its JSON answer, once one of the `max_in_flight` slots is free;
        waiting for a slot counts towards the time limit (a server that hangs must not hold
        the queue)."""
        async with asyncio.timeout(self._slot_timeout):
            await self._in_flight.acquire()
        try:
            async with backend.http.post(backend.parse_url, json={"text": text}) as response:
                if response.status >= 500:
                    raise _ServerError(f"{response.status} {response.reason}")
                response.raise_for_status()
                # Whatever its content type says (a proxy's error page is not JSON).
                return json.loads(await response.read())
        finally:
            self._in_flight.release()


def _from_rasa(original: str, raw: dict[str, Any], offset: int) -> NluResult:
    """Map Rasa's parse answer to the PRODUCT.md §4 shape."""
    intent_info = raw.get("intent") or {}
    intent = intent_info.get("name") or "out_of_scope"
    if intent not in INTENTS:
        intent = "out_of_scope"
    ranking = [
        RankedIntent(intent=item["name"], confidence=float(item["confidence"]))
        for item in raw.get("intent_ranking", [])[:_RANKING_SIZE]
        if item.get("name") in INTENTS
    ]
    entities: list[dict[str, Any]] = raw.get("entities") or []

    def first_value(kind: str, allowed: tuple[str, ...] | None = None) -> str | None:
        for entity in entities:
            value = entity.get("value")
            if entity.get("entity") == kind and (allowed is None or value in allowed):
                return str(value)
        return None

    return NluResult(
        text=original,
        intent=intent,
        confidence=float(intent_info.get("confidence") or 0.0),
        category=_label(raw, "category", CATEGORIES) if intent == "report_problem" else None,
        procedure=_label(raw, "procedure", PROCEDURES) if intent == "ask_procedure" else None,
        aspect=first_value("aspect", ASPECTS) if intent == "ask_procedure" else None,
        location=_location(original, entities, offset),
        ticket_code=first_value("ticket_code"),
        phone=first_value("phone"),
        source="rasa",
        ranking=ranking,
    )


def _label(raw: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    name = (raw.get(key) or {}).get("name")
    return name if name in allowed else None


def _location(original: str, entities: list[dict[str, Any]], offset: int) -> LocationResult | None:
    """The place named: the model's spans, resolved on the map; else any map name in the text.

    The model splits a place at punctuation ("p. Bạch Đằng"), so spans separated only by
    spaces and punctuation are joined first.
    """
    places = gazetteer()
    spans = _joined_spans(
        sorted(
            (int(e["start"]) + offset, int(e["end"]) + offset)
            for e in entities
            if e.get("entity") == "location"
        ),
        original,
    )
    for start, end in spans:
        span = original[start:end]
        location = places.resolve(span)
        if location.ward or location.candidates:
            return _location_result(location)
        inside = places.find(span)
        if inside:
            return _location_result(inside[0][2]).model_copy(update={"text": span})
    # A street the map does not know: a ward named elsewhere in the text still places it.
    found = places.find(original)
    if found:
        result = _location_result(found[0][2])
        return (
            result.model_copy(update={"text": original[spans[0][0] : spans[0][1]]})
            if spans
            else result
        )
    return LocationResult(text=original[spans[0][0] : spans[0][1]]) if spans else None


def _joined_spans(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and _JOINER.fullmatch(text[joined[-1][1] : start]):
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return joined


def _location_result(location: Location) -> LocationResult:
    return LocationResult.model_validate(location.as_json())
