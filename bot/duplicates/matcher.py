"""Whether an open ticket already covers a new report (issue 19).

A report is covered when it has the ticket's category, is in its ward or within
`CIVICBOT_DUPLICATE_RADIUS_M` of its pin, came within `CIVICBOT_DUPLICATE_DAYS` of it, names
no other house, alley or street, and says much the same in its words. Words are compared
folded (civicbot_nlu.normalize: no diacritics, teencode expanded), so "rác đổ trộm" and
"rac do trom" are the same words.

Pure functions on `Report`, so that scripts/duplicate_eval.py measures exactly what the bot
decides (tests/data/duplicate_pairs.yml).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from civicbot_nlu.normalize import words

# Chosen on the "tune" half of tests/data/duplicate_pairs.yml (scripts/duplicate_eval.py).
THRESHOLD = 0.25
EARTH_RADIUS_M = 6_371_000
PIN_PLACE = "vi tri da chia se"  # the place a pin gets in the form ("Vị trí đã chia sẻ …")

# Words that say nothing about which problem it is (folded). Folded homographs of content
# words stay out: "den" (đèn), "xuong" (xưởng), "cho" (chợ), "ho" (hồ), "can" (cán), "dau" (dầu).
_STOPWORDS = frozenset(
    """toi minh em anh chi chung ta nguoi ai muon phan anh kien nghi to cao bao gui ve viec
    xin hoi voi a oi nhe nha la cua cai vu chuyen nay do thi o tai tren trong ngoai duoi va
    hay hoac co khong chua da dang se bi duoc rat qua lam nhieu it cac nhung moi cung van
    con roi nua thay day kia nao gi sao the vay ma nen vi neu khi luc ngay hom sang chieu
    dem tuan thang nam gio lau ca het luon di ra vao len lai tu sau truoc giua cuoi""".split()
)
# Words of a place that do not tell one place from another: kinds of street and landmark.
_PLACE_WORDS = frozenset(
    """pho duong ngo ngach hem kiet so nha phuong quan huyen khu doan truoc canh gan ven
    ben ngoai trong tren duoi o tai ubnd ho song cho cau cong vien chung cu toa benh
    truong nga tu ba do thi""".split()
)
# A number after one of these is an address: house, alley, block.
_ADDRESS_MARKERS = frozenset("so ngo ngach hem kiet nha toa can lo km".split())
_HAS_DIGIT = re.compile(r"\d")
T = TypeVar("T")


@dataclass(frozen=True)
class Report:
    """What the matcher compares of a ticket or of a report being filed."""

    category: str | None
    text: str
    at: datetime
    place: str | None = None
    ward_code: str | None = None
    ward_name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Limits:
    """The configurable bounds (CIVICBOT_DUPLICATE_RADIUS_M, CIVICBOT_DUPLICATE_DAYS)."""

    radius_m: float
    days: int
    threshold: float = THRESHOLD


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def _folded(text: str | None) -> list[str]:
    return [w.text for w in words(text or "")]


def content_words(text: str | None) -> list[str]:
    """The words of `text` that say what the problem is, folded, in order."""
    return [w for w in _folded(text) if w not in _STOPWORDS]


def _bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(tokens))


def _dice(a: set[T], b: set[T]) -> float:
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def similarity(a: Report, b: Report) -> float:
    """How much the two reports say the same about what is wrong, 0 to 1: the overlap of
    the words and word pairs of their texts (Vietnamese compounds are pairs of syllables:
    "vỉa hè", "ổ gà"), leaving out the words of their places (compared by `other_place`)."""
    where = (
        _place_words(a) | _place_words(b) | set(_folded(a.ward_name)) | set(_folded(b.ward_name))
    )
    ta = [w for w in content_words(a.text) if w not in where]
    tb = [w for w in content_words(b.text) if w not in where]
    return (_dice(set(ta), set(tb)) + _dice(_bigrams(ta), _bigrams(tb))) / 2


def _address_numbers(text: str | None) -> set[str]:
    """House, alley and block numbers: "số 40", "ngõ 102", "CT3"."""
    tokens = _folded(text)
    found = set()
    for i, token in enumerate(tokens):
        if not _HAS_DIGIT.search(token):
            continue
        if not token.isdigit() or (i > 0 and tokens[i - 1] in _ADDRESS_MARKERS):
            found.add(token)
    return found


def _place_words(report: Report) -> set[str]:
    """The words that tell the report's place from others: street, landmark (not the ward)."""
    place = " ".join(_folded(report.place))
    if not place or PIN_PLACE in place:
        return set()
    place = place.replace("uy ban nhan dan", " ")
    ward = " ".join(_folded(report.ward_name))
    if ward:  # "phường Kim Liên" names the ward, not a place in it; "phố Kim Liên" does
        place = re.sub(rf"\b(?:phuong|xa) {re.escape(ward)}\b", " ", place)
    return {w for w in place.split() if w not in _PLACE_WORDS and not _HAS_DIGIT.search(w)}


def other_place(a: Report, b: Report) -> bool:
    """Whether the reports name different places: other house or alley numbers, or a street
    or landmark of one that the other's words never mention (and the other way round)."""
    numbers_a = _address_numbers(f"{a.place or ''} {a.text}")
    numbers_b = _address_numbers(f"{b.place or ''} {b.text}")
    if numbers_a and numbers_b and not numbers_a & numbers_b:
        return True
    place_a, place_b = _place_words(a), _place_words(b)
    if not place_a or not place_b:
        return False
    all_a = set(_folded(f"{a.text} {a.place or ''}"))
    all_b = set(_folded(f"{b.text} {b.place or ''}"))
    return not place_a & all_b and not place_b & all_a


def near(a: Report, b: Report, radius_m: float) -> bool:
    """Both pinned within `radius_m` of each other (two pins say more than a ward), or else
    in the same ward."""
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        return distance_m(a.lat, a.lon, b.lat, b.lon) <= radius_m
    return a.ward_code is not None and a.ward_code == b.ward_code


def score(ticket: Report, new: Report, limits: Limits) -> float | None:
    """The similarity of `new` to the open `ticket`, or None when a hard rule says they are
    not the same problem (category, place, time)."""
    if ticket.category is None or ticket.category != new.category:
        return None
    if not near(ticket, new, limits.radius_m) or other_place(ticket, new):
        return None
    if not timedelta(0) <= new.at - ticket.at <= timedelta(days=limits.days):
        return None
    return similarity(ticket, new)


def covers(ticket: Report, new: Report, limits: Limits) -> bool:
    """Whether the open `ticket` covers the `new` report."""
    found = score(ticket, new, limits)
    return found is not None and found >= limits.threshold
