"""Hà Nội gazetteer: old and new place names → the 2025 wards and communes.

Expected values were checked against the packages' own data: the 2025 unit list of
vietnam-provinces, and vietnamadminunits' dataset and its converter (``convert_address``,
whose default new ward for a split old ward is our first candidate). The last tests
recompute the expectations from those data rather than from this module.
"""

from __future__ import annotations

import json
import time
import unicodedata

import pytest

from bot.nlu import location as location_module
from bot.nlu.location import HanoiGazetteer, Location, Ward, gazetteer

HOAN_KIEM = Ward("00070", "Phường Hoàn Kiếm")
CUA_NAM = Ward("00082", "Phường Cửa Nam")
BA_DINH = Ward("00004", "Phường Ba Đình")
CAU_GIAY = Ward("00166", "Phường Cầu Giấy")
NGHIA_DO = Ward("00160", "Phường Nghĩa Đô")
YEN_HOA = Ward("00175", "Phường Yên Hòa")
LANG = Ward("00199", "Phường Láng")
DONG_DA = Ward("00235", "Phường Đống Đa")
GIANG_VO = Ward("00025", "Phường Giảng Võ")
KIM_LIEN = Ward("00229", "Phường Kim Liên")
HA_DONG = Ward("09556", "Phường Hà Đông")
KIEN_HUNG = Ward("09552", "Phường Kiến Hưng")
BAT_TRANG = Ward("00577", "Xã Bát Tràng")
HOA_PHU = Ward("10096", "Xã Hòa Phú")
HOA_XA = Ward("10417", "Xã Hòa Xá")
TAY_HO = Ward("00103", "Phường Tây Hồ")


@pytest.fixture(scope="module")
def g() -> HanoiGazetteer:
    return gazetteer()


def _converter() -> tuple[dict[str, list[str]], dict[str, list[dict[str, object]]]]:
    """The converter's tables, as `convert_address` reads them (not its file)."""
    from vietnamadminunits.converter import converter_2025

    return (
        converter_2025.DICT_PROVINCE_WARD_NO_DIVIDED["thanhphohanoi"],
        converter_2025.DICT_PROVINCE_WARD_DIVIDED["thanhphohanoi"],
    )


def _new_names() -> dict[str, str]:
    """vietnamadminunits new ward key → full name (its documented `database.query`)."""
    from vietnamadminunits.database import query

    rows = query("SELECT wardKey, ward FROM admin_units WHERE provinceKey = 'thanhphohanoi'")
    return {row["wardKey"]: row["ward"] for row in rows}


def _names(loc: Location) -> list[str]:
    return [w.name for w in loc.candidates]


# --- the data held ------------------------------------------------------------------------


def test_holds_the_126_units_of_2025_and_the_old_map(g: HanoiGazetteer) -> None:
    stats = g.stats()
    assert stats["new_units"] == 126
    assert (stats["new_wards"], stats["new_communes"]) == (51, 75)
    assert stats["old_districts"] == 30  # 12 quận, 17 huyện, thị xã Sơn Tây
    assert stats["old_wards"] == 526  # as of 1 January 2025, after that year's mergers
    assert len(g.wards) == 126


def test_units_are_those_of_vietnam_provinces_with_official_codes(g: HanoiGazetteer) -> None:
    from vietnam_provinces import ProvinceCode
    from vietnam_provinces import Ward as VPWard

    vp_names = {w.name for w in VPWard.iter_by_province(ProvinceCode.P_01)}
    assert {w.name for w in g.wards} == vp_names
    assert all(len(w.code) == 5 and w.code.isdigit() for w in g.wards)
    assert len({w.code for w in g.wards}) == 126
    # Codes as the national registry gives them (vietnamadminunits agrees; vietnam-provinces
    # 2025.10.1 has other numbers for 29 Hà Nội units, e.g. 167 for Cầu Giấy).
    from vietnamadminunits.database import query

    rows = query("SELECT ward, wardCode FROM admin_units WHERE provinceKey = 'thanhphohanoi'")
    vau = {row["ward"]: row["wardCode"] for row in rows}
    assert {w.name: w.code for w in g.wards} == vau
    for ward in (HOAN_KIEM, CAU_GIAY, LANG, BAT_TRANG, KIM_LIEN, NGHIA_DO, HOA_XA):
        assert ward in g.wards


