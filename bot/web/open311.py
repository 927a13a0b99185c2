"""The Open311 GeoReport v2 API, mounted at ``/open311/v2``, in JSON and XML.

Every resource ends in ``.json`` or ``.xml`` (answers and errors in that format, UTF-8 with
the charset in the content type); Service Discovery is at ``/open311/discovery.{json,xml}``.

- ``GET services``: the complaint categories of PRODUCT.md §2 as services.
- ``GET services/{service_code}``: a service definition (no extra attributes).
- ``POST requests``: files a ticket through `bot.tickets.intake.file_ticket`, as the chat does
  (routing, deadlines, notification of the unit). Needs an ``api_key`` listed in
  ``CIVICBOT_OPEN311_API_KEYS``, in the body (``application/x-www-form-urlencoded`` as in
  the spec, JSON, or multipart without files) or in an ``X-Api-Key`` header; never in the
  URL, where proxies and access logs keep it (such a request is refused). Only
  ``service_code`` and a place are required; an unknown ``service_code`` is a 404.
- ``GET requests``: filters ``service_request_id`` (comma-separated, overrides the
  others), ``service_code``, ``status`` (``open``/``closed``), ``start_date``/``end_date``
  (on ``requested_datetime``; default the last 90 days, a window of at most 90 days); newest
  first, at most 1000.
- ``GET requests/{service_request_id}``: one request, as a one-element list.

``service_request_id`` is the ticket code (PA-YYYY-NNNNNN, any case, dashes optional).
``jurisdiction_id`` is accepted and ignored: the API serves Hà Nội only. Datetimes are W3C
ISO 8601 in CIVICBOT_TIMEZONE with its offset (``2026-11-22T14:05:30+07:00``); a date or
datetime given without an offset is read in that time zone.

What is published identifies no one: a request's ``description`` is the public summary an
official wrote or approved (`Ticket.public_summary`), else a line of its category and ward,
never the citizen's text; ``address`` is the ward and ``lat``/``long`` the ward's reference
point, never the pin; ``status_notes`` is the latest note an official marked public. No
contact phone, citizen, chat or official's name leaves, and `bot.masking` masks what an
official may still have copied into a summary or a note.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from civicbot_nlu.patterns import find_phones
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from bot.channels.common import read_body
from bot.config import settings
from bot.conversation.texts import CATEGORY_NAMES
from bot.masking import mask
from bot.nlu.location import Ward, gazetteer
from bot.tickets.intake import expected, file_ticket
from bot.web.open311_format import (
    FORMATS,
    Answer,
    Discovery,
    Endpoint,
    Format,
    PostedRequest,
    PostedRequests,
    ServiceDefinition,
    ServiceOut,
    ServiceRequestOut,
    ServiceRequests,
    Services,
    error_answer,
    render,
)
from storage import queries
from storage.db import get_session
from storage.models import (
    OPEN311_CLOSED,
    Attachment,
    AttachmentCreate,
    Channel,
    Ticket,
    TicketCreate,
    TicketEvent,
    TicketStatus,
    Unit,
    utcnow,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_RESULTS = 1000
DEFAULT_WINDOW = timedelta(days=90)
MAX_DESCRIPTION_CHARS = 4000  # the spec's limit
MAX_ADDRESS_CHARS = 500
MAX_MEDIA_URL_CHARS = 512  # Attachment.file_id
MAX_PHONE_CHARS = 32  # Ticket.contact_phone
MAX_BODY_BYTES = 64 * 1024
MAX_LIST_ITEMS = 1000  # ids or codes in one comma-separated parameter
# A rectangle around Hà Nội (its 126 units' reference points span 20.62–21.33 N,
# 105.33–105.98 E) with a margin for the outer communes.
HANOI_LAT = (20.50, 21.45)
HANOI_LON = (105.25, 106.05)
API_KEY_HEADER = "x-api-key"
# When the API last changed in a way clients see (Service Discovery's changeset).
CHANGESET = "2026-12-06T00:00:00+07:00"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"


@dataclass(frozen=True)
class Service:
    """An Open311 service: one complaint category."""

    code: str
    description: str
    group: str
    keywords: str

    @property
    def name(self) -> str:
        return CATEGORY_NAMES[self.code]


SERVICES: tuple[Service, ...] = (
    Service(
        "sidewalk",
        "Cửa hàng, quán, hàng rong, mái che, biển quảng cáo lấn chiếm vỉa hè, lòng đường.",
        "Trật tự đô thị",
        "vỉa hè, lòng đường, hàng rong, lấn chiếm",
    ),
    Service(
        "construction",
        "Xây dựng không phép, sai phép, cơi nới thêm tầng, lấn chiếm đất công, "
        "thi công gây hư hại nhà liền kề.",
        "Trật tự đô thị",
        "xây dựng, không phép, sai phép, cơi nới, đất công",
    ),
    Service(
        "waste",
        "Rác không được thu gom, đổ trộm rác thải hoặc phế thải xây dựng.",
        "Môi trường",
        "rác, thu gom, phế thải, đổ trộm",
    ),
    Service(
        "pollution",
        "Ô nhiễm hồ, kênh mương; khói, bụi, mùi hôi; tiếng ồn (karaoke, thi công ban đêm).",
        "Môi trường",
        "ô nhiễm, khói, bụi, mùi, tiếng ồn, karaoke",
    ),
    Service(
        "infrastructure",
        "Ổ gà, đèn đường hỏng, ngập úng, cống thoát nước, mất nắp cống, cây xanh.",
        "Hạ tầng, giao thông",
        "ổ gà, đèn đường, ngập, cống, nắp cống, cây xanh",
    ),
    Service(
        "traffic",
        "Ùn tắc, đèn tín hiệu hỏng, xe tải chạy giờ cấm, đi ngược chiều.",
        "Hạ tầng, giao thông",
        "ùn tắc, đèn tín hiệu, xe tải, ngược chiều",
    ),
    Service(
        "parking",
        "Trông giữ xe thu quá giá quy định, bãi trông giữ xe không phép.",
        "Hạ tầng, giao thông",
        "trông giữ xe, bãi xe, thu quá giá",
    ),
    Service(
        "water",
        "Mất nước, nước bẩn, vỡ đường ống, nước yếu.",
        "Dịch vụ công cộng",
        "mất nước, nước bẩn, vỡ ống, nước yếu",
    ),
    Service(
        "fire_safety",
        "Nguy cơ cháy nổ, thiếu lối thoát hiểm hoặc bình chữa cháy, tích trữ nhiên liệu trong nhà.",
        "Dịch vụ công cộng",
        "cháy nổ, lối thoát hiểm, bình chữa cháy, xăng dầu",
    ),
    Service(
        "misconduct",
        "Cán bộ đòi tiền, gây phiền hà, thái độ không đúng mực, vắng mặt trong giờ làm việc.",
        "Cán bộ, thủ tục hành chính",
        "cán bộ, nhũng nhiễu, phiền hà, thái độ",
    ),
    Service(
        "procedure_delay",
        "Trả kết quả thủ tục hành chính trễ hẹn, yêu cầu bổ sung giấy tờ nhiều lần.",
        "Cán bộ, thủ tục hành chính",
        "thủ tục, trễ hẹn, chậm, bổ sung giấy tờ",
    ),
    Service("other", "Các vấn đề khác.", "Khác", "khác"),
)
SERVICE_BY_CODE: dict[str, Service] = {service.code: service for service in SERVICES}


# --- Errors ---------------------------------------------------------------------------------


class Open311Error(Exception):
    """A request the API refuses; answered in the spec's error format."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions

    def response(self, fmt: Format) -> Response:
        return error_answer(self.status, self.descriptions, fmt)


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


