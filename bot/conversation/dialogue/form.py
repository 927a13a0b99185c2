"""The typed state of a chat: the complaint form, the topic under discussion, the language.

Stored as JSON in `conversation.data`. `ChatData.load` also reads what the dialogue stored
before this module existed (the form's keys at the top level, `place_asked_again`,
`ward_skipped`, `photos_done`, `contact_done`), so a chat mid-form at an upgrade goes on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from bot.nlu.location import Ward

Language = Literal["vi", "en"]
# Keys the conversation's plumbing keeps in the same dict (engine._Turn).
_PLUMBING_KEYS = ("typed_buttons",)


class WardChoice(BaseModel):
    code: str
    name: str

    @classmethod
    def of(cls, ward: Ward) -> WardChoice:
        return cls(code=ward.code, name=ward.name)


class Form(BaseModel):
    """A complaint being filled in. None means "not asked yet"."""

    category: str | None = None
    place: str | None = None  # as the citizen wrote it
    ward_code: str | None = None
    ward_name: str | None = None
    candidates: list[WardChoice] = Field(default_factory=list)
    place_retry: bool = False  # the ward was asked for once more after an unplaced address
    ward_unknown: bool = False  # no ward could be found: routed by category instead
    lat: float | None = None
    lon: float | None = None
    description: str | None = None
    photos: list[str] = Field(default_factory=list)
    photos_done: bool = False
    anonymous: bool | None = None
    phone: str | None = None
    when: str | None = None  # complaints about officials: when, and who (a position)
    who: str | None = None
    # One problem, one ticket: an open ticket that covers this one was looked for (once,
    # before the summary); its code; the citizen chose to file anyway.
    duplicate_checked: bool = False
    duplicate: str | None = None
    file_anyway: bool = False
    # A complaint right after a ticket: that ticket's place was looked for (once) and, when
    # it has one, offered ("Vẫn ở … chứ ạ?"); None once declined.
    last_place_checked: bool = False
    last_place: str | None = None

    @property
    def misconduct(self) -> bool:
        return self.category == "misconduct"

    @property
    def has_place(self) -> bool:
        return self.place is not None or self.lat is not None

    def set_ward(self, ward: Ward | None) -> None:
        self.ward_code = ward.code if ward else None
        self.ward_name = ward.name if ward else None
        if ward is not None:
            self.candidates = []


class Topic(BaseModel):
    """The procedure under discussion: follow-ups ("lệ phí bao nhiêu") are about it."""

    procedure: str
    aspects: list[str] = Field(default_factory=list)


class ChatData(BaseModel):
    """Everything the dialogue remembers of one chat between messages."""

    form: Form | None = None
    topic: Topic | None = None
    lang: Language = "vi"
    misunderstood: int = 0
    ticket: str | None = None  # the ticket whose question is being answered
    held: str | None = None  # a new request typed mid-form, while asked what to do with it
    held_state: str | None = None  # the step the form was at then
    human_requested_at: str | None = None
    plumbing: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @classmethod
    def load(cls, data: dict[str, Any]) -> ChatData:
        data = dict(data)
        plumbing = {k: data.pop(k) for k in _PLUMBING_KEYS if k in data}
        if "form" not in data and "category" in data:
            data = {"form": _legacy_form(data), "ticket": data.get("ticket")}
        try:
            chat = cls.model_validate(data)
        except ValidationError:
            chat = cls()  # unreadable state: start afresh rather than fail every message
        chat.plumbing = plumbing
        return chat

    def dump(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json", exclude_defaults=True), **self.plumbing}


def _legacy_form(old: dict[str, Any]) -> dict[str, Any]:
    """The form as the dialogue stored it before the state table."""
    form = {k: old[k] for k in Form.model_fields if k in old and k != "candidates"}
    form["candidates"] = [
        {"code": c["ward_code"], "name": c["ward_name"]} for c in old.get("candidates") or []
    ]
    form["place_retry"] = bool(old.get("place_asked_again"))
    form["ward_unknown"] = bool(old.get("ward_skipped"))
    if old.get("place_unresolved") is None and old.get("place") and not old.get("ward_code"):
        form["ward_unknown"] = form["ward_unknown"] or not form["candidates"]
    form["anonymous"] = bool(old.get("anonymous")) if old.get("contact_done") else None
    return form
