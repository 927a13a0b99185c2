"""The dashboard shows the citizens behind a ticket (page and queue) and merges a duplicate
into another ticket of the unit with the same function as the chat's `/gop` (issue 19), on
both databases; the access rule applies."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.testclient import TestClient
from test_dashboard import add_ticket, client, csrf_of, people, sign_in, ticket_row

from bot.duplicates import follow
from storage.models import Channel, Official, TicketStatus, utcnow

__all__ = ["client", "people"]  # the fixtures


def test_the_citizens_behind_a_ticket_and_merging_on_the_dashboard(
    client: TestClient, engine: Engine, people: dict[str, Official]
) -> None:
    with Session(engine) as session:
        kept = add_ticket(session, "ward-a", chat="citizen-1")
        follow.follow(
            session=session,
            ticket=kept,
            citizen_id=None,
            channel=Channel.zalo,
            chat_id="neighbour",
            note=None,
            photos=(),
            message_id=None,
            now=utcnow(),
        )
        duplicate = add_ticket(session, "ward-a", chat="citizen-2").code
        other = add_ticket(session, "ward-b", chat="citizen-3", ward=("00002", "Phường B")).code
        kept_code = kept.code
    sign_in(client, engine, people["a"])
    page = client.get(f"/dashboard/tickets/{kept_code}").text
    assert "Người dân phản ánh" in page and "<dd>2</dd>" in page
    queue = client.get("/dashboard").text
    assert "Người dân" in queue

    def merge(code: str, into: str) -> str:
        token = csrf_of(client, f"/dashboard/tickets/{kept_code}")  # the session's token
        done = client.post(f"/dashboard/tickets/{code}/merge", data={"csrf": token, "into": into})
        assert done.status_code in (303, 404), done.text
        return client.get(done.headers["location"]).text if done.status_code == 303 else ""

    refused = merge(duplicate, other)  # another unit's ticket: as if it did not exist
    assert 'class="flash error"' in refused and "Không tìm thấy phản ánh" in refused
    assert ticket_row(engine, duplicate).status == TicketStatus.received
    shown = merge(duplicate, kept_code.lower().replace("-", ""))
    assert 'class="flash ok"' in shown and kept_code in shown
    merged = ticket_row(engine, duplicate)
    assert merged.status == TicketStatus.closed
    assert merged.merged_into_id == ticket_row(engine, kept_code).id
    page = client.get(f"/dashboard/tickets/{kept_code}").text
    assert "<dd>3</dd>" in page and f"Gộp phản ánh trùng {duplicate}" in page
    assert merge(other, kept_code) == ""  # ward-b's ticket is not the viewer's: 404
