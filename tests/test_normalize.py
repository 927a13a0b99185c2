"""Folding Vietnamese text: marks, case, NFC/NFD, teencode, and offsets into the original."""

from __future__ import annotations

import unicodedata

import pytest
from civicbot_nlu.normalize import (
    ABBREVIATIONS,
    Word,
    fold,
    has_diacritics,
    normalize,
    raw_words,
    strip_marks,
    words,
)


def _nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def _surfaces(text: str) -> list[str]:
    """The slices of the original text that the words came from."""
    return [text[w.start : w.end] for w in words(text)]


# --- fold, strip_marks, has_diacritics ------------------------------------------------------


def test_strip_marks_removes_tones_and_vowel_marks_and_keeps_case() -> None:
    assert strip_marks("Đường Láng ngập sâu") == "Duong Lang ngap sau"
    assert strip_marks("ĐỐNG ĐA, Hà Nội") == "DONG DA, Ha Noi"
    assert strip_marks("ưỡng ộ ằ ẫ ẻ ỵ") == "uong o a a e y"


def test_strip_marks_of_nfd_text() -> None:
    assert strip_marks(_nfd("Đường Láng ngập sâu")) == "Duong Lang ngap sau"


def test_fold_lowercases_and_strips() -> None:
    assert fold("Vỉa Hè PHỐ HUẾ") == "via he pho hue"
    assert fold("Đ") == "d"
    assert fold(_nfd("Thủ tục Hành chính")) == "thu tuc hanh chinh"


def test_fold_keeps_digits_punctuation_and_emoji() -> None:
    assert fold("Số 12, ngõ 45/3 😡") == "so 12, ngo 45/3 😡"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vỉa hè", True),
        ("đi", True),
        ("Đ", True),
        (_nfd("vỉa hè"), True),
        ("via he", False),
        ("VIA HE 123 !?", False),
        ("", False),
        ("😡👍", False),
    ],
)
def test_has_diacritics(text: str, expected: bool) -> None:
    assert has_diacritics(text) is expected


# --- NFC and NFD ------------------------------------------------------------------------------

NFD_SAMPLES = [
    "Đường Nguyễn Trãi ngập sâu quá",
    "Làm giấy khai sinh cần những gì?",
    "Cán bộ phường thái độ hách dịch",
    "Quán karaoke hát ồn ào đến khuya",
    "Hồ sơ đăng ký thường trú của tôi quá hạn",
]


@pytest.mark.parametrize("text", NFD_SAMPLES)
def test_nfc_and_nfd_give_the_same_words(text: str) -> None:
    nfc = unicodedata.normalize("NFC", text)
    nfd = _nfd(text)
    assert nfd != nfc
    assert [w.text for w in words(nfd)] == [w.text for w in words(nfc)]
    assert normalize(nfd) == normalize(nfc)


def test_nfd_word_is_not_split_at_combining_marks() -> None:
    # "ệ" in NFD is e + circumflex + dot below: still one word.
    assert [w.text for w in raw_words(_nfd("bệnh viện"))] == ["benh", "vien"]


# --- with and without diacritics --------------------------------------------------------------

