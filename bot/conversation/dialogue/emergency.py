"""Danger to life or property now: which number to call (114 fire and rescue, 113 police,
115 ambulance), recognised in any message, with or without marks.

A hazard ("nguy cơ cháy nổ", no extinguisher), something past ("tuần trước bị tai nạn") or
a procedure about it is not an emergency unless the citizen also cries for help now.
Where marks are typed they decide between look-alikes that folding merges: "cháy" (fire)
and "chảy" (flow), "sập" (collapse) and "sắp" (soon), "nổ" (explode) and "nợ" (debt).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from civicbot_nlu.normalize import has_diacritics, normalize, raw_words

FIRE, POLICE, AMBULANCE = "114", "113", "115"

# Phrases per kind of danger, folded, "|" between them.
_PHRASES: dict[str, str] = {
    "fire": (
        "dang chay|chay to|chay lon|bi chay|boc chay|bat chay|chay roi|chay nha|"
        "nha chay|chay du doi|lua boc|lua chay|ngon lua|khoi den|dam chay|hoa hoan|"
        "chay ruc|chay lan|chay o|chay tai|chay cho|chay chung cu|chay can ho|chay tang|"
        "chay phong|chay kho|chay xuong|chay quan|chay rung|chay xe|chay ngun ngut|"
        "khoi mu mit|khoi cuon cuon|chap dien boc khoi|chap dien boc chay|chap chay|"
        "on fire|a fire|burning|fire in|smoke coming|smoke from|is burning"
        "|bat lua|toe lua|phat lua|lua dang|lua boc|lua chay|boc khoi|khoi boc|khoi den|nghi chay"
    ),
    "gas": (
        "ro ri gas|ro gas|ri gas|xi gas|mui gas|hoi gas|ro khi gas|gas ro|ro ri ga|"
        "ro ga|gas leak|smell gas|smell of gas|ho gas|ho ga|xi ga|gas bi xi|ga bi xi|gas leaking"
    ),
    "explosion": "no tung|phat no|vu no|tieng no|no lon|no binh|no tram|explosion|exploded|blew up",
    "collapse": (
        "dang sap|bi sap|sap do|sup do|nha sap|sap tran|sap nha|dang sup|sap xuong|"
        "mac ket|do sap|sap dan|ket trong thang may|ket thang may|bi ket trong|sat lo|"
        "lu cuon|nuoc cuon|cay do de|do de len|collapse|collapsed|collapsing|trapped|"
        "stuck in the lift"
        "|ngat khi|ket trong xe|nuoc dang len nhanh|ngap sau co nguoi|mac ket tren"
        "|ket dau|ket tay|ket chan|ket trong|dung giua tang|de len nguoi|de trung nguoi|vui nha"
        "|cuon troi|co nguoi ket|thang may roi|roi tu do"
    ),
    "drowning": (
        "duoi nuoc|chet duoi|bi duoi|roi xuong song|roi xuong ho|roi xuong ao|"
        "roi xuong gieng|nga xuong song|nga xuong ho|drowning|drowned"
        "|lao xuong ho|lao xuong song|bi nuoc cuon|nga xuong ao|nga xuong gieng|roi xuong be"
        "|khong thay len|chim xuong"
        "|fell into the lake|fell into the river|fell into the pond|fell into the well"
        "|fell in the lake|fell in the river|fell in the pond|fell in the water"
        "|into the water|not coming up|not come up|went under|gone under|can t swim|cant swim"
        "|swept away"
    ),
    "electric": "dien giat|giat dien|bi dien|electrocuted|electric shock",
    "injury": (
        "bat tinh|ngat xiu|chay mau|nguy kich|cap cuu|bi thuong nang|nam bat dong|"
        "dot quy|co giat|ngung tho|dau tim|hon me|nga tu tang|roi tu tang|"
        "te tu tang|bi xe can|bi xe tong|bi xe dam|tai can|can nguoi|tong nguoi|"
        "ngo doc|unconscious|bleeding|ambulance|heart attack"
        "|ran can|ran doc|bi cho can|fell from|collapsed on|not breathing|stroke"
        "|dau nguc|kho tho nang|tim tai|khong tho duoc|khong tho|hoc di vat|uong nham|vo oi|sap de"
        "|chuyen da|bong nuoc soi|bong nang|bi bong|fainted|wont wake|won t wake|nguoi ngat|bi ngat"
        "|ngat tren|ngat o|ngat giua|nam duoi duong|nam giua duong|gay chan|gay tay|non ra mau"
        "|choking|overdose|seizure|bi danh trong thuong|nguoi bi dam|bi dam bang|bi dam dao"
        "|bi chem|stabbed"
    ),
    "self_harm": (
        "dinh nhay|doi nhay|nhay cau|tu tu|nhay lau|suicide|nhay xuong song|nhay xuong ho|"
        "nhay tu tang"
    ),
    "accident": "tai nan|dam xe|dam nhau|va cham|lat xe|accident|crash",
    "crime": (
        "dang trom|dang cuop|cuop giat|an cuop|be khoa|danh nhau|dam chem|chem nhau|"
        "cam dao|co dao|vac dao|bang dao|bat coc|dot nha|truy sat|pha cua|dot nhap|"
        "xong vao nha|danh vo|danh dap|danh con|de doa giet|no sung|co sung|bi cuop|"
        "giat tui|giat dien thoai|robbery|stabbing|break in|breaking in|robbing|burglar"
        "|stabbed|being attacked|attacking|robbed|gun|cuop tien|dam nguoi"
        "|co trom|trom dang|an trom|cay cua|cay khoa|treo vao nha|treo tuong|bi danh|danh hoi dong"
        "|doa giet|nguoi bi dam|bi dam bang|bi dam dao|ma tau|breaking into|broke into|knife"
        "|intruder|thief|followed by"
    ),
}
_KINDS = {kind: tuple(phrases.split("|")) for kind, phrases in _PHRASES.items()}
# Look-alike syllables: where the citizen typed marks on that syllable, the phrase must
# have the marked form; a syllable typed bare ("xe may đg chay") stays ambiguous and counts.
_MARKED = {
    "chay": ("cháy",),
    "sap": ("sập", "sụp"),
    "no": ("nổ",),
    "duoi": ("đuối",),
    "giat": ("giật",),
    "ngat": ("ngất", "ngạt"),
    "dam": ("đâm", "đám"),
    "tong": ("tông",),
}
# Kinds where a syllable means something else: "chảy máu" (bleeding), "sắp đẻ" (about to
# give birth) are injuries.
_UNMARKED_IN = {"injury": {"chay", "sap"}}
_PEOPLE_HURT = (
    "nguoi",
    "nam",
    "bi thuong",
    "chay mau",
    "nan nhan",
    "injured",
    "hurt",
    "lying",
    "bat tinh",
    "cap cuu",
    "be",
    "em be",
    "tre",
    "child",
    "nga",
    "gay chan",
    "gay tay",
    "ket",
    "mac ket",
    "pedestrian",
)
# Time words (of `_NOT_NOW`) that a danger still going on overrides: "ngửi thấy mùi gas từ
# hôm qua, giờ vẫn còn" is a leak now.
_PAST = (
    "hom qua",
    "tuan truoc",
    "thang truoc",
    "nam ngoai",
    "hom truoc",
    "lan truoc",
    "yesterday",
    "last week",
    "last year",
    "last month",
)
_NOT_NOW = (
    "nguy co",
    "co the",
    "de bi",
    "de gay",
    "phong chay",
    "chua chay",
    "pccc",
    "thoat hiem",
    "an toan chay",
    "thu tuc",
    "giay to",
    "ho so",
    "dang ky",
    "lam lai",
    "boi thuong",
    "bao hiem",
    "da dap tat",
    "da tat",
    "da duoc dap",
    "risk",
    "hazard",
    "insurance",
    "nam 20",
    "da mat",
    "chung tu",
    "khai tu",
    "so cap cuu",
    "so may",
    "mien phi",
    "duong day nong",
    "hotline",
    "number",
    "dien tap",
    "thu nghiem",
    "phim",
    "dot vang ma",
    "vang ma",
    "kham o dau",
    "di kham",
    "mau cam",
    *_PAST,
)
_STILL = ("van con", "van dang", "van chua het", "van nong nac", "still", "since")
# Dangers that go on by themselves (a leak, a fire, a live wire, a building giving way); an
# accident or a crime "last week" is past whatever is still unrepaired.
_LASTING = ("gas", "fire", "electric", "collapse")
_WATER_FLOWS = re.compile(r"\bnuoc(?:\s+\w+){0,2}\s+chay\b")
# Things that burn without a fire: rice, a bulb, a fuse, a motor.
_BURNT_THING = re.compile(
    r"\b(?:com|chao|bong den|bong|cau chi|dong co|quat|bo sac|sac)"
    r"(?:\s+\w+){0,2}?\s+(?:bi\s+)?chay\b"
)
_REAL_FIRE = ("lua", "khoi", "cuu", "lan", "fire", "smoke")
# Word windows: "<thing> … <danger word>" within a few words.
_WINDOWS: dict[str, re.Pattern[str]] = {
    "explosion": re.compile(
        r"\b(?:binh gas|binh ga|gas|noi ap suat|pin|bien ap|tram dien|lo hoi|lo)"
        r"(?:\s+\w+){0,3}\s+(?:no|phat no)\b"
    ),
    "electric": re.compile(r"\b(?:dien|o cam|day dien)(?:\s+\w+){0,3}\s+bi giat\b"),
    "accident": re.compile(
        r"\b(?:xe|o to|oto|xe may|xe tai|xe bus|xe buyt|xe khach|taxi|car|motorbike|truck|bus)"
        r"(?:\s+\w+){0,3}\s+(?:tong|dam|can|lat|hit|ran over|knocked)\b"
    ),
}
_WINDOWS["gas"] = re.compile(
    r"\b(?:gas|ga|binh ga|bep ga)(?:\s+\w+){0,3}\s+(?:bi xi|xi ra|ro ri|bi ro|bi ho)\b"
)
_WINDOW_WORDS = {
    "gas": (),
    "explosion": ("no",),
    "electric": ("giat",),
    "accident": ("tong", "dam"),
}
_URGENT = (
    "cuu voi",
    "cuu toi",
    "cuu",
    "cuu vs",
    "giup voi",
    "khan cap",
    "ngay bay gio",
    "help",
    "now",
    "sos",
)
_NUMBERS: dict[str, tuple[str, ...]] = {
    "fire": (FIRE,),
    "gas": (FIRE,),
    "explosion": (FIRE, AMBULANCE),
    "collapse": (FIRE, AMBULANCE),
    "drowning": (FIRE, AMBULANCE),
    "electric": (AMBULANCE, FIRE),
    "injury": (AMBULANCE,),
    "accident": (AMBULANCE, POLICE),
    "crime": (POLICE,),
    "self_harm": (POLICE, AMBULANCE),
    "help": (FIRE, POLICE, AMBULANCE),
}


@dataclass(frozen=True)
class Emergency:
    """What kind of danger, and the numbers to call, most relevant first."""

    kind: str
    numbers: tuple[str, ...]


def _contains(text: str, phrase: str) -> bool:
    # Most phrases are not in a message: the substring test spares the regex (hundreds of
    # phrases a message; re.escape and re's cache lookup alone cost a millisecond a message).
    return phrase in text and _whole(phrase).search(text) is not None


@cache
def _whole(phrase: str) -> re.Pattern[str]:
    """The phrase as whole words."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")