# --- resolve: 2025 names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ward"),
    [
        ("phường Láng", LANG),
        ("Phường Láng", LANG),
        ("p.Lang", LANG),
        ("Láng", LANG),  # a 2025 ward only: no old ward or district was called "Láng"
        ("xã Bát Tràng", BAT_TRANG),
        ("xa Bat Trang", BAT_TRANG),
        ("XÃ BÁT TRÀNG", BAT_TRANG),
        ("phường Bát Tràng", BAT_TRANG),  # wrong type word: still the only Bát Tràng of 2025
        ("phường Yên Hòa", YEN_HOA),
        ("phường Yên Hoà", YEN_HOA),  # old-style tone placement
        ("xã Hòa Phú", HOA_PHU),
        ("P.Kim Liên", KIM_LIEN),
        ("Kim Liên", KIM_LIEN),  # old Kim Liên became the new Kim Liên whole
    ],
)
def test_resolve_new_names(g: HanoiGazetteer, text: str, ward: Ward) -> None:
    loc = g.resolve(text)
    assert loc == Location(text, ward, ())


# --- resolve: old wards ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ward"),
    [
        ("phường Hàng Bạc", HOAN_KIEM),
        ("p.Hang Bac", HOAN_KIEM),
        ("P.HàngBạc", HOAN_KIEM),
        ("phuong hang bac, quan hoan kiem", HOAN_KIEM),
        ("Hàng Bạc, Hoàn Kiếm", HOAN_KIEM),
        ("phường Trúc Bạch", BA_DINH),
        ("Phường Nguyễn Trung Trực", BA_DINH),  # merged into Trúc Bạch before 2025
        ("phường Bưởi", TAY_HO),
        ("xã Hòa Phú, huyện Ứng Hòa", HOA_XA),  # not the 2025 Xã Hòa Phú (from Chương Mỹ)
    ],
)
def test_resolve_old_ward_to_the_new_one(g: HanoiGazetteer, text: str, ward: Ward) -> None:
    assert g.resolve(text) == Location(text, ward, ())


@pytest.mark.parametrize(
    "text",
    [
        "phường Dịch Vọng Hậu, quận Cầu Giấy",
        "phường Dịch Vọng Hậu",
        "p.Dich Vong Hau",
        "P.Dich Vong Hau, Q.Cau Giay",
        "p. dịch vọng hậu q. cầu giấy",
        "P.DịchVọngHậu",
        "Dịch Vọng Hậu, Cầu Giấy",
        unicodedata.normalize("NFD", "phường Dịch Vọng Hậu"),
    ],
)
def test_split_old_ward_gives_candidates_main_part_first(g: HanoiGazetteer, text: str) -> None:
    # Dịch Vọng Hậu was split: most of it is in Phường Cầu Giấy (vietnamadminunits'
    # default new ward for it), a part went to Phường Nghĩa Đô.
    loc = g.resolve(text)
    assert loc.text == text
    assert loc.ward is None
    assert loc.candidates == (CAU_GIAY, NGHIA_DO)


def test_old_lang_ha_in_a_full_old_address(g: HanoiGazetteer) -> None:
    text = "ngõ 5 Láng Hạ, phường Láng Hạ, Đống Đa"
    loc = g.resolve(text)
    assert loc.text == text
    assert loc.ward is None
    assert loc.candidates == (LANG, DONG_DA, GIANG_VO)


def test_old_district_picks_among_homonymous_old_wards(g: HanoiGazetteer) -> None:
    dong_da = g.resolve("phường Quang Trung, quận Đống Đa")
    ha_dong = g.resolve("phường Quang Trung, Hà Đông")
    assert dong_da.candidates == (DONG_DA, KIM_LIEN)
    assert ha_dong.candidates == (HA_DONG, KIEN_HUNG)
    # Without the district every old Quang Trung (and Sơn Tây's alias) counts.
    assert set(dong_da.candidates) | set(ha_dong.candidates) <= set(
        g.resolve("phường Quang Trung").candidates
    )


