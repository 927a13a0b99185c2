"""Whole conversations as data (tests/dialogues/*.yml) through the real pipeline.

Each dialogue is a list of turns — a citizen's text, a pressed or typed button, photos, a
location pin, or an official's action on the citizen's latest ticket — with what the bot's
replies (including the notifications queued for the citizen) must and must not contain, the
chat's state after the turn, and the tickets the dialogue leaves. `who:` makes another citizen
speak (a neighbour reports what the citizen filed: one problem, one ticket); an official's
turn acts on the latest ticket of `ticket_of` and shows what `hears` was sent. The real Rasa
model reads every message; each dialogue has a database of its own holding the bundled Hà Nội
directory, so tickets are routed as in production. docs/dialogues.md reports the share that
end as they should.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.conversation.dialogue.tickets import await_answer
from bot.conversation.engine import Conversation
from bot.conversation.messages import (
    Attachment,
    CollectingOutput,
    GeoPoint,
    IncomingMessage,
    Reply,
    reply_from_payload,
)
from bot.directory.store import ensure_directory
from bot.nlu import server
from bot.nlu.client import NluClient
from bot.officials.invites import invite_official
from bot.tickets import workflow
from storage import followers, queries
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.models import (
    Conversation as ConversationRow,
)
from storage.models import (
    Official,
    OfficialRole,
    OutboxMessage,
    Ticket,
    Unit,
)

pytestmark = pytest.mark.rasa
DIALOGUES = Path(__file__).with_name("dialogues")
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Hà Nội
MAIN = "citizen"  # the dialogue's citizen; `who:` names others in the same database
_ids = itertools.count(1)


def load_dialogues() -> list[dict[str, Any]]:
    dialogues: list[dict[str, Any]] = []
    for path in sorted(DIALOGUES.glob("*.yml")):
        dialogues += yaml.safe_load(path.read_text(encoding="utf-8"))
    return dialogues


def _param(dialogue: dict[str, Any]) -> Any:
    marks = []
    if dialogue.get("xfail"):  # known not to end well yet: must fail, reason in the data
        marks.append(pytest.mark.xfail(reason=dialogue["xfail"], strict=True))
    return pytest.param(dialogue, id=dialogue["id"], marks=marks)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the Hà Nội directory, made once and copied for each dialogue."""
    path = tmp_path_factory.mktemp("dialogues") / "template.db"
    upgrade(f"sqlite:///{path}")
    engine = create_db_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        ensure_directory(session=session)
    engine.dispose()  # the WAL checkpointed into the file: a copy holds everything
    return path


