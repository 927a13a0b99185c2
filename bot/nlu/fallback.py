"""The degraded-mode classifier used when the Rasa server cannot be reached.

Keywords on folded text: coarse, but it still recognises complaints and their category,
check-status requests with their code and the procedure asked about, so that a citizen is
never lost while the model is down. Results are marked ``"source": "fallback"``.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from civicbot_nlu.normalize import Word, has_diacritics, words
from civicbot_nlu.patterns import find_aspects, find_phones, find_ticket_codes, match_phrases
from civicbot_nlu.rating import read_rating

from bot.categories import CATEGORIES
from bot.nlu.result import NluResult, RankedIntent

CATEGORY_CUES: dict[str, tuple[str, ...]] = {c.code: c.cues for c in CATEGORIES}

PROCEDURE_CUES: dict[str, tuple[str, ...]] = {
    "khai_sinh": (
        "khai sinh",
        "khai sanh",
        "giay khai sinh",
        "moi sinh",
        "vua sinh",
        "sinh con",
        "vua de",
        "moi de",
        "vo de",
        "chao doi",
        "giay chung sinh",
        "de duoc",
        "sinh be",
        "giay cho be",
        "giay to cho be",
        "giay cho con",
        "be moi sinh",
        "con moi sinh",
        "register the birth",
    ),
    "ket_hon": (
        "ket hon",
        "dang ky cuoi",
        "giay dang ky ket hon",
        "sap cuoi",
        "dinh cuoi",
        "cuoi vo",
        "cuoi chong",
        "lay vo",
        "lay chong",
        "hon thu",
        "dam cuoi",
        "vo chong hop phap",
        "marry",
    ),
    "khai_tu": (
        "khai tu",
        "bao tu",
        "giay bao tu",
        "chung tu",
        "qua doi",
        "vua mat",
        "da mat",
        "moi mat",
        "tu tran",
        "tu tuat",
        "bo mat",
        "me mat",
        "ong mat",
        "passed away",
    ),
    "xac_nhan_hon_nhan": (
        "tinh trang hon nhan",
        "xac nhan doc than",
        "xac nhan hon nhan",
        "doc than",
        "chua ket hon",
        "chua co vo",
        "chua co chong",
        "chua vo",
        "chua co gia dinh",
        "proof that i am single",
    ),
    "cai_chinh_ho_tich": (
        "cai chinh",
        "sua ten",
        "doi ten",
        "doi ho",
        "bo sung ho tich",
        "thay doi ho tich",
        "sua ngay sinh",
        "ghi sai",
        "ghi nham",
        "viet sai",
        "bi sai ten",
    ),
    "thuong_tru": (
        "thuong tru",
        "ho khau",
        "nhap khau",
        "chuyen khau",
        "tach khau",
        "nhap ho",
        "cu tru lau dai",
    ),
    "tam_tru": (
        "tam tru",
        "thue tro",
        "o tro",
        "thue phong",
        "chu tro",
        "khai bao cu tru",
        "temporary residence",
    ),
    "can_cuoc": (
        "can cuoc",
        "the can cuoc",
        "can cuoc cong dan",
        "chung minh nhan dan",
        "giay to tuy than",
        "gan chip",
        "id card",
    ),
    "ho_chieu": (
        "ho chieu",
        "passport",
        "pasport",
        "xuat canh",
        "di nuoc ngoai",
        "ra nuoc ngoai",
        "du hoc",
        "so xuat canh",
    ),
    "ly_lich_tu_phap": (
        "ly lich tu phap",
        "lltp",
        "phieu ly lich",
        "tien an",
        "tien su",
        "an tich",
        "khong pham toi",
        "phieu so 1",
        "phieu so 2",
        "criminal record",
    ),
    "chung_thuc": (
        "chung thuc",
        "sao y",
        "cong chung ban sao",
        "ban sao chung thuc",
        "dau do",
        "sao y ban chinh",
        "chu ky",
        "certified copy",
    ),
    "giay_phep_xay_dung": (
        "giay phep xay dung",
        "xin phep xay",
        "phep xay nha",
        "khoi cong",
        "xay lai nha",
        "xay nha moi",
        "permit",
    ),
    "so_do": (
        "so do",
        "so hong",
        "giay chung nhan quyen su dung dat",
        "cap so",
        "bia do",
        "giay chu quyen",
        "chua co so",
    ),
    "sang_ten_dat": (
        "sang ten so",
        "sang ten dat",
        "chuyen nhuong dat",
        "tang cho",
        "thua ke",
        "mua ban dat",
        "sang ten so do",
        "sang ten nha",
        "di chuc",
        "chia dat",
        "mua dat",
        "chuyen ten nha",
        "chuyen ten dat",
        "len so",
    ),
    "ho_kinh_doanh": (
        "ho kinh doanh",
        "dang ky kinh doanh",
        "giay phep kinh doanh",
        "mo quan",
        "mo tiem",
        "mo cua hang",
        "ban hang",
        "ban do an",
        "kinh doanh nho",
        "household business",
    ),
    "thanh_lap_doanh_nghiep": (
        "thanh lap doanh nghiep",
        "thanh lap cong ty",
        "mo cong ty",
        "lap cong ty",
        "doanh nghiep",
        "cong ty tnhh",
        "cong ty co phan",
        "phap nhan",
        "gop von",
        "limited company",
    ),
    "dang_ky_xe": (
        "dang ky xe",
        "sang ten xe",
        "bien so",
        "cavet",
        "ca vet",
        "mua xe",
        "bien xe",
        "chuyen ten xe",
        "giay to xe",
        "mua lai xe",
        "xe may moi",
        "o to moi",
        "motorbike registration",
    ),
    "giay_phep_lai_xe": (
        "giay phep lai xe",
        "bang lai",
        "doi bang",
        "bang lai xe",
        "bang b2",
        "bang a1",
        "bang o to",
        "bang xe may",
        "driving licence",
        "driving license",
    ),
}

INTENT_CUES: dict[str, tuple[str, ...]] = {
    "report_problem": (
        "phan anh",
        "kien nghi",
        "khieu nai",
        "to cao",
        "phan nan",
        "to giac",
        "bao cao",
        "gop y",
        "complaint",
        "report a problem",
    ),
    "check_status": (
        "den dau roi",
        "sao roi",
        "xu ly chua",
        "tien do",
        "tra cuu",
        "da xu ly chua",
        "ket qua xu ly",
        "don cua toi",
        # A status told as a story: "tuần trước tôi báo …, giờ có ai đến chưa".
        "co ai den",
        "co ai xuong",
        "chua thay ai",
        "van chua thay",
        "den gio van chua",
        "co ket qua chua",
        "bao hom truoc",
        "bao tuan truoc",
        "gui hom truoc",
        "gui tuan truoc",
        "phan anh hom truoc",
        "phan anh tuan truoc",
        "bao lan truoc",
        "gui lan truoc",
        "phan anh cua toi",
        "phan anh cua em",
        "phan anh cua minh",
        "don cua em",
        "don cua minh",
        "ma phan anh",
        "khau nao",
        "buoc nao",
        "tinh hinh xu ly",
        "duoc tiep nhan chua",
        "nhan duoc chua",
        "co ai nhan",
        "xu ly xong chua",
        "xu ly toi dau",
        "any update",
        "status of my",
    ),
    "ask_procedure": (
        "thu tuc",
        "ho so",
        "le phi",
        "can gi",
        "can giay to",
        "giay to gi",
        "phai lam gi",
        "can lam gi",
        "xin o dau",
        "lam the nao",
        "o dau",
        "bao lau",
        "online",
        "truc tuyen",
        "dang ky",
        "cap lai",
        "cap doi",
        "lam lai",
    ),
    "greet": ("chao", "xin chao", "alo", "hello", "hi", "chao ban", "chao admin"),
    "goodbye": ("tam biet", "bye", "hen gap lai"),
    "thank": ("cam on",),
    "affirm": ("dung roi", "vang", "u", "ok", "dong y", "xac nhan", "chinh xac", "chuan"),
    "deny": ("khong phai", "sai roi", "khong dung", "nham roi", "khong"),
    "cancel": ("huy", "thoi", "dung lai", "bo qua", "khong gui nua"),
    "help": ("giup duoc gi", "huong dan", "menu", "lam duoc gi", "tro giup", "ho tro gi"),
    "human": (
        "gap can bo",
        "nguoi that",
        "nhan vien",
        "tong dai",
        "duong day nong",
        "gap nguoi",
        "noi chuyen voi nguoi",
    ),
    "rate": (
        "hai long",
        "1 sao",
        "2 sao",
        "3 sao",
        "4 sao",
        "5 sao",
        "nam sao",
        "danh gia",
        "cham diem",
        "tot lam",
        "te qua",
        "rat tot",
        "tuyet voi",
        "khong ung",
        "rat ung",
        "vua y",
        "thoa dang",
        "qua loa",
        "lam cho co",
        "that vong",
        "chap nhan duoc",
        "tam duoc",
        "tam on",
        "on ap",
        "danh gia cao",
        "danh gia thap",
        "khen",
        "satisfied",
        "good job",
        "great job",
        "poor job",
    ),
    # Near misses: opinions and everyday city questions that no unit here answers.
    "out_of_scope": (
        "ban nghi",
        "theo ban",
        "gia vang",
        "thoi tiet",
        "xe buyt",
        "lich cat dien",
        "gia xang",
        "xo so",
        "co phieu",
        "what",
        "where",
        "how",
        "please",
        "ban la nguoi",
        "ban ten",
        "bao nhieu tuoi",
        "ban co biet",
        "ke chuyen",
        "ty gia",
        "nha mang",
        "nha hang nao",
        "an gi",
        "troi co mua",
        "chan qua",
        "buon qua",
        "recommend",
        "weather",
        "joke",
        "restaurant",
        "hotel",
    ),
}

# "làm sao", "thế nào": a question about how, read as a procedure question only when a
# procedure is named ("làm sao để giảm cân" is not one).
HOW_CUES: dict[str, tuple[str, ...]] = {
    "how": (
        "lam sao", "lam gi", "the nao", "can nhung gi", "nop o dau", "lam o dau", "xin giay",
        "bat dau tu dau", "ntn", "how do i", "where do i", "what documents",
    ),
}  # fmt: skip

# A status told as a story: an earlier report ("tôi báo", "đơn", "phản ánh"), when it was
# ("tuần trước", "hôm qua", "đã"), then a question about news after it ("… có ai đến chưa").
STORY_CUES: dict[str, tuple[str, ...]] = {
    "report": (
        "bao", "gui", "phan anh", "don", "kien nghi", "pa", "nhan tin", "report", "reported",
        "complaint", "sent",
    ),
    "past": (
        "hom truoc", "tuan truoc", "thang truoc", "lan truoc", "hom qua", "hom bua", "hom no",
        "dau tuan", "dau thang", "tu hom", "tu tuan", "tu thang", "tu sang", "cach day",
        "lau roi", "da", "last week", "days ago", "ago", "on monday", "yesterday",
    ),
    "news": (
        "chua", "tinh hinh", "ket qua", "den dau", "the nao", "sao roi", "cap nhat", "hoi am",
        "tien trien", "phan hoi", "tra loi", "has anyone", "any update", "did anyone",
        "going on", "yet",
    ),
    # Words that hold a cue word but mean something else: "bao giờ", "chữa cháy".
    "neither": (
        "bao gio", "bao lau", "bao nhieu", "bao ve", "thong bao", "chua chay", "sua chua",
        "da dang",
    ),
}  # fmt: skip

# Folded cue words that are also other words once marks are gone: when the citizen typed
# marks, the cue counts only in its own spelling ("vàng" is gold, not "vâng").
ACCENTED_CUES: dict[str, str] = {
    "vang": "vâng", "thoi": "thôi", "chay": "cháy", "khoi": "khói", "rac": "rác",
    "bui": "bụi", "huy": "hủy", "ngap": "ngập", "xang": "xăng", "chao": "chào",
}  # fmt: skip

# How sure a keyword verdict is: meant to be read as "coarse", never as a model's score.
_CONFIDENCE_STRONG = 0.6
_CONFIDENCE_WEAK = 0.3
# Intents that are a whole short message ("vâng", "không", "thôi"), not a cue in a long one.
_SHORT_ONLY = frozenset(("affirm", "deny", "cancel"))
_SHORT_WORDS = 6


def classify(text: str) -> NluResult:
    """Understand a message from keywords alone."""
    folded = words(text)
    codes = find_ticket_codes(text)
    phones = find_phones(text)
    category = _best(_matches(text, folded, CATEGORY_CUES))
    procedure = _best(_matches(text, folded, PROCEDURE_CUES))
    intents = Counter(key for key, *_ in _matches(text, folded, INTENT_CUES))
    asking = bool(intents["ask_procedure"])
    complaining = bool(intents["report_problem"])
    how = bool(match_phrases(folded, HOW_CUES))
    short = len(folded) <= _SHORT_WORDS
    # "5", "4 nhé", "tạm được": a bare rating is a whole message of a few words.
    rated = bool(intents["rate"]) or (
        len(folded) <= 3
        and not (intents["affirm"] or intents["deny"])
        and read_rating(text) is not None
    )

    if codes or ((intents["check_status"] or _told_before(folded)) and not procedure):
        intent = "check_status"
    elif rated and not complaining:
        # "không hài lòng vì rác vẫn còn": a rating with its reason, not a new complaint.
        intent = "rate"
    elif intents["out_of_scope"] and not complaining:
        intent = "out_of_scope"
    elif procedure and (asking or how or find_aspects(text)) and not complaining:
        # "xin giấy phép xây dựng cần gì" names a procedure, though "xây dựng" is a category cue.
        intent = "ask_procedure"
    elif category or complaining:
        intent = "report_problem"
    elif procedure or asking:
        intent = "ask_procedure"
    elif intents and (short or not intents.keys() <= _SHORT_ONLY):
        # A "không" or "chào" in a long message says nothing of what it wants.
        intent = next(key for key, _ in intents.most_common() if short or key not in _SHORT_ONLY)
    else:
        intent = "out_of_scope"

    confidence = _CONFIDENCE_WEAK if intent == "out_of_scope" else _CONFIDENCE_STRONG
    aspects = find_aspects(text) if intent == "ask_procedure" else []
    return NluResult(
        text=text,
        intent=intent,
        confidence=confidence,
        category=category if intent == "report_problem" else None,
        procedure=procedure if intent == "ask_procedure" else None,
        aspect=aspects[0].value if aspects else None,
        ticket_code=codes[0].value if codes else None,
        phone=phones[0].value if phones else None,
        source="fallback",
        ranking=[RankedIntent(intent=intent, confidence=confidence)],
    )


def _told_before(folded: list[Word]) -> bool:
    """An earlier report, said to be in the past, then a question about its news."""
    found = match_phrases(folded, STORY_CUES)
    reported = [i for key, _phrase, i, _j in found if key == "report"]
    past = any(key == "past" for key, *_ in found)
    return (
        bool(reported)
        and past
        and any(key == "news" and i > reported[0] for key, _phrase, i, _j in found)
    )


def _matches(
    text: str, folded: list[Word], table: dict[str, tuple[str, ...]]
) -> list[tuple[str, str, int, int]]:
    """Phrase matches whose ambiguous words were typed in the cue's own spelling or bare."""
    return [
        (key, phrase, i, j)
        for key, phrase, i, j in match_phrases(folded, table)
        if all(_spelled_as_cue(text, word) for word in folded[i:j])
    ]


def _spelled_as_cue(text: str, word: Word) -> bool:
    accented = ACCENTED_CUES.get(word.text)
    if accented is None:
        return True
    typed = unicodedata.normalize("NFC", text[word.start : word.end]).lower()
    return not has_diacritics(typed) or typed == accented


def _best(matches: list[tuple[str, str, int, int]]) -> str | None:
    """The key with the most matched words; ties go to the first mentioned."""
    if not matches:
        return None
    weight: Counter[str] = Counter()
    for key, _phrase, i, j in matches:
        weight[key] += j - i
    top = max(weight.values())
    return next(key for key, *_ in matches if weight[key] == top)
