"""Hà Nội place names → the 2025 wards and communes.

Since 1 July 2025 Hà Nội has two tiers: the city and 126 wards/communes (phường/xã).
Citizens still write the old districts (quận/huyện/thị xã) and the old wards, with or
without diacritics and abbreviated ("p.Dich Vong Hau", "q.Cầu Giấy"). This module turns
such phrases into the new units, or into the list of candidate units when the old name
does not pin down one new unit.

Everything is derived from two packages' data:

* ``vietnam-provinces`` (``Ward.iter_by_province``): the list of the 126 units, with their
  full names and types;
* ``vietnamadminunits``: through its ``database.query`` the pre-2025 districts and wards with
  their spelling variants and aliases, and the unit codes; through its converter's tables
  (``DICT_PROVINCE_WARD_NO_DIVIDED`` and ``_DIVIDED``, as ``convert_address`` reads them)
  which old ward became, or was split among, which new units. ``convert_address`` itself
  gives only the default part of a split ward; the candidates need the whole table. No file
  of the package is opened here: its layout is its own business.

The unit code is the one ``vietnamadminunits`` gives. The two packages disagree on 29 of
the 126 Hà Nội codes (e.g. Phường Láng 00199 vs 187, Phường Cửa Nam 00082 vs 73); as far
as we could check, the ``vietnamadminunits`` codes are those of the national statistics
office's registry (danhmuchanhchinh.nso.gov.vn, Decision 19/2025/QĐ-TTg). A unit missing
from ``vietnamadminunits`` would get the ``vietnam-provinces`` code.

Old wards split among several new units give candidates, the package's default new unit
(the one holding most of the old ward) first; old districts give every new unit that
received part of them, those that received most first.
"""

from __future__ import annotations

import json
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

__all__ = ["HanoiGazetteer", "Location", "Ward", "gazetteer"]


@dataclass(frozen=True)
class Ward:
    """A ward or commune of the administrative map in force since 1 July 2025."""

    code: str  # official five-digit code, e.g. "00166"
    name: str  # full name, e.g. "Phường Cầu Giấy", "Xã Bát Tràng"


@dataclass(frozen=True)
class Location:
    """What a place phrase means on the 2025 map.

    ``ward`` is set when the phrase names exactly one new unit; otherwise ``candidates``
    lists the possible new units (best guess first), and both are empty when the phrase
    names no known place.
    """

    text: str
    ward: Ward | None
    candidates: tuple[Ward, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "ward_code": self.ward.code if self.ward else None,
            "ward_name": self.ward.name if self.ward else None,
            "candidates": [{"ward_code": w.code, "ward_name": w.name} for w in self.candidates],
        }


# ---------------------------------------------------------------------------------------
# Text normalisation

_TONE_MARKS: Final = frozenset("\u0300\u0301\u0303\u0309\u0323")  # huyền sắc ngã hỏi nặng
_ETH: Final = str.maketrans({"Ð": "Đ", "ð": "đ"})  # look-alike letter some keyboards produce
_NON_KEY: Final = re.compile(r"[^a-z0-9]+")
_TOKEN: Final = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """One character, lower-cased, without diacritics; "" for a combining mark.

    A precomposed Vietnamese letter folds to exactly one ASCII letter ("ệ" → "e",
    "đ" → "d"), so folding NFC text keeps its length.
    """
    if ch in "đĐðÐ":
        return "d"
    stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    lowered = stripped.lower()
    if lowered != stripped:  # lower() may add marks (İ → i̇)
        lowered = "".join(
            c for c in unicodedata.normalize("NFD", lowered) if not unicodedata.combining(c)
        )
    return lowered


