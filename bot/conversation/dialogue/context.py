"""What every step and check works with: the turn, the chat's typed data, its language."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from bot.conversation.dialogue.form import ChatData, Form
from bot.conversation.messages import Button, IncomingMessage, Reply
from bot.conversation.texts import say_in
from bot.nlu.result import NluResult
from storage.models import Channel

IDLE = "idle"  # the chat is at no step
# An official asked the citizen a question about a ticket: their next message is the answer
# (set by `tickets.await_answer` when the official asks, or by the "Trả lời" button).
ANSWER_INFO = "answer_info"


class Understanding(Protocol):
    """What the conversation needs of the NLU client."""

    async def parse(self, text: str) -> NluResult: ...


class Turn(Protocol):
    """The conversation's turn (engine._Turn) as the dialogue sees it."""

    session: Session
    message: IncomingMessage
    nlu: Understanding
    clock: Callable[[], datetime]
    channel: Channel
    citizen_id: int
    stored_id: int
    state: str
    data: dict[str, Any]
    replies: list[Reply]
    nlu_json: dict[str, Any] | None


class Context:
    """One turn of the dialogue: the turn, the chat's data, and how to answer."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.chat = ChatData.load(turn.data)
        self.nlu: NluResult | None = None

    @property
    def text(self) -> str:
        return self.turn.message.text.strip()

    @property
    def lang(self) -> str:
        return self.chat.lang

    @property
    def form(self) -> Form:
        if self.chat.form is None:
            self.chat.form = Form()
        return self.chat.form

    @property
    def state(self) -> str:
        return self.turn.state

    @state.setter
    def state(self, value: str) -> None:
        self.turn.state = value

    def say(self, name: str, /, **values: object) -> str:
        return say_in(self.chat.lang, name, **values)

    def reply(self, text: str, buttons: Sequence[Button] = ()) -> None:
        self.turn.replies.append(Reply(text=text, buttons=tuple(buttons)))

    def label(self, name: str) -> str:
        """A button's label in the chat's language."""
        return self.say(f"button_{name}")

    def button(self, name: str, data: str) -> Button:
        return Button(self.label(name), data)

    async def parse(self, text: str | None = None) -> NluResult:
        """The NLU's reading of the message (once per turn) or of another text."""
        if text is not None:
            return await self.turn.nlu.parse(text)
        if self.nlu is None:
            self.nlu = await self.turn.nlu.parse(self.turn.message.text)
            self.turn.nlu_json = self.nlu.as_json()
        return self.nlu

    def save(self) -> None:
        self.turn.data = self.chat.dump()

    def reset(self, state: str) -> None:
        """Leave any form: the chat keeps its language, topic and remembered buttons."""
        self.chat = ChatData(
            lang=self.chat.lang, topic=self.chat.topic, plumbing=self.chat.plumbing
        )
        self.state = state