# --- Formatting -----------------------------------------------------------------------------


def w3c(moment: datetime | None) -> str | None:
    """A datetime as W3C ISO 8601 in CIVICBOT_TIMEZONE, with its offset."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(settings.timezone)).isoformat(timespec="seconds")


def open311_status(status: TicketStatus) -> Literal["open", "closed"]:
    """PRODUCT.md §6: `closed` for resolved, rejected and closed tickets, else `open`."""
    return "closed" if status in OPEN311_CLOSED else "open"


def services_answer() -> Services:
    return Services(
        [
            ServiceOut(
                service_code=service.code,
                service_name=service.name,
                description=service.description,
                metadata=False,
                type="realtime",
                keywords=service.keywords,
                group=service.group,
            )
            for service in SERVICES
        ]
    )


@cache
def _ward_points() -> dict[str, tuple[float, float]]:
    return gazetteer().reference_points()


def ward_point(ward_code: str | None) -> tuple[float, float] | None:
    """The ward's reference point (what is published instead of the citizen's pin)."""
    return _ward_points().get(ward_code) if ward_code else None


def public_description(ticket: Ticket, service: Service) -> str:
    """The official's public summary, else "<category> — <ward>"; never the citizen's text."""
    if ticket.public_summary and ticket.public_summary.strip():
        return mask(ticket.public_summary.strip())
    return " — ".join(part for part in (service.name, ticket.ward_name) if part)


def request_out(
    ticket: Ticket, *, agency: str | None, status_notes: str | None, media_url: str | None
) -> ServiceRequestOut:
    """One service request as the spec names its fields; never any personal data."""
    service = SERVICE_BY_CODE.get(ticket.category or "other", SERVICE_BY_CODE["other"])
    point = ward_point(ticket.ward_code)
    return ServiceRequestOut(
        service_request_id=ticket.code,
        status=open311_status(ticket.status),
        status_notes=mask(status_notes) if status_notes else None,
        service_name=service.name,
        service_code=service.code,
        description=public_description(ticket, service),
        agency_responsible=agency,
        service_notice=None,
        requested_datetime=w3c(ticket.created_at),
        updated_datetime=w3c(ticket.updated_at),
        expected_datetime=w3c(ticket.resolve_by),
        address=ticket.ward_name,
        address_id=None,
        zipcode=None,
        lat=point[0] if point else None,
        long=point[1] if point else None,
        media_url=media_url,
    )


# --- Reading requests -----------------------------------------------------------------------

_SPACED_OFFSET = re.compile(r" (\d{2}(?::?\d{2})?)$")


def parse_w3c(text: str, name: str) -> datetime:
    """A W3C datetime (or date) from a parameter; without an offset, in local time."""
    # An unescaped "+" in a query string arrives as a space.
    value = _SPACED_OFFSET.sub(r"+\1", text.strip())
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} không đúng định dạng W3C (ví dụ 2026-01-31T08:00:00+07:00)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment


def _split(values: Iterable[str]) -> list[str]:
    """Values of a parameter given several times and/or comma-separated."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"Tối đa {MAX_LIST_ITEMS} giá trị trong một tham số.")
    return items


