"""The procedure catalog (PRODUCT.md §3): one checked entry per procedure id, and answers.

`procedures.yml` beside this module holds the facts; `load_catalog()` reads and validates it
once. `Catalog.search` finds the closest procedures for what a citizen typed (folded, so
"lam so do" and "làm sổ đỏ" read the same), and `answer` turns an entry into a reply short
enough for a phone that leads with what was asked, plus the full entry for a "Xem đầy đủ"
button. An entry marked `certain: false` always carries its uncertainty note (one sentence for
the citizen) and the link of the national public service portal. Where each entry's facts come
from (legal documents, sources, unverified facts) is modelled in `provenance.py`.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from civicbot_nlu.normalize import fold, normalize
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from bot.catalog.provenance import LegalDocument, Source, Unverified

PORTAL_URL = "https://dichvucong.gov.vn"
PORTAL_NAME = "Cổng Dịch vụ công quốc gia"
MAX_ANSWER_CHARS = 600
MAX_UNCERTAIN_NOTE_CHARS = 180
MAX_SUGGESTIONS = 3
DETAILS_BUTTON = "Xem đầy đủ"

Level = Literal["xa", "thanh_pho"]
Method = Literal["truc_tiep", "truc_tuyen", "buu_chinh"]

ASPECT_TITLES: dict[str, str] = {
    "documents": "Hồ sơ cần chuẩn bị",
    "fee": "Lệ phí",
    "duration": "Thời hạn giải quyết",
    "place": "Nơi nộp hồ sơ",
    "online": "Nộp trực tuyến",
}
METHOD_LABELS: dict[str, str] = {
    "truc_tiep": "Trực tiếp",
    "truc_tuyen": "Trực tuyến",
    "buu_chinh": "Qua bưu chính",
}
LEVEL_LABELS: dict[str, str] = {"xa": "Cấp xã (phường, xã)", "thanh_pho": "Thành phố Hà Nội"}

NO_MATCH_TEXT = (
    "Xin lỗi anh/chị, tôi chưa tìm thấy thủ tục này trong danh mục của CivicBot. "
    f"Anh/chị có thể tra cứu mọi thủ tục hành chính và nộp hồ sơ trực tuyến trên {PORTAL_NAME}: "
    f"{PORTAL_URL}"
)
SUGGEST_TEXT = "Anh/chị muốn hỏi về thủ tục nào dưới đây?"

_DATAFILE = "procedures.yml"
# "Nghị định 123/2015/NĐ-CP quy định chi tiết …" → "Nghị định 123/2015/NĐ-CP".
_NUMBERED_DOCUMENT = re.compile(r"^((?:Nghị định|Thông tư|Nghị quyết|Quyết định) \S+)")
_SENTENCE_END = re.compile(r"(?<=[.;])\s+")
_INNER_SENTENCE_END = re.compile(r"[.!?]\s+\S")
_MIN_FUZZY_LENGTH = 5
_FUZZY_CUTOFF = 0.8
_MIN_SCORE = 0.4
_MIN_CLIPPED_ITEM = 70
_FIRST_SENTENCE = re.compile(r"(?<=\.)\s+")
_CLOSE_SPELLING = 0.85
# Words of any request ("làm", "xin", "cấp", "giấy", "cần"): they never make a match alone.
_GENERIC = frozenset("lam xin cap dang ky giay to thu tuc cho muon can gi nao o dau the".split())
_GENERIC_WEIGHT = 0.2
# Spellings that differ only by i/y ("đăng kí", "lí lịch", "công ti") read as one.
_I_Y = {"ki": "ky", "li": "ly", "mi": "my", "ti": "ty", "si": "sy"}


class Submission(BaseModel):
    """One way to submit the file, with what the citizen should know about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method
    note: str = Field(min_length=1)


