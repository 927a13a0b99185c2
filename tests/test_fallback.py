"""The keyword classifier used while the Rasa server is down."""

from __future__ import annotations

import json

import pytest
from civicbot_nlu.normalize import strip_marks

from bot.nlu.fallback import CATEGORY_CUES, PROCEDURE_CUES, classify
from bot.nlu.result import CATEGORIES, INTENTS, PROCEDURES, RankedIntent

PRODUCT_KEYS = {
    "text",
    "intent",
    "confidence",
    "category",
    "procedure",
    "aspect",
    "location",
    "ticket_code",
    "phone",
    "source",
    "ranking",
}

# One complaint per category, as citizens write them.
COMPLAINTS = [
    (
        "Quán nước đầu ngõ 12 bày bàn ghế kín vỉa hè, người đi bộ phải xuống lòng đường",
        "sidewalk",
    ),
    ("Nhà số 8 ngõ 45 đang xây thêm tầng 5 mà không có giấy phép", "construction"),
    ("Rác thải ở đầu ngõ ba ngày nay không ai thu gom", "waste"),
    ("Hồ trước nhà bị ô nhiễm, cá chết nổi đầy mặt nước", "pollution"),
    ("Trên đường Láng có ổ gà rất to, xe máy ngã mấy lần rồi", "infrastructure"),
    ("Sáng nào ngã tư Sở cũng ùn tắc kéo dài cả cây số", "traffic"),
    ("Bãi giữ xe trước bệnh viện thu 30 nghìn một lượt, chặt chém quá", "parking"),
    ("Khu tập thể nhà tôi mất nước ba ngày rồi", "water"),
    ("Nhà bên cạnh chứa mấy chục can xăng trong nhà, rất nguy hiểm", "fire_safety"),
    ("Cán bộ một cửa phường đòi tiền mới nhận hồ sơ", "misconduct"),
    (
        "Hồ sơ đăng ký đất của tôi đã quá hạn hai tháng mà vẫn chưa trả kết quả",
        "procedure_delay",
    ),
    ("Chó thả rông trong khu dân cư không rọ mõm, trẻ con sợ lắm", "other"),
]

# The same categories typed without marks, with teencode.
UNACCENTED_COMPLAINTS = [
    ("via he truoc cho Hom bi hang rong lan chiem het r", "sidewalk"),
    ("nha ben canh xay trai phep lan sang ca dat nha mk", "construction"),
    ("ai do do rac ra bai dat trong cuoi ngo, ko ai don", "waste"),
    ("quan karaoke hat den 2h sang, tieng on ko ngu dc", "pollution"),
    ("den duong ngo 5 hong ca tuan nay, toi om", "infrastructure"),
    ("xe tai cho vat lieu chay vao gio cam", "traffic"),
    ("bai gui xe o cong cho thu tien gap doi ve xe", "parking"),
    ("nuoc may nha minh vang va co mui tanh", "water"),
    ("chung cu mini ko co loi thoat hiem, binh chua chay het han", "fire_safety"),
    ("can bo phuong thai do hach dich voi dan", "misconduct"),
    ("ho so cua toi tre hen 3 lan, lan nao cung bat bo sung", "procedure_delay"),
    ("hang xom chan nuoi lon ngay trong khu dan cu", "other"),
]


def test_the_examples_cover_every_category() -> None:
    assert {c for _, c in COMPLAINTS} == set(CATEGORIES) == set(CATEGORY_CUES)
    assert {c for _, c in UNACCENTED_COMPLAINTS} == set(CATEGORIES)
    assert set(PROCEDURE_CUES) == set(PROCEDURES)


# --- complaints ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "category"), COMPLAINTS)
def test_complaint_with_diacritics(text: str, category: str) -> None:
    result = classify(text)
    assert (result.intent, result.category, result.procedure) == (
        "report_problem",
        category,
        None,
    )


@pytest.mark.parametrize(("text", "category"), COMPLAINTS)
def test_complaint_with_marks_stripped(text: str, category: str) -> None:
    result = classify(strip_marks(text))
    assert (result.intent, result.category) == ("report_problem", category)