def _validation_messages(invalid: ValidationError) -> list[str]:
    """Each problem pydantic found, in the Vietnamese our validators wrote."""
    messages = []
    for error in invalid.errors():
        context = error.get("ctx") or {}
        if error.get("type") == "value_error" and "error" in context:
            messages.append(str(context["error"]))
        else:
            messages.append(f"{'.'.join(str(part) for part in error['loc'])} không hợp lệ.")
    return messages


def parse_model(model: type[M], data: Mapping[str, object]) -> M:
    """`data` validated by `model`; Open311Error(400) listing every problem."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as invalid:
        raise Open311Error(400, *_validation_messages(invalid)) from None


@dataclass(frozen=True)
class RequestQuery:
    """What `GET requests` asks for."""

    codes: tuple[str, ...] | None = None  # ticket codes: when set, no other filter applies
    service_codes: tuple[str, ...] = ()
    closed: bool | None = None  # None: open and closed
    start: datetime | None = None
    end: datetime | None = None


class RequestFilters(BaseModel):
    """The arguments of `GET requests`, each list given several times or comma-separated."""

    model_config = ConfigDict(frozen=True)

    service_request_id: list[str] = []
    service_code: list[str] = []
    status: list[str] = []
    start_date: datetime | None = None
    end_date: datetime | None = None

    @field_validator("service_request_id", "service_code", "status", mode="before")
    @classmethod
    def _list(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_split(value)))

    @field_validator("service_code")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [code for code in value if code not in SERVICE_BY_CODE]
        if unknown:
            raise ValueError(f"service_code không có: {', '.join(unknown)}.")
        return value

    @field_validator("status")
    @classmethod
    def _status(cls, value: list[str]) -> list[str]:
        statuses = [status.lower() for status in value]
        if not set(statuses) <= {"open", "closed"}:
            raise ValueError("status chỉ nhận open hoặc closed.")
        return statuses

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _date(cls, value: str | None, info: ValidationInfo) -> datetime | None:
        return parse_w3c(value, str(info.field_name)) if value else None

    @classmethod
    def of(cls, params: QueryParams) -> RequestFilters:
        """The filters in a query string; ids override (and skip) the others, as in the spec."""
        ids = {"service_request_id": params.getlist("service_request_id")}
        if parse_model(cls, ids).service_request_id:
            return parse_model(cls, ids)
        lists = {name: params.getlist(name) for name in ("service_code", "status")}
        dates = {name: params.get(name) for name in ("start_date", "end_date")}
        return parse_model(cls, {**lists, **dates})

    def query(self, *, now: datetime) -> RequestQuery:
        """The query: ticket codes, or the filters in a window of at most 90 days."""
        if self.service_request_id:
            codes = (queries.normalize_ticket_code(item) for item in self.service_request_id)
            return RequestQuery(codes=tuple(dict.fromkeys(c for c in codes if c is not None)))
        start, end = self.start_date, self.end_date
        if start is None and end is None:
            end = now
        if start is None:
            assert end is not None
            start = end - DEFAULT_WINDOW
        if end is None:
            end = start + DEFAULT_WINDOW
        if end < start:
            raise Open311Error(400, "end_date phải sau start_date.")
        if end - start > DEFAULT_WINDOW:
            raise Open311Error(400, "Khoảng start_date – end_date không được quá 90 ngày.")
        return RequestQuery(
            service_codes=tuple(self.service_code),
            closed=None if len(set(self.status)) != 1 else self.status[0] == "closed",
            start=start,
            end=end,
        )


def parse_request_query(params: QueryParams, *, now: datetime) -> RequestQuery:
    """The filters of `GET requests`."""
    return RequestFilters.of(params).query(now=now)


async def _one_chunk(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def read_post_params(request: Request) -> dict[str, str]:
    """The POST parameters from the body (form, JSON or multipart); the URL must hold none
    but ``jurisdiction_id``, and never the ``api_key``."""
    if "api_key" in request.query_params:
        raise Open311Error(
            400, "Không gửi api_key trên URL: hãy gửi trong nội dung (body) hoặc header X-Api-Key."
        )
    params: dict[str, str] = {}
    body = await read_body(request, MAX_BODY_BYTES)
    if body is None:
        raise Open311Error(413, "Nội dung gửi lên quá lớn.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body.strip():
        return params
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise Open311Error(400, "Nội dung không phải JSON hợp lệ.") from None
        if not isinstance(data, dict):
            raise Open311Error(400, "Nội dung JSON phải là một đối tượng.")
        for key, value in data.items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                params[key] = str(value)
        return params
    if kind == "multipart/form-data":
        parser = MultiPartParser(request.headers, _one_chunk(body), max_files=0, max_fields=100)
        try:
            form = await parser.parse()
        except MultiPartException:
            raise Open311Error(
                400, "Nội dung multipart không hợp lệ hoặc có tệp (ảnh: hãy gửi media_url)."
            ) from None
        params.update((key, value) for key, value in form.items() if isinstance(value, str))
        return params
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Open311Error(400, "Nội dung phải mã hoá UTF-8.") from None
    try:
        params.update(parse_qsl(text, keep_blank_values=True, max_num_fields=100))
    except ValueError:
        raise Open311Error(400, "Quá nhiều tham số.") from None
    return params


def api_key_actor(api_key: str | None, keys: Sequence[str]) -> str | None:
    """`open311:<hash prefix>` for a configured key, compared in constant time; else None."""
    if not api_key:
        return None
    given = api_key.encode()
    found = False
    for key in keys:
        # Every key is compared, so the time taken does not tell which one matched.
        if key and hmac.compare_digest(given, key.encode()):
            found = True
    if not found:
        return None
    return "open311:" + hashlib.sha256(given).hexdigest()[:12]


class NewRequestForm(BaseModel):
    """The POST arguments the API reads (others, e.g. names and e-mail, are dropped)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, frozen=True)

    service_code: str | None = None
    description: str | None = None
    address_string: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None
    phone: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("lat", "long", mode="before")
    @classmethod
    def _number(cls, value: object, info: ValidationInfo) -> object:
        try:
            number = float(str(value)) if value is not None else None
        except ValueError:
            number = math.nan
        if number is not None and not math.isfinite(number):
            raise ValueError(f"{info.field_name} phải là một số (WGS-84).")
        return number

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_DESCRIPTION_CHARS:
            raise ValueError(f"description dài quá {MAX_DESCRIPTION_CHARS} ký tự.")
        return value

    @field_validator("address_string")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_ADDRESS_CHARS:
            raise ValueError(f"address_string dài quá {MAX_ADDRESS_CHARS} ký tự.")
        return value

    @field_validator("media_url")
    @classmethod
    def _media_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("media_url phải là địa chỉ http:// hoặc https://.")
        if len(value) > MAX_MEDIA_URL_CHARS:
            raise ValueError(f"media_url dài quá {MAX_MEDIA_URL_CHARS} ký tự.")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        found = find_phones(value)
        phone = found[0].value if found else value
        if len(phone) > MAX_PHONE_CHARS:
            raise ValueError("phone không hợp lệ.")
        return phone

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> NewRequestForm:
        """The form from the POST parameters; Open311Error(400) with every problem found."""
        return parse_model(cls, params)


