"""Pattern entities: ticket codes, phone numbers and procedure aspects, with their spans."""

from __future__ import annotations

import unicodedata

import pytest
from civicbot_nlu.normalize import words
from civicbot_nlu.patterns import (
    ASPECT_PHRASES,
    Match,
    find_all,
    find_aspects,
    find_phones,
    find_ticket_codes,
    match_phrases,
)


def _found(matches: list[Match], text: str) -> list[tuple[str, str]]:
    """(value, surface) of each match."""
    return [(m.value, text[m.start : m.end]) for m in matches]


# --- ticket codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "surface", "value"),
    [
        ("đơn PA-2026-000123 của tôi đến đâu rồi", "PA-2026-000123", "PA-2026-000123"),
        ("pa2026000123", "pa2026000123", "PA-2026-000123"),
        ("hồ sơ Pa 2026 000123 xử lý chưa ạ", "Pa 2026 000123", "PA-2026-000123"),
        ("mã pa-2025-004512 sao rồi ad", "pa-2025-004512", "PA-2025-004512"),
        ("Tra cứu giúp em mã PA.2026.000999.", "PA.2026.000999", "PA-2026-000999"),
        ("(PA_2026_000001)", "PA_2026_000001", "PA-2026-000001"),
    ],
)
def test_ticket_code_forms(text: str, surface: str, value: str) -> None:
    codes = find_ticket_codes(text)
    assert _found(codes, text) == [(value, surface)]
    assert codes[0].entity == "ticket_code"


def test_several_ticket_codes_in_order() -> None:
    text = "hai đơn pa2025004512 và PA-2026-000123"
    assert [m.value for m in find_ticket_codes(text)] == ["PA-2025-004512", "PA-2026-000123"]


@pytest.mark.parametrize(
    "text",
    [
        "0912345678",
        "mã 2026000123 của tôi",  # no PA prefix
        "PA-2026-0001234",  # seven digits
        "PA-2026-00012",  # five digits
        "PA-1999-000123",  # not a 20xx year
        "SPA-2026-000123",  # PA inside a word
        "pha 2026 000123",
        "",
    ],
)
def test_not_a_ticket_code(text: str) -> None:
    assert find_ticket_codes(text) == []


def test_ticket_code_span_in_nfd_text() -> None:
    text = unicodedata.normalize("NFD", "Đơn số PA-2026-000123 đã xử lý chưa")
    (code,) = find_ticket_codes(text)
    assert text[code.start : code.end] == "PA-2026-000123"


# --- phones -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "surface", "value"),
    [
        ("sđt của tôi 0912345678 nhé", "0912345678", "0912345678"),
        ("gọi cho mình số 0912 345 678", "0912 345 678", "0912345678"),
        ("0912.345.678 là số của tôi", "0912.345.678", "0912345678"),
        ("số 0912-345-678", "0912-345-678", "0912345678"),
        ("liên hệ +84 912 345 678 ạ", "+84 912 345 678", "0912345678"),
        ("zalo 84912345678", "84912345678", "0912345678"),
        ("số mới 0387654321", "0387654321", "0387654321"),
        ("phường trực 024 3825 3536", "024 3825 3536", "02438253536"),
        ("gọi (024) 38253536 không ai nghe", "(024) 38253536", "02438253536"),
        ("đường dây nóng 1900 1234", "1900 1234", "19001234"),
        ("tổng đài 1800.1091 miễn phí", "1800.1091", "18001091"),
    ],
)
def test_phone_forms(text: str, surface: str, value: str) -> None:
    phones = find_phones(text)
    assert _found(phones, text) == [(value, surface)]
    assert phones[0].entity == "phone"


def test_two_phones() -> None:
    text = "số 0912345678 hoặc 0987 654 321"
    assert _found(find_phones(text), text) == [
        ("0912345678", "0912345678"),
        ("0987654321", "0987 654 321"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "PA-2026-000123",
        "đơn pa2026000123",
        "mã Pa 2026 000123 ạ",
        "pa-2025-004512",
    ],
)
def test_ticket_code_digits_are_not_a_phone(text: str) -> None:
    assert find_phones(text) == []


def test_phone_next_to_a_ticket_code() -> None:
    text = "mã PA-2026-000123 sđt 0987654321"
    assert _found(find_phones(text), text) == [("0987654321", "0987654321")]


@pytest.mark.parametrize(
    "text",
    [
        "091234567",  # nine digits
        "09123456789",  # eleven digits
        "0912 345 67",
        "0912345678901234",
        "số nhà 123456",
        "1900 123",
        "0123456789",  # 01x is no longer a mobile prefix
        "CCCD 001203004567",  # twelve-digit citizen id
        "năm 2025",
        "",
    ],
)
def test_not_a_phone(text: str) -> None:
    assert find_phones(text) == []


@pytest.mark.parametrize(
    "text",
    ["cán bộ đòi 18.000.000 đồng mới làm", "phạt 19.000.000 đồng", "hết 1.800.000.000 đồng"],
)
def test_money_amount_is_not_a_phone(text: str) -> None:
    assert find_phones(text) == []


def test_phone_followed_by_a_number_is_found() -> None:
    text = "gọi 0912345678 2 lần không ai nghe"
    assert _found(find_phones(text), text) == [("0912345678", "0912345678")]


