"""What the TF-IDF features read besides the words: negation scope and the head clause."""

from __future__ import annotations

import unicodedata

import pytest
from civicbot_nlu.features import (
    document,
    head_clause,
    marked_field,
    negation_marked,
    unfolded_words,
)


def test_negation_marks_the_words_it_governs_until_a_conjunction() -> None:
    folded = "chua thay ai den xu ly ma rac van con".split()
    assert negation_marked(folded) == [
        "chua",
        "neg_thay",
        "neg_ai",
        "neg_den",
        "xu",
        "ly",
        "ma",
        "rac",
        "van",
        "con",
    ]
    assert negation_marked("khong hai long nhung on".split()) == [
        "khong",
        "neg_hai",
        "neg_long",
        "nhung",
        "on",
    ]
    assert negation_marked("da xu ly xong".split()) == ["da", "xu", "ly", "xong"]


@pytest.mark.parametrize(
    ("text", "head"),
    [
        (
            "Chào ad, xin lỗi làm phiền, em là người dân ở phường Láng. Đơn em gửi tuần "
            "trước sao chưa ai xuống?",
            "don em gui tuan truoc sao chua ai xuong",
        ),
        (
            "Dạ em chào anh chị ạ. Nhà em ở ngõ 5 Hào Nam. Em muốn hỏi làm sổ đỏ",
            "em muon hoi lam so do",
        ),
        ("chao ban. minh muon hoi lam khai sinh can gi", "minh muon hoi lam khai sinh can gi"),
        # Nothing to drop: the message is its own head, and the head part stays empty.
        ("vỉa hè phố Huế bị lấn chiếm", ""),
        ("em ở ngõ 5, rác không ai thu", ""),
        ("chào bạn", ""),
    ],
)
def test_head_clause_drops_greetings_apologies_and_introductions(text: str, head: str) -> None:
    assert head_clause(text) == head


def test_document_reads_the_same_with_and_without_diacritics() -> None:
    accented = document("Chào ad, xin lỗi. Cái đơn tuần trước chưa ai xử lý à?")
    bare = document("chao ad, xin loi. cai don tuan truoc chua ai xu ly a?")
    # The folded parts are the same; only the text as typed keeps the marks.
    assert accented.split("\t")[:3] == bare.split("\t")[:3]
    words, negated, head, _ = accented.split("\t")
    assert "neg_ai" in negated.split() and "neg_ai" not in words.split()
    assert head.startswith("cai don")


def test_document_leaves_out_the_parts_not_asked_for() -> None:
    text = "Chào ad, xin lỗi. Cái đơn tuần trước chưa ai xử lý à?"
    words, negated, head, typed = document(text, negation=False, head=False, unfolded=False).split(
        "\t"
    )
    assert words == document(text).split("\t")[0]
    assert negated == head == typed == ""


def test_the_text_as_typed_keeps_the_marks_that_folding_merges() -> None:
    """ "bán" (sell) and "bạn" (you) fold to one word; the typed part tells them apart, and
    is empty for a message typed without any mark (the folded parts read that one)."""
    selling = document("Bán hàng rong ở ĐƯỜNG Kim Mã")
    assert selling.split("\t")[0] == "ban hang rong o duong kim ma"
    assert marked_field(selling) == "bán hàng rong ở đường kim mã"
    assert marked_field(document("bạn ơi")) == "bạn ơi"
    assert marked_field(document("ban hang rong o duong Kim Ma")) == ""
    # Typed with combining marks (NFD), read as the composed form.
    assert unfolded_words(unicodedata.normalize("NFD", "bạn ơi")) == "bạn ơi"