@dataclass(frozen=True)
class Place:
    """Where a POSTed request is, as a ticket stores it."""

    text: str | None
    ward_code: str | None
    ward_name: str | None
    lat: float | None
    lon: float | None


def resolve_place(form: NewRequestForm) -> Place:
    """The place of a request from `address_string` and/or `lat`/`long`.

    The address is read by the gazetteer (old or new names, with or without marks). When it
    does not name exactly one ward, coordinates choose: the ward whose reference point is
    nearest (the data has one point per ward, no boundaries, so near a border this may be
    the neighbouring ward), among the address's candidates when it has some. Without a
    ward the ticket still goes in, and routing gives it to the city's intake unit.
    """
    errors: list[str] = []
    address, lat, lon = form.address_string, form.lat, form.long
    if (lat is None) != (lon is None):
        errors.append("Cần cả lat và long.")
    if lat is not None and lon is not None:
        inside = HANOI_LAT[0] <= lat <= HANOI_LAT[1] and HANOI_LON[0] <= lon <= HANOI_LON[1]
        if not inside:
            errors.append("Toạ độ lat/long nằm ngoài Hà Nội.")
    if address is None and (lat is None or lon is None) and not errors:
        errors.append("Cần địa điểm: address_string hoặc lat và long.")
    if errors:
        raise Open311Error(400, *errors)
    ward = None
    candidates: tuple[Ward, ...] = ()
    if address is not None:
        location = gazetteer().resolve(address)
        ward, candidates = location.ward, location.candidates
    if ward is None and lat is not None and lon is not None:
        places = gazetteer()
        ranked = places.nearest(lat, lon, count=len(places.wards))
        allowed = {c.code for c in candidates}
        ward = next((w for w in ranked if not allowed or w.code in allowed), None)
    return Place(
        text=address,
        ward_code=ward.code if ward else None,
        ward_name=ward.name if ward else None,
        lat=lat,
        lon=lon,
    )


