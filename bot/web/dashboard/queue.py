"""The queue: a unit's tickets (every unit's, for leaders) with filters."""

from __future__ import annotations

from dataclasses import dataclass, replace

from starlette.responses import Response

from bot.conversation.texts import CATEGORY_NAMES, OFFICIAL_STATUS_NAMES
from bot.tickets import workflow
from bot.web.dashboard import cells
from bot.web.dashboard.guard import Visit
from bot.web.dashboard.queries import QueueFilters, all_units, queue_tickets, queue_wards
from storage.followers import citizens_behind
from storage.models import TicketStatus

STATUS_CHOICES = [("open", "Đang mở (chưa xong)"), ("all", "Tất cả")] + [
    (s.value, OFFICIAL_STATUS_NAMES[s.value]) for s in TicketStatus
]


@dataclass(frozen=True)
class Row:
    code: str
    category: str
    place: str
    unit: str  # shown to leaders only
    status: cells.Status
    deadline: cells.Deadline
    citizens: int  # its reporter and its followers


def queue_page(visit: Visit) -> Response:
    viewer, session = visit.viewer, visit.session
    assert viewer is not None
    filters = QueueFilters.from_query(visit.request.query_params)
    unit_id: str | None = viewer.unit_id
    unit_choices: list[tuple[str, str]] = []
    if viewer.is_leader:
        units = all_units(session=session)
        unit_id = filters.unit if filters.unit in {u.id for u in units} else None
        filters = replace(filters, unit=unit_id or "")
        unit_choices = [("", "Tất cả đơn vị"), *((u.id, u.name) for u in units)]
    tickets, total = queue_tickets(
        session=session, unit_id=unit_id, filters=filters, now=visit.now, reader=viewer.reader
    )
    wards = queue_wards(session=session, unit_id=unit_id, reader=viewer.reader)
    own = unit_id == viewer.unit_id  # its name was read with the viewer
    if viewer.is_leader and unit_id is None:
        heading = "Toàn thành phố"
    else:
        heading = viewer.unit_name if own else workflow.unit_name(session, unit_id)
    behind = citizens_behind(session=session, tickets=tickets)
    rows = [
        Row(
            code=t.code,
            category=cells.category(t),
            place=t.ward_name or t.location_text or "—",
            unit=workflow.unit_name(session, t.lead_unit_id) if viewer.is_leader else "",
            status=cells.status(t, visit.now),
            deadline=cells.deadline(t.resolve_by, visit.now),
            citizens=behind.get(t.id or 0, 0),
        )
        for t in tickets
    ]
    return visit.render(
        "queue.html",
        filters=filters,
        heading=heading,
        rows=rows,
        total=total,
        shown=f"{len(rows)}/{total}" if total > len(rows) else str(total),
        statuses=STATUS_CHOICES,
        categories=[("", "Tất cả lĩnh vực"), *CATEGORY_NAMES.items()],
        wards=[("", "Tất cả phường, xã"), *wards],
        units=unit_choices,
    )
