"""The one place reader: what a citizen wrote about where, at any step, on the 2025 map.

Old ward + district, old ward alone, new ward, old district, commune, street and ngõ, with
or without marks and with "p.", "q.", "tt": the gazetteer reads them all the same way
whether they come in the first message or in answer to "ở đâu". A known old ward is never
dropped: it gives its 2025 ward, or the 2025 wards it was split into as choices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from civicbot_nlu.normalize import normalize

from bot.nlu.location import Location, Ward, gazetteer

# A street address the map cannot place but an official can: "số 10 ngõ 12 Kim Mã".
_STREET = re.compile(
    r"\b(so \d+|ngo|ngach|hem|kiet|pho|duong|thon|xom|to dan pho|khu|toa|chung cu|cho|"
    r"truong|cong vien|ho|cau|nga ba|nga tu|ben xe|km ?\d+)\b"
)
# Words of an address that say nothing of a problem: numbers, "ngõ", "street", "district".
_ADDRESS_WORD = re.compile(
    r"[\d/,.-]+|so|nha|ngo|ngach|hem|pho|duong|phuong|quan|huyen|xa|thi|tran|p|q|tt|"
    r"street|st|road|rd|lane|alley|ward|district|commune|no|number|house"
)
# English order: "Van Mieu ward", "Ba Dinh district" (letters only before the word).
_EN_PLACE = re.compile(r"((?:[^\W\d_]+\s+){1,4})(ward|commune|district)\b", re.IGNORECASE)
_UNKNOWN = frozenset(("khong ro", "khong biet", "khong nho", "chiu", "bo qua", "dont know"))
_UNKNOWN_WORDS = 4


@dataclass(frozen=True)
class PlaceReading:
    """A place as written, and its 2025 ward or the wards it may be."""

    text: str
    ward: Ward | None = None
    candidates: tuple[Ward, ...] = ()

    @property
    def found(self) -> bool:
        return self.ward is not None or bool(self.candidates)


def _reading(text: str, location: Location) -> PlaceReading:
    return PlaceReading(text, location.ward, tuple(location.candidates))


def read_answer(text: str) -> PlaceReading:
    """Text given in answer to the place question: all of it is meant as a place."""
    places = gazetteer()
    location = places.resolve(text)
    if location.ward is None and not location.candidates:
        found = places.find(text)
        if found:
            location = found[0][2]
    return _reading(text.strip(), location)


def read_message(text: str, tagged: str | None = None) -> PlaceReading | None:
    """The place in a free message (`tagged`: the span the NLU marked as a location).

    None when the message names no place: a tagged span the map cannot place counts only
    when it reads as a street address ("ngõ 12 Kim Mã", not "phường đòi tiền").
    """
    if tagged:
        reading = read_answer(tagged)
        if reading.found:
            return reading
    found = gazetteer().find(text)
    if found:
        start, end, location = found[0]
        return _reading(tagged or text[start:end], location)
    english = _english_place(text)
    if english is not None:
        return english
    if tagged and is_street(tagged):
        return PlaceReading(tagged.strip())
    return None


def _english_place(text: str) -> PlaceReading | None:
    """ "… in alley 3, Van Mieu ward, …": the words before "ward", "commune" or "district"
    (two to four of them, then one), read as a whole answer is; the scan above knows the
    Vietnamese order ("phường Văn Miếu") only."""
    for match in _EN_PLACE.finditer(text):
        names = match.group(1).split()
        for size in (2, 3, 4, 1):
            if size > len(names):
                continue
            reading = read_answer(f"{' '.join(names[-size:])} {match.group(2)}")
            if reading.found:
                return reading
    return None


def without_places(text: str, tagged: str | None = None) -> str:
    """`text` less every place name in it and the span the NLU tagged as a place: what is
    left says whether "ngõ 45 phường Kim Liên quận Đống Đa" is more than an address."""
    if tagged:
        text = text.replace(tagged, " ")
    for start, end, _ in reversed(gazetteer().find(text)):
        text = f"{text[:start]} {text[end:]}"
    return " ".join(w for w in normalize(text).split() if not _ADDRESS_WORD.fullmatch(w))


def is_street(text: str) -> bool:
    return _STREET.search(normalize(text)) is not None


def is_unknown(text: str) -> bool:
    """ "không rõ", "không biết nữa", "chịu": the citizen cannot say which ward."""
    said = normalize(text).strip(" .!?")
    if said in _UNKNOWN:
        return True
    # "không biết nữa", "không rõ lắm ạ": the phrase and a word or two of manner
    return len(said.split()) <= _UNKNOWN_WORDS and said.startswith(tuple(_UNKNOWN))


def pick(text: str, candidates: tuple[Ward, ...]) -> Ward | None:
    """The candidate the typed text names ("cau giay" for "Phường Cầu Giấy"), if one."""
    key = normalize(text)
    named = [w for w in candidates if normalize(w.name).split(" ", 1)[-1] in key]
    return named[0] if len(named) == 1 else None


def nearest(lat: float, lon: float) -> tuple[Ward, ...]:
    """The wards closest to a pin (the map has one point per ward, not boundaries)."""
    return gazetteer().nearest(lat, lon)