class Procedure(BaseModel):
    """One catalog entry: what a citizen needs to know about one procedure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = Field(min_length=1)
    authority: str = Field(min_length=1)
    level: Level
    submit: tuple[Submission, ...] = Field(min_length=1)
    online_url: str = Field(pattern=r"^https://")
    documents: tuple[str, ...] = Field(min_length=1)
    duration: str = Field(min_length=1)
    fee: str = Field(min_length=1)
    # As citizens read it; written in the YAML as documents (kind, number, date, title), kept
    # in `legal_documents`, or as plain strings (older files).
    legal_basis: tuple[str, ...] = Field(min_length=1)
    legal_documents: tuple[LegalDocument, ...] = ()
    notes: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    checked: date
    certain: bool
    uncertain_note: str | None = None  # one sentence for the citizen, ending with ":"
    unverified: tuple[Unverified, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _documents_as_citations(cls, data: object) -> object:
        basis = data.get("legal_basis") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(basis, list):
            return data
        if not any(isinstance(item, dict) for item in basis):
            return data
        documents = [LegalDocument.model_validate(item) for item in basis]
        return {
            **data,
            "legal_documents": documents,
            "legal_basis": [d.cite() for d in documents],
        }

    @field_validator("aliases", "documents", "legal_basis", "notes")
    @classmethod
    def _no_blank_items(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        if any(not item.strip() for item in items):
            raise ValueError("empty item")
        return items

    @model_validator(mode="after")
    def _uncertainty_is_explained(self) -> Procedure:
        if self.certain and self.uncertain_note:
            raise ValueError(f"{self.id}: uncertain_note is only for entries with certain: false")
        if not self.certain:
            if not self.uncertain_note or not self.uncertain_note.strip():
                raise ValueError(f"{self.id}: certain: false needs an uncertain_note")
            if len(self.uncertain_note) > MAX_UNCERTAIN_NOTE_CHARS:
                raise ValueError(f"{self.id}: uncertain_note longer than a phone answer allows")
            note = " ".join(self.uncertain_note.split())
            if _INNER_SENTENCE_END.search(note) or not note.endswith(":"):
                raise ValueError(f"{self.id}: uncertain_note is one sentence ending with ':'")
        if self.unverified and self.certain:
            raise ValueError(f"{self.id}: an entry with unverified facts is not certain")
        return self

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(s.method for s in self.submit)

    def submission(self, method: Method) -> Submission | None:
        return next((s for s in self.submit if s.method == method), None)

    def short_legal_basis(self, limit: int = 2) -> str:
        """The first legal documents by their short names, for the end of an answer."""
        return "; ".join(_short_document_name(doc) for doc in self.legal_basis[:limit])


class Option(BaseModel):
    """A procedure offered as a button when the question was vague."""

    model_config = ConfigDict(frozen=True)

    procedure_id: str
    label: str


class Answer(BaseModel):
    """A reply about a procedure: short `text` for the chat, full `details` for the button."""

    model_config = ConfigDict(frozen=True)

    text: str
    details: str
    procedure_id: str | None = None
    aspect: str | None = None
    certain: bool = True
    options: tuple[Option, ...] = ()


class _Phrase(NamedTuple):
    procedure_id: str
    tokens: tuple[str, ...]


class Catalog(BaseModel):
    """Every procedure of the catalog, in file order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    procedures: tuple[Procedure, ...] = Field(min_length=1)

    _by_id: dict[str, Procedure] = PrivateAttr(default_factory=dict)
    _phrases: list[_Phrase] = PrivateAttr(default_factory=list)
    _weights: dict[str, float] = PrivateAttr(default_factory=dict)
    _vocabulary: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        ids = [p.id for p in self.procedures]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate procedure ids: {', '.join(duplicates)}")
        return self

    def model_post_init(self, context: object, /) -> None:
        self._by_id = {p.id: p for p in self.procedures}
        for procedure in self.procedures:
            texts = {procedure.name, procedure.id.replace("_", " "), *procedure.aliases}
            for text in sorted(texts):
                tokens = tuple(_tokens(text))
                if tokens:
                    self._phrases.append(_Phrase(procedure.id, tokens))
        # Words that name one procedure ("chieu", "tru") weigh more than shared ones ("dang ky").
        frequency: dict[str, set[str]] = {}
        for phrase in self._phrases:
            for token in phrase.tokens:
                frequency.setdefault(token, set()).add(phrase.procedure_id)
        total = len(self.procedures)
        self._weights = {
            t: _GENERIC_WEIGHT if t in _GENERIC else math.log((total + 1) / len(ids))
            for t, ids in frequency.items()
        }
        self._vocabulary = sorted(self._weights)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.procedures)

    def get(self, procedure_id: str | None) -> Procedure | None:
        """The entry with this id, or None."""
        if procedure_id is None:
            return None
        return self._by_id.get(procedure_id)

    def search(self, text: str, limit: int = MAX_SUGGESTIONS) -> list[Procedure]:
        """The procedures whose names or aliases come closest to the text, best first.

        At most `MAX_SUGGESTIONS` (3); an empty list when nothing is close.
        """
        query = [self._alternatives(token) for token in _tokens(text)]
        if not query:
            return []
        best: dict[str, float] = {}
        for phrase in self._phrases:
            score = self._score(phrase.tokens, query)
            if score >= _MIN_SCORE and score > best.get(phrase.procedure_id, 0.0):
                best[phrase.procedure_id] = score
        if not best:
            best = self._close_spellings(text)
        order = {pid: i for i, pid in enumerate(self.ids)}
        ranked = sorted(best, key=lambda pid: (-best[pid], order[pid]))
        return [self._by_id[pid] for pid in ranked[: max(0, min(limit, MAX_SUGGESTIONS))]]

    def _alternatives(self, token: str) -> frozenset[str]:
        """The token and, for long words not in the catalog, close spellings ("pasport")."""
        if token in self._weights or len(token) < _MIN_FUZZY_LENGTH:
            return frozenset((token,))
        close = difflib.get_close_matches(token, self._vocabulary, n=3, cutoff=_FUZZY_CUTOFF)
        return frozenset((token, *close))

    def _close_spellings(self, text: str) -> dict[str, float]:
        """Whole-text look-alikes of an alias, for typos such as "khaisinh" or "hochieu"."""
        folded = " ".join(fold(text).split())
        if not folded:
            return {}
        found: dict[str, float] = {}
        for procedure in self.procedures:
            for alias in procedure.aliases:
                ratio = difflib.SequenceMatcher(None, folded, fold(alias)).ratio()
                if ratio >= _CLOSE_SPELLING and ratio > found.get(procedure.id, 0.0):
                    found[procedure.id] = ratio
        return found

    def _score(self, tokens: tuple[str, ...], query: list[frozenset[str]]) -> float:
        n = len(tokens)
        for i in range(len(query) - n + 1):
            if all(tokens[k] in query[i + k] for k in range(n)):
                # The whole phrase, in order; the more telling its words, the better
                # ("sửa ngày sinh" says more than "giấy khai sinh").
                return 1.0 + 0.02 * sum(self._weights[t] for t in tokens)
        # Otherwise partial credit: at least two of its words and half of them, weighted.
        present = [t for t in set(tokens) if any(t in alts for alts in query)]
        telling = [t for t in present if t not in _GENERIC]
        if len(telling) < 2 or 2 * len(present) < len(set(tokens)):
            return 0.0
        total = sum(self._weights[t] for t in set(tokens))
        if total <= 0:
            return 0.0
        return 0.9 * sum(self._weights[t] for t in present) / total