def _fold_with_map(text: str) -> tuple[str, list[int]]:
    """Folded text and, for each of its characters, the index of its source character."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = ch if ch.isascii() and not ch.isupper() else _fold_char(ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


def _fold(text: str) -> str:
    return "".join(ch if ch.isascii() and not ch.isupper() else _fold_char(ch) for ch in text)


def _key(text: str) -> str:
    """Matching key: folded letters and digits ("Văn Miếu - Quốc Tử Giám" → "vanmieuquoctugiam")."""
    return _NON_KEY.sub("", _fold(text))


def _has_marks(text: str) -> bool:
    """Whether the text carries any Vietnamese diacritic (tone, vowel mark or đ)."""
    return any(
        not ch.isascii()
        and (unicodedata.combining(ch) or (ch.isalpha() and _fold_char(ch) != ch.lower()))
        for ch in text
    )


def _tone_key(text: str) -> tuple[str, str]:
    """Letters with their vowel marks, and the sequence of tone marks.

    Two spellings compare equal when they differ only in case, spacing, punctuation or
    where the tone mark sits ("Hoà" / "Hòa", "Thuỷ" / "Thủy").
    """
    letters: list[str] = []
    tones: list[str] = []
    for ch in unicodedata.normalize("NFD", text.translate(_ETH).lower()):
        if ch in _TONE_MARKS:
            tones.append(ch)
        elif unicodedata.combining(ch) or ch.isalnum():
            letters.append(ch)
    return unicodedata.normalize("NFC", "".join(letters)), "".join(tones)


def _words(name: str) -> int:
    return len([w for w in re.split(r"[\s\-–]+", name) if w])


# ---------------------------------------------------------------------------------------
# Gazetteer data

_PROVINCE_KEY: Final = "thanhphohanoi"  # vietnamadminunits' key for Hà Nội

Level = Literal["new", "old", "district"]


@dataclass(frozen=True)
class _Reading:
    """One meaning of a matching key."""

    level: Level
    ref: str  # new unit code, old ward id ("quancaugiay_phuongdichvonghau") or district key
    kind: str  # phuong | xa | thitran (units) ; quan | huyen | thixa (districts)
    accented: str | None  # canonical short name when the key is that name's spelling
    urban: bool  # old ward of a quận


@dataclass(frozen=True)
class _OldWard:
    name: str
    district: str  # district key
    targets: tuple[str, ...]  # new unit codes, the package's default (largest part) first


@dataclass(frozen=True)
class _OldDistrict:
    name: str
    kind: str
    targets: tuple[str, ...]  # new unit codes, those taking most of the district first


@dataclass(frozen=True)
class _Data:
    new: dict[str, Ward]  # code → unit
    new_kind: dict[str, str]  # code → phuong | xa
    old_wards: dict[str, _OldWard]
    districts: dict[str, _OldDistrict]
    index: dict[str, tuple[_Reading, ...]]  # key → readings
    max_tokens: int


_TYPE_KIND: Final = {
    "Phường": "phuong",
    "Xã": "xa",
    "Thị trấn": "thitran",
    "Quận": "quan",
    "Huyện": "huyen",
    "Thị xã": "thixa",
}


def _units(sql: str) -> list[dict[str, Any]]:
    """Rows of vietnamadminunits' database (its documented `query`)."""
    from vietnamadminunits.database import query  # loads its parser too: ~0.8 s, once

    rows: list[dict[str, Any]] = query(sql)
    return rows


def _short(full: str) -> tuple[str, str]:
    """("Phường Cầu Giấy") → ("phuong", "Cầu Giấy")."""
    for label in sorted(_TYPE_KIND, key=len, reverse=True):
        if full.startswith(label + " "):
            return _TYPE_KIND[label], full[len(label) + 1 :]
    return "", full


def _load_vietnam_provinces() -> dict[str, tuple[int, str]]:
    """Full name → (code, kind) of the 2025 Hà Nội units, from vietnam-provinces."""
    from vietnam_provinces import ProvinceCode
    from vietnam_provinces import Ward as VPWard

    out: dict[str, tuple[int, str]] = {}
    for w in VPWard.iter_by_province(ProvinceCode.P_01):
        kind = "phuong" if w.division_type.value == "phường" else "xa"
        out[unicodedata.normalize("NFC", w.name)] = (int(w.code), kind)
    return out


def _keys_of(short: str, kind: str, keywords_json: str | None) -> Iterator[tuple[str, bool]]:
    """Matching keys of a unit: (key, is the canonical spelling of its name)."""
    canonical = _key(short)
    yield canonical, True
    keywords = [kw for kw in json.loads(keywords_json or "[]") if isinstance(kw, str)]
    listed = {*keywords, canonical}
    for kw in keywords:
        if kw == canonical:
            continue
        if kind and kw.startswith(kind) and kw[len(kind) :] in listed:
            # "phuongdichvong": vietnamadminunits lists keywords with their type word
            # ("phuong", "xa", "thitran", "quan", "huyen", "thixa") and without it. Not
            # "phuonglien": Phương Liên is a name.
            continue
        yield kw, False


def _plain_short(short: str) -> str:
    """Drop the "(Xã)" vietnamadminunits adds to some homonyms ("Yên Viên (Xã)")."""
    return re.sub(r"\s*\([^)]*\)", "", short).strip()


@lru_cache(maxsize=1)
def _centroids() -> tuple[tuple[str, float, float], ...]:
    """(code, latitude, longitude) of every 2025 Hà Nội unit, from vietnamadminunits."""
    rows = _units(
        "SELECT wardCode, wardLat, wardLon FROM admin_units"
        f" WHERE provinceKey = '{_PROVINCE_KEY}' AND wardLat IS NOT NULL AND wardLon IS NOT NULL"
    )
    return tuple((str(r["wardCode"]), float(r["wardLat"]), float(r["wardLon"])) for r in rows)


_NEW_FIELDS: Final = "ward wardShort wardType wardCode wardKey wardKeywords".split()
_OLD_FIELDS: Final = (
    "district districtShort districtType districtKey districtKeywords"
    " ward wardShort wardType wardKey wardKeywords"
).split()