@dataclass(frozen=True)
class NewRequest:
    """A valid POST: the ticket to file and the photo URL to attach."""

    ticket_in: TicketCreate
    media_url: str | None


def parse_new_request(params: Mapping[str, str]) -> NewRequest:
    """Check a POST's arguments; email and names are dropped, the phone kept for officials.

    An unknown `service_code` is a 404, as the spec says; other problems are a 400 with
    all of them. `description` is optional in the spec: without it the ticket says so.
    """
    errors: list[str] = []
    service_code = (params.get("service_code") or "").strip()
    if service_code and service_code not in SERVICE_BY_CODE:
        raise Open311Error(404, f"Không có dịch vụ service_code = {service_code}.")
    if not service_code:
        errors.append("Thiếu service_code.")
    form: NewRequestForm | None = None
    try:
        form = NewRequestForm.parse(params)
    except Open311Error as error:
        errors.extend(error.descriptions)
    place: Place | None = None
    if form is not None:
        try:
            place = resolve_place(form)
        except Open311Error as error:
            errors.extend(error.descriptions)
    if errors:
        raise Open311Error(400, *errors)
    assert form is not None and place is not None
    name = SERVICE_BY_CODE[service_code].name
    ticket_in = TicketCreate(
        category=service_code,
        description=form.description or f"{name} (gửi qua Open311, không kèm mô tả)",
        location_text=place.text,
        ward_code=place.ward_code,
        ward_name=place.ward_name,
        latitude=place.lat,
        longitude=place.lon,
        contact_phone=form.phone,
        channel=None,
    )
    return NewRequest(ticket_in=ticket_in, media_url=form.media_url)


