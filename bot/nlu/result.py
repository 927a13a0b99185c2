"""What the NLU understood of one message, in the shape of PRODUCT.md §4."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from bot import categories

Source = Literal["rasa", "fallback"]

INTENTS = (
    "greet", "goodbye", "thank", "affirm", "deny", "cancel", "help", "human",
    "ask_procedure", "report_problem", "check_status", "rate", "out_of_scope",
)  # fmt: skip
CATEGORIES = categories.CODES  # PRODUCT.md §2, from bot/categories.yml
PROCEDURES = (
    "khai_sinh", "ket_hon", "khai_tu", "xac_nhan_hon_nhan", "cai_chinh_ho_tich",
    "thuong_tru", "tam_tru", "can_cuoc", "ho_chieu", "ly_lich_tu_phap", "chung_thuc",
    "giay_phep_xay_dung", "so_do", "sang_ten_dat", "ho_kinh_doanh",
    "thanh_lap_doanh_nghiep", "dang_ky_xe", "giay_phep_lai_xe",
)  # fmt: skip
ASPECTS = ("documents", "fee", "duration", "place", "online")


class RankedIntent(BaseModel):
    intent: str
    confidence: float


class WardRef(BaseModel):
    ward_code: str
    ward_name: str


class LocationResult(BaseModel):
    text: str
    ward_code: str | None = None
    ward_name: str | None = None
    candidates: list[WardRef] = Field(default_factory=list)


class NluResult(BaseModel):
    """One parsed message. `model_dump()` gives the JSON object of `civicbot nlu parse`."""

    text: str
    intent: str
    confidence: float
    category: str | None = None
    procedure: str | None = None
    aspect: str | None = None
    location: LocationResult | None = None
    ticket_code: str | None = None
    phone: str | None = None
    source: Source
    ranking: list[RankedIntent] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The PRODUCT.md §4 object."""
        return self.model_dump(mode="json")