@pytest.mark.parametrize(("text", "category"), UNACCENTED_COMPLAINTS)
def test_complaint_typed_without_marks(text: str, category: str) -> None:
    result = classify(text)
    assert (result.intent, result.category) == ("report_problem", category)


def test_product_example_complaint() -> None:
    result = classify("vỉa hè phố Huế bị lấn chiếm")
    assert (result.intent, result.category, result.confidence) == (
        "report_problem",
        "sidewalk",
        0.6,
    )


@pytest.mark.parametrize(
    "text",
    ["tôi muốn phản ánh", "toi muon phan anh", "mình muốn kiến nghị về việc này", "cho mk pa"],
)
def test_complaint_without_a_subject_has_no_category(text: str) -> None:
    result = classify(text)
    assert (result.intent, result.category) == ("report_problem", None)


def test_complaint_keeps_the_phone() -> None:
    result = classify("nhà bị ngập, sdt của mình là 0912 345 678")
    assert (result.intent, result.category, result.phone) == (
        "report_problem",
        "infrastructure",
        "0912345678",
    )


def test_category_with_most_matched_words_wins() -> None:
    # "đốt rác" (pollution) takes "rác" before "rác thải" (waste) can; "khói", "bụi" add up.
    result = classify("ngày nào cũng có người đốt rác thải, khói bụi mù mịt")
    assert result.category == "pollution"


# --- check status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("đơn PA-2026-000123 của tôi xử lý đến đâu rồi", "PA-2026-000123"),
        ("pa2026000123 sao rồi ad", "PA-2026-000123"),
        ("hồ sơ Pa 2026 000123 của mình", "PA-2026-000123"),
        ("pa-2025-004512", "PA-2025-004512"),
        ("vỉa hè vẫn bị lấn chiếm, mã PA-2025-004512", "PA-2025-004512"),
    ],
)
def test_ticket_code_gives_check_status(text: str, code: str) -> None:
    result = classify(text)
    assert (result.intent, result.ticket_code, result.category) == ("check_status", code, None)


def test_check_status_without_a_code() -> None:
    result = classify("đơn của tôi xử lý đến đâu rồi")
    assert (result.intent, result.ticket_code) == ("check_status", None)


# --- procedures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "procedure", "aspect"),
    [
        ("làm giấy khai sinh cần gì", "khai_sinh", "documents"),
        ("lam giay khai sinh can gi", "khai_sinh", "documents"),
        ("đăng ký kết hôn ở đâu", "ket_hon", "place"),
        ("làm cccd mất bao lâu", "can_cuoc", "duration"),
        ("lệ phí làm hộ chiếu bao nhiêu tiền", "ho_chieu", "fee"),
        ("đăng ký tạm trú online được không", "tam_tru", "online"),
        ("sang tên sổ đỏ mất phí bn", "sang_ten_dat", "fee"),
        ("làm lại bằng lái xe bị mất thế nào", "giay_phep_lai_xe", None),
        ("xin phiếu lý lịch tư pháp số 2", "ly_lich_tu_phap", None),
        ("thu tuc thanh lap cong ty", "thanh_lap_doanh_nghiep", None),
    ],
)
def test_procedure_question(text: str, procedure: str, aspect: str | None) -> None:
    result = classify(text)
    assert (result.intent, result.procedure, result.aspect, result.category) == (
        "ask_procedure",
        procedure,
        aspect,
        None,
    )


def test_procedure_question_naming_no_known_procedure() -> None:
    result = classify("thủ tục này nộp ở đâu")
    assert (result.intent, result.procedure, result.aspect) == ("ask_procedure", None, "place")