# --- resolve: old districts -------------------------------------------------------------------


def test_old_district_alone_gives_the_new_units_formed_from_it(g: HanoiGazetteer) -> None:
    loc = g.resolve("quận Hoàng Mai")
    assert loc.ward is None
    names = _names(loc)
    for name in (
        "Phường Hoàng Mai",
        "Phường Định Công",
        "Phường Yên Sở",
        "Phường Tương Mai",
        "Phường Lĩnh Nam",
        "Phường Vĩnh Hưng",
        "Phường Hoàng Liệt",
    ):
        assert name in names
    assert len(names) == len(set(names)) == 12
    assert g.resolve("q.Hoang Mai").candidates == loc.candidates
    assert g.resolve("Q. HOÀNG MAI").candidates == loc.candidates


def test_old_rural_district_gives_its_communes_first(g: HanoiGazetteer) -> None:
    loc = g.resolve("huyện Gia Lâm")
    assert loc.ward is None
    names = _names(loc)
    assert set(names[:4]) == {"Xã Gia Lâm", "Xã Thuận An", "Xã Bát Tràng", "Xã Phù Đổng"}
    # The data also sends fragments of old Cổ Bi and Bát Tràng to two Long Biên wards.
    assert set(names[4:]) == {"Phường Phúc Lợi", "Phường Long Biên"}
    assert g.resolve("h. Gia Lam").candidates == loc.candidates


def test_bare_name_of_a_new_ward_and_an_old_district_is_ambiguous(g: HanoiGazetteer) -> None:
    loc = g.resolve("Hoàn Kiếm")
    assert loc.ward is None
    assert loc.candidates[0] == HOAN_KIEM  # the 2025 ward of that name comes first
    assert CUA_NAM in loc.candidates
    assert g.resolve("hoan kiem").candidates == loc.candidates
    district = g.resolve("quận Hoàn Kiếm")
    assert district.ward is None and district.candidates[0] == HOAN_KIEM
    # An old ward split between the new ward of its name and another one.
    assert g.resolve("Yên Hòa").candidates == (YEN_HOA, CAU_GIAY)


def test_thi_xa_son_tay(g: HanoiGazetteer) -> None:
    names = _names(g.resolve("thị xã Sơn Tây"))
    assert {"Phường Sơn Tây", "Phường Tùng Thiện"} <= set(names)
    assert _names(g.resolve("tx.Son Tay")) == names


# --- resolve: unknown, shapes -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   ", "giá vàng hôm nay", "Q1", "Quận 1", "phường 5", "Hà Nội", "phố Ngô Quyền"],
)
def test_unknown_text_has_no_ward(g: HanoiGazetteer, text: str) -> None:
    assert g.resolve(text) == Location(text, None, ())


def test_as_json_shapes(g: HanoiGazetteer) -> None:
    assert g.resolve("phường Hàng Bạc").as_json() == {
        "text": "phường Hàng Bạc",
        "ward_code": "00070",
        "ward_name": "Phường Hoàn Kiếm",
        "candidates": [],
    }
    assert g.resolve("p.Dich Vong Hau").as_json() == {
        "text": "p.Dich Vong Hau",
        "ward_code": None,
        "ward_name": None,
        "candidates": [
            {"ward_code": "00166", "ward_name": "Phường Cầu Giấy"},
            {"ward_code": "00160", "ward_name": "Phường Nghĩa Đô"},
        ],
    }
    assert g.resolve("xyz").as_json() == {
        "text": "xyz",
        "ward_code": None,
        "ward_name": None,
        "candidates": [],
    }
    json.dumps(g.resolve("quận Hoàng Mai").as_json(), ensure_ascii=False)


# --- find ----------------------------------------------------------------------------------


def _spans(g: HanoiGazetteer, message: str) -> list[tuple[str, Location]]:
    found = g.find(message)
    for start, end, loc in found:
        assert loc.text == message[start:end]
    return [(message[s:e], loc) for s, e, loc in found]


def test_find_abbreviated_unaccented_address(g: HanoiGazetteer) -> None:
    message = "vỉa hè ở p.Kim Lien q. Dong Da bị lấn chiếm"
    found = g.find(message)
    assert len(found) == 1
    start, end, loc = found[0]
    assert (start, end) == (9, 30)
    assert message[start:end] == "p.Kim Lien q. Dong Da"
    assert loc.ward == KIM_LIEN