# --- aspects ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "aspect", "surface"),
    [
        ("làm giấy khai sinh cần giấy tờ gì", "documents", "giấy tờ"),
        ("đăng ký kết hôn cần mang theo những gì", "documents", "cần mang"),
        ("hồ sơ gồm những gì vậy ad", "documents", "hồ sơ gồm"),
        ("cần chuẩn bị gì để làm hộ chiếu", "documents", "cần chuẩn bị"),
        ("lệ phí làm hộ chiếu là bao nhiêu", "fee", "lệ phí"),
        ("làm sổ đỏ có mất phí không", "fee", "mất phí"),
        ("sang tên xe hết bao nhiêu tiền", "fee", "hết bao nhiêu"),
        ("phí bn vậy ad", "fee", "phí"),
        ("le phi lam ho chieu la bao nhieu", "fee", "le phi"),
        ("làm căn cước mất bao lâu", "duration", "mất bao lâu"),
        ("mất bao nhiêu ngày thì có kết quả", "duration", "mất bao nhiêu ngày"),
        ("bao giờ thì lấy được giấy phép xây dựng", "duration", "bao giờ"),
        ("đăng ký thường trú mấy ngày thì xong", "duration", "mấy ngày"),
        ("nộp hồ sơ ở đâu", "place", "ở đâu"),
        ("làm lý lịch tư pháp ở chỗ nào", "place", "chỗ nào"),
        ("cho xin địa chỉ nộp hồ sơ khai sinh", "place", "địa chỉ"),
        ("nop ho so o dau", "place", "o dau"),
        ("đăng ký khai sinh online được không", "online", "online"),
        ("có làm trực tuyến trên dịch vụ công được không", "online", "trực tuyến"),
        ("làm trên VNeID được không", "online", "VNeID"),
        ("không cần đến trực tiếp có làm được không", "online", "không cần đến"),
    ],
)
def test_aspect_of_a_question(text: str, aspect: str, surface: str) -> None:
    first = find_aspects(text)[0]
    assert (first.entity, first.value, text[first.start : first.end]) == ("aspect", aspect, surface)


def test_mat_bao_nhieu_ngay_is_duration_not_fee() -> None:
    text = "làm hộ chiếu mất bao nhiêu ngày"
    assert _found(find_aspects(text), text) == [("duration", "mất bao nhiêu ngày")]


def test_mat_bao_nhieu_tien_is_fee() -> None:
    text = "làm hộ chiếu mất bao nhiêu tiền"
    assert [m.value for m in find_aspects(text)] == ["fee"]


def test_nop_ho_so_o_dau_is_place_before_documents() -> None:
    text = "nộp hồ sơ ở đâu"
    assert _found(find_aspects(text), text) == [("place", "ở đâu"), ("documents", "hồ sơ")]


def test_teencode_aspect() -> None:
    text = "làm cccd mất bn ngày"
    assert _found(find_aspects(text), text) == [("duration", "mất bn ngày")]


@pytest.mark.parametrize(
    "text",
    [
        "vỉa hè phố Huế bị lấn chiếm",
        "chào bạn",
        "cảm ơn nhé",
        "tôi muốn làm giấy khai sinh cho con",
        "giá vàng hôm nay",
        "",
        "😀",
    ],
)
def test_no_aspect(text: str) -> None:
    assert find_aspects(text) == []


# --- match_phrases and find_all -----------------------------------------------------------------


def test_match_phrases_longest_first_non_overlapping_in_text_order() -> None:
    table = {"one": ("via he",), "two": ("he bi", "lan chiem", "chiem")}
    folded = words("Vỉa hè bị lấn chiếm")
    assert match_phrases(folded, table) == [("one", "via he", 0, 2), ("two", "lan chiem", 3, 5)]


def test_match_phrases_on_aspects() -> None:
    folded = words("mất bao nhiêu ngày")
    assert match_phrases(folded, ASPECT_PHRASES) == [("duration", "mat bao nhieu ngay", 0, 4)]


def test_match_phrases_nothing() -> None:
    assert match_phrases(words(""), ASPECT_PHRASES) == []
    assert match_phrases(words("chào bạn"), {"x": ("chao ban nhe",)}) == []


def test_find_all_code_phone_and_first_aspect() -> None:
    text = "PA-2026-000123 sđt 0912345678 nộp hồ sơ ở đâu"
    assert [(m.entity, m.value, text[m.start : m.end]) for m in find_all(text)] == [
        ("ticket_code", "PA-2026-000123", "PA-2026-000123"),
        ("phone", "0912345678", "0912345678"),
        ("aspect", "place", "ở đâu"),
    ]


def test_find_all_nothing() -> None:
    assert find_all("vỉa hè phố Huế bị lấn chiếm") == []


def test_ten_thousand_characters() -> None:
    text = ("lệ phí bao nhiêu 0912345678 " * 400)[:10_000]
    assert len(text) == 10_000
    assert [m.value for m in find_phones(text)] == ["0912345678"] * text.count("0912345678")
    assert find_aspects(text)[0].value == "fee"
    assert find_ticket_codes("9" * 10_000) == []
    assert find_phones("9" * 10_000) == []
