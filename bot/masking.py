"""Masking of personal data in Vietnamese free text: the backstop for what is published.

What is published (Open311) is an official's summary or a category + ward line, never the
citizen's own words; this masks what a person may still have typed into published text:
ID numbers (CMND 9 digits, CCCD/định danh 12 digits, passports) in any spacing, phone
numbers in any spacing or with +84, e-mail addresses (also written "a @ b . com",
"a(a)b.com", "a [at] b [dot] com"), vehicle plates (29A-123.45, 30E1 12345), names after
"tôi tên là …", and house or flat numbers ("số nhà 12", "12 ngõ 34", "phòng 1203").

Its recall on a corpus of such forms is measured by `python -m bot.masking CORPUS`
(tests/data/personal_data.yml; the figure is in docs/open311.md).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from civicbot_nlu.patterns import find_phones, find_ticket_codes

MASK = "[đã ẩn]"

_UPPER = "A-ZĐÀ-ỸÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬÈÉẺẼẸÊỀẾỂỄỆÌÍỈĨỊÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢÙÚỦŨỤƯỪỨỬỮỰỲÝỶỸỴ"
_WORD = r"[\wÀ-ỹ]+"
_NAME_WORD = rf"[{_UPPER}][\wÀ-ỹ]*"

# "@" and the ways people write it to dodge scrapers.
_AT = r"(?:\s*@\s*|\s*[(\[{]\s*(?:a|at|@|a còng|a cong)\s*[)\]}]\s*|\s+(?:a còng|a cong|at)\s+)"
_DOT = r"(?:\s*\.\s*|\s*[(\[{]\s*(?:dot|chấm|cham)\s*[)\]}]\s*|\s+(?:dot|chấm|cham)\s+)"
_EMAIL = re.compile(
    rf"(?<![\w.+-])[\w.+-]+{_AT}[a-z0-9-]+(?:{_DOT}[a-z0-9-]+)*{_DOT}[a-z]{{2,6}}(?![\w-])",
    re.IGNORECASE,
)
# A run of digits with the separators people type between groups.
_DIGITS = r"\d(?:[\s.\-]?\d)*"
_ID_CUE = (
    r"(?:cmnd|cmt|cccd|cc|căn cước(?: công dân)?|can cuoc(?: cong dan)?|chứng minh(?: nhân dân"
    r"| thư)?|chung minh(?: nhan dan| thu)?|số định danh(?: cá nhân)?|so dinh danh|định danh"
    r"|dinh danh|hộ chiếu|ho chieu|passport|mã số thuế|ma so thue|mst)"
)
_ID_AFTER_CUE = re.compile(
    rf"(?<!\w){_ID_CUE}\s*(?:số|so|là|la|no\.?)?\s*[:#.]?\s*((?:[a-z]\s?)?{_DIGITS})",
    re.IGNORECASE,
)
# Phones that `find_phones` misses when a number stands just before them ("số 14 (0912…").
_PHONE = re.compile(r"(?<![\w+])(?:\+\s?84|84|0)[\s.\-()]*[1-9](?:[\s.\-()]?\d){7,9}(?!\d)")
# A bare CCCD: 12 digits starting with the province code 0xx (any grouping).
_BARE_ID = re.compile(r"(?<![\w.,])0\d(?:[\s.\-]?\d){10}(?![\w]|[.,]\d)")
# Plates: 29A-123.45, 30E1 12345, 29-B1 234.56, 51F 123.45, 29LD-123.45.
_PLATE = re.compile(
    r"(?<![\w.])\d{2}\s?-?\s?[a-zđ]{1,2}\d?\s?[-.]?\s?\d{3}[.\s]?\d{1,2}(?![\w]|[.,]\d)",
    re.IGNORECASE,
)
_NAME_CUE = re.compile(
    r"(?<!\w)(?:(?:tôi|toi|em|mình|minh|cháu|chau|tớ|to|bà|ba|ông|ong)\s+(?:tên\s+là|ten\s+la"
    r"|tên|ten)|tên\s+(?:tôi|em|mình|cháu)\s+là|ten\s+(?:toi|em|minh|chau)\s+la"
    r"|(?:họ\s+(?:và\s+)?tên|ho\s+(?:va\s+)?ten)(?:\s+(?:người|nguoi)\s+(?:phản\s+ánh|phan\s+anh"
    r"|gửi|gui|kiến\s+nghị|kien\s+nghi))?|người\s+gửi|nguoi\s+gui|(?<![\w\s])\s*tên\s*(?=:)"
    r"|^\s*(?:tên|ten)\s*(?=:))\s*(?:là|la)?\s*[:\-]?\s*",
    re.IGNORECASE,
)
# "tôi là Nguyễn Văn A": only a capitalised name after the weaker cue.
_WEAK_NAME_CUE = re.compile(
    rf"(?<!\w)(?i:tôi|toi|em|mình|minh|cháu|chau)\s+(?i:là|la)\s+(?={_NAME_WORD})"
)
_NAME_STOP = {
    "ở", "o", "sống", "song", "nhà", "nha", "số", "so", "sđt", "sdt", "địa", "dia", "tại",
    "tai", "phản", "phan", "xin", "muốn", "muon", "và", "va", "có", "co", "đang", "dang",
    "điện", "dien", "cư", "cu", "trú", "tru", "thường", "thuong", "hiện", "hien", "quê",
    "que", "sinh", "năm", "nam", "cmnd", "cccd", "email", "mail", "gmail",
}  # fmt: skip
_HOUSE = re.compile(
    r"(?<!\w)(?:số\s+nhà|so\s+nha|nhà\s+số|nha\s+so|sn|căn\s+hộ|can\s+ho|phòng|phong|p\.(?=\s?\d{3})"
    r"|nhà|nha|số|so)\s*[:.]?\s*(\d+[a-z]?(?:[/\-]\d+[a-z]?)*)(?!\w)",
    re.IGNORECASE,
)
# "12 ngõ 34", "12/3 đường Láng", "45B phố Huế": the number before a street word (not the
# lane's own number: "ngõ 34 phố …"; not "2 đường ống").
_HOUSE_BEFORE_STREET = re.compile(
    r"(?<![\w/.\-])(?<!ngõ )(?<!ngo )(?<!ngách )(?<!ngach )(?<!hẻm )(?<!kiệt )(?<!lộ )"
    r"(\d+[a-z]?(?:/\d+[a-z]?)*)(?=,?\s+(?:ngõ|ngo|ngách|ngach|hẻm|hem|kiệt"
    r"|kiet|phố|pho|đường|duong|tổ|tòa|toa|lô)\b(?!\s+(?:ống|ong|dây|day)\b))",
    re.IGNORECASE,
)


# "ở 27 Hàng Bạc", "tại số 5 Lý Thường Kiệt": a number before a street's capitalised name.
_HOUSE_AFTER_AT = re.compile(
    rf"(?<!\w)(?i:ở|tại|o|tai)\s+(?i:số\s+|so\s+)?(\d+[a-z]?(?:/\d+[a-z]?)*)\s+(?={_NAME_WORD})"
)


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


def _name_end(text: str, start: int) -> int:
    """The end of the name from `start`: up to 5 words apart by one space, to a stop word."""
    end = start
    for count, word in enumerate(re.finditer(_WORD, text[start:])):
        if count and (count >= 5 or text[end : start + word.start()] != " "):
            break
        if word.group().lower() in _NAME_STOP or word.group().isdigit():
            break
        end = start + word.end()
    return end


def find_personal(text: str) -> list[Span]:
    """The spans of personal data in `text`, in order, not overlapping."""
    codes = [(m.start, m.end) for m in find_ticket_codes(text)]
    spans: list[Span] = []
    spans += [Span("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    spans += [Span("id", m.start(1), m.end(1)) for m in _ID_AFTER_CUE.finditer(text)]
    spans += [Span("id", m.start(), m.end()) for m in _BARE_ID.finditer(text)]
    spans += [Span("phone", m.start, m.end) for m in find_phones(text)]
    spans += [Span("phone", m.start(), m.end()) for m in _PHONE.finditer(text)]
    spans += [Span("plate", m.start(), m.end()) for m in _PLATE.finditer(text)]
    for cue in (*_NAME_CUE.finditer(text), *_WEAK_NAME_CUE.finditer(text)):
        end = _name_end(text, cue.end())
        if end > cue.end():
            spans.append(Span("name", cue.end(), end))
    spans += [Span("house", m.start(1), m.end(1)) for m in _HOUSE.finditer(text)]
    spans += [Span("house", m.start(1), m.end(1)) for m in _HOUSE_BEFORE_STREET.finditer(text)]
    spans += [Span("house", m.start(1), m.end(1)) for m in _HOUSE_AFTER_AT.finditer(text)]
    # Ticket codes are public; the longest span wins where two overlap.
    spans = [s for s in spans if not any(a <= s.start < b for a, b in codes)]
    spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    kept: list[Span] = []
    for span in spans:
        if kept and span.start < kept[-1].end:
            if span.end > kept[-1].end:
                kept[-1] = Span(kept[-1].kind, kept[-1].start, span.end)
            continue
        kept.append(span)
    return kept


def mask(text: str) -> str:
    """`text` with every span of `find_personal` replaced by MASK."""
    for span in reversed(find_personal(text)):
        text = text[: span.start] + MASK + text[span.end :]
    return text


@dataclass(frozen=True)
class Score:
    secrets: int  # personal values in the corpus
    masked: int  # of them, gone from the masked text
    public: int  # public words that must stay (street names, ticket codes, amounts)
    kept: int  # of them, still there
    missed: tuple[str, ...]
    lost: tuple[str, ...]

    @property
    def recall(self) -> float:
        return self.masked / self.secrets if self.secrets else 1.0

    @property
    def kept_rate(self) -> float:
        return self.kept / self.public if self.public else 1.0


def score(corpus: list[dict[str, object]]) -> Score:
    """How much of the corpus' personal data `mask` removes and how much public text it keeps.

    Each entry: ``text``, ``secrets`` (strings that must not survive) and ``keep`` (strings
    that must).
    """
    secrets = masked = public = kept = 0
    missed: list[str] = []
    lost: list[str] = []
    for entry in corpus:
        text = str(entry["text"])
        out = mask(text)
        for secret in _strings(entry.get("secrets")):
            secrets += 1
            if secret in out:
                missed.append(f"{secret!r} in {text!r}")
            else:
                masked += 1
        for word in _strings(entry.get("keep")):
            public += 1
            if word in out:
                kept += 1
            else:
                lost.append(f"{word!r} in {text!r} → {out!r}")
    return Score(secrets, masked, public, kept, tuple(missed), tuple(lost))


def _strings(value: object) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def load_corpus(path: Path) -> list[dict[str, object]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def main(argv: list[str]) -> int:
    """Print the recall and keep rate of `mask` on a corpus file."""
    result = score(load_corpus(Path(argv[0])))
    print(f"recall {result.masked}/{result.secrets} = {result.recall:.1%}")
    print(f"kept {result.kept}/{result.public} = {result.kept_rate:.1%}")
    for line in (*result.missed, *result.lost):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