def _marked_ok(phrase: str, text: str, kind: str) -> bool:
    """Where the citizen typed marks on an ambiguous syllable of the phrase, they must be
    the marked form of the phrase; a syllable typed bare counts."""
    exempt = _UNMARKED_IN.get(kind, set())
    for syllable in phrase.split():
        forms = _MARKED.get(syllable)
        if forms is None or syllable in exempt:
            continue
        typed = [text[w.start : w.end].lower() for w in raw_words(text) if w.text == syllable]
        if typed and not any(t == syllable or t in forms for t in typed):
            return False
    return True


def _window_ok(kind: str, folded: str, text: str) -> bool:
    pattern = _WINDOWS.get(kind)
    match = pattern.search(folded) if pattern else None
    if match is None:
        return False
    return all(
        _marked_ok(word, text, kind) for word in _WINDOW_WORDS[kind] if word in match.group()
    )


def detect(text: str) -> Emergency | None:
    """The emergency the message reports, or None."""
    # the ambulance or its number named, not called for: "xe cấp cứu chạy ẩu", "số cấp cứu"
    folded = re.sub(r"(?<!goi )\b(?:xe|so|khoa|tram) cap cuu\b", " ", normalize(text))
    found = [
        kind
        for kind, phrases in _KINDS.items()
        if any(_contains(folded, p) and _marked_ok(p, text, kind) for p in phrases)
        or _window_ok(kind, folded, text)
    ]
    # "cấp cứu", "cứu hỏa", "cứu hộ" name services, they are no cry for help
    bare = re.sub(r"\b(?:cap cuu|cuu hoa|cuu thuong|cuu ho|cuu nan)\b", " ", folded)
    urgent = any(_contains(bare, u) for u in _URGENT)
    if "fire" in found and not has_diacritics(text) and _WATER_FLOWS.search(folded):
        found.remove("fire")  # "nuoc dang chay": water flowing, not a fire
    if (
        "fire" in found
        and _BURNT_THING.search(folded)
        and not any(_contains(folded, w) for w in _REAL_FIRE)
    ):
        found.remove("fire")  # "cơm bị cháy", "bóng đèn bị cháy": nothing is on fire
    if "accident" in found and not any(_contains(folded, p) for p in _PEOPLE_HURT):
        found.remove("accident")  # a crash with nobody hurt is a traffic matter
    if not found:
        return Emergency("help", _NUMBERS["help"]) if _cry_for_help(folded) else None
    if _not_now(folded, lasting=any(k in _LASTING for k in found)) and not urgent:
        return None
    kind = found[0]
    numbers = list(_NUMBERS[kind])
    for other in found[1:]:
        numbers += [n for n in _NUMBERS[other] if n not in numbers]
    return Emergency(kind, tuple(numbers))


def _not_now(folded: str, *, lasting: bool) -> bool:
    """A hazard, something past or a question about a service, unless a lasting danger
    that began in the past is said to go on still ("từ hôm qua, giờ vẫn còn")."""
    held = [n for n in _NOT_NOW if _contains(folded, n)]
    if lasting and held and all(n in _PAST for n in held):
        return not any(_contains(folded, s) for s in _STILL)
    return bool(held)


def _cry_for_help(folded: str) -> bool:
    """ "cứu với!", "cứu em với", "help me please", "sos" alone — nothing else said yet."""
    return bool(
        re.fullmatch(
            r"\W*(?:cuu|help|sos)(?:\W+(?:voi|vs|toi|em|tui|minh|con|me|please|oi|di|nguoi))*\W*",
            folded,
        )
    )
