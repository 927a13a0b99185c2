"""Reading what clients send: the filters of ``GET requests`` and the arguments of
``POST requests``, validated by pydantic models (every problem listed, in Vietnamese)."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from civicbot_nlu.patterns import find_phones
from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from starlette.datastructures import QueryParams
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from bot.channels.common import read_body
from bot.config import settings
from bot.nlu.location import Ward, gazetteer
from bot.web.open311.formats import Open311Error
from bot.web.open311.queries import RequestQuery
from bot.web.open311.services import SERVICE_BY_CODE
from storage import queries
from storage.models import TicketCreate

M = TypeVar("M", bound=BaseModel)

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


_JSON_OBJECT = TypeAdapter(dict[str, object])


def _json_params(body: bytes) -> dict[str, str]:
    """A JSON object's scalar members, as text (the other ones are not parameters)."""
    try:
        data = _JSON_OBJECT.validate_json(body)
    except ValidationError as invalid:
        if invalid.errors()[0]["type"] == "json_invalid":
            raise Open311Error(400, "Nội dung không phải JSON hợp lệ.") from None
        raise Open311Error(400, "Nội dung JSON phải là một đối tượng.") from None
    return {
        key: str(value)
        for key, value in data.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }


async def _multipart_params(request: Request, body: bytes) -> dict[str, str]:
    parser = MultiPartParser(request.headers, _one_chunk(body), max_files=0, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException:
        raise Open311Error(
            400, "Nội dung multipart không hợp lệ hoặc có tệp (ảnh: hãy gửi media_url)."
        ) from None
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _form_params(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Open311Error(400, "Nội dung phải mã hoá UTF-8.") from None
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=100))
    except ValueError:
        raise Open311Error(400, "Quá nhiều tham số.") from None


async def read_post_params(request: Request) -> dict[str, str]:
    """The POST parameters from the body (form, JSON or multipart); the URL must hold none
    but ``jurisdiction_id``, and never the ``api_key``."""
    if "api_key" in request.query_params:
        raise Open311Error(
            400, "Không gửi api_key trên URL: hãy gửi trong nội dung (body) hoặc header X-Api-Key."
        )
    body = await read_body(request, MAX_BODY_BYTES)
    if body is None:
        raise Open311Error(413, "Nội dung gửi lên quá lớn.")
    if not body.strip():
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return _json_params(body)
    if kind == "multipart/form-data":
        return await _multipart_params(request, body)
    return _form_params(body)


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
