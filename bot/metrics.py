"""Prometheus metrics at `/metrics` (prometheus-client), for operators only.

Two kinds, so that the figures are right however many processes serve the app:

- counted in the database when scraped (`DatabaseCollector`): messages in and out, the
  outbox's backlog and failures, tickets by status, overdue tickets. They are the cluster's
  figures whichever process answers the scrape (behind a balancer, any of them);
- measured where they happen (turn and NLU latency, NLU fallbacks). With
  `PROMETHEUS_MULTIPROC_DIR` set (the systemd units and compose file set one per machine,
  emptied at start), prometheus-client's multiprocess mode adds up the processes of the
  machine; without it each process reports its own.

Who may read it: a request with `Authorization: Bearer <CIVICBOT_METRICS_TOKEN>`, or, without
a token, one straight from loopback (not through the proxy: nginx adds `X-Forwarded-For`, and
denies `/metrics` itself, see deploy/nginx/civicbot.conf).
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storage import queries
from storage.db import get_session
from storage.models import (
    Direction,
    Message,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketStatus,
    utcnow,
)

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class DatabaseCollector(Collector):
    """The cluster's figures, counted in the database at each scrape."""

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        with get_session(self._engine) as session:
            messages = session.exec(
                select(Message.direction, Message.channel, func.count()).group_by(
                    col(Message.direction), col(Message.channel)
                )
            ).all()
            outbox = session.exec(
                select(OutboxMessage.status, OutboxMessage.channel, func.count()).group_by(
                    col(OutboxMessage.status), col(OutboxMessage.channel)
                )
            ).all()
            tickets = dict(
                session.exec(select(Ticket.status, func.count()).group_by(col(Ticket.status))).all()
            )
            overdue = session.exec(select(func.count()).where(_overdue(utcnow()))).one()
        received = CounterMetricFamily(
            "civicbot_messages_in", "Messages received and stored, by channel.", labels=["channel"]
        )
        for direction, channel, count in messages:
            if direction == Direction.incoming:
                received.add_metric([str(channel)], count)
        sent = CounterMetricFamily(
            "civicbot_messages_out",
            "Messages sent from the outbox, by channel.",
            labels=["channel"],
        )
        backlog = GaugeMetricFamily(
            "civicbot_outbox_backlog", "Messages waiting in the outbox.", labels=["channel"]
        )
        failed = CounterMetricFamily(
            "civicbot_outbox_failed", "Messages given up on (attempts used up).", labels=["channel"]
        )
        by_status: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            OutboxStatus.sent: sent,
            OutboxStatus.pending: backlog,
            OutboxStatus.failed: failed,
        }
        for status, channel, count in outbox:
            by_status[status].add_metric([str(channel)], count)
        yield from (received, sent, backlog, failed)
        status_family = GaugeMetricFamily(
            "civicbot_tickets", "Tickets by status.", labels=["status"]
        )
        for status in TicketStatus:
            status_family.add_metric([status.value], tickets.get(status, 0))
        yield status_family
        yield GaugeMetricFamily(
            "civicbot_tickets_overdue",
            "Open tickets past their accept or resolve deadline.",
            value=overdue,
        )


def _overdue(now: datetime) -> sa.ColumnElement[bool]:
    """Past a deadline whose clock runs (waiting for the citizen stops the resolve clock)."""
    return sa.or_(
        sa.and_(col(Ticket.status).in_(queries.AWAITING_ACCEPTANCE), col(Ticket.accept_by) <= now),
        sa.and_(col(Ticket.status).in_(queries.AWAITING_RESOLUTION), col(Ticket.resolve_by) <= now),
    )


def exposition(engine: Engine | None = None) -> bytes:
    """The text format of every metric: this machine's processes and the database's."""
    measured = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        measured = CollectorRegistry()
        multiprocess.MultiProcessCollector(measured)  # type: ignore[no-untyped-call]
    counted = CollectorRegistry()
    counted.register(DatabaseCollector(engine))
    return generate_latest(measured) + generate_latest(counted)


def allowed(request: Request, token: str | None) -> bool:
    """Whether this request may read the metrics (see the module docstring)."""
    given = request.headers.get("authorization", "")
    if token:
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    client = request.client.host if request.client else ""
    return client in LOOPBACK and "x-forwarded-for" not in request.headers


def metrics_route(token: str | None, engine: Engine | None = None) -> Route:
    """`GET /metrics`; 404 to anyone not allowed (nothing to learn about it)."""

    async def metrics(request: Request) -> Response:
        if not allowed(request, token):
            return Response(status_code=404)
        body = await asyncio.to_thread(exposition, engine)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"], name="metrics")