@pytest.fixture
def engine(template: Path, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own for each dialogue: another dialogue's ticket about the same
    problem would make this one's citizen an offer to follow it (one problem, one ticket)."""
    path = tmp_path / "civicbot.db"
    shutil.copyfile(template, path)
    engine = create_db_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


class Dialogue:
    """One citizen (and the officials of their ticket's unit) talking to the bot."""

    def __init__(self, conversation: Conversation, engine: Engine, channel: str) -> None:
        self.conversation = conversation
        self.engine = engine
        self.channel = channel
        self.chat = f"d{next(_ids)}"
        self.output = CollectingOutput()
        self.seen_outbox = 0
        self.buttons: tuple[Any, ...] = ()

    async def send(self, text: str = "", **fields: Any) -> list[Reply]:
        before = len(self.output.sent)
        message = IncomingMessage(
            channel=self.channel,  # type: ignore[arg-type]
            chat_id=self.chat,
            user_id=self.chat,
            message_id=str(next(_ids)),
            text=text,
            **fields,
        )
        await self.conversation.handle(message, self.output)
        return self.offered([reply for _, reply in self.output.sent[before:]] + self.notices())

    def offered(self, replies: list[Reply]) -> list[Reply]:
        """Keep the newest buttons offered: the next `press` picks among them."""
        buttons = tuple(b for r in replies for b in r.buttons)
        if buttons:
            self.buttons = buttons
        return replies

    def notices(self) -> list[Reply]:
        """What was queued for this chat since the last look (officials' notifications)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.recipient == self.chat)
                .order_by(col(OutboxMessage.id))
            ).all()
        new = [reply_from_payload(r.payload) for r in rows[self.seen_outbox :]]
        self.seen_outbox = len(rows)
        return new

    async def press(self, label: str) -> list[Reply]:
        for button in self.buttons:
            if button.label == label:
                return await self.send(button=button.data)
        raise AssertionError(f"no button {label!r} among {[b.label for b in self.buttons]}")

    async def file(self, text: str) -> list[Reply]:
        """A complaint sent and carried to the end with the form's plainest buttons."""
        replies = await self.send(text)
        before = len(self.tickets())
        for _ in range(8):
            if len(self.tickets()) > before:
                return replies
            labels = [b.label for b in self.buttons]
            choice = next(
                (x for x in ("Bỏ qua", "Gửi ẩn danh", "Gửi phản ánh") if x in labels), None
            )
            if choice is None:
                break
            replies = await self.press(choice)
        raise AssertionError(f"no ticket filed from {text!r}: {self.output.texts()[-3:]}")

    def tickets(self) -> list[Ticket]:
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(Ticket).where(Ticket.chat_id == self.chat).order_by(col(Ticket.id))
                ).all()
            )

    def state(self) -> str:
        with Session(self.engine) as session:
            row = session.exec(
                select(ConversationRow).where(ConversationRow.chat_id == self.chat)
            ).first()
            return row.state if row else "idle"

    def official_acts(self, step: dict[str, Any]) -> None:
        """An official of the lead unit of the citizen's latest ticket acts on it."""
        ticket = self.tickets()[-1]
        with Session(self.engine) as session:
            ticket = session.get(Ticket, ticket.id)
            assert ticket is not None and ticket.lead_unit_id is not None
            official = session.exec(
                select(Official).where(Official.unit_id == ticket.lead_unit_id)
            ).first()
            if official is None:
                official = invite_official(
                    session=session,
                    unit_id=ticket.lead_unit_id,
                    name="Cán bộ thử",
                    role=OfficialRole.handler,
                    now=NOW,
                )[0]
            action = step["official"]
            if action == "accept":
                workflow.accept(session=session, ticket=ticket, official=official, now=NOW)
            elif action == "ask":
                workflow.ask_info(
                    session=session,
                    ticket=ticket,
                    official=official,
                    question=step["text"],
                    now=NOW,
                    await_answer=await_answer,
                )
            elif action == "resolve":
                workflow.resolve(
                    session=session, ticket=ticket, official=official, note=step["text"], now=NOW
                )
            elif action == "reject":
                workflow.reject(
                    session=session, ticket=ticket, official=official, reason=step["text"], now=NOW
                )
            else:
                raise AssertionError(f"unknown official action {action!r}")


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def check_replies(replies: list[Reply], expect: dict[str, Any], where: str) -> None:
    text = _fold("\n".join(r.text for r in replies))
    shown = f"{where}: replies were {[r.text for r in replies]}"
    for needle in expect.get("says", []):
        assert _fold(needle) in text, f"{needle!r} missing. {shown}"
    for options in expect.get("says_any", []):
        assert any(_fold(o) in text for o in options), f"none of {options!r}. {shown}"
    for needle in expect.get("not_says", []):
        assert _fold(needle) not in text, f"{needle!r} should not be said. {shown}"
    offered = [b.label for r in replies for b in r.buttons]
    for label in expect.get("buttons", []):
        assert label in offered, f"button {label!r} not among {offered}. {shown}"
    for label in expect.get("no_buttons", []):
        assert label not in offered, f"button {label!r} should not be offered. {shown}"
    if "first_says" in expect:
        assert replies, shown
        first = _fold(replies[0].text)
        assert any(_fold(o) in first for o in expect["first_says"]), shown


