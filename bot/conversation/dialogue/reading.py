"""Readings of a citizen's words that no NLU model is needed for: yes and no, ratings in
words and stars, "still not fixed", "no photo", status questions told as a story, English.

Every reader works on folded text (civicbot_nlu.normalize: no marks, teencode expanded), so
"không có ảnh", "ko co anh" and "khong co anh" read alike.
"""

from __future__ import annotations

import re

from civicbot_nlu.normalize import normalize, words
from civicbot_nlu.patterns import match_phrases
from civicbot_nlu.rating import read_rating

# Words that carry no content of a request: "tôi muốn phản ánh về ..." says only that.
_REQUEST_WORDS = frozenset(
    """toi minh em anh chi muon can phan kien nghi to cao bao gui ve viec cho xin hoi
    voi a a oi nhe nha la cua cai vu chuyen nay do thi bo phuong quan xa huyen""".split()
)
YES = frozenset("co ok oke okay oki gui dung vang u uh uhm chuan yes yep sure send".split())
_YES_PHRASES = ("dong y", "gui di", "gui luon", "gui nhe", "dung roi", "xac nhan", "ok gui")
_NO_PHRASES = ("khong gui", "thoi khong", "khong can", "thoi", "huy", "khong")

_NO_PHOTO = (
    "khong co anh",
    "khong co hinh",
    "khong anh",
    "khong chup",
    "khong co",
    "khong chup duoc",
    "chua co anh",
    "bo qua",
    "khong gui anh",
    "khong can anh",
    "no photo",
    "skip",
    "khong",
)

_REOPEN = (
    "van chua",
    "chua duoc giai quyet",
    "chua giai quyet",
    "chua xu ly",
    "chua ai don",
    "chua don",
    "chua sua",
    "chua xong",
    "lam nhu khong",
    "van the",
    "van con",
    "nhu cu",
    "van y nguyen",
    "khong xu ly",
    "khong giai quyet",
    "van bay ra",
    "lai bay ra",
    "not fixed",
    "still not",
)

# Ratings in English, beside the Vietnamese words `read_rating` knows.
_RATING_WORDS_EN: dict[str, tuple[str, ...]] = {
    "1": ("very bad", "terrible", "awful"),
    "2": ("bad", "poor", "not satisfied"),
    "3": ("so so", "okay", "average"),
    "4": ("good", "satisfied"),
    "5": ("very good", "excellent", "great", "very satisfied"),
}
_STARS = re.compile(r"[⭐★]")
# A rating said with its scale ("5 sao", "4/5", "năm sao") counts in a long message too.
_SCALED = re.compile(r"\d\s*(sao|diem|/|\*|star)|\b(mot|hai|ba|bon|nam)\s+sao\b")
_RATING_MAX_WORDS = 10
_BECAUSE = re.compile(r"(?i)\b(?:vì|vi|bởi|boi|tại|tai|because|since)\b|[,.;:!]")

_STATUS_CUES = (
    "ket qua gi chua",
    "co ket qua chua",
    "co ket qua gi",
    "den dau roi",
    "the nao roi",
    "xu ly chua",
    "xu ly den dau",
    "da xu ly chua",
    "tien do",
    "giai quyet chua",
    "sao roi",
    "dau roi",
    "da xong chua",
    "xong chua",
    "co ai xu ly chua",
    "ra sao roi",
)
_TOLD_BEFORE = (
    "toi bao",
    "toi da bao",
    "toi gui",
    "toi da gui",
    "da phan anh",
    "bao hom",
    "bao luc",
    "gui hom",
    "gui luc",
    "phan anh hom",
    "phan anh luc",
)

# Anger at inaction: "gửi bao nhiêu lần không ai làm gì", "toàn lũ ăn hại".
_INACTION = (
    "khong ai lam gi",
    "chang ai lam gi",
    "cha ai lam gi",
    "khong ai xu ly",
    "chang ai xu ly",
    "cha ai xu ly",
    "khong ai giai quyet",
    "chang ai giai quyet",
    "khong ai quan tam",
    "chang ai quan tam",
    "khong ai tra loi",
    "chang ai tra loi",
    "gui bao nhieu lan",
    "bao bao nhieu lan",
    "nhan bao nhieu lan",
    "phan anh bao nhieu lan",
    "gui may lan",
    "bao may lan",
    "nhan may lan",
    "phan anh may lan",
    "gui mai",
    "bao mai",
    "nhan mai",
    "an hai",
    "vo tich su",
    "lam an kieu gi",
)

# English: words that are not also common Vietnamese words without marks.
_ENGLISH = frozenset(
    """the is are how what where when which who why does did you your my me i want need
    there this that it with for from please hello hello, thanks thank help report get
    take long much cost register registration certificate passport document documents
    baby child apply application garbage trash rubbish noise fire street road near next
    building would could should have has been about please can't don't i'm it's of in
    any and news status complaint complaints update progress fixed yet still since today
    yesterday morning night someone anyone broken light lights water smell smoke lake river
    fell alley lane ward district police ambulance neighbour neighbor house apartment
    we our they their she his her was were will just""".split()
)  # not "an", "to", "do", "no", "on", "be", "he", "can", "gas": Vietnamese typed bare
_VIETNAMESE = frozenset(
    "toi khong duoc cua nhung gi dau nao bao nhieu lam phuong quan pho ngo xin chao oi a".split()
)


