"""A rating from 1 to 5 read from what the citizen wrote after the bot asked for one.

Stdlib only: the dialogue (app) calls `read_rating` when it has just asked for a rating,
so that "5", "4/5", "chấm 8 điểm", "năm sao" or words with a reason ("xử lý nhanh, rất hài
lòng") become stars. It reads the answer to a question; it does not decide the intent.
"""

from __future__ import annotations

import re

from civicbot_nlu.normalize import words
from civicbot_nlu.patterns import match_phrases

STARS = range(1, 6)

# "4/5", "8/10": a score out of a scale.
_OUT_OF = re.compile(r"(?<![\d/])(\d{1,2})\s*/\s*(5|10)(?![\d/])")
_NUMBER_WORDS = {"mot": 1, "hai": 2, "ba": 3, "bon": 4, "tu": 4, "nam": 5, "muoi": 10}
_SCALE_WORDS = frozenset(("sao", "diem"))


def _phrases(listed: str) -> tuple[str, ...]:
    return tuple(listed.split(", "))


# Folded phrases and the stars they say; longer phrases win ("không hài lòng" over "hài lòng").
PHRASES: dict[int, tuple[str, ...]] = {
    5: _phrases(
        "rat hai long, hoan toan hai long, rat tot, tuyet voi, xuat sac, qua tot, rat nhanh, "
        "tot lam, cuc ky hai long, rat on, hai long lam, tuyet, nhanh gon, rat nhiet tinh"
    ),
    4: _phrases(
        "hai long, tot, on ap, on roi, kha on, van on, nhanh, chap nhan duoc, kha tot, kha, khen"
    ),
    3: _phrases(
        "tam duoc, tam on, binh thuong, cung duoc, tam chap nhan, hai long mot phan, tam tam, "
        "trung binh, binh thuong thoi, chua triet de, hoi cham"
    ),
    2: _phrases(
        "chua hai long, khong hai long, chua tot, cham, qua loa, khong dong y, chua xong, kem, "
        "khong tot"
    ),
    1: _phrases(
        "rat te, qua te, te, rat kem, qua kem, te hai, khong hai long chut nao, "
        "chang hai long ti nao, chua hai long chut nao, rat khong hai long, that vong, "
        "rat cham, qua cham, vo trach nhiem"
    ),
}
# Words that contain a rating word once folded but say none: "cảm ơn" is not "ổn",
# "thực tế" not "tệ", "kèm ảnh" not "kém", "chấm điểm" not "chậm".
_NEUTRAL = _phrases(
    "cam on, thuc te, y te, kinh te, quoc te, gui kem, kem theo, dinh kem, cham diem, danh gia"
)
_TABLE = {"0": _NEUTRAL, **{str(stars): phrases for stars, phrases in PHRASES.items()}}
# "5s", "4đ", "3sao": a number glued to its scale.
_GLUED = re.compile(r"^(\d{1,2})(sao|s|d|diem)$")
_SCALE_OF = {"sao": "sao", "s": "sao", "d": "diem", "diem": "diem"}


def read_rating(text: str) -> int | None:
    """Stars from 1 to 5, or None when the text gives no rating.

    A number counts when it is the whole answer or is followed by a scale word ("sao",
    "điểm") or written as a score ("4/5", "8/10", out of ten halved and rounded up). Without
    a number, the words decide; with several, the most severe one wins, since "nhanh nhưng
    qua loa" is a complaint about the result.
    """
    score = _OUT_OF.search(text)
    if score:
        given, scale = int(score.group(1)), int(score.group(2))
        return _stars(given, scale) if 0 < given <= scale else None
    folded = words(text)
    tokens = [w.text for w in folded]
    for i, token in enumerate(tokens):
        glued = _GLUED.match(token)
        value: int | None = int(token) if token.isdigit() else _NUMBER_WORDS.get(token)
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if glued:
            value, following = int(glued.group(1)), _SCALE_OF[glued.group(2)]
        if value is None:
            continue
        if following in _SCALE_WORDS or (token.isdigit() and len(tokens) <= 3):
            if following == "diem" and value > 5:
                return _stars(value, 10) if value <= 10 else None
            if value in STARS:
                return value
    found = [int(key) for key, *_ in match_phrases(folded, _TABLE) if key != "0"]
    return min(found) if found else None


def _stars(value: int, scale: int) -> int:
    return max(1, min(5, -(-value * 5 // scale)))