# (as typed with marks, as typed without, folded form)
WITH_AND_WITHOUT = [
    (
        "Vỉa hè phố Huế bị lấn chiếm hết chỗ đi bộ",
        "Via he pho Hue bi lan chiem het cho di bo",
        "via he pho hue bi lan chiem het cho di bo",
    ),
    (
        "Làm giấy khai sinh cho con cần những giấy tờ gì?",
        "lam giay khai sinh cho con can nhung giay to gi?",
        "lam giay khai sinh cho con can nhung giay to gi",
    ),
    (
        "Rác thải ở đầu ngõ 45 ba ngày không ai thu gom",
        "rac thai o dau ngo 45 ba ngay khong ai thu gom",
        "rac thai o dau ngo 45 ba ngay khong ai thu gom",
    ),
    (
        "Đường Láng ngập sâu sau trận mưa tối qua",
        "Duong Lang ngap sau sau tran mua toi qua",
        "duong lang ngap sau sau tran mua toi qua",
    ),
    (
        "Cán bộ một cửa phường đòi tiền mới nhận hồ sơ",
        "can bo mot cua phuong doi tien moi nhan ho so",
        "can bo mot cua phuong doi tien moi nhan ho so",
    ),
    (
        "Quán karaoke hát đến 2 giờ sáng, ồn quá!",
        "quan karaoke hat den 2 gio sang, on qua!",
        "quan karaoke hat den 2 gio sang on qua",
    ),
    (
        "Đăng ký tạm trú trực tuyến có được không ạ?",
        "dang ky tam tru truc tuyen co duoc khong a?",
        "dang ky tam tru truc tuyen co duoc khong a",
    ),
    (
        "Hồ sơ cấp sổ đỏ của tôi đã quá hạn mà chưa trả kết quả",
        "Ho so cap so do cua toi da qua han ma chua tra ket qua",
        "ho so cap so do cua toi da qua han ma chua tra ket qua",
    ),
    (
        "Nhà bên cạnh xây thêm tầng 5 không có giấy phép",
        "nha ben canh xay them tang 5 khong co giay phep",
        "nha ben canh xay them tang 5 khong co giay phep",
    ),
    (
        "Khu tập thể Kim Liên mất nước từ hôm qua",
        "khu tap the Kim Lien mat nuoc tu hom qua",
        "khu tap the kim lien mat nuoc tu hom qua",
    ),
    (
        "Xin chào, cho tôi hỏi lệ phí làm hộ chiếu là bao nhiêu",
        "xin chao, cho toi hoi le phi lam ho chieu la bao nhieu",
        "xin chao cho toi hoi le phi lam ho chieu la bao nhieu",
    ),
    (
        "Bãi giữ xe trước bệnh viện Bạch Mai thu tiền gấp đôi",
        "bai giu xe truoc benh vien Bach Mai thu tien gap doi",
        "bai giu xe truoc benh vien bach mai thu tien gap doi",
    ),
    (
        "Cảm ơn bạn đã hỗ trợ nhiệt tình",
        "cam on ban da ho tro nhiet tinh",
        "cam on ban da ho tro nhiet tinh",
    ),
]


@pytest.mark.parametrize(("marked", "bare", "expected"), WITH_AND_WITHOUT)
def test_with_and_without_diacritics_normalize_alike(marked: str, bare: str, expected: str) -> None:
    assert normalize(marked) == expected
    assert normalize(bare) == expected
    assert normalize(_nfd(marked)) == expected


