"""Entities that follow fixed patterns: ticket codes, phone numbers and procedure aspects.

Stdlib only, shared by the Rasa pipeline and the app's fallback classifier. Every match
carries offsets into the original text and a normalised value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from civicbot_nlu.normalize import Word, words

TICKET_CODE = re.compile(r"(?<![\w])PA[\s\-_./]*(20\d\d)[\s\-_./]*(\d{6})(?!\d)", re.IGNORECASE)
# A run of digits with the separators people put in phone numbers; validated after.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s.\-()]{6,16}\d(?!\d)")
_MOBILE = re.compile(r"0[35789]\d{8}")
_LANDLINE = re.compile(r"02\d{9}")
_HOTLINE = re.compile(r"1[89]00\d{4}|1[89]00\d{6}")
# "18.000.000" is an amount of money, not a hotline.
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,]\d{3})+")

# Folded word sequences that say what about a procedure is asked. Longer phrases win
# over the shorter ones they contain ("mat bao nhieu ngay" is a duration, not a fee).
ASPECT_PHRASES: dict[str, tuple[str, ...]] = {
    "documents": (
        "giay to",
        "can gi",
        "can nhung gi",
        "can nhung giay",
        "can giay gi",
        "mang theo",
        "mang gi",
        "chuan bi gi",
        "chuan bi nhung gi",
        "thanh phan ho so",
        "ho so gom",
        "ho so can",
        "can mang",
        "giay gi",
        "can co gi",
        "gom nhung gi",
        "nhung gi",
        "can nhung",
        "ban sao",
        "to khai",
        "can chuan bi",
        "ho so",
    ),
    "fee": (
        "le phi",
        "phi",
        "bao nhieu tien",
        "mat tien",
        "mat phi",
        "ton phi",
        "chi phi",
        "mien phi",
        "het bao nhieu",
        "ton bao nhieu",
        "mat bao nhieu",
        "nop tien",
        "gia bao nhieu",
        "bao nhieu",
    ),
    "duration": (
        "bao lau",
        "may ngay",
        "bao nhieu ngay",
        "thoi gian",
        "bao gio",
        "khi nao",
        "may hom",
        "bao nhieu lau",
        "thoi han",
        "mat may",
        "may tuan",
        "bao nhieu thang",
        "bao nhieu tuan",
        "lau khong",
        "lau ko",
        "bao nhieu hom",
        "tra ket qua",
        "nhanh nhat",
        "mat bao nhieu ngay",
        "mat bao lau",
        "lay duoc",
        "co ket qua",
    ),
    "place": (
        "o dau",
        "cho nao",
        "noi nao",
        "dia chi",
        "nop o",
        "lam o",
        "den dau",
        "co quan nao",
        "tai dau",
        "di dau",
        "phuong hay quan",
        "xa hay huyen",
        "o phuong",
        "o quan",
        "noi o",
        "lam tai",
        "nop tai",
        "don vi nao",
        "nop cho ai",
        "ai giai quyet",
    ),
    "online": (
        "online",
        "truc tuyen",
        "qua mang",
        "dich vu cong",
        "vneid",
        "tren mang",
        "qua app",
        "ung dung",
        "internet",
        "tu xa",
        "khong can den",
        "ko can den",
        "tren dien thoai",
        "cong dich vu",
    ),
}
# Cues that also appear in other questions weigh less than the specific ones.
_WEAK = frozenset(
    {"ho so", "bao nhieu", "nhung gi", "can nhung", "o phuong", "o quan", "lam o", "lam tai"}
)


@dataclass(frozen=True)
class Match:
    """An entity found in the text: its kind, normalised value and original span."""

    entity: str
    value: str
    start: int
    end: int


def find_ticket_codes(text: str) -> list[Match]:
    """Ticket codes typed in any case, with or without separators: PA-YYYY-NNNNNN."""
    return [
        Match("ticket_code", f"PA-{m.group(1)}-{m.group(2)}", m.start(), m.end())
        for m in TICKET_CODE.finditer(text)
    ]


def find_phones(text: str) -> list[Match]:
    """Vietnamese mobile, landline and hotline numbers, as 0XXXXXXXXX digits."""
    codes = [(m.start, m.end) for m in find_ticket_codes(text)]
    found = []
    for candidate in _PHONE_CANDIDATE.finditer(text):
        if any(start <= candidate.start() < end for start, end in codes):
            continue
        match = _longest_phone(text, candidate.start(), candidate.end())
        if match:
            found.append(match)
    return found


def _longest_phone(text: str, start: int, end: int) -> Match | None:
    """The longest run of digit groups from `start` that is a valid number.

    The candidate may have swallowed a following number ("0912345678 2 lần").
    """
    groups = list(re.finditer(r"\d+", text[start:end]))
    for count in range(len(groups), 0, -1):
        stop = start + groups[count - 1].end()
        first = start + groups[0].start()
        surface = text[start:stop]
        if _THOUSANDS.fullmatch(surface.lstrip("+(")):
            continue
        digits = _national("".join(g.group() for g in groups[:count]), surface)
        if _MOBILE.fullmatch(digits) or _LANDLINE.fullmatch(digits) or _HOTLINE.fullmatch(digits):
            opened = surface.startswith("(") and ")" in surface
            begin = start if surface.startswith("+") or opened else first
            return Match("phone", digits, begin, stop)
    return None


def _national(digits: str, surface: str) -> str:
    """+84 912…, 84912…, +84 0912… → 0912…"""
    if digits.startswith("84") and (surface.startswith("+") or len(digits) >= 11):
        digits = digits[2:]
        return digits if digits.startswith("0") else "0" + digits
    return digits


def find_aspects(text: str) -> list[Match]:
    """Procedure aspects asked about, strongest first (ties: first mentioned)."""
    folded = words(text)
    spans = match_phrases(folded, ASPECT_PHRASES)
    scores: dict[str, float] = {}
    first: dict[str, Match] = {}
    for aspect, phrase, i, j in spans:
        scores[aspect] = scores.get(aspect, 0.0) + (0.5 if phrase in _WEAK else 1.0)
        if aspect not in first:
            first[aspect] = Match("aspect", aspect, folded[i].start, folded[j - 1].end)
    order = sorted(first, key=lambda a: (-scores[a], first[a].start))
    return [first[a] for a in order]


def find_all(text: str) -> list[Match]:
    """Every pattern entity in the text."""
    return find_ticket_codes(text) + find_phones(text) + find_aspects(text)[:1]


def match_phrases(
    folded: list[Word], table: dict[str, tuple[str, ...]]
) -> list[tuple[str, str, int, int]]:
    """Non-overlapping phrases of `table` found in the words, longest first.

    Returns (key, phrase, i, j) with words[i:j] the match, in text order.
    """
    tokens = [w.text for w in folded]
    candidates = []
    for aspect, phrases in table.items():
        for phrase in phrases:
            parts = phrase.split()
            n = len(parts)
            for i in range(len(tokens) - n + 1):
                if tokens[i : i + n] == parts:
                    candidates.append((aspect, phrase, i, i + n))
    candidates.sort(key=lambda c: (-(c[3] - c[2]), c[2]))
    taken: set[int] = set()
    chosen = []
    for aspect, phrase, i, j in candidates:
        if taken.isdisjoint(range(i, j)):
            taken.update(range(i, j))
            chosen.append((aspect, phrase, i, j))
    return sorted(chosen, key=lambda c: c[2])
