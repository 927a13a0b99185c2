"""`/metrics`: the cluster's figures counted in the database, each process's measures summed
over a machine's processes (multiprocess mode), and who may read them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.applications import Starlette

from bot.config import settings
from bot.metrics import exposition, metrics_route
from storage import queries
from storage.models import (
    Channel,
    Direction,
    Message,
    OutboxMessage,
    OutboxStatus,
    Ticket,
    TicketCreate,
    TicketStatus,
    TicketUpdate,
    utcnow,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def file_ticket(session: Session, *, overdue: bool) -> Ticket:
    now = utcnow()
    due = now - timedelta(hours=1) if overdue else now + timedelta(days=3)
    return queries.create_ticket(
        session=session,
        timezone=settings.timezone,
        ticket_in=TicketCreate(
            category="waste", description="Rác ở ngõ 5", accept_by=due, resolve_by=due
        ),
        now=now - timedelta(days=1),
    )


def test_counted_in_the_database(engine: Engine) -> None:
    with Session(engine) as session:
        for index in range(3):
            message = Message(
                direction=Direction.incoming,
                channel=Channel.telegram,
                chat_id="1",
                channel_message_id=str(index),
                text="chào",
            )
            session.add(message)
        session.add(Message(direction=Direction.incoming, channel=Channel.web, chat_id="w"))
        session.add(Message(direction=Direction.outgoing, channel=Channel.web, chat_id="w"))
        for status in (OutboxStatus.sent, OutboxStatus.sent, OutboxStatus.pending):
            session.add(OutboxMessage(channel=Channel.telegram, recipient="1", status=status))
        session.add(OutboxMessage(channel=Channel.zalo, recipient="z", status=OutboxStatus.failed))
        session.commit()
        file_ticket(session, overdue=True)
        file_ticket(session, overdue=False)
        queries.update_ticket(
            session=session,
            db_ticket=file_ticket(session, overdue=True),
            ticket_in=TicketUpdate(status=TicketStatus.rejected),
            actor="test",
            note="Trùng với phản ánh trước",
        )
    found = samples(exposition(engine).decode())
    assert found[("civicbot_messages_in_total", (("channel", "telegram"),))] == 3
    assert found[("civicbot_messages_in_total", (("channel", "web"),))] == 1
    assert found[("civicbot_messages_out_total", (("channel", "telegram"),))] == 2
    assert found[("civicbot_outbox_backlog", (("channel", "telegram"),))] == 1
    assert found[("civicbot_outbox_failed_total", (("channel", "zalo"),))] == 1
    assert found[("civicbot_tickets", (("status", "received"),))] == 2
    assert found[("civicbot_tickets", (("status", "rejected"),))] == 1
    assert found[("civicbot_tickets", (("status", "closed"),))] == 0
    assert found[("civicbot_tickets_overdue", ())] == 1  # the rejected one is not


MEASURE = """
import sys
from bot.measures import NLU_FALLBACKS, TURN_SECONDS
TURN_SECONDS.observe(float(sys.argv[1]))
NLU_FALLBACKS.inc()
"""


def test_measures_add_up_over_the_processes_of_a_machine(tmp_path: Path, database_url: str) -> None:
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "CIVICBOT_DATABASE_URL": database_url,
    }
    for seconds in ("0.04", "0.3"):
        subprocess.run([sys.executable, "-c", MEASURE, seconds], env=env, check=True, timeout=60)
    read = "import bot.config; from bot.metrics import exposition; print(exposition().decode())"
    text = subprocess.run(
        [sys.executable, "-c", read],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    found = samples(text)
    assert found[("civicbot_turn_seconds_count", ())] == 2
    assert found[("civicbot_turn_seconds_bucket", (("le", "0.05"),))] == 1
    assert found[("civicbot_nlu_fallbacks_total", ())] == 2
    assert ("civicbot_tickets_overdue", ()) in found  # and the database's figures


@pytest.mark.parametrize("token", [None, "op-token"])
async def test_only_operators_read_it(engine: Engine, token: str | None) -> None:
    app = Starlette(routes=[metrics_route(token, engine)])

    async def get(client: str, **headers: str) -> int:
        transport = httpx.ASGITransport(app=app, client=(client, 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            return (await http.get("/metrics", headers=headers)).status_code

    proxied = await get("127.0.0.1", **{"X-Forwarded-For": "203.0.113.9"})
    outside = await get("203.0.113.9")
    direct = await get("127.0.0.1")
    bearer = await get("203.0.113.9", Authorization="Bearer op-token")
    wrong = await get("127.0.0.1", Authorization="Bearer nope")
    assert (proxied, outside) == (404, 404)
    if token is None:
        assert (direct, bearer, wrong) == (200, 404, 200)
    else:
        assert (direct, bearer, wrong) == (404, 200, 404)