# --- teencode and abbreviations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ko", "khong"),
        ("k", "khong"),
        ("hok", "khong"),
        ("dc", "duoc"),
        ("đc", "duoc"),
        ("j", "gi"),
        ("mk", "minh"),
        ("ng", "nguoi"),
        ("cccd", "can cuoc cong dan"),
        ("ubnd", "uy ban nhan dan"),
        ("sdt", "so dien thoai"),
    ],
)
def test_teencode_word_expands(text: str, expected: str) -> None:
    assert normalize(text) == expected
    assert normalize(text.upper()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mk ko bít làm cccd ở đâu", "minh khong biet lam can cuoc cong dan o dau"),
        ("nộp hs ở ubnd phường đc ko", "nop ho so o uy ban nhan dan phuong duoc khong"),
        ("đăng ký xong r mà k thấy j", "dang ky xong roi ma khong thay gi"),
        ("hok bít hỏi ng nào", "khong biet hoi nguoi nao"),
        ("sdt của mk là 0912345678", "so dien thoai cua minh la 0912345678"),
        ("CCCD bị mất thì làm lại ntn", "can cuoc cong dan bi mat thi lam lai nhu the nao"),
    ],
)
def test_teencode_in_sentences(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_teencode_is_whole_word_only() -> None:
    # "ko" inside a longer word is not teencode; "kon" stays as typed.
    assert normalize("kon ngõ") == "kon ngo"
    assert normalize("khong") == "khong"


def test_abbreviation_table_values_are_folded_words() -> None:
    for key, expansion in ABBREVIATIONS.items():
        assert key == fold(key) and key.isalpha()
        assert expansion and all(part == fold(part) and " " not in part for part in expansion)


# --- "bn": bao nhiêu or bạn ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("phí bn", "phi bao nhieu"),
        ("mất bn tiền", "mat bao nhieu tien"),
        ("bn ngày", "bao nhieu ngay"),
        ("làm hộ chiếu mất bn ngày vậy", "lam ho chieu mat bao nhieu ngay vay"),
        ("lệ phí là bn", "le phi la bao nhieu"),
        ("hết bn", "het bao nhieu"),
    ],
)
def test_bn_near_an_amount_is_bao_nhieu(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cảm ơn bn", "cam on ban"),
        ("bn ơi", "ban oi"),
        ("bn ơi cho mình hỏi", "ban oi cho minh hoi"),
        ("chào bn nhé", "chao ban nhe"),
        ("bn có biết số của phường không", "ban co biet so cua phuong khong"),
        ("cảm ơn bn nhiều", "cam on ban nhieu"),
    ],
)
def test_bn_addressed_is_ban(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_bn_after_thanks_in_teencode_is_ban() -> None:
    assert normalize("tks bn") == "cam on ban"


# --- repeated letters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quáaaa", "qua"),
        ("ngập quáaaa", "ngap qua"),
        ("lấn chiếmmmm", "lan chiem"),
        ("QUÁAAA", "qua"),
        ("ồnnnn", "on"),
        ("kooo", "khong"),  # squeezed, then the abbreviation applies
    ],
)
def test_repeated_letters_squeeze(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_cccd_is_kept_not_squeezed() -> None:
    assert [w.text for w in raw_words("cccd")] == ["cccd"]
    assert normalize("làm cccd") == "lam can cuoc cong dan"


def test_double_letters_and_digits_are_not_squeezed() -> None:
    assert normalize("xoong 1000") == "xoong 1000"


# --- offsets into the original text ----------------------------------------------------------


def test_word_spans_point_at_the_surface_words() -> None:
    text = "🚧 ĐƯỜNG Láng ngập 😭😭 QUÁAAA, làm cccd ở ĐÂU?"
    assert [(w.text, text[w.start : w.end]) for w in words(text)] == [
        ("duong", "ĐƯỜNG"),
        ("lang", "Láng"),
        ("ngap", "ngập"),
        ("qua", "QUÁAAA"),
        ("lam", "làm"),
        ("can", "cccd"),
        ("cuoc", "cccd"),
        ("cong", "cccd"),
        ("dan", "cccd"),
        ("o", "ở"),
        ("dau", "ĐÂU"),
    ]


def test_word_spans_in_nfd_text() -> None:
    nfc = "Đường Láng ngập 🌧️ sâu quá, đề nghị UBND xử lý"
    nfd = _nfd(nfc)
    assert len(nfd) > len(nfc)
    surfaces = [unicodedata.normalize("NFC", s) for s in _surfaces(nfd)]
    assert surfaces == [
        "Đường",
        "Láng",
        "ngập",
        "sâu",
        "quá",
        "đề",
        "nghị",
        "UBND",
        "UBND",
        "UBND",
        "UBND",
        "xử",
        "lý",
    ]
    # The last word's span ends exactly at the end of the NFD text.
    assert words(nfd)[-1].end == len(nfd)


def test_raw_word_spans_fold_back_to_the_word() -> None:
    text = "Nhà 😡 số 8 ngõ 45/3 ĐỐNG ĐA bị ngập 👉👉 đề nghị xử lý"
    for word in raw_words(text):
        assert fold(text[word.start : word.end]) == word.text


def test_word_dataclass_fields() -> None:
    assert words("  Đ") == [Word("d", 2, 3)]


# --- degenerate input ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "😀🙏🏻👍", "👨‍👩‍👧 🇻🇳", "...!!! ???", "\n\t"])
def test_no_words(text: str) -> None:
    assert words(text) == []
    assert raw_words(text) == []
    assert normalize(text) == ""


def test_ten_thousand_characters() -> None:
    text = "Vỉa hè bị lấn chiếm " * 500
    assert len(text) == 10_000
    found = words(text)
    assert len(found) == 2500
    assert normalize(text) == " ".join(["via he bi lan chiem"] * 500)
    assert text[found[-1].start : found[-1].end] == "chiếm"
    assert found[-1].end == 9_999


def test_ten_thousand_repeated_letters() -> None:
    assert normalize("a" * 10_000) == "a"
    assert words("á" * 10_000) == [Word("a", 0, 10_000)]