# --- Queries --------------------------------------------------------------------------------

# Complaints about officials' conduct name people and are offered anonymity: they can be
# filed through the API but are never listed publicly.
NOT_PUBLIC = ("misconduct",)


def find_tickets(
    *, session: Session, query: RequestQuery, limit: int = MAX_RESULTS
) -> list[Ticket]:
    """The tickets `query` asks for, newest first; never the `NOT_PUBLIC` categories."""
    statement = select(Ticket).where(
        or_(col(Ticket.category).is_(None), col(Ticket.category).not_in(NOT_PUBLIC))
    )
    if query.codes is not None:
        statement = statement.where(col(Ticket.code).in_(query.codes))
    else:
        if query.service_codes:
            matches: sa.ColumnElement[bool] = col(Ticket.category).in_(query.service_codes)
            if "other" in query.service_codes:
                matches = or_(matches, col(Ticket.category).is_(None))
            statement = statement.where(matches)
        if query.closed is not None:
            closed = col(Ticket.status).in_(list(OPEN311_CLOSED))
            statement = statement.where(closed if query.closed else ~closed)
        if query.start is not None:
            statement = statement.where(col(Ticket.created_at) >= query.start)
        if query.end is not None:
            statement = statement.where(col(Ticket.created_at) <= query.end)
    statement = statement.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    return list(session.exec(statement.limit(limit)).all())


def unit_names(*, session: Session, unit_ids: Iterable[str]) -> dict[str, str]:
    """Unit id → name for the units given."""
    wanted = sorted(set(unit_ids))
    if not wanted:
        return {}
    units = session.exec(select(Unit).where(col(Unit.id).in_(wanted))).all()
    return {unit.id: unit.name for unit in units}