def test_find_offsets_are_into_the_original_text(g: HanoiGazetteer) -> None:
    nfc = "Rác 🗑️ ở phường Đồng Xuân, quận Hoàn Kiếm nhé"
    nfd = unicodedata.normalize("NFD", nfc)
    assert len(nfd) > len(nfc)
    for message in (nfc, nfd):
        found = g.find(message)
        assert len(found) == 1
        start, end, loc = found[0]
        assert unicodedata.normalize("NFC", message[start:end]) == (
            "phường Đồng Xuân, quận Hoàn Kiếm"
        )
        assert loc.candidates == (HOAN_KIEM, BA_DINH)
    # "Đ" folds to one letter: offsets after it stay right.
    message = "Đường Láng ngập, ở ĐỐNG ĐA"
    found = g.find(message)
    assert [(s, e) for s, e, _ in found] == [(0, 10), (19, 26)]
    assert found[0][2].ward == LANG
    assert found[1][2].text == "ĐỐNG ĐA" and found[1][2].candidates[0] == DONG_DA


def test_find_prefers_the_longest_name(g: HanoiGazetteer) -> None:
    assert [t for t, _ in _spans(g, "nhà tôi ở phường Láng Hạ cũ")] == ["phường Láng Hạ"]
    ((text, loc),) = _spans(g, "khu tập thể Dịch Vọng Hậu mất nước")
    assert text == "Dịch Vọng Hậu"
    assert loc.candidates == (CAU_GIAY, NGHIA_DO)


def test_find_joins_ward_and_old_district_and_skips_street_not_resolving(
    g: HanoiGazetteer,
) -> None:
    spans = _spans(g, "ngõ 5 Láng Hạ, phường Láng Hạ, Đống Đa, Hà Nội có rác")
    assert [(t, loc.candidates) for t, loc in spans] == [
        ("phường Láng Hạ, Đống Đa", (LANG, DONG_DA, GIANG_VO))
    ]


@pytest.mark.parametrize(
    ("message", "span", "ward"),
    [
        ("đường Láng ngập sâu", "đường Láng", LANG),
        ("ô tô chạy ngược chiều phố Hàng Bạc", "phố Hàng Bạc", HOAN_KIEM),
        ("cán bộ phường Láng hứa rồi không làm", "phường Láng", LANG),
        ("đổ trộm phế thải ở xa Bat Trang", "xa Bat Trang", BAT_TRANG),
        ("nước bẩn ở p.Kim Liên", "p.Kim Liên", KIM_LIEN),
        ("ngập ở Láng quá", "Láng", LANG),
    ],
)
def test_find_resolved_places(g: HanoiGazetteer, message: str, span: str, ward: Ward) -> None:
    assert [(t, loc.ward) for t, loc in _spans(g, message)] == [(span, ward)]


def test_find_bare_old_district_names(g: HanoiGazetteer) -> None:
    ((text, loc),) = _spans(g, "rác thải ở Cầu Giấy không ai thu gom")
    assert text == "Cầu Giấy" and loc.ward is None and loc.candidates[0] == CAU_GIAY
    ((text, _),) = _spans(g, "container đỗ dưới lòng đường ở long bien")
    assert text == "long bien"
    assert [t for t, _ in _spans(g, "Tôi ở Đông Anh, đường xấu")] == ["Đông Anh"]


@pytest.mark.parametrize(
    "message",
    [
        "nhà đông anh em quá",  # đông = many
        "láng giềng hát karaoke ồn ào",
        "đi bộ phía tây hồ Gươm",
        "mùa hà đông năm nay lạnh",
        "quan tâm giúp tôi với",
        "vấn đề xã hội",
        "đường Tôn Đức Thắng ngập",  # old xã Đức Thắng is a street name's tail here
        "Mái che cửa hàng số 45 Nguyễn Trãi chìa ra lòng đường",  # old xã Nguyễn Trãi
        "phố Ngô Quyền có rác",  # old phường Ngô Quyền was in Sơn Tây
        "đi ăn phở Bát Đàn",
        "Rác vứt đầy vỉa hè trước chợ Phùng Khoang",  # not old xã Phùng (Đan Phượng)
        "Chị Bạch Mai ơi, anh Ngọc Hà nói rồi",  # people named like wards
        "Chúc mọi người bình minh tươi đẹp, Hòa Bình và Thành Công",
        "Q1 có rác",
        "giá vàng hôm nay",
        "",
    ],
)
def test_find_ignores_ordinary_words(g: HanoiGazetteer, message: str) -> None:
    assert g.find(message) == []