def _rows(fields: Sequence[str], table: str) -> list[tuple[Any, ...]]:
    """The Hà Nội rows of one of vietnamadminunits' tables, as tuples of `fields`."""
    return [
        tuple(row[name] for name in fields)
        for row in _units(
            f"SELECT {', '.join(fields)} FROM {table} WHERE provinceKey = '{_PROVINCE_KEY}'"
        )
    ]


class _Index:
    """Matching key → the readings of it, in the order they were added, each once."""

    def __init__(self) -> None:
        self.readings: dict[str, list[_Reading]] = {}

    def add(self, key: str, reading: _Reading) -> None:
        if key and reading not in self.readings.setdefault(key, []):
            self.readings[key].append(reading)

    def add_stems(self) -> None:
        """Old names only used with a number ("Mỹ Đình 1", "Mỹ Đình 2") found without it too
        ("Mỹ Đình", "Cổ Nhuế")."""
        numbered: dict[str, list[_Reading]] = {}
        for key, readings in self.readings.items():
            stem = key.rstrip("0123456789")
            if stem != key and stem and stem not in self.readings:
                numbered.setdefault(stem, []).extend(r for r in readings if r.level == "old")
        for stem, readings in numbered.items():
            for r in readings:
                self.add(stem, _Reading(r.level, r.ref, r.kind, None, r.urban))

    def frozen(self) -> dict[str, tuple[_Reading, ...]]:
        return {k: tuple(v) for k, v in self.readings.items()}


def _new_units(index: _Index) -> tuple[dict[str, Ward], dict[str, str], dict[str, str]]:
    """The 2025 units by code, their kinds, and their codes by vietnamadminunits' ward key.

    The list and types come from vietnam-provinces, codes and keys from vietnamadminunits
    (joined on the full name, identical in both for all 126)."""
    vp_units = _load_vietnam_provinces()
    new: dict[str, Ward] = {}
    new_kind: dict[str, str] = {}
    code_of_key: dict[str, str] = {}  # vietnamadminunits ward key → code
    vau_by_name = {unicodedata.normalize("NFC", r[0]): r for r in _rows(_NEW_FIELDS, "admin_units")}
    for name in sorted(set(vp_units) | set(vau_by_name)):
        row = vau_by_name.get(name)
        kind, short = _short(name)
        if name in vp_units:
            kind = vp_units[name][1]
        code = str(row[3]) if row else f"{vp_units[name][0]:05d}"
        new[code] = Ward(code=code, name=name)
        new_kind[code] = kind
        if row:
            code_of_key[str(row[4])] = code
        for key, canonical in _keys_of(short, kind, row[5] if row else None):
            index.add(key, _Reading("new", code, kind, short if canonical else None, False))
    return new, new_kind, code_of_key


def _targets_of(code_of_key: dict[str, str]) -> dict[str, list[str]]:
    """Which new units each old ward went to (province-qualified old ward id → codes)."""
    from vietnamadminunits.converter import converter_2025

    no_divided: dict[str, list[str]] = converter_2025.DICT_PROVINCE_WARD_NO_DIVIDED.get(
        _PROVINCE_KEY, {}
    )
    divided: dict[str, list[dict[str, object]]] = converter_2025.DICT_PROVINCE_WARD_DIVIDED.get(
        _PROVINCE_KEY, {}
    )
    targets_of: dict[str, list[str]] = {}
    for new_key, old_ids in no_divided.items():
        for old_id in old_ids:
            targets_of.setdefault(old_id, []).append(code_of_key[new_key])
    for old_id, parts in divided.items():
        ordered = sorted(parts, key=lambda p: (not p["isDefaultNewWard"], str(p["newWardKey"])))
        targets_of[old_id] = [code_of_key[str(p["newWardKey"])] for p in ordered]
    return targets_of


def _old_units(
    index: _Index, targets_of: dict[str, list[str]]
) -> tuple[dict[str, _OldWard], dict[str, _OldDistrict]]:
    """The wards and districts before 2025, each with the new units it went to."""
    old_wards: dict[str, _OldWard] = {}
    district_rows: dict[str, tuple[str, str, str, str | None]] = {}
    weight: dict[str, dict[str, float]] = {}  # old district → new code → share of its wards
    for row in _rows(_OLD_FIELDS, "admin_units_legacy"):
        d_name, d_short, d_type, d_key, d_kw, w_name, w_short, w_type, w_key, w_kw = row
        district_rows[d_key] = (d_name, d_short, d_type, d_kw)
        old_id = f"{d_key}_{w_key}"
        targets = tuple(dict.fromkeys(targets_of.get(f"{_PROVINCE_KEY}_{old_id}", [])))
        if not targets:
            continue
        old_wards[old_id] = _OldWard(w_name, d_key, targets)
        kind = _TYPE_KIND.get(w_type, "")
        w_short = _plain_short(w_short)
        urban = _TYPE_KIND.get(d_type) == "quan"
        for key, canonical in _keys_of(w_short, kind, w_kw):
            index.add(key, _Reading("old", old_id, kind, w_short if canonical else None, urban))
        weight.setdefault(d_key, {})
        for rank, code in enumerate(targets):
            weight[d_key][code] = weight[d_key].get(code, 0.0) + (1.0 if rank == 0 else 0.25)

    districts: dict[str, _OldDistrict] = {}
    for d_key, (d_name, d_short, d_type, d_kw) in district_rows.items():
        shares = weight.get(d_key, {})
        targets = tuple(sorted(shares, key=lambda c: (-shares[c], c)))
        kind = _TYPE_KIND.get(d_type, "")
        districts[d_key] = _OldDistrict(d_name, kind, targets)
        d_short = _plain_short(d_short)
        for key, canonical in _keys_of(d_short, kind, d_kw):
            index.add(key, _Reading("district", d_key, kind, d_short if canonical else None, False))
    return old_wards, districts