def check_tickets(dialogue: Dialogue, expect: dict[str, Any]) -> None:
    tickets = dialogue.tickets()
    if "count" in expect:
        assert len(tickets) == expect["count"], [t.code for t in tickets]
    if not tickets:
        assert not {"ward", "unit", "category", "status", "rating"} & set(expect), "no ticket"
        return
    ticket = tickets[-1]
    with Session(dialogue.engine) as session:
        unit = session.get(Unit, ticket.lead_unit_id) if ticket.lead_unit_id else None
        unit_name = unit.name if unit else ""
        events = queries.ticket_events(session=session, ticket_id=ticket.id)
        following = followers.followers_of(session=session, ticket_id=ticket.id)
    facts = {
        "followers": len(following),
        "ward": ticket.ward_name,
        "category": ticket.category,
        "status": ticket.status.value,
        "rating": ticket.rating,
        "anonymous": ticket.anonymous,
        "phone": ticket.contact_phone,
        "reopened": ticket.reopen_count,
    }
    for key, value in expect.items():
        if key == "unit":
            assert value.lower() in unit_name.lower(), f"unit {unit_name!r}, not {value!r}"
        elif key == "not_unit":
            assert value.lower() not in unit_name.lower(), f"unit {unit_name!r}"
        elif key == "description_has":
            assert value.lower() in ticket.description.lower(), ticket.description
        elif key == "description_lacks":
            assert value.lower() not in ticket.description.lower(), ticket.description
        elif key == "answered":
            assert any(value in (e.note or "") for e in events), [e.note for e in events]
        elif key != "count":
            assert facts[key] == value, f"{key}: {facts[key]!r}, not {value!r}"


@pytest.mark.parametrize("dialogue", [_param(d) for d in load_dialogues()])
async def test_dialogue(
    dialogue: dict[str, Any], engine: Engine, nlu_server: server.RunningServer
) -> None:
    async with NluClient(nlu_server.url, nlu_server.token) as nlu:
        await run_dialogue(
            dialogue, Conversation(nlu=nlu, engine=engine, clock=lambda: NOW), engine
        )


async def run_dialogue(
    dialogue: dict[str, Any], conversation: Conversation, engine: Engine
) -> None:
    channel = dialogue.get("channel", "telegram")
    citizens: dict[str, Dialogue] = {}

    def citizen(name: str) -> Dialogue:
        """The main citizen, or another one (`who:`) filing or following the same problem."""
        if name not in citizens:
            citizens[name] = Dialogue(conversation, engine, channel)
        return citizens[name]

    main = citizen(MAIN)
    for number, turn in enumerate(dialogue["turns"], start=1):
        talk = citizen(turn.get("who", MAIN))
        if "official" in turn:  # on the latest ticket of `ticket_of`; what `hears` gets
            talk = citizen(turn.get("hears", MAIN))
            citizens[turn.get("ticket_of", MAIN)].official_acts(turn)
            replies = talk.offered(talk.notices())
        else:
            replies = await _play(talk, turn)
        if os.environ.get("DIALOGUE_ECHO"):  # a transcript, to read what citizens get
            print(
                f"\n>>> {turn}\n"
                + "\n".join(f"<<< {r.text}  {[b.label for b in r.buttons]}" for r in replies)
            )
        _check_turn(talk, turn, replies, f"turn {number} {turn}")
    if "tickets" in dialogue:
        check_tickets(main, dialogue["tickets"])


async def _play(talk: Dialogue, turn: dict[str, Any]) -> list[Reply]:
    """What the citizen does in `turn`, and the replies."""
    if "say" in turn:
        return await talk.send(turn["say"])
    if "press" in turn:
        return await talk.press(turn["press"])
    if "photos" in turn:
        photos = tuple(Attachment(f"photo-{i}", "photo") for i in range(turn["photos"]))
        return await talk.send(turn.get("caption", ""), attachments=photos)
    if "pin" in turn:
        return await talk.send(location=GeoPoint(*turn["pin"]))
    if "file" in turn:
        return await talk.file(turn["file"])
    raise AssertionError(f"unknown turn {turn}")


def _check_turn(talk: Dialogue, turn: dict[str, Any], replies: list[Reply], where: str) -> None:
    expect = turn.get("expect", {})
    check_replies(replies, expect, where)
    if expect.get("says_code"):
        codes = [t.code for t in talk.tickets()]
        assert any(c in r.text for c in codes for r in replies), f"no ticket code. {where}"
    if "state" in expect:
        assert talk.state() == expect["state"], where
    if "tickets" in expect:
        check_tickets(talk, expect["tickets"])


def test_the_suite_is_large_and_half_without_diacritics() -> None:
    dialogues = load_dialogues()
    assert len(dialogues) >= 80
    assert len({d["id"] for d in dialogues}) == len(dialogues)
    plain = [d for d in dialogues if d.get("marks") is False]
    assert len(plain) * 2 >= len(dialogues), f"{len(plain)} of {len(dialogues)} without marks"
