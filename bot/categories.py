"""The complaint categories, one registry: `categories.yml` beside this file, checked against
the schema below when read. Names, severities, Open311 services, the keyword fallback's cues
and the ticket generator all come from here, so a new category is one entry in that file
(plus its routing rules and NLU examples)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from storage.models import Severity

CATEGORIES_FILE = Path(__file__).with_name("categories.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Open311Service(_Strict):
    """How the category appears in Open311's service list."""

    group: str = Field(min_length=1)
    description: str = Field(min_length=1)
    keywords: str = Field(min_length=1)


class Category(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z_]*$")
    name: str = Field(min_length=1)  # Vietnamese (PRODUCT.md §2)
    name_en: str = Field(min_length=1)
    severity: Severity
    open311: Open311Service
    cues: tuple[str, ...] = ()  # folded words for the keyword fallback
    accuses_ward: bool = False  # about the officials of the ticket's ward's own unit

    @field_validator("cues")
    @classmethod
    def _folded(cls, cues: tuple[str, ...]) -> tuple[str, ...]:
        for cue in cues:
            if not cue or not cue.isascii() or cue != cue.lower().strip():
                raise ValueError(f"cue {cue!r}: lower-case words without diacritics")
        return cues


@cache
def load(path: Path = CATEGORIES_FILE) -> tuple[Category, ...]:
    """The categories in their order; ValueError when the file breaks the schema."""
    entries = TypeAdapter(tuple[Category, ...]).validate_python(
        yaml.safe_load(path.read_text(encoding="utf-8"))
    )
    codes = [c.code for c in entries]
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:
        raise ValueError(f"{path}: categories listed twice: {', '.join(duplicated)}")
    if "other" not in codes:
        raise ValueError(f"{path}: the category `other` is required")
    return entries


CATEGORIES: tuple[Category, ...] = load()
BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
CODES: tuple[str, ...] = tuple(BY_CODE)
ACCUSING: tuple[str, ...] = tuple(c.code for c in CATEGORIES if c.accuses_ward)


def accused_ward(category: str | None, ward_code: str | None) -> str | None:
    """The ward whose unit a complaint accuses (about its own officials), or None."""
    return ward_code if category in ACCUSING and ward_code else None
