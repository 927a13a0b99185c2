"""The dialogue's readers without a model: emergencies (on our own examples; the
independent set is measured by scripts/emergency_eval.py, never tuned on), ratings,
reopening, "no photo", status stories, English, places, and stored forms of before."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bot.conversation.dialogue import emergency, places, reading
from bot.conversation.dialogue.form import ChatData
from bot.conversation.dialogue.steps import is_place_answer

OWN = Path(__file__).parent / "data" / "emergencies_own.csv"
ROWS = list(csv.DictReader(OWN.read_text(encoding="utf-8").splitlines()))


@pytest.mark.parametrize("row", ROWS, ids=[r["text"][:40] for r in ROWS])
def test_emergencies_and_near_misses_of_our_own(row: dict[str, str]) -> None:
    found = emergency.detect(row["text"])
    if row["emergency"] == "yes":
        assert found is not None
        assert set(row["numbers"].split("|")) <= set(found.numbers)
    else:
        assert found is None


@pytest.mark.parametrize(
    ("text", "stars"),
    [
        ("cảm ơn, 5 sao", 5),
        ("cam on, 5 sao", 5),
        ("4", 4),
        ("⭐⭐⭐", 3),
        ("rất hài lòng", 5),
        ("khong hai long lam, 2 sao thoi", 2),
        ("hài lòng", 4),
        ("ba sao", 3),
        ("nhà số 5 ngõ 12", None),
        ("tôi muốn hỏi thủ tục khai sinh cho con thứ 2", None),
    ],
)
def test_ratings_in_words_digits_and_stars(text: str, stars: int | None) -> None:
    assert reading.rating(text) == stars


@pytest.mark.parametrize(
    ("text", "reopen"),
    [
        ("vẫn chưa dọn gì cả", True),
        ("van chua don gi ca", True),
        ("làm như không", True),
        ("chưa được giải quyết, quán vẫn bày ra như cũ", True),
        ("cảm ơn, 5 sao", False),
        ("rất hài lòng", False),
    ],
)
def test_not_fixed_in_words(text: str, reopen: bool) -> None:
    assert reading.is_reopen(text) == reopen


def test_no_photo_yes_no_status_and_english() -> None:
    assert reading.is_no_photo("không có ảnh") and reading.is_no_photo("ko co anh")
    assert not reading.is_no_photo("rác đổ đầy đầu ngõ ba ngày chưa ai dọn")
    assert reading.is_yes("ok") and reading.is_yes("đồng ý") and reading.is_no("thôi")
    assert reading.asks_status("vụ lấn chiếm vỉa hè tôi báo lúc nãy có kết quả gì chưa")
    assert not reading.asks_status("vỉa hè phố Huế bị lấn chiếm")
    assert reading.is_english("How do I register a birth certificate for my baby?")
    assert not reading.is_english("toi muon phan anh ve rac thai")
    assert reading.content_words("tôi muốn phản ánh về rác thải") < 3
    assert (
        reading.content_words("tôi muốn tố cáo cán bộ phường Kim Liên", without="phường Kim Liên")
        == 0
    )


def test_the_place_reader_keeps_old_wards_and_refuses_non_places() -> None:
    split = places.read_answer("p. quan hoa q. cau giay")
    assert {w.name for w in split.candidates} == {"Phường Nghĩa Đô", "Phường Cầu Giấy"}
    assert places.read_answer("phuong kim lien").ward is not None
    assert places.read_message("phường đòi tiền mới cho làm sổ đỏ", "phường đòi tiền") is None
    street = places.read_message("rác ở số 10 ngõ 12 Kim Mã", "số 10 ngõ 12 Kim Mã")
    assert street is not None and street.text == "số 10 ngõ 12 Kim Mã"


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("UBND phường Giảng Võ", True),  # the SVM's `other` complaint: a place here
        ("UBND phuong Giang Vo", True),
        ("ngo 45 phuong kim lien quan dong da", True),
        ("trước cổng trường tiểu học phường Kim Liên", True),
        ("không biết nữa", True),
        ("khong ro lam a", True),
        ("à mà vỉa hè phố Huế bị quán bia lấn chiếm hết, người đi bộ phải xuống lòng đường", False),
        ("PA-2026-000001 đến đâu rồi", False),
        ("5", False),
        ("không biết phường nào ở đâu cả", False),
    ],
)
def test_an_answer_to_where(text: str, place: bool) -> None:
    assert is_place_answer(text) == place


@pytest.mark.parametrize(
    ("text", "anger"),
    [
        ("Bọn mày toàn lũ ăn hại, gửi bao nhiêu lần không ai làm gì", True),
        ("gui may lan roi ma chang ai lam gi", True),
        ("nhắn mấy lần rồi chẳng ai trả lời", True),
        ("phải lên phường bao nhiêu lần", False),
        ("nộp hồ sơ mấy lần rồi vẫn bị trả", False),
        ("lệ phí bao nhiêu", False),
    ],
)
def test_anger_at_inaction(text: str, anger: bool) -> None:
    assert reading.is_inaction(text) == anger


def test_the_same_place_or_another() -> None:
    assert reading.is_same_place("vẫn ở đó") and reading.is_same_place("van o do a")
    assert reading.is_other_place("chỗ khác") and reading.is_other_place("cho khac")
    assert not reading.is_same_place("chỗ khác") and not reading.is_other_place("vẫn ở đó")
    assert reading.is_plain_no("không") and reading.is_plain_no("ko")
    assert not reading.is_plain_no("thôi")


def test_a_form_stored_before_the_state_table_still_loads() -> None:
    old = {
        "category": "waste",
        "place": "ngo 12 kim ma",
        "place_unresolved": True,
        "place_asked_again": True,
        "description": "rác đổ trộm",
        "photos": ["p1"],
        "photos_done": True,
        "typed_buttons": {"bo qua": "form:skip"},
    }
    chat = ChatData.load(old)
    assert chat.form is not None
    assert (chat.form.category, chat.form.place_retry, chat.form.photos) == (
        "waste",
        True,
        ["p1"],
    )
    assert chat.form.anonymous is None  # contact not chosen yet: it is asked
    assert chat.dump()["typed_buttons"] == {"bo qua": "form:skip"}
    assert ChatData.load({"ticket": "PA-2026-000001"}).ticket == "PA-2026-000001"