def folded(text: str) -> str:
    return normalize(text)


def content_words(text: str, *, without: str | None = None) -> int:
    """How many words say something beyond "I want to report" (and beyond the place
    `without`): none in "tôi muốn tố cáo cán bộ phường Kim Liên"."""
    if without:
        text = text.replace(without, " ")
    return sum(1 for w in words(text) if w.text not in _REQUEST_WORDS)


def _has(text: str, phrases: tuple[str, ...]) -> bool:
    f = f" {folded(text)} "
    return any(f" {p} " in f for p in phrases)


def is_yes(text: str) -> bool:
    f = folded(text).strip()
    return f in YES or any(f.startswith(p) for p in _YES_PHRASES)


def is_no(text: str) -> bool:
    f = folded(text).strip()
    return f in ("khong", "no", "thoi") or any(f.startswith(p) for p in _NO_PHRASES)


def is_plain_no(text: str) -> bool:
    """ "không", "ko", "no": no, and nothing that could also mean "cancel" ("thôi", "hủy")."""
    return folded(text).strip(" .!") in ("khong", "no", "khong a", "khong nhe")


def is_same_place(text: str) -> bool:
    """ "vẫn ở đó", "chỗ cũ", "cùng chỗ": the place offered, the last ticket's."""
    return _has(text, ("van o do", "o do", "cho cu", "cung cho", "cho do", "van cho do"))


def is_other_place(text: str) -> bool:
    """ "chỗ khác", "nơi khác", "không phải": another place than the one offered."""
    return _has(text, ("cho khac", "noi khac", "khong phai", "cho khac a", "other place"))


def is_follow(text: str) -> bool:
    """ "theo dõi", "theo doi phan anh do": follow the open ticket shown."""
    f = folded(text).strip(" .!")
    return f.startswith(("theo doi", "follow"))


def is_file_new(text: str) -> bool:
    """ "gửi mới", "vẫn gửi phản ánh mới", "khác việc": file a new ticket after all."""
    f = folded(text).strip(" .!")
    return f in ("khong", "khong can", "no") or any(
        f" {p} " in f" {f} "
        for p in ("gui moi", "phan anh moi", "van gui", "viec khac", "khac viec", "new")
    )


def is_no_photo(text: str) -> bool:
    """ "không có ảnh", "ko chụp được", "bỏ qua": the photo step is done without one."""
    f = folded(text).strip()
    return len(f.split()) <= 6 and any(f.startswith(p) or f" {p}" in f for p in _NO_PHOTO)


def is_reopen(text: str) -> bool:
    """ "vẫn chưa dọn gì cả", "làm như không": the problem is not fixed."""
    return len(words(text)) <= 16 and _has(text, _REOPEN)


def rating(text: str) -> int | None:
    """A 1–5 rating given unasked, after a resolution: stars (⭐), what `read_rating` reads
    (the one reader of ratings in Vietnamese) or English words, in a short message — or
    with its scale in a longer one, where a word like "tốt" may be about something else."""
    stars = len(_STARS.findall(text))
    if 1 <= stars <= 5:
        return stars
    f = folded(text)
    if len(f.split()) > _RATING_MAX_WORDS and not _SCALED.search(f):
        # "không hài lòng vì …", "rất hài lòng, cảm ơn …": the verdict comes first
        text = _BECAUSE.split(text, maxsplit=1)[0]
        if len(folded(text).split()) > _RATING_MAX_WORDS // 2:
            return None
    found = read_rating(text)
    if found is None:
        english = match_phrases(words(text), _RATING_WORDS_EN)
        found = int(max(english, key=lambda m: m[3] - m[2])[0]) if english else None
    return found


def asks_status(text: str) -> bool:
    """ "vụ lấn chiếm tôi báo lúc nãy có kết quả gì chưa": a status question as a story."""
    return _has(text, _STATUS_CUES) or (_has(text, _TOLD_BEFORE) and "chua" in folded(text))


def is_follow_up(text: str) -> bool:
    """ "còn nữa, …", "ngoài ra …", "… cũng …": one more thing, after the last one."""
    f = f" {folded(text)} "
    return f.lstrip().startswith(_FOLLOW_UP) or " cung " in f


_FOLLOW_UP = ("con nua", "them nua", "ngoai ra", "con vu", "con chuyen", "con viec", "them mot")


def is_inaction(text: str) -> bool:
    """ "Bọn mày toàn lũ ăn hại, gửi bao nhiêu lần không ai làm gì": anger that nothing was
    done, not a complaint about something new (that one names what and where)."""
    return _has(text, _INACTION)


def is_english(text: str) -> bool:
    """Plain ASCII with at least two English words and fewer Vietnamese ones."""
    if not text.isascii():
        return False
    tokens = re.findall(r"[a-z']+", text.lower())
    english = sum(1 for t in tokens if t in _ENGLISH)
    vietnamese = sum(1 for t in tokens if t in _VIETNAMESE)
    return english >= 2 and english > vietnamese