@cache
def load_catalog() -> Catalog:
    """The bundled catalog, read and validated once."""
    text = resources.files(__package__ or "bot.catalog").joinpath(_DATAFILE).read_text("utf-8")
    return parse_catalog(text)


def load_catalog_file(path: Path) -> Catalog:
    """A catalog from another file (not cached), e.g. to check an edited copy."""
    return parse_catalog(path.read_text(encoding="utf-8"))


def parse_catalog(text: str) -> Catalog:
    return Catalog.model_validate(yaml.safe_load(text))


def answer(procedure: Procedure | None, aspect: str | None = None) -> Answer:
    """A short reply about the procedure that starts with the aspect asked about.

    `aspect` is one of PRODUCT.md §4 (`documents`, `fee`, `duration`, `place`, `online`);
    None or anything else gives an overview. No procedure gives the portal link.
    """
    return answer_aspects(procedure, [aspect] if aspect else [])


def answer_aspects(procedure: Procedure | None, aspects: list[str]) -> Answer:
    """One short part per aspect asked ("online được không, mất bao lâu, hết bao nhiêu
    tiền" gets three), in the order asked, then the legal basis once."""
    asked = [a for a in dict.fromkeys(aspects) if a in ASPECT_TITLES]
    first = asked[0] if asked else None
    if procedure is None:
        return Answer(text=NO_MATCH_TEXT, details=NO_MATCH_TEXT, aspect=first)
    tail = _tail(procedure)
    budget = MAX_ANSWER_CHARS * max(1, len(asked)) - len(tail) - 1
    if asked:
        share = budget // len(asked)
        head = "\n\n".join(_lead(procedure, a, share) for a in asked)
    else:
        head = _lead(procedure, None, budget)
    return Answer(
        text=f"{head}\n{tail}",
        details=details(procedure),
        procedure_id=procedure.id,
        aspect=first,
        certain=procedure.certain,
    )