def _build() -> _Data:
    index = _Index()
    new, new_kind, code_of_key = _new_units(index)
    old_wards, districts = _old_units(index, _targets_of(code_of_key))
    index.add_stems()
    return _Data(new, new_kind, old_wards, districts, index.frozen(), max_tokens=8)


_DATA_LOCK: Final = threading.Lock()
_loaded: _Data | None = None


def _data() -> _Data:
    """The gazetteer data, built on first use, once per process."""
    global _loaded
    if _loaded is None:
        with _DATA_LOCK:
            if _loaded is None:
                _loaded = _build()
    return _loaded


# ---------------------------------------------------------------------------------------
# Scanning

Prefix = Literal["", "phuong", "xa", "thitran", "district", "street"]

_PREFIXES: Final[dict[tuple[str, ...], Prefix]] = {
    ("phuong",): "phuong",
    ("p",): "phuong",
    ("xa",): "xa",
    ("x",): "xa",
    ("thi", "tran"): "thitran",
    ("thitran",): "thitran",
    ("tt",): "thitran",
    ("quan",): "district",
    ("q",): "district",
    ("huyen",): "district",
    ("h",): "district",
    ("thi", "xa"): "district",
    ("thixa",): "district",
    ("tx",): "district",
    ("tp",): "district",
    ("thanh", "pho"): "district",
    ("pho",): "street",
    ("duong",): "street",
    ("d",): "street",
    ("ngo",): "street",
    ("ngach",): "street",
    ("hem",): "street",
}
_MAX_PREFIX: Final = max(len(p) for p in _PREFIXES)
_STREET_WORDS: Final = frozenset(p[0] for p, kind in _PREFIXES.items() if kind == "street")
# Prefix words that are also ordinary words once the diacritics are gone ("xa" far, "quan"
# official, "phở" soup, "dương"...): in a message typed with diacritics they must carry the
# right ones to count as prefixes.
_AMBIGUOUS_PREFIX: Final = {
    "xa": "xã",
    "quan": "quận",
    "huyen": "huyện",
    "pho": "phố",
    "duong": "đường",
    "ngo": "ngõ",
    "hem": "hẻm",
}
_GLUED_PREFIXES: Final[tuple[tuple[str, Prefix], ...]] = (
    ("phuong", "phuong"),
    ("thitran", "thitran"),
    ("thixa", "district"),
    ("quan", "district"),
    ("huyen", "district"),
    ("xa", "xa"),
)
# Words after which a bare name is taken as a place: "ở Cầu Giấy", "khu tập thể Kim Liên",
# "chợ Khâm Thiên", "cầu vượt Mai Dịch". Folded form → how it is written with diacritics.
# Without one of them a two-syllable name is too often a person ("chị Bạch Mai", "anh Ngọc
# Hà") or a common word ("bình minh", "hòa bình", "thành công").
_CONTEXT_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "o": ("ở",),
    "tai": ("tại",),
    "vuc": ("vực",),  # khu vực
    "ban": ("bàn",),  # địa bàn
    "thuoc": ("thuộc",),
    "gan": ("gần",),
    "quanh": ("quanh",),
    "canh": ("cạnh",),
    "den": ("đến",),
    "tu": ("từ", "tư"),  # từ ... đến, ngã tư
    "ve": ("về",),
    "sang": ("sang",),
    "khu": ("khu",),
    "thon": ("thôn",),
    "xom": ("xóm",),
    "lang": ("làng",),
    "to": ("tổ",),
    "doan": ("đoạn",),
    "cho": ("chợ",),
    "cau": ("cầu",),
    "vuot": ("vượt",),  # cầu vượt
    "ho": ("hồ",),
    "vien": ("viên", "viện"),  # công viên, bệnh viện
    "the": ("thể",),  # khu tập thể
    "cu": ("cư",),  # khu dân cư
    "co": ("cổ",),  # phố cổ
}
_SEPARATORS: Final = re.compile(r"[\s,.;:/()\-–—]*")
_NAME_GAP: Final = re.compile(r"\s*[\-–—]?\s*")
_WARD_PREFIXES: Final = ("phuong", "xa", "thitran")
_HOUSE_NUMBER: Final = re.compile(r"\d+[a-gk-z]?")  # "45", "12b"; not "10h" (a time)


