"""What the API answers: tickets as service requests (never any personal data), the POST's
receipt, and Service Discovery."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.config import settings
from bot.masking import mask
from bot.nlu.location import gazetteer
from bot.tickets.intake import expected, file_ticket
from bot.web.open311.formats import (
    Discovery,
    Endpoint,
    PostedRequest,
    ServiceOut,
    ServiceRequestOut,
    ServiceRequests,
    Services,
)
from bot.web.open311.queries import first_media_urls, latest_public_notes, unit_names
from bot.web.open311.reading import NewRequest
from bot.web.open311.services import SERVICE_BY_CODE, SERVICES, Service
from storage import queries
from storage.models import OPEN311_CLOSED, AttachmentCreate, Channel, Ticket, TicketStatus, Unit

# When the API last changed in a way clients see (Service Discovery's changeset).
CHANGESET = "2026-12-06T00:00:00+07:00"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"


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