def suggest(text: str, catalog: Catalog | None = None) -> Answer:
    """For a vague or unknown procedure: the closest entries as options, else the portal."""
    matches = (catalog or load_catalog()).search(text)
    if not matches:
        return answer(None)
    options = tuple(Option(procedure_id=p.id, label=p.name) for p in matches)
    lines = [SUGGEST_TEXT, *(f"• {p.name}" for p in matches)]
    return Answer(text="\n".join(lines), details="\n".join(lines), options=options)


def details(procedure: Procedure) -> str:
    """The whole entry as readable Vietnamese, for the "Xem đầy đủ" button."""
    lines = [procedure.name.upper(), ""]
    lines.append(f"Cơ quan giải quyết: {procedure.authority}")
    lines.append(f"Cấp giải quyết: {LEVEL_LABELS[procedure.level]}")
    lines.append("Cách nộp hồ sơ:")
    lines += [f"• {METHOD_LABELS[s.method]}: {s.note}" for s in procedure.submit]
    if "truc_tuyen" in procedure.methods:
        lines.append(f"Nộp trực tuyến tại: {procedure.online_url}")
    lines.append("Hồ sơ:")
    lines += [f"• {doc}" for doc in procedure.documents]
    lines.append(f"Thời hạn giải quyết: {procedure.duration}")
    lines.append(f"Lệ phí: {procedure.fee}")
    if procedure.notes:
        lines.append("Cần biết thêm:")
        lines += [f"• {note}" for note in procedure.notes]
    lines.append("Căn cứ pháp lý:")
    lines += [f"• {doc}" for doc in procedure.legal_basis]
    lines.append(f"Thông tin được kiểm tra đến ngày: {procedure.checked:%d/%m/%Y}")
    if not procedure.certain:
        lines.append(_uncertain_line(procedure))
    else:
        lines.append(f"Quy định có thể thay đổi; tra cứu thêm tại {PORTAL_NAME}: {PORTAL_URL}")
    return "\n".join(lines)


# --- building the short answer ---------------------------------------------------------------


def _tail(procedure: Procedure) -> str:
    tail = f"Căn cứ: {procedure.short_legal_basis()}."
    if not procedure.certain:
        tail += "\n" + _uncertain_line(procedure)
    return tail


