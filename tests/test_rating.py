"""`read_rating`: stars from what a citizen answers when the bot asks for a rating."""

from __future__ import annotations

import pytest
from civicbot_nlu.rating import read_rating


@pytest.mark.parametrize(
    ("text", "stars"),
    [
        ("5", 5),
        ("4 nhé", 4),
        ("3 thôi", 3),
        ("5 sao", 5),
        ("cho 2 sao", 2),
        ("5s", 5),
        ("năm sao", 5),
        ("ba sao thôi vì chậm", 3),
        ("4/5", 4),
        ("8/10", 4),
        ("9 / 10", 5),
        ("chấm 3 điểm", 3),
        ("cham 10 diem", 5),
        ("7 điểm", 4),
        ("rất hài lòng", 5),
        ("rat hai long, cam on phuong", 5),
        ("hài lòng", 4),
        ("cảm ơn, ổn áp", 4),
        ("tạm được", 3),
        ("binh thuong", 3),
        ("không hài lòng", 2),
        ("ko hai long vi chua xong", 2),
        ("không hài lòng chút nào", 1),
        ("tệ quá", 1),
        ("xử lý nhanh nhưng qua loa", 2),
        ("cán bộ nhiệt tình, xử lý nhanh gọn", 5),
    ],
)
def test_ratings_in_numbers_and_words(text: str, stars: int) -> None:
    assert read_rating(text) == stars


@pytest.mark.parametrize(
    "text",
    [
        "",
        "cảm ơn",
        "thực tế vẫn vậy",
        "gửi kèm ảnh",
        "ngõ 12 phố Huế có rác",
        "năm nay phường làm đường chưa",
        "0/5",
        "6 sao",
        "hai lần rồi",
    ],
)
def test_no_rating_when_none_is_given(text: str) -> None:
    assert read_rating(text) is None
