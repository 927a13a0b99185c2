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

from civicbot_nlu.normalize import has_diacritics, normalize

FIRE, POLICE, AMBULANCE = "114", "113", "115"

# Phrases per kind of danger, folded, "|" between them.
_PHRASES: dict[str, str] = {
    "fire": (
        "dang chay|chay to|chay lon|bi chay|boc chay|bat chay|chay roi|chay nha|"
        "nha chay|chay du doi|lua boc|lua chay|ngon lua|khoi den|dam chay|hoa hoan|"
        "chay ruc|chay lan|chay o|chay tai|chay cho|chay chung cu|chay can ho|chay tang|"
        "chay phong|chay kho|chay xuong|chay quan|chay rung|chay xe|chay ngun ngut|"
        "khoi mu mit|khoi cuon cuon|chap dien boc khoi|chap dien boc chay|chap chay|"
        "on fire|a fire|burning"
    ),
    "gas": (
        "ro ri gas|ro gas|ri gas|xi gas|mui gas|hoi gas|ro khi gas|gas ro|ro ri ga|"
        "ro ga|gas leak|smell gas|smell of gas"
    ),
    "explosion": "no tung|phat no|vu no|tieng no|no lon|no binh|no tram|explosion|exploded",
    "collapse": (
        "dang sap|bi sap|sap do|sup do|nha sap|sap tran|sap nha|dang sup|sap xuong|"
        "mac ket|do sap|sap dan|ket trong thang may|ket thang may|bi ket trong|sat lo|"
        "lu cuon|nuoc cuon|cay do de|do de len|collapse|collapsed|collapsing|trapped|"
        "stuck in the lift"
        "|ngat khi|ket trong xe|nuoc dang len nhanh|ngap sau co nguoi|mac ket tren"
    ),
    "drowning": (
        "duoi nuoc|chet duoi|bi duoi|roi xuong song|roi xuong ho|roi xuong ao|"
        "roi xuong gieng|nga xuong song|nga xuong ho|drowning|drowned"
        "|lao xuong ho|lao xuong song|bi nuoc cuon"
    ),
    "electric": "dien giat|giat dien|bi dien|electrocuted|electric shock",
    "injury": (
        "bat tinh|ngat xiu|chay mau|nguy kich|cap cuu|bi thuong nang|nam bat dong|"
        "dot quy|co giat|ngung tho|dau tim|hon me|nga tu tang|roi tu tang|"
        "te tu tang|bi xe can|bi xe tong|bi xe dam|tai can|can nguoi|tong nguoi|"
        "ngo doc|unconscious|bleeding|ambulance|heart attack"
        "|ran can|ran doc|bi cho can|fell from|collapsed on|not breathing|stroke"
    ),
    "self_harm": "dinh nhay|doi nhay|nhay cau|tu tu|nhay lau|suicide",
    "accident": "tai nan|dam xe|dam nhau|va cham|lat xe|accident|crash",
    "crime": (
        "dang trom|dang cuop|cuop giat|an cuop|be khoa|danh nhau|dam chem|chem nhau|"
        "cam dao|co dao|vac dao|bang dao|bat coc|dot nha|truy sat|pha cua|dot nhap|"
        "xong vao nha|danh vo|danh dap|danh con|de doa giet|no sung|co sung|bi cuop|"
        "giat tui|giat dien thoai|robbery|stabbing|break in|breaking in|robbing|burglar"
        "|stabbed|being attacked|attacking|robbed|gun|cuop tien|dam nguoi"
    ),
}
_KINDS = {kind: tuple(phrases.split("|")) for kind, phrases in _PHRASES.items()}
# Look-alike syllables: with marks typed, the phrase must contain the marked form.
_MARKED = {"chay": "cháy", "sap": ("sập", "sụp"), "no": "nổ", "duoi": "đuối", "giat": "giật"}
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
    "hom qua",
    "tuan truoc",
    "thang truoc",
    "nam ngoai",
    "hom truoc",
    "lan truoc",
    "da dap tat",
    "da tat",
    "da duoc dap",
    "risk",
    "hazard",
    "last week",
    "yesterday",
    "insurance",
)
_WATER_FLOWS = re.compile(r"\bnuoc(?:\s+\w+){0,2}\s+chay\b")
_URGENT = ("cuu voi", "cuu toi", "cuu", "giup voi", "khan cap", "ngay bay gio", "help", "now")
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
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text) is not None


def _marked_ok(phrase: str, original: str) -> bool:
    """With marks typed, an ambiguous syllable of the phrase must be the marked one."""
    for syllable in phrase.split():
        marked = _MARKED.get(syllable)
        if marked is None:
            continue
        forms = (marked,) if isinstance(marked, str) else marked
        if not any(form in original for form in forms):
            return False
    return True


def detect(text: str) -> Emergency | None:
    """The emergency the message reports, or None."""
    folded = normalize(text)
    original = text.lower()
    marks = has_diacritics(text)
    found = [
        kind
        for kind, phrases in _KINDS.items()
        if any(_contains(folded, p) and (not marks or _marked_ok(p, original)) for p in phrases)
    ]
    urgent = any(_contains(folded, u) for u in _URGENT)
    if "fire" in found and not marks and _WATER_FLOWS.search(folded):
        found.remove("fire")  # "nuoc dang chay": water flowing, not a fire
    if "accident" in found and not any(_contains(folded, p) for p in _PEOPLE_HURT):
        found.remove("accident")  # a crash with nobody hurt is a traffic matter
    if not found:
        return Emergency("help", _NUMBERS["help"]) if _cry_for_help(folded) else None
    if any(_contains(folded, n) for n in _NOT_NOW) and not urgent:
        return None
    kind = found[0]
    numbers = list(_NUMBERS[kind])
    for other in found[1:]:
        numbers += [n for n in _NUMBERS[other] if n not in numbers]
    return Emergency(kind, tuple(numbers))


def _cry_for_help(folded: str) -> bool:
    """ "cứu với!" alone, or "help me" — nothing else said yet."""
    return bool(re.fullmatch(r"\W*(cuu|cuu voi|cuu toi|cuu em|help|help me)\W*", folded))