def test_find_several_places(g: HanoiGazetteer) -> None:
    spans = _spans(g, "Đường Láng và phố Giảng Võ đều ngập")
    assert [(t, loc.ward) for t, loc in spans] == [
        ("Đường Láng", LANG),
        ("phố Giảng Võ", GIANG_VO),
    ]


# --- against the packages' own data ------------------------------------------------------------


def test_every_old_ward_converts_like_vietnamadminunits(g: HanoiGazetteer) -> None:
    """All 526 old wards, written as old addresses, against the package's converter.

    The converter returns one new ward: the one the old ward became, or for a split
    ward its default (largest) part. That must be our ward, or our first candidate.
    """
    from vietnamadminunits import convert_address
    from vietnamadminunits.database import query

    rows = query(
        "SELECT ward, district FROM admin_units_legacy WHERE provinceKey = 'thanhphohanoi'"
    )
    assert len(rows) == 526
    for ward_name, district_name in ((row["ward"], row["district"]) for row in rows):
        expected = convert_address(f"{ward_name}, {district_name}, Thành phố Hà Nội").ward
        loc = g.resolve(f"{ward_name}, {district_name}")
        first = loc.ward or (loc.candidates[0] if loc.candidates else None)
        assert first is not None and first.name == expected, (ward_name, district_name)


def test_split_wards_and_districts_match_the_conversion_table(g: HanoiGazetteer) -> None:
    no_divided, divided = _converter()
    names = _new_names()
    # Split old wards: all their new wards, as candidates.
    for old_id, expected in (
        ("thanhphohanoi_quancaugiay_phuongdichvonghau", {"Phường Cầu Giấy", "Phường Nghĩa Đô"}),
        (
            "thanhphohanoi_quandongda_phuonglangha",
            {"Phường Láng", "Phường Đống Đa", "Phường Giảng Võ"},
        ),
    ):
        assert {names[str(p["newWardKey"])] for p in divided[old_id]} == expected
    assert "thanhphohanoi_quanhoankiem_phuonghangbac" in no_divided["phuonghoankiem"]
    # Old districts: every new unit receiving any part of any of their old wards.
    for phrase, district_key in (
        ("quận Hoàng Mai", "quanhoangmai"),
        ("huyện Gia Lâm", "huyengialam"),
        ("quận Cầu Giấy", "quancaugiay"),
        ("thị xã Sơn Tây", "thixasontay"),
    ):
        marker = f"thanhphohanoi_{district_key}_"
        expected = {names[k] for k, olds in no_divided.items() if any(marker in o for o in olds)}
        expected |= {
            names[str(p["newWardKey"])]
            for old_id, parts in divided.items()
            if old_id.startswith(marker)
            for p in parts
        }
        assert set(_names(g.resolve(phrase))) == expected, phrase


# --- loading -------------------------------------------------------------------------------


def test_builds_fast_and_once() -> None:
    start = time.perf_counter()
    location_module._build()
    assert time.perf_counter() - start < 1.0
    assert gazetteer() is gazetteer()
    assert HanoiGazetteer().resolve("phường Láng").ward == LANG


@pytest.mark.parametrize(
    ("lat", "lon", "ward"),
    [
        (21.0288, 105.8524, "Phường Hoàn Kiếm"),  # Hồ Gươm
        (20.9714, 105.7788, "Phường Hà Đông"),  # Hà Đông centre
    ],
)
def test_a_pin_gives_the_nearest_wards_first(lat: float, lon: float, ward: str) -> None:
    nearest = gazetteer().nearest(lat, lon)
    assert len(nearest) == 3
    assert nearest[0].name == ward