@pytest.mark.parametrize(
    ("text", "procedure"),
    [
        ("xin giấy phép xây dựng nhà ở cần những giấy tờ gì", "giay_phep_xay_dung"),
        ("xin phép xây nhà ở phường thì nộp hồ sơ ở đâu", "giay_phep_xay_dung"),
        ("mở quán nước thì đăng ký hộ kinh doanh thế nào", "ho_kinh_doanh"),
    ],
)
def test_procedure_whose_name_contains_a_complaint_word(text: str, procedure: str) -> None:
    result = classify(text)
    assert (result.intent, result.procedure) == ("ask_procedure", procedure)


# --- short intents -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("chào bạn", "greet"),
        ("alo", "greet"),
        ("xin chào ad", "greet"),
        ("hello", "greet"),
        ("e chào ad ạ", "greet"),
        ("tạm biệt", "goodbye"),
        ("cảm ơn nhé", "thank"),
        ("tks bn", "thank"),
        ("đúng rồi", "affirm"),
        ("hủy", "cancel"),
        ("cho tôi gặp cán bộ", "human"),
        ("rất hài lòng", "rate"),
    ],
)
def test_short_intents(text: str, intent: str) -> None:
    result = classify(text)
    assert (result.intent, result.confidence, result.category, result.procedure) == (
        intent,
        0.6,
        None,
        None,
    )


# --- out of scope --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "kể cho tôi một câu chuyện cười đi",
        "Messi năm nay bao nhiêu tuổi",
        "tối nay ăn gì ngon",
        "ty so tran bong da toi qua",
        "",
        "😀😀😀",
    ],
)
def test_unknown_text_is_out_of_scope_with_low_confidence(text: str) -> None:
    result = classify(text)
    assert result.intent == "out_of_scope"
    assert result.confidence == 0.3
    assert result.confidence < classify("tôi muốn phản ánh").confidence
    assert (result.category, result.procedure, result.aspect) == (None, None, None)


@pytest.mark.parametrize("text", ["giá vàng hôm nay", "thời tiết ngày mai thế nào"])
def test_out_of_scope_words_that_fold_to_short_cues(text: str) -> None:
    assert classify(text).intent == "out_of_scope"


def test_flowing_water_is_not_a_fire() -> None:
    result = classify("nước thải chảy tràn ra ngõ nhà tôi")
    assert result.intent == "report_problem"
    assert result.category != "fire_safety"


# --- result shape ------------------------------------------------------------------------------


ALL_SAMPLES = [
    "vỉa hè phố Huế bị lấn chiếm",
    "tôi muốn phản ánh",
    "PA-2026-000123",
    "làm giấy khai sinh cần gì",
    "chào bạn",
    "kể cho tôi một câu chuyện cười đi",
    "",
]


@pytest.mark.parametrize("text", ALL_SAMPLES)
def test_source_is_fallback_and_text_is_kept(text: str) -> None:
    result = classify(text)
    assert result.source == "fallback"
    assert result.text == text
    assert result.location is None
    assert result.intent in INTENTS


@pytest.mark.parametrize("text", ALL_SAMPLES)
def test_ranking_is_the_verdict(text: str) -> None:
    result = classify(text)
    assert result.ranking == [RankedIntent(intent=result.intent, confidence=result.confidence)]


def test_as_json_has_exactly_the_product_keys() -> None:
    data = classify("vỉa hè phố Huế bị lấn chiếm, sđt 0912345678").as_json()
    assert set(data) == PRODUCT_KEYS
    assert data == {
        "text": "vỉa hè phố Huế bị lấn chiếm, sđt 0912345678",
        "intent": "report_problem",
        "confidence": 0.6,
        "category": "sidewalk",
        "procedure": None,
        "aspect": None,
        "location": None,
        "ticket_code": None,
        "phone": "0912345678",
        "source": "fallback",
        "ranking": [{"intent": "report_problem", "confidence": 0.6}],
    }
    json.dumps(data, ensure_ascii=False)


def test_as_json_of_a_procedure_question() -> None:
    data = classify("làm cccd mất bao lâu").as_json()
    assert set(data) == PRODUCT_KEYS
    assert (data["intent"], data["procedure"], data["aspect"], data["source"]) == (
        "ask_procedure",
        "can_cuoc",
        "duration",
        "fallback",
    )


