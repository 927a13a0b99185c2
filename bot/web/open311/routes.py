"""The API's routes: each resource in ``.json`` or ``.xml``, errors in the same format."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from bot.config import settings
from bot.web.open311.answers import (
    discovery_answer,
    file_request,
    requests_answer,
    services_answer,
)
from bot.web.open311.formats import (
    FORMATS,
    Answer,
    Format,
    Open311Error,
    PostedRequests,
    ServiceDefinition,
    ServiceRequests,
    render,
)
from bot.web.open311.queries import RequestQuery, find_tickets
from bot.web.open311.reading import (
    API_KEY_HEADER,
    api_key_actor,
    parse_new_request,
    parse_request_query,
    read_post_params,
)
from bot.web.open311.services import SERVICE_BY_CODE
from storage import queries
from storage.db import get_session
from storage.models import utcnow

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _HideApiKeys(logging.Filter):
    """Masks ``api_key=…`` in log records (uvicorn's access log prints the query string)."""

    _KEY = re.compile(r"(api_key=)[^&\s\"']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._KEY.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self._KEY.sub(r"\1***", record.msg)
        return True


def hide_api_keys_in_logs() -> None:
    """Install the filter on uvicorn's access logger, once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _HideApiKeys) for f in access.filters):
        access.addFilter(_HideApiKeys())


# --- Routes ---------------------------------------------------------------------------------


def _format(request: Request) -> Format:
    """The format a resource's suffix asks for; Open311Error(404) for another one."""
    fmt = str(request.path_params.get("fmt", ""))
    for known in FORMATS:
        if fmt == known:
            return known
    raise Open311Error(404, "Chỉ có định dạng .json và .xml.")


def _suffix_format(path: str) -> Format:
    """The format of an error answer for a path: XML for ``*.xml``, else JSON."""
    return "xml" if path.lower().endswith(".xml") else "json"


Handler = Callable[[Request], Awaitable[Answer]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route: the format from the suffix, the handler's answer or its error in it."""

    async def endpoint(request: Request) -> Response:
        fmt = _suffix_format(request.url.path)
        try:
            fmt = _format(request)
            answer = await handler(request)
        except Open311Error as error:
            return error.response(fmt)
        return render(answer, fmt)

    return endpoint


class Api:
    """The resources: where the database is, what time it is, which keys may file."""

    def __init__(
        self,
        engine: Engine | None,
        clock: Callable[[], datetime],
        api_keys: Sequence[str] | None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.api_keys = api_keys

    async def in_db(self, work: Callable[[Session], T]) -> T:
        """`work` on a database session, off the event loop; a failure is a 500 in the
        spec's format."""

        def run() -> T:
            with get_session(self.engine) as session:
                return work(session)

        try:
            return await run_in_threadpool(run)
        except Exception:
            logger.exception("An Open311 request failed.")
            raise Open311Error(500, "Hệ thống đang gặp sự cố, vui lòng thử lại sau.") from None

    async def find(self, query: RequestQuery) -> ServiceRequests:
        return await self.in_db(
            lambda db: requests_answer(session=db, tickets=find_tickets(session=db, query=query))
        )

    async def discovery(self, request: Request) -> Answer:
        return discovery_answer(str(request.base_url).rstrip("/"))

    async def services(self, request: Request) -> Answer:
        return services_answer()

    async def service_definition(self, request: Request) -> Answer:
        code = request.path_params["service_code"]
        if code not in SERVICE_BY_CODE:
            raise Open311Error(404, f"Không có dịch vụ service_code = {code}.")
        return ServiceDefinition(service_code=code, attributes=[])

    async def list_requests(self, request: Request) -> Answer:
        return await self.find(parse_request_query(request.query_params, now=self.clock()))

    async def one_request(self, request: Request) -> Answer:
        raw = request.path_params["service_request_id"]
        code = queries.normalize_ticket_code(raw)
        found = ServiceRequests([]) if code is None else await self.find(RequestQuery((code,)))
        if not found.root:
            raise Open311Error(404, f"Không có phản ánh mã {raw}.")
        return found

    async def post_request(self, request: Request) -> Answer:
        params = await read_post_params(request)
        keys = settings.open311_api_keys if self.api_keys is None else self.api_keys
        actor = api_key_actor(params.get("api_key") or request.headers.get(API_KEY_HEADER), keys)
        if actor is None:
            raise Open311Error(403, "api_key không hợp lệ.")
        new = parse_new_request(params)
        posted = await self.in_db(
            lambda db: file_request(session=db, new=new, actor=actor, now=self.clock())
        )
        return PostedRequests([posted])


async def _not_found(request: Request) -> Response:
    return Open311Error(404, "Không có tài nguyên này.").response(_suffix_format(request.url.path))


def open311_routes(
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    api_keys: Sequence[str] | None = None,
) -> list[BaseRoute]:
    """The API's routes under `/open311` (`engine` default: the app's; `api_keys`
    default: CIVICBOT_OPEN311_API_KEYS, read at each request)."""
    hide_api_keys_in_logs()
    api = Api(engine, clock, api_keys)
    reads = ["GET", "HEAD"]
    resources = [
        Route("/services.{fmt}", _endpoint(api.services), methods=reads),
        Route("/services/{service_code}.{fmt}", _endpoint(api.service_definition), methods=reads),
        Route("/requests.{fmt}", _endpoint(api.list_requests), methods=reads),
        Route("/requests.{fmt}", _endpoint(api.post_request), methods=["POST"]),
        Route("/requests/{service_request_id}.{fmt}", _endpoint(api.one_request), methods=reads),
        Route("/{path:path}", _not_found),
    ]
    return [
        Mount(
            "/open311",
            routes=[
                Route("/discovery.{fmt}", _endpoint(api.discovery), methods=reads),
                Mount("/v2", routes=resources),
                Route("/{path:path}", _not_found),
            ],
            name="open311",
        )
    ]