def _uncertain_line(procedure: Procedure) -> str:
    """The entry's one sentence on what may have changed, then the portal's address."""
    return f"Lưu ý: {' '.join((procedure.uncertain_note or '').split())} {PORTAL_URL}"


def _lead(procedure: Procedure, aspect: str | None, budget: int) -> str:
    if aspect not in ASPECT_TITLES:
        return _overview(procedure, budget)
    title = f"{ASPECT_TITLES[aspect]} – {_short_name(procedure)}:"
    room = budget - len(title) - 1
    if aspect == "documents":
        body = _bullets(procedure.documents, room)
    elif aspect == "fee":
        body = _clip(procedure.fee, room)
    elif aspect == "duration":
        body = _clip(procedure.duration, room)
    elif aspect == "place":
        ways = ", ".join(METHOD_LABELS[m].lower() for m in procedure.methods)
        ways_line = f"Cách nộp: {ways}."
        body = _clip(procedure.authority, room - len(ways_line) - 1) + "\n" + ways_line
    else:  # online
        online = procedure.submission("truc_tuyen")
        if online is None:
            body = _clip(
                "Thủ tục này hiện chưa nộp trực tuyến được; anh/chị nộp hồ sơ tại: "
                + procedure.authority,
                room,
            )
        else:
            link = f"\n{procedure.online_url}"
            body = _clip(online.note, room - len(link)) + link
    return f"{title}\n{body}"


def _overview(procedure: Procedure, budget: int) -> str:
    """Where, how long and how much, one line each, first sentences only."""
    parts = [
        ("Nơi nộp", procedure.authority),
        ("Thời hạn", procedure.duration),
        ("Lệ phí", procedure.fee),
    ]
    lines = [f"{procedure.name}:"]
    room = budget - len(lines[0])
    for i, (label, text) in enumerate(parts):
        share = room // (len(parts) - i)  # what an earlier short line leaves goes to the next
        line = f"{label}: {_clip(_first_sentence(text), share - len(label) - 3)}"
        lines.append(line)
        room -= len(line) + 1
    return "\n".join(lines)


def _bullets(items: tuple[str, ...], room: int) -> str:
    """As many items as fit (the last one shortened if need be), then how many are left."""
    lines: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        reserve = len(_more_line(rest)) + 1 if rest else 0
        left = room - len("\n".join(lines)) - (1 if lines else 0) - reserve
        line = f"• {item}"
        if len(line) <= left:
            lines.append(line)
            continue
        if left >= _MIN_CLIPPED_ITEM or not lines:
            lines.append(_clip(line, left))
            if rest:
                lines.append(_more_line(rest))
        else:
            lines.append(_more_line(rest + 1))
        break
    return "\n".join(lines)


def _more_line(count: int) -> str:
    return f"• … và {count} mục khác (bấm “{DETAILS_BUTTON}”)"


def _first_sentence(text: str) -> str:
    return _FIRST_SENTENCE.split(" ".join(text.split()), maxsplit=1)[0]


def _short_name(procedure: Procedure) -> str:
    """The name without its parenthesis: "Đăng ký biến động đất đai"."""
    return procedure.name.split(" (", 1)[0]


def _clip(text: str, room: int) -> str:
    """The text if it fits, else whole sentences that fit, else cut at a word with "…"."""
    text = " ".join(text.split())
    if len(text) <= room:
        return text
    kept = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{kept} {sentence}".strip()
        if len(candidate) + 2 > room:
            break
        kept = candidate
    if kept:
        return f"{kept} …"
    cut = text[: max(0, room - 1)].rsplit(" ", 1)[0].rstrip(",;:")
    return f"{cut}…"


def _tokens(text: str) -> list[str]:
    """Folded, expanded words of the text, with i/y spelling variants made one."""
    return [_I_Y.get(word, word) for word in normalize(text).split()]


def _short_document_name(document: str) -> str:
    match = _NUMBERED_DOCUMENT.match(document)
    if match:
        return match.group(1)
    return document.split(" (", 1)[0]
