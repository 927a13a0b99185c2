"""Where a catalog entry's facts come from, and how old they are.

Each entry of `procedures.yml` lists its legal basis as documents (kind, number, date, title),
the sources it was checked against (citations a person can look up), the date it was checked,
and the facts that could not be verified, each with the reason. `staleness` tells which entries
are older than the allowed age (`CIVICBOT_CATALOG_MAX_AGE_DAYS`); `civicbot catalog check`
prints it for the person who maintains the catalog.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from bot.catalog.catalog import Catalog, Procedure

DocumentKind = Literal[
    "Bộ luật", "Luật", "Nghị quyết", "Nghị định", "Thông tư", "Quyết định", "Văn bản hợp nhất"
]


class LegalDocument(BaseModel):
    """One document of an entry's legal basis; `number`/`date` None only when unverified."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: DocumentKind
    number: str | None = Field(default=None, min_length=1)
    issued: date | None = Field(default=None, alias="date")  # `date:` in the YAML
    title: str = Field(min_length=1)
    note: str | None = None  # e.g. "sửa đổi, bổ sung bởi …", "hiệu lực từ 01/7/2026"

    def cite(self) -> str:
        """As a citizen reads it: "Nghị định 120/2025/NĐ-CP ngày 11/06/2025 quy định …"."""
        when = f"ngày {self.issued:%d/%m/%Y}" if self.issued else ""
        if self.kind in ("Luật", "Bộ luật"):
            number = f"số {self.number}" if self.number else ""
            inner = "; ".join(
                p for p in (", ".join(p for p in (number, when) if p), self.note) if p
            )
            return f"{self.title} ({inner})" if inner else self.title
        text = " ".join(p for p in (self.kind, self.number or "", when, self.title) if p)
        return f"{text} ({self.note})" if self.note else text


class Source(BaseModel):
    """A citation the facts were checked against: a title and where to read it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")
    publisher: str | None = None
    published: date | None = None


class Unverified(BaseModel):
    """A fact of the entry that could not be checked, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fact: str = Field(min_length=1)
    reason: str = Field(min_length=1)


class Finding(NamedTuple):
    """What `staleness` reports about one entry."""

    procedure_id: str
    name: str
    checked: date
    age_days: int
    stale: bool
    unverified: tuple[Unverified, ...]
    uncertain: bool


def staleness(catalog: Catalog, *, today: date, max_age_days: int) -> list[Finding]:
    """Every entry that is stale (checked more than `max_age_days` ago) or uncertain."""
    findings = []
    for procedure in catalog.procedures:
        finding = _finding(procedure, today=today, max_age_days=max_age_days)
        if finding.stale or finding.uncertain:
            findings.append(finding)
    return findings


def _finding(procedure: Procedure, *, today: date, max_age_days: int) -> Finding:
    age = (today - procedure.checked).days
    return Finding(
        procedure_id=procedure.id,
        name=procedure.name,
        checked=procedure.checked,
        age_days=age,
        stale=age > max_age_days,
        unverified=procedure.unverified,
        uncertain=not procedure.certain,
    )


def report(findings: list[Finding], *, today: date, max_age_days: int, total: int) -> str:
    """The maintainer's text: stale entries first, then uncertain ones with what and why."""
    stale = [f for f in findings if f.stale]
    uncertain = [f for f in findings if f.uncertain]
    lines = [
        f"Catalog on {today:%Y-%m-%d}: {total} entries, {len(stale)} stale "
        f"(checked more than {max_age_days} days ago), {len(uncertain)} with unverified facts."
    ]
    if stale:
        lines += ["", "Stale:"]
        lines += [
            f"  {f.procedure_id}: checked {f.checked:%Y-%m-%d} ({f.age_days} days)" for f in stale
        ]
    if uncertain:
        lines += ["", "Unverified facts:"]
        for f in uncertain:
            lines.append(f"  {f.procedure_id} ({f.name}), checked {f.checked:%Y-%m-%d}:")
            lines += [f"    - {u.fact} — {u.reason}" for u in f.unverified]
    return "\n".join(lines)