@dataclass(frozen=True)
class _Token:
    text: str  # folded
    start: int  # offsets into the original text
    end: int


@dataclass(frozen=True)
class _Mention:
    tok_start: int
    tok_end: int
    start: int
    end: int
    prefix: Prefix
    name: str  # original text of the name part
    readings: tuple[_Reading, ...]
    prefixed: bool  # written with a prefix word (phường, q., phố...)


def _tokens(text: str) -> list[_Token]:
    folded, origin = _fold_with_map(text)
    out: list[_Token] = []
    for m in _TOKEN.finditer(folded):
        start = origin[m.start()]
        end = origin[m.end() - 1] + 1
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1  # decomposed (NFD) input: keep the marks of the last letter
        out.append(_Token(m.group(), start, end))
    return out


def _unique(codes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(codes))


class HanoiGazetteer:
    """Old and new Hà Nội place names, mapped onto the 2025 wards and communes.

    The data is loaded on first use (once per process, shared by all instances).
    """

    @property
    def _d(self) -> _Data:
        return _data()

    def load(self) -> HanoiGazetteer:
        """Load the data now rather than on first use."""
        _data()
        return self

    # -- public API -------------------------------------------------------------------

    @property
    def wards(self) -> tuple[Ward, ...]:
        """All 2025 Hà Nội wards and communes, by code."""
        return tuple(self._d.new[c] for c in sorted(self._d.new))

    def stats(self) -> dict[str, int]:
        """How many units of each kind the gazetteer holds."""
        d = self._d
        return {
            "new_units": len(d.new),
            "new_wards": sum(1 for k in d.new_kind.values() if k == "phuong"),
            "new_communes": sum(1 for k in d.new_kind.values() if k == "xa"),
            "old_wards": len(d.old_wards),
            "old_districts": len(d.districts),
            "old_wards_split": sum(1 for w in d.old_wards.values() if len(w.targets) > 1),
            "keys": len(d.index),
        }

    def nearest(self, lat: float, lon: float, count: int = 3) -> tuple[Ward, ...]:
        """The units whose reference points are closest to a pin, closest first.

        The packages carry one reference point per unit, not boundaries, so this is a
        shortlist for the citizen to choose from, not a verdict.
        """
        scale = math.cos(math.radians(lat))  # degrees of longitude shrink with latitude
        ranked = sorted(
            _centroids(),
            key=lambda c: (c[1] - lat) ** 2 + ((c[2] - lon) * scale) ** 2,
        )
        return tuple(self._d.new[code] for code, _, _ in ranked[:count] if code in self._d.new)

    def reference_points(self) -> dict[str, tuple[float, float]]:
        """Unit code → its reference point (latitude, longitude): one point per unit."""
        return {code: (lat, lon) for code, lat, lon in _centroids() if code in self._d.new}

    def resolve(self, text: str) -> Location:
        """What a place phrase the citizen wrote means on the 2025 map.

        ``text`` is returned unchanged in the result.
        """
        mentions = self._scan(text, strict=False)
        return self._locate(text, mentions)

    def find(self, message: str) -> list[tuple[int, int, Location]]:
        """Administrative place names in a free-text message.

        Returns (start, end, location) with offsets into ``message`` itself, in order;
        ``location.text == message[start:end]``. The longest name wins ("phường Láng Hạ",
        not "phường Láng"), and an old ward followed by its old district ("p.Kim Liên,
        q. Đống Đa") is one span.

        A name written with a prefix word (phường, xã, thị trấn, quận, huyện, thị xã and
        their abbreviations) always counts. After a street word (phố, đường, ngõ...) or a
        house number, it counts only when it means exactly one 2025 unit and is no old
        district's name ("đường Láng" yes, "phố Hai Bà Trưng" no). A bare name counts when
        it is spelt with its diacritics (if it has any), and is three syllables or more
        ("Dịch Vọng Hậu"), or follows a word like "ở", "tại", "khu", "chợ", "cầu", or
        completes an address with a prefixed name; a one-syllable name ("Láng") also
        needs its capital letter.
        """
        mentions = self._scan(message, strict=True)
        toks = _tokens(message)
        accepted = [m for m in mentions if m.prefixed or self._bare_ok(message, toks, m)]
        # A bare name that completes an accepted one as an address ("phường Láng Hạ,
        # đống đa", "dich vong hau, q. cau giay") goes with it.
        pending = [m for m in mentions if m not in accepted and self._syllables(m) >= 2]
        changed = True
        while changed and pending:
            changed = False
            for m in list(pending):
                if any(
                    self._links(message, [a], m) or self._links(message, [m], a) for a in accepted
                ):
                    accepted.append(m)
                    pending.remove(m)
                    changed = True
        accepted.sort(key=lambda m: m.start)
        out: list[tuple[int, int, Location]] = []
        chain: list[_Mention] = []
        for m in accepted:
            if chain and not self._links(message, chain, m):
                out.extend(self._chain_location(message, chain))
                chain = []
            chain.append(m)
        if chain:
            out.extend(self._chain_location(message, chain))
        return out

    # -- scanning -------------------------------------------------------------------------

    def _scan(self, text: str, *, strict: bool) -> list[_Mention]:
        """Place names in ``text``, left to right, longest first (offsets into ``text``).

        ``strict`` (free text): bare names must be real names spelt as they are.
        """
        toks = _tokens(text)
        accented = _has_marks(text)
        out: list[_Mention] = []
        i = 0
        while i < len(toks):
            found = self._mention_at(text, toks, i, strict=strict, accented=accented)
            if found is None:
                i += 1
            elif isinstance(found, int):
                i = found  # a street name that does not resolve: skip it whole
            else:
                out.append(found)
                i = found.tok_end
        return out

    def _match_name(
        self, text: str, toks: Sequence[_Token], j: int
    ) -> tuple[int, str, Prefix] | None:
        """Longest key starting at token j: (end token, key, glued prefix or "").

        A name runs over spaces and dashes only ("Văn Miếu - Quốc Tử Giám"), never over
        a comma ("Tây Sơn, Đống Đa" is no "Sơn Đồng").
        """
        d = self._d
        best: tuple[int, str, Prefix] | None = None
        concat = ""
        for k in range(j, min(len(toks), j + d.max_tokens)):
            if k > j and _NAME_GAP.fullmatch(text[toks[k - 1].end : toks[k].start]) is None:
                break
            concat += toks[k].text
            if concat in d.index:
                best = (k + 1, concat, "")
            elif len(concat) > 3:
                for word, prefix in _GLUED_PREFIXES:
                    rest = concat[len(word) :]
                    if (
                        concat.startswith(word)
                        and len(toks[j].text) > len(word)
                        and rest in d.index
                    ):
                        best = (k + 1, rest, prefix)
                        break
        return best

    def _mention_at(
        self, text: str, toks: Sequence[_Token], i: int, *, strict: bool, accented: bool
    ) -> _Mention | int | None:
        prefixed: _Mention | int | None = None
        prefix_kind, p_len = self._prefix_at(text, toks, i, strict=strict, accented=accented)
        if p_len:
            prefixed = self._prefixed(text, toks, i, prefix_kind, i + p_len, strict=strict)
        bare = self._bare(text, toks, i, strict=strict)
        if isinstance(bare, int):
            return bare if prefixed is None or isinstance(prefixed, int) else prefixed
        if isinstance(prefixed, _Mention):
            if bare is not None and bare.tok_end > prefixed.tok_end:
                return bare  # "Quan Hoa": an old ward, not "quận" + "Hoa"
            return prefixed
        if bare is not None and (prefixed is None or bare.tok_end > prefixed):
            return bare
        return prefixed

    def _prefix_at(
        self, text: str, toks: Sequence[_Token], i: int, *, strict: bool, accented: bool
    ) -> tuple[Prefix, int]:
        """The prefix ("phường", "ngõ"…) that starts at token i and its length in tokens
        (0: none)."""
        for n in range(min(_MAX_PREFIX, len(toks) - i), 0, -1):
            words = tuple(t.text for t in toks[i : i + n])
            if words in _PREFIXES:
                break
        else:
            return "", 0
        if not (strict and accented and n == 1 and toks[i].text in _AMBIGUOUS_PREFIX):
            return _PREFIXES[words], n
        # In a message typed with diacritics, "xa" (far), "quan" (official), "phở"...
        # are not prefixes, unless the place after them is typed without any either
        # ("ở xa Bat Trang") or a number follows ("ngo 5").
        written = text[toks[i].start : toks[i].end]
        if _tone_key(written) == _tone_key(_AMBIGUOUS_PREFIX[toks[i].text]):
            return _PREFIXES[words], n
        numbered = i + 1 < len(toks) and toks[i + 1].text[0].isdigit()
        plain = (
            i + 1 < len(toks)
            and not _has_marks(written)
            and not _has_marks(self._word_run(text, toks, i + 1))
        )
        return (_PREFIXES[words], n) if numbered or plain else ("", 0)

    @staticmethod
    def _after_numbers(toks: Sequence[_Token], i: int, j: int) -> int:
        """Past the numbers after a street prefix: "ngõ 5", "ngách 12/3 ngõ 5 Láng Hạ"."""
        while (
            j < len(toks)
            and j - i < 8
            and (
                toks[j].text[0].isdigit()
                or (
                    toks[j].text in _STREET_WORDS
                    and j + 1 < len(toks)
                    and toks[j + 1].text[0].isdigit()
                )
            )
        ):
            j += 1
        return j

    def _prefixed(
        self, text: str, toks: Sequence[_Token], i: int, kind: Prefix, j: int, *, strict: bool
    ) -> _Mention | int | None:
        """The place named after a prefix of `kind` at token i (the name starts at j)."""
        if kind == "street":
            j = self._after_numbers(toks, i, j)
        match = self._match_name(text, toks, j)
        if match is None:
            return None
        end, key, glued = match
        if kind == "street":
            return self._street(text, toks, i, j, end, key, strict=strict)
        name = text[toks[j].start : toks[end - 1].end]
        readings = self._filter(key, kind, name, strict=False)
        role: Prefix = glued or kind
        if role == "district" and not any(r.level == "district" for r in readings):
            role = ""  # "huyện Từ Liêm": no such old district, read the name alone
        if not readings:
            return None
        return _Mention(i, end, toks[i].start, toks[end - 1].end, role, name, readings, True)

    def _bare(
        self, text: str, toks: Sequence[_Token], i: int, *, strict: bool
    ) -> _Mention | int | None:
        """The place named at token i without a prefix."""
        match = self._match_name(text, toks, i)
        if match is None:
            return None
        end, key, glued = match
        if i > 0 and _HOUSE_NUMBER.fullmatch(toks[i - 1].text):
            # "số 45 Nguyễn Trãi", "102 Tây Sơn": a street address
            return self._street(text, toks, i, i, end, key, strict=strict)
        name = text[toks[i].start : toks[end - 1].end]
        readings = self._filter(key, glued, name, strict=strict and not glued)
        if not readings:
            return None
        return _Mention(
            i, end, toks[i].start, toks[end - 1].end, glued, name, readings, bool(glued)
        )

    @staticmethod
    def _word_run(text: str, toks: Sequence[_Token], j: int) -> str:
        """The words from token j up to the next punctuation (at most 6)."""
        end = j
        while (
            end + 1 < len(toks)
            and end + 1 - j < 6
            and _NAME_GAP.fullmatch(text[toks[end].end : toks[end + 1].start]) is not None
        ):
            end += 1
        return text[toks[j].start : toks[end].end]

    def _filter(self, key: str, prefix: Prefix, name: str, *, strict: bool) -> tuple[_Reading, ...]:
        """The readings of a key that fit its prefix and the way it is spelt."""
        readings = self._d.index.get(key, ())
        if prefix in _WARD_PREFIXES:
            typed = [r for r in readings if r.level != "district" and r.kind == prefix]
            if not typed:
                typed = [r for r in readings if r.level != "district"]
            readings = tuple(typed) or readings
        elif prefix == "district":
            readings = tuple(r for r in readings if r.level == "district") or readings
        elif prefix == "street":
            readings = tuple(
                r
                for r in readings
                if r.accented is not None and (r.level == "new" or (r.level == "old" and r.urban))
            )
        if strict:  # a bare name in a message: only real names, spelt as they are if marked
            readings = tuple(r for r in readings if r.accented is not None)
            if _has_marks(name):
                want = _tone_key(name)
                readings = tuple(r for r in readings if _tone_key(r.accented or "") == want)
            return readings
        if _has_marks(name):
            want = _tone_key(name)
            spelt = tuple(
                r for r in readings if r.accented is not None and _tone_key(r.accented) == want
            )
            if spelt:
                return spelt
        return readings

    def _street(
        self,
        text: str,
        toks: Sequence[_Token],
        i: int,
        j: int,
        end: int,
        key: str,
        *,
        strict: bool,
    ) -> _Mention | int:
        """'phố/đường/ngõ NAME': a place only when NAME means exactly one new unit."""
        d = self._d
        if any(r.level == "district" for r in d.index.get(key, ())):
            return end  # "phố Sơn Tây", "phố Hai Bà Trưng" lie elsewhere
        name = text[toks[j].start : toks[end - 1].end]
        readings = self._filter(key, "street", name, strict=strict)
        if not readings:
            return end
        m = _Mention(i, end, toks[i].start, toks[end - 1].end, "street", name, readings, True)
        codes = self._codes_of(readings)
        return m if len(codes) == 1 else end

    # -- acceptance of bare names in free text ----------------------------------------------

    def _syllables(self, m: _Mention) -> int:
        return min(_words(r.accented or "") for r in m.readings)

    def _bare_ok(self, text: str, toks: Sequence[_Token], m: _Mention) -> bool:
        """Whether a bare name (no prefix word) in a message is taken as a place."""
        syllables = self._syllables(m)
        words = [text[t.start : t.end] for t in toks[m.tok_start : m.tok_end]]
        capitalised = all(w[:1].isupper() for w in words)
        before = toks[m.tok_start - 1] if m.tok_start > 0 else None
        context = "(" in text[before.end if before else 0 : m.start]  # "phố Tô Hiệu (Hà Đông)"
        if before is not None and before.text in _CONTEXT_WORDS:
            written = text[before.start : before.end]
            context = (
                context
                or not _has_marks(written)
                or any(
                    _tone_key(written) == _tone_key(form) for form in _CONTEXT_WORDS[before.text]
                )
            )
        if before is not None and not context and m.tok_start > 1:
            prev_word = text[before.start : before.end]
            gap = text[before.end : m.start]
            if prev_word[:1].isupper() and not gap.strip():
                return False  # "Tôn Đức Thắng": the tail of a longer proper name
        if toks[m.tok_start].text in _STREET_WORDS:
            return len(self._codes_of(m.readings)) == 1  # "phố Huế": an old ward's name
        if syllables == 1:  # "ở Láng"; never "láng giềng", nor "chợ Phùng Khoang"
            after = toks[m.tok_end] if m.tok_end < len(toks) else None
            longer = (
                after is not None
                and not text[m.end : after.start].strip()
                and text[after.start : after.end][:1].isupper()
            )
            return capitalised and context and not longer
        return context or syllables >= 3  # "Dịch Vọng Hậu", "dich vong hau" are no words

    @staticmethod
    def _links(text: str, chain: Sequence[_Mention], nxt: _Mention) -> bool:
        """Whether ``nxt`` continues the address ``chain``: it follows it with only
        punctuation between, and adds the old district ("phường Láng Hạ, Đống Đa") or
        the ward after street names ("ngõ 5 Láng, phường Láng")."""
        last = chain[-1]
        if last.end > nxt.start or _SEPARATORS.fullmatch(text[last.end : nxt.start]) is None:
            return False
        if nxt.prefix == "district" or (
            nxt.prefix == "" and any(r.level == "district" for r in nxt.readings)
        ):
            return True
        return all(m.prefix == "street" for m in chain) and nxt.prefix != "street"

    def _chain_location(
        self, text: str, chain: Sequence[_Mention]
    ) -> list[tuple[int, int, Location]]:
        start, end = chain[0].start, chain[-1].end
        loc = self._locate(text[start:end], chain)
        if loc.ward is None and not loc.candidates:
            return []
        return [(start, end, loc)]

    # -- interpretation ---------------------------------------------------------------------

    def _codes_of(self, readings: Iterable[_Reading]) -> list[str]:
        d = self._d
        codes: list[str] = []
        for r in readings:
            if r.level == "new":
                codes.append(r.ref)
            elif r.level == "old":
                codes.extend(d.old_wards[r.ref].targets)
            else:
                codes.extend(d.districts[r.ref].targets)
        return _unique(codes)

    def _locate(self, text: str, mentions: Sequence[_Mention]) -> Location:
        codes = self._interpret(mentions)
        d = self._d
        if len(codes) == 1:
            return Location(text, d.new[codes[0]], ())
        return Location(text, None, tuple(d.new[c] for c in codes))

    def _interpret(self, mentions: Sequence[_Mention]) -> list[str]:
        """New unit codes a sequence of mentions (one address) points to."""
        if not mentions:
            return []
        primary = _primary(mentions)
        context: set[str] = set()
        for m in mentions:
            if m is primary or m.prefix not in ("", "district"):
                continue
            context.update(r.ref for r in m.readings if r.level == "district")
        if primary is None:
            return self._codes_of(r for m in mentions for r in m.readings if r.level == "district")
        readings = primary.readings
        # With an old district the phrase is an old address: the old ward of that name in
        # that district is meant ("phường Quang Trung, quận Đống Đa"; "xã Hòa Phú, huyện
        # Ứng Hòa" is not the 2025 Xã Hòa Phú, which was Hòa Phú of Chương Mỹ).
        in_district = [
            r for r in readings if r.level == "old" and self._d.old_wards[r.ref].district in context
        ]
        if in_district:
            return self._codes_of(in_district)
        if primary.prefix in _WARD_PREFIXES:
            # "phường Yên Hòa": the 2025 unit of that name and type, else the old ward(s).
            for level in ("new", "old", "district"):
                chosen = [r for r in readings if r.level == level]
                if chosen:
                    return self._codes_of(chosen)
            return []
        # A bare name: the union of what it can mean, the 2025 unit of that name first.
        ordered = sorted(readings, key=lambda r: ("new", "old", "district").index(r.level))
        return self._codes_of(ordered)


def _primary(mentions: Sequence[_Mention]) -> _Mention | None:
    """The mention that names the place; the others (old districts) say where it was."""
    ward_level = [m for m in mentions if m.prefix in _WARD_PREFIXES]
    if ward_level:
        return ward_level[0]
    streets = [m for m in mentions if m.prefix == "street"]
    if streets:
        return streets[0]
    bare = [m for m in mentions if m.prefix == ""]
    if not bare:
        return None
    # "Hàng Bạc, Hoàn Kiếm" / "Đống Đa, Láng Hạ": the name that is no old district is the
    # ward; the other one says which old district it was in.
    return min(bare, key=lambda m: (any(r.level == "district" for r in m.readings), m.start))


_INSTANCE_LOCK: Final = threading.Lock()
_instance: HanoiGazetteer | None = None


def gazetteer() -> HanoiGazetteer:
    """The process-wide gazetteer (its data loads on first use)."""
    global _instance
    if _instance is None:
        with _INSTANCE_LOCK:
            if _instance is None:
                _instance = HanoiGazetteer()
    return _instance