# Issue 15's kinds of message, re-checked on the fallback: a status told as a story, a
# rating in words with its reason, a procedure asked by the life event or the paper
# demanded, a near miss of out-of-scope, a long message opening with a greeting.
NEW_KINDS = [
    ("hôm trước em có báo vụ đèn đường hỏng, giờ có ai đến sửa chưa ạ", "check_status", None),
    ("tuan truoc toi gui phan anh ve rac, den gio van chua thay ai", "check_status", None),
    ("xử lý nhanh, rất hài lòng", "rate", None),
    ("khong hai long vi rac van con nguyen", "rate", None),
    ("cam on phuong, duong da sang lai roi, 5 sao", "rate", None),
    ("vợ em vừa sinh con hôm qua, giờ cần làm giấy tờ gì cho bé", "ask_procedure", "khai_sinh"),
    ("ông nội vừa mất, gia đình phải báo chính quyền thế nào", "ask_procedure", "khai_tu"),
    ("cong ty doi giay khong tien an tien su, xin o dau", "ask_procedure", "ly_lich_tu_phap"),
    ("tháng sau đi Thái Lan cần giấy tờ gì để xuất cảnh", "ask_procedure", "ho_chieu"),
    ("where is the nearest ATM", "out_of_scope", None),
    ("xe buýt số 32 mấy giờ hết chuyến", "out_of_scope", None),
    ("bạn nghĩ Hà Nội bao giờ hết ngập", "out_of_scope", None),
    ("chào ad, xin lỗi làm phiền, rác đầu ngõ 4 ngày không ai thu", "report_problem", "waste"),
    ("nhà bên cạnh mở quán karaoke hát đến 2h sáng", "report_problem", "pollution"),
    # A story with a category cue in it, and a question about news after the report.
    (
        "hôm thứ 3 mình có báo ống nước vỡ đầu ngõ, đến hôm nay đã có ai xuống chưa",
        "check_status",
        None,
    ),
    ("đã 2 tuần kể từ khi tôi gửi đơn về bãi xe, có tiến triển gì không", "check_status", None),
    # An earlier report without a question about it is a complaint again.
    ("đã báo 3 lần rồi mà quán phở vẫn bày bàn ghế ra hết vỉa hè", "report_problem", "sidewalk"),
    ("5", "rate", None),
    ("tạm được", "rate", None),
    ("chưa thỏa đáng, cán bộ đến rồi đi, mọi thứ y nguyên", "rate", None),
    ("bà nội em mới mất tuần trước, nhà cần làm giấy tờ gì", "ask_procedure", "khai_tu"),
    (
        "ngân hàng đòi giấy chứng minh em còn độc thân, xin ở đâu",
        "ask_procedure",
        "xac_nhan_hon_nhan",
    ),
    ("vợ em đẻ được 5 ngày, làm giấy cho bé thế nào", "ask_procedure", "khai_sinh"),
    ("mình mua lại xe máy cũ của bạn, làm sao để chuyển tên xe", "ask_procedure", "dang_ky_xe"),
    (
        "công ty đòi giấy chứng nhận không có án tích, làm thế nào",
        "ask_procedure",
        "ly_lich_tu_phap",
    ),
    # "làm sao" names no procedure; "không" in a long message is not a "no".
    ("làm sao để giảm cân nhanh", "out_of_scope", None),
    ("tôi không hiểu sao tiền điện tháng này lại cao như vậy", "out_of_scope", None),
    ("dạ em xin phép hỏi, cái bãi đất trống cuối ngõ thành chỗ đổ rác", "report_problem", "waste"),
]


@pytest.mark.parametrize(("text", "intent", "label"), NEW_KINDS)
def test_new_kinds_of_message(text: str, intent: str, label: str | None) -> None:
    result = classify(text)
    assert result.intent == intent
    assert label in (result.category, result.procedure)
    assert classify(strip_marks(text)).intent == intent
