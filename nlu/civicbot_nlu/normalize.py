"""Vietnamese text as citizens type it, folded to one comparable form.

Stdlib only: the Rasa components (Python 3.10) and the app (Python 3.11) both import it,
so that training, the server and the app's fallback classifier read text the same way.

Folding lowercases, removes tone and vowel marks (``đ`` → ``d``) and expands common
abbreviations and teencode ("ko" → "khong", "dc" → "duoc"). Every word keeps the span
it came from in the original text, so entity offsets still point into what was typed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# A word: letters and digits with any combining marks typed after them (NFD input).
_WORD = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+")
_REPEATS = re.compile(r"([^\W\d_])\1{2,}")

# Abbreviations and teencode, folded form → folded words. Ambiguous ones ("bn") are
# resolved in context by _expand; ones that collide with real words ("hong" as in
# "sổ hồng", "nc", "a") are left out on purpose.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("ko", "k", "kh", "hok", "hem", "khum", "kg", "khg", "hk"), ("khong",)),
    **dict.fromkeys(("dc",), ("duoc",)),
    **dict.fromkeys(("j", "ji"), ("gi",)),
    **dict.fromkeys(("z",), ("vay",)),
    **dict.fromkeys(("mk", "mik", "mjk", "mh", "mjnh"), ("minh",)),
    **dict.fromkeys(("ng", "ngta"), ("nguoi",)),
    **dict.fromkeys(("ns",), ("noi",)),
    **dict.fromkeys(("vs",), ("voi",)),
    **dict.fromkeys(("r",), ("roi",)),
    **dict.fromkeys(("cx", "cg"), ("cung",)),
    **dict.fromkeys(("bh", "bgio", "bjo", "bg"), ("bao", "gio")),
    **dict.fromkeys(("sdt",), ("so", "dien", "thoai")),
    **dict.fromkeys(("dt",), ("dien", "thoai")),
    **dict.fromkeys(("tthc",), ("thu", "tuc", "hanh", "chinh")),
    **dict.fromkeys(("cccd",), ("can", "cuoc", "cong", "dan")),
    **dict.fromkeys(("cmnd", "cmt"), ("chung", "minh", "nhan", "dan")),
    **dict.fromkeys(("gplx",), ("giay", "phep", "lai", "xe")),
    **dict.fromkeys(("gpxd",), ("giay", "phep", "xay", "dung")),
    **dict.fromkeys(("ubnd", "ubnn"), ("uy", "ban", "nhan", "dan")),
    **dict.fromkeys(("dk", "dky"), ("dang", "ky")),
    **dict.fromkeys(("hs",), ("ho", "so")),
    **dict.fromkeys(("tks", "thanks", "thank", "thx", "tk", "camon"), ("cam", "on")),
    **dict.fromkeys(("oke", "oki", "okie", "okay", "okela", "oce"), ("ok",)),
    **dict.fromkeys(("uk", "uh", "um", "uhm", "umm"), ("u",)),
    **dict.fromkeys(("ntn",), ("nhu", "the", "nao")),
    **dict.fromkeys(("ad", "adm"), ("admin",)),
    **dict.fromkeys(("e",), ("em",)),
    **dict.fromkeys(("trc",), ("truoc",)),
    **dict.fromkeys(("bit",), ("biet",)),
    **dict.fromkeys(("hnay",), ("hom", "nay")),
    **dict.fromkeys(("hqua",), ("hom", "qua")),
    **dict.fromkeys(("lm",), ("lam",)),
    **dict.fromkeys(("mn", "mng"), ("moi", "nguoi")),
    **dict.fromkeys(("nhiu",), ("nhieu",)),
    **dict.fromkeys(("wa", "wua"), ("qua",)),
    **dict.fromkeys(("mun",), ("muon",)),
    **dict.fromkeys(("dag", "dg"), ("dang",)),
    **dict.fromkeys(("ck",), ("chong",)),
    **dict.fromkeys(("vk",), ("vo",)),
    **dict.fromkeys(("p",), ("phuong",)),
    **dict.fromkeys(("q",), ("quan",)),
    **dict.fromkeys(("tp",), ("thanh", "pho")),
    **dict.fromkeys(("tx",), ("thi", "xa")),
    **dict.fromkeys(("pa",), ("phan", "anh")),
}

# "bn" is "bao nhiêu" next to an amount, "bạn" elsewhere.
_AMOUNT_AFTER = frozenset(
    "tien ngay lau phi thang nam gio tuoi lan buoc dong nghin ngan k trieu cai loai giay".split()
)
_AMOUNT_BEFORE = frozenset("mat het phi ton la gia tien gom lau".split())
_ADDRESSEE_BEFORE = frozenset("on chao cam voi cua giup hoi hi hello ok".split())
_PARTICLES = frozenset(("", "vay", "the", "a", "ha", "nhi", "nhe", "z", "day", "ah", "ak"))


_D = str.maketrans("đĐðÐ", "dDdD")


@dataclass(frozen=True)
class Word:
    """One folded word and the span of the original text it came from."""

    text: str
    start: int
    end: int


def strip_marks(text: str) -> str:
    """Remove Vietnamese tone and vowel marks; ``đ`` becomes ``d``. Case is kept."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Đ/đ and the look-alike Icelandic Ð/ð that some keyboards produce.
    return bare.translate(_D)


def fold(text: str) -> str:
    """The comparable form of a string: NFC, lowercase, no marks."""
    return strip_marks(unicodedata.normalize("NFC", text)).lower()


def has_diacritics(text: str) -> bool:
    """Whether the text carries any Vietnamese mark (or other non-ASCII letter)."""
    return strip_marks(unicodedata.normalize("NFC", text)) != unicodedata.normalize("NFC", text)


def raw_words(text: str) -> list[Word]:
    """The folded words of the text, before abbreviations are expanded."""
    return [Word(fold(match.group()), match.start(), match.end()) for match in _WORD.finditer(text)]


def words(text: str) -> list[Word]:
    """The folded words of the text with abbreviations expanded.

    A word that expands to several ("cccd" → "can cuoc cong dan") yields several Words
    sharing its original span.
    """
    raw = raw_words(text)
    out: list[Word] = []
    for i, word in enumerate(raw):
        # The previous word as expanded, so that "tks bn" reads like "cam on bn".
        previous = _expand(raw[i - 1].text, "", word.text)[-1] if i > 0 else ""
        following = raw[i + 1].text if i + 1 < len(raw) else ""
        for piece in _expand(word.text, previous, following):
            out.append(Word(piece, word.start, word.end))
    return out


def normalize(text: str) -> str:
    """The folded, expanded text as one space-separated string."""
    return " ".join(word.text for word in words(text))


def _expand(word: str, previous: str, following: str) -> tuple[str, ...]:
    if word == "bn":
        if previous in _ADDRESSEE_BEFORE:
            return ("ban",)
        if following in _AMOUNT_AFTER or previous in _AMOUNT_BEFORE or following in _PARTICLES:
            return ("bao", "nhieu")
        return ("ban",)
    if word in ABBREVIATIONS:
        return ABBREVIATIONS[word]
    squeezed = _REPEATS.sub(r"\1", word)  # "chiếmmmm" → "chiem"; after lookup, so "cccd" stays
    if len(squeezed) == 1:
        return (squeezed,)  # "kkk" is laughter, not "k" (không)
    return ABBREVIATIONS.get(squeezed, (squeezed,))
