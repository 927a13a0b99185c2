"""The emergency detector's rules beyond phrase lists: marks decided word by word, word
windows ("<thing> … <danger word>"), things that burn without a fire, services named but
not called for, and short cries for help."""

from __future__ import annotations

import pytest

from bot.conversation.dialogue.emergency import detect


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("xe may đg chay truoc cua nha", {"114"}),  # one word marked, "chay" typed bare
        ("bình ga nhà bên bị xì mùi nồng lắm", {"114"}),  # gas … xì
        ("trạm biến áp đầu ngõ vừa nổ", {"114"}),  # thing … nổ
        ("con tôi chạm vào ổ điện bị giật", {"115"}),  # điện … bị giật
        ("xe container tông xe đạp em bé nằm im", {"115"}),  # vehicle … tông, a child
        ("ông cụ ngã cầu thang chảy máu đầu", {"115"}),  # "chảy máu" is bleeding, not fire
        ("vợ tôi sắp đẻ vỡ ối rồi", {"115"}),  # "sắp đẻ" is no collapse, still an emergency
        ("có người bị đâm bằng dao", {"113", "115"}),
        ("cứu em với", {"114", "113", "115"}),
        ("sos", {"114", "113", "115"}),
        # a lasting danger that began yesterday and goes on (it was taken for the past)
        ("hôm qua đã thấy mùi gas ở hành lang chung cư, giờ vẫn còn", {"114"}),
        ("tu hom qua da ngui thay mui gas o cau thang, gio van con", {"114"}),
        ("my neighbour's kid fell into the lake, he's not coming up", {"114", "115"}),
    ],
)
def test_emergencies_found_by_the_new_rules(text: str, numbers: set[str]) -> None:
    found = detect(text)
    assert found is not None
    assert numbers <= set(found.numbers)


@pytest.mark.parametrize(
    "text",
    [
        "xe máy nổ máy ầm ầm",  # "nổ máy" is no explosion: no thing that blows up
        "tôi bị kẹt xe 2 tiếng ở Ngã Tư Sở",  # a traffic jam
        "xe máy bị đâm xước sơn ai đền",  # a crash with nobody hurt
        "cơm bị cháy khét",
        "cầu chì nhà tôi bị cháy mất điện",
        "xe cấp cứu chạy quá tốc độ trong ngõ",  # the ambulance named, not called for
        "số cấp cứu 115 có gọi miễn phí không",  # a question about a hotline
        "sắp đến lượt tôi chưa",  # "sắp" with marks is no "sập"
        "chảy máu cam thì khám ở đâu",
        # past, and what is still there is no danger
        "tuần trước có vụ tai nạn ở ngã tư Kim Liên, đến giờ vẫn còn chưa sửa dải phân cách",
    ],
)
def test_near_misses_stay_quiet(text: str) -> None:
    assert detect(text) is None
