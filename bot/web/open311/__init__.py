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

The package: `reading` (what clients send, through pydantic models), `answers` (what the
API answers), `formats` (the answers' models, rendered to JSON or XML), `queries`,
`services` (the categories as services) and `routes`.
"""

from bot.web.open311.routes import open311_routes

__all__ = ["open311_routes"]