def latest_public_notes(*, session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Ticket id → the latest note an official marked public (`TicketEvent.public`)."""
    if not ticket_ids:
        return {}
    events = session.exec(
        select(TicketEvent)
        .where(
            col(TicketEvent.ticket_id).in_(ticket_ids),
            col(TicketEvent.public).is_(True),
            col(TicketEvent.note).is_not(None),
        )
        .order_by(col(TicketEvent.at).desc(), col(TicketEvent.id).desc())
    ).all()
    notes: dict[int, str] = {}
    for event in events:
        if event.note and event.note.strip():
            notes.setdefault(event.ticket_id, event.note.strip())
    return notes


def _url_of(attachment: Attachment) -> str | None:
    url = attachment.meta.get("url") if attachment.meta else None
    if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def first_media_urls(*, session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """Ticket id → the URL of its first photo that has one (channel file ids are not URLs)."""
    if not ticket_ids:
        return {}
    attachments = session.exec(
        select(Attachment)
        .where(col(Attachment.ticket_id).in_(ticket_ids), Attachment.kind == "photo")
        .order_by(col(Attachment.id))
    ).all()
    urls: dict[int, str] = {}
    for attachment in attachments:
        url = _url_of(attachment)
        if url is not None and attachment.ticket_id is not None:
            urls.setdefault(attachment.ticket_id, url)
    return urls


def requests_answer(*, session: Session, tickets: Sequence[Ticket]) -> ServiceRequests:
    """The tickets as Open311 service requests (three queries, whatever their number)."""
    ids = [ticket.id for ticket in tickets if ticket.id is not None]
    agencies = unit_names(
        session=session, unit_ids=(t.lead_unit_id for t in tickets if t.lead_unit_id)
    )
    notes = latest_public_notes(session=session, ticket_ids=ids)
    media = first_media_urls(session=session, ticket_ids=ids)
    return ServiceRequests(
        [
            request_out(
                ticket,
                agency=agencies.get(ticket.lead_unit_id) if ticket.lead_unit_id else None,
                status_notes=notes.get(ticket.id) if ticket.id is not None else None,
                media_url=media.get(ticket.id) if ticket.id is not None else None,
            )
            for ticket in tickets
        ]
    )


def file_request(*, session: Session, new: NewRequest, actor: str, now: datetime) -> PostedRequest:
    """File a POSTed request like a chat complaint; the spec's POST answer for it."""
    ticket = file_ticket(session=session, ticket_in=new.ticket_in, now=now, actor=actor)
    assert ticket.id is not None
    if new.media_url is not None:
        queries.add_attachment(
            session=session,
            attachment_in=AttachmentCreate(
                ticket_id=ticket.id,
                channel=Channel.web,
                file_id=new.media_url,
                kind="photo",
                meta={"url": new.media_url, "source": "open311"},
            ),
        )
    unit = session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
    notice = f"Phản ánh {ticket.code} đã được tiếp nhận"
    if unit is not None:
        notice += f" và chuyển đến {unit.name}"
    notice += f"; thời hạn giải quyết: {expected(ticket.resolve_by)}."
    return PostedRequest(service_request_id=ticket.code, service_notice=notice, account_id=None)


def discovery_answer(base_url: str) -> Discovery:
    """Service Discovery: where the API is, in which formats, and how to get a key."""
    return Discovery(
        changeset=CHANGESET,
        contact="CivicBot Hà Nội: Open311 GeoReport v2 (phản ánh, kiến nghị của người dân)",
        key_service="api_key (để gửi phản ánh) do quản trị viên hệ thống cấp; gửi trong "
        "nội dung POST hoặc header X-Api-Key, không đặt trên URL.",
        endpoints=[
            Endpoint(
                specification=SPECIFICATION,
                url=f"{base_url}/open311/v2",
                changeset=CHANGESET,
                type="production",
                formats=["application/json", "text/xml"],
            )
        ],
    )


# --- Routes ---------------------------------------------------------------------------------


async def _in_thread(work: Callable[..., T], *args: Any) -> T:
    """Run blocking database work off the event loop; a failure is a 500 in the spec's format."""
    try:
        return await run_in_threadpool(work, *args)
    except Exception:
        logger.exception("An Open311 request failed.")
        raise Open311Error(500, "Hệ thống đang gặp sự cố, vui lòng thử lại sau.") from None


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


def _endpoint(handler: Callable[[Request, Format], Any]) -> Callable[[Request], Any]:
    """A route: the format from the suffix, the handler's answer or its error in it."""

    async def endpoint(request: Request) -> Response:
        fmt = _suffix_format(request.url.path)
        try:
            fmt = _format(request)
            answer: Answer = await handler(request, fmt)
        except Open311Error as error:
            return error.response(fmt)
        return render(answer, fmt)

    return endpoint


def open311_routes(
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    api_keys: Sequence[str] | None = None,
) -> list[BaseRoute]:
    """The API's routes under `/open311` (`engine` default: the app's; `api_keys`
    default: CIVICBOT_OPEN311_API_KEYS, read at each request)."""
    hide_api_keys_in_logs()

    def session() -> AbstractContextManager[Session]:
        return get_session(engine)

    def list_requests_sync(query: RequestQuery) -> ServiceRequests:
        with session() as db:
            return requests_answer(session=db, tickets=find_tickets(session=db, query=query))

    def post_request_sync(new: NewRequest, actor: str) -> PostedRequest:
        with session() as db:
            return file_request(session=db, new=new, actor=actor, now=clock())

    async def discovery(request: Request, fmt: Format) -> Answer:
        return discovery_answer(str(request.base_url).rstrip("/"))

    async def services(request: Request, fmt: Format) -> Answer:
        return services_answer()

    async def service_definition(request: Request, fmt: Format) -> Answer:
        code = request.path_params["service_code"]
        if code not in SERVICE_BY_CODE:
            raise Open311Error(404, f"Không có dịch vụ service_code = {code}.")
        return ServiceDefinition(service_code=code, attributes=[])

    async def list_requests(request: Request, fmt: Format) -> Answer:
        query = parse_request_query(request.query_params, now=clock())
        return await _in_thread(list_requests_sync, query)

    async def one_request(request: Request, fmt: Format) -> Answer:
        raw = request.path_params["service_request_id"]
        code = queries.normalize_ticket_code(raw)
        found = (
            ServiceRequests([])
            if code is None
            else await _in_thread(list_requests_sync, RequestQuery((code,)))
        )
        if not found.root:
            raise Open311Error(404, f"Không có phản ánh mã {raw}.")
        return found

    async def post_request(request: Request, fmt: Format) -> Answer:
        params = await read_post_params(request)
        keys = settings.open311_api_keys if api_keys is None else api_keys
        given = params.get("api_key") or request.headers.get(API_KEY_HEADER)
        actor = api_key_actor(given, keys)
        if actor is None:
            raise Open311Error(403, "api_key không hợp lệ.")
        new = parse_new_request(params)
        return PostedRequests([await _in_thread(post_request_sync, new, actor)])

    async def not_found(request: Request) -> Response:
        return Open311Error(404, "Không có tài nguyên này.").response(
            _suffix_format(request.url.path)
        )

    return [
        Mount(
            "/open311",
            routes=[
                Route("/discovery.{fmt}", _endpoint(discovery), methods=["GET", "HEAD"]),
                Mount(
                    "/v2",
                    routes=[
                        Route("/services.{fmt}", _endpoint(services), methods=["GET", "HEAD"]),
                        Route(
                            "/services/{service_code}.{fmt}",
                            _endpoint(service_definition),
                            methods=["GET", "HEAD"],
                        ),
                        Route("/requests.{fmt}", _endpoint(list_requests), methods=["GET", "HEAD"]),
                        Route("/requests.{fmt}", _endpoint(post_request), methods=["POST"]),
                        Route(
                            "/requests/{service_request_id}.{fmt}",
                            _endpoint(one_request),
                            methods=["GET", "HEAD"],
                        ),
                        Route("/{path:path}", not_found),
                    ],
                ),
                Route("/{path:path}", not_found),
            ],
            name="open311",
        )
    ]
