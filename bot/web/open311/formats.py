"""The Open311 GeoReport v2 answers: one pydantic model per response, rendered to JSON or XML.

Each answer is a model; `render` turns it into the spec's JSON (the model's own dump) or
its XML (the same fields as elements, lists under the spec's item tags: ``<services>
<service>…``, ``<service_requests><request>…``, ``<errors><error>…``), both in UTF-8 with
the charset in the content type.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, RootModel
from starlette.responses import Response

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}


class Open311Model(BaseModel):
    """An object of an answer; `xml_items` names the element of each item of a list field."""

    model_config = ConfigDict(frozen=True)
    xml_tag: ClassVar[str] = ""  # the root element when the model is a whole answer
    xml_items: ClassVar[dict[str, str]] = {}


M = TypeVar("M", bound=Open311Model)


class Open311List(RootModel[list[M]], Generic[M]):
    """An answer that is a list: ``[...]`` in JSON, ``<xml_tag><xml_item>…`` in XML."""

    xml_tag: ClassVar[str] = ""
    xml_item: ClassVar[str] = ""


# --- Services -------------------------------------------------------------------------------


class ServiceOut(Open311Model):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class Services(Open311List[ServiceOut]):
    xml_tag = "services"
    xml_item = "service"


class AttributeValue(Open311Model):
    key: str
    name: str


class ServiceAttribute(Open311Model):
    xml_items = {"values": "value"}

    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str | None
    order: int
    description: str
    values: list[AttributeValue]


class ServiceDefinition(Open311Model):
    xml_tag = "service_definition"
    xml_items = {"attributes": "attribute"}

    service_code: str
    attributes: list[ServiceAttribute]


# --- Service requests -----------------------------------------------------------------------


class ServiceRequestOut(Open311Model):
    """One service request as the spec names its fields; never any personal data."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class ServiceRequests(Open311List[ServiceRequestOut]):
    xml_tag = "service_requests"
    xml_item = "request"


class PostedRequest(Open311Model):
    service_request_id: str
    service_notice: str | None
    account_id: str | None


class PostedRequests(Open311List[PostedRequest]):
    xml_tag = "service_requests"
    xml_item = "request"


# --- Errors and discovery -------------------------------------------------------------------


class ErrorOut(Open311Model):
    code: int
    description: str


class Errors(Open311List[ErrorOut]):
    xml_tag = "errors"
    xml_item = "error"


class Endpoint(Open311Model):
    xml_items = {"formats": "format"}

    specification: str
    url: str
    changeset: str
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(Open311Model):
    xml_tag = "discovery"
    xml_items = {"endpoints": "endpoint"}

    changeset: str
    contact: str
    key_service: str
    endpoints: list[Endpoint]


Answer = Open311Model | Open311List[Any]


# --- Rendering ------------------------------------------------------------------------------


def _fill(element: ET.Element, value: object, item_tag: str | None) -> None:
    """Put `value` into `element`: text for a scalar, children for a model or a list."""
    if value is None:
        return
    if isinstance(value, bool):
        element.text = "true" if value else "false"
    elif isinstance(value, Open311Model):
        _children(element, value)
    elif isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, item_tag or "item"), item, None)
    else:
        element.text = str(value)


def _children(element: ET.Element, model: Open311Model) -> None:
    for name in type(model).model_fields:
        child = ET.SubElement(element, name)
        _fill(child, getattr(model, name), model.xml_items.get(name))


def to_xml(answer: Answer) -> bytes:
    """The answer as the spec's XML document, UTF-8 with its declaration."""
    if isinstance(answer, Open311List):
        root = ET.Element(answer.xml_tag)
        for item in answer.root:
            _children(ET.SubElement(root, answer.xml_item), item)
    else:
        root = ET.Element(answer.xml_tag)
        _children(root, answer)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def render(answer: Answer, fmt: Format, status_code: int = 200) -> Response:
    """The answer in `fmt`, with `; charset=utf-8` in its content type."""
    body = answer.model_dump_json().encode() if fmt == "json" else to_xml(answer)
    return Response(body, status_code=status_code, media_type=MEDIA_TYPES[fmt])


class Open311Error(Exception):
    """A request the API refuses; answered in the spec's error format."""

    def __init__(self, status: int, *descriptions: str) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions

    def response(self, fmt: Format) -> Response:
        return error_answer(self.status, self.descriptions, fmt)


def error_answer(status: int, descriptions: tuple[str, ...], fmt: Format) -> Response:
    """The spec's error list, `status` in each entry and as the HTTP status."""
    errors = Errors([ErrorOut(code=status, description=text) for text in descriptions])
    return render(errors, fmt, status)
