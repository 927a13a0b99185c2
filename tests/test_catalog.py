"""The procedure catalog: complete for PRODUCT.md §3, honest when unsure, short on a phone."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from civicbot_nlu.normalize import fold, has_diacritics
from pydantic import ValidationError

from bot.catalog import (
    ASPECT_TITLES,
    MAX_ANSWER_CHARS,
    PORTAL_URL,
    Catalog,
    Procedure,
    answer,
    answer_aspects,
    load_catalog,
    suggest,
)
from bot.catalog.catalog import load_catalog_file, parse_catalog
from bot.catalog.provenance import LegalDocument, staleness
from bot.cli import main
from bot.config import Settings
from bot.nlu.result import ASPECTS, PROCEDURES

CATALOG = load_catalog()
ENTRIES = CATALOG.procedures
ALL_ASPECTS: tuple[str | None, ...] = (*ASPECTS, None)


def _ids(procedures: list[Procedure]) -> list[str]:
    return [p.id for p in procedures]


# --- completeness -----------------------------------------------------------------------------


def test_every_product_procedure_has_exactly_one_entry() -> None:
    assert sorted(CATALOG.ids) == sorted(PROCEDURES)
    assert len(CATALOG.ids) == len(set(CATALOG.ids))


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is CATALOG


def test_the_data_file_is_in_the_package() -> None:
    path = Path(__file__).parents[1] / "bot" / "catalog" / "procedures.yml"
    assert path.is_file()
    assert load_catalog_file(path).ids == CATALOG.ids


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_entry_is_complete(procedure: Procedure) -> None:
    assert procedure.documents and all(d.strip() for d in procedure.documents)
    assert procedure.legal_basis and all(b.strip() for b in procedure.legal_basis)
    assert isinstance(procedure.checked, date)
    assert date(2024, 1, 1) <= procedure.checked <= date.today()
    assert procedure.name and procedure.authority and procedure.duration and procedure.fee
    assert procedure.online_url.startswith("https://")
    assert procedure.submit
    if procedure.certain:
        assert procedure.uncertain_note is None
    else:
        assert procedure.uncertain_note and procedure.uncertain_note.strip()


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_aliases_come_with_and_without_diacritics(procedure: Procedure) -> None:
    plain = {fold(a) for a in procedure.aliases if not has_diacritics(a)}
    accented = [a for a in procedure.aliases if has_diacritics(a)]
    assert accented, "citizens who type marks need aliases too"
    missing = [a for a in accented if fold(a) not in plain]
    assert not missing, f"no unaccented spelling for {missing}"


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_every_alias_finds_its_own_procedure_first(procedure: Procedure) -> None:
    for alias in procedure.aliases:
        found = CATALOG.search(alias)
        assert found and found[0].id == procedure.id, (alias, _ids(found))


def test_get() -> None:
    khai_sinh = CATALOG.get("khai_sinh")
    assert khai_sinh is not None and khai_sinh.name == "Đăng ký khai sinh"
    assert CATALOG.get("visa") is None
    assert CATALOG.get(None) is None


def test_levels_follow_the_2025_two_tier_government() -> None:
    """No district level any more: every entry is at the commune or at the city."""
    assert {p.level for p in ENTRIES} == {"xa", "thanh_pho"}
    abolished = ("nhân dân cấp huyện", "Phòng Tư pháp", "Phòng Tài chính", "Công an cấp huyện")
    for procedure in ENTRIES:
        assert not any(body in procedure.authority for body in abolished), procedure.id
    enterprise = CATALOG.get("thanh_lap_doanh_nghiep")
    assert enterprise is not None and "Sở Tài chính" in enterprise.authority


# --- facts that are well known must be stated as such ----------------------------------------


def test_timely_birth_and_death_registration_are_free() -> None:
    """Checked against the Luật Hộ tịch exemptions; not among any entry's unverified facts."""
    for pid in ("khai_sinh", "khai_tu", "ket_hon"):
        procedure = CATALOG.get(pid)
        assert procedure is not None
        assert procedure.fee.startswith("Miễn lệ phí")
        assert not any("miễn lệ phí" in u.fact.lower() for u in procedure.unverified)
        assert any("luatviet.co" in s.url for s in procedure.sources)
    for pid in ("khai_sinh", "khai_tu"):
        procedure = CATALOG.get(pid)
        assert procedure is not None
        assert procedure.fee.startswith("Miễn lệ phí khi đăng ký đúng hạn")


AMOUNT = re.compile(r"\d[\d.]*\s*đồng")


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_amounts_come_from_a_source_and_doubts_are_said(procedure: Procedure) -> None:
    """A fee quoted in đồng is backed by a cited fee document and a source; when its being in
    force today is not verified, the entry says so among its unverified facts."""
    if not AMOUNT.search(procedure.fee):
        return
    assert procedure.sources, procedure.id
    fee_documents = [d for d in procedure.legal_documents if "phí" in d.title]
    assert fee_documents, f"{procedure.id}: no fee document in the legal basis"
    if not procedure.certain:
        assert any("phí" in u.fact for u in procedure.unverified), procedure.id


# --- provenance: legal basis, sources, checked date, unverified facts -------------------------


def test_no_entry_is_older_than_the_allowed_age() -> None:
    """Fails as soon as an entry's `checked` date is older than CIVICBOT_CATALOG_MAX_AGE_DAYS
    (180 by default), so that the catalog cannot silently go stale."""
    max_age = Settings().catalog_max_age_days
    today = date.today()
    stale = staleness(CATALOG, today=today, max_age_days=max_age)
    assert [f.procedure_id for f in stale if f.stale] == [], (
        f"entries checked more than {max_age} days ago: run `civicbot catalog check`"
    )
    assert all(p.checked <= today for p in ENTRIES), "a checked date in the future"


def test_the_allowed_age_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBOT_CATALOG_MAX_AGE_DAYS", "30")
    assert Settings(_env_file=None).catalog_max_age_days == 30  # type: ignore[call-arg]
    oldest = min(p.checked for p in ENTRIES)
    found = staleness(CATALOG, today=oldest + timedelta(days=31), max_age_days=30)
    assert {f.procedure_id for f in found if f.stale} >= {
        p.id for p in ENTRIES if p.checked == oldest
    }
    fresh = staleness(CATALOG, today=max(p.checked for p in ENTRIES), max_age_days=30)
    assert not any(f.stale for f in fresh)


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_entry_states_where_its_facts_come_from(procedure: Procedure) -> None:
    assert procedure.legal_documents, "legal basis as documents (kind, number, date, title)"
    assert procedure.legal_basis == tuple(d.cite() for d in procedure.legal_documents)
    for document in procedure.legal_documents:
        if document.number is None or document.issued is None:
            mentioned = document.number or document.title
            assert any(mentioned in u.fact for u in procedure.unverified), (
                f"{procedure.id}: number or date of {mentioned!r} missing and not said why"
            )
    if not procedure.sources:
        assert any("không có nguồn" in u.fact for u in procedure.unverified), procedure.id
    assert procedure.certain == (not procedure.unverified)


@pytest.mark.parametrize("procedure", [p for p in ENTRIES if not p.certain], ids=lambda p: p.id)
def test_uncertainty_is_one_plain_sentence_for_the_citizen(procedure: Procedure) -> None:
    note = procedure.uncertain_note or ""
    assert "anh/chị" in note
    for reminder in ("chưa kiểm tra", "kiểm tra lại", "todo", "xác minh"):
        assert reminder not in note.lower(), "an internal reminder, not a sentence for citizens"
    last = answer(procedure, "fee").text.splitlines()[-1]
    assert last == f"Lưu ý: {' '.join(note.split())} {PORTAL_URL}"


def test_the_reported_errors_are_fixed() -> None:
    """Issue 16: police issue criminal records; any commune police registers any vehicle;
    the 2025 laws and decrees are in the legal basis."""
    records = CATALOG.get("ly_lich_tu_phap")
    assert records is not None
    assert "Công an thành phố Hà Nội" in records.authority
    assert "Sở Tư pháp" not in records.authority.split("(")[0]
    assert not any("Sở Tư pháp" in s.note for s in records.submit)
    vehicles = CATALOG.get("dang_ky_xe")
    assert vehicles is not None
    assert "kể cả xe ô tô" in vehicles.authority
    assert any(d.number == "51/2025/TT-BCA" for d in vehicles.legal_documents)
    permit = CATALOG.get("giay_phep_xay_dung")
    assert permit is not None and "Luật Xây dựng năm 2025" in permit.authority
    land = CATALOG.get("sang_ten_dat")
    assert land is not None
    assert any("Thuế thu nhập cá nhân" in d.title for d in land.legal_documents)
    for pid in ("chung_thuc", "cai_chinh_ho_tich", "ket_hon", "khai_sinh"):
        entry = CATALOG.get(pid)
        assert entry is not None
        assert any(d.number == "120/2025/NĐ-CP" for d in entry.legal_documents), pid
    so_do = CATALOG.get("so_do")
    assert so_do is not None
    assert any(d.number == "151/2025/NĐ-CP" for d in so_do.legal_documents)


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_answer_leads_with_the_aspect_asked(procedure: Procedure, aspect: str) -> None:
    result = answer(procedure, aspect)
    first_line = result.text.splitlines()[0]
    assert first_line.startswith(ASPECT_TITLES[aspect]), first_line
    assert result.procedure_id == procedure.id
    assert result.aspect == aspect


@pytest.mark.parametrize("aspect", ALL_ASPECTS)
@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_answer_fits_a_phone_and_cites_the_law(procedure: Procedure, aspect: str | None) -> None:
    text = answer(procedure, aspect).text
    assert len(text) <= MAX_ANSWER_CHARS
    assert "anh/chị" in text.lower() or procedure.certain
    basis_line = next(line for line in text.splitlines() if line.startswith("Căn cứ: "))
    first_law = procedure.legal_basis[0].split(" (")[0]
    assert first_law[:20] in basis_line
    if procedure.certain:
        assert text.splitlines()[-1] == basis_line, "a certain answer ends with its legal basis"


@pytest.mark.parametrize("aspect", ALL_ASPECTS)
@pytest.mark.parametrize("procedure", [p for p in ENTRIES if not p.certain], ids=lambda p: p.id)
def test_uncertain_answer_says_so_and_links_the_portal(
    procedure: Procedure, aspect: str | None
) -> None:
    result = answer(procedure, aspect)
    assert not result.certain
    last = result.text.splitlines()[-1]
    assert last.startswith("Lưu ý: ")
    assert procedure.uncertain_note is not None and procedure.uncertain_note in last
    assert last.endswith(PORTAL_URL)
    assert PORTAL_URL in result.details


def test_several_aspects_are_answered_each_in_the_order_asked() -> None:
    procedure = next(p for p in ENTRIES if p.id == "ho_chieu")
    text = answer_aspects(procedure, ["online", "duration", "fee"]).text
    titles = [ASPECT_TITLES[a] for a in ("online", "duration", "fee")]
    positions = [text.index(f"{t} –") for t in titles]
    assert positions == sorted(positions)
    assert text.count("Căn cứ:") == 1


def test_answers_per_aspect_carry_the_facts() -> None:
    khai_sinh = CATALOG.get("khai_sinh")
    assert khai_sinh is not None
    assert "Giấy chứng sinh" in answer(khai_sinh, "documents").text
    assert "Miễn lệ phí" in answer(khai_sinh, "fee").text.splitlines()[1]
    assert "ngay" in answer(khai_sinh, "duration").text.splitlines()[1]
    assert "Ủy ban nhân dân cấp xã" in answer(khai_sinh, "place").text.splitlines()[1]
    assert "dichvucong.gov.vn" in answer(khai_sinh, "online").text
    chung_thuc = CATALOG.get("chung_thuc")
    assert chung_thuc is not None
    assert "2.000 đồng/trang" in answer(chung_thuc, "fee").text


def test_long_document_lists_point_to_the_full_details() -> None:
    procedure = max(CATALOG.procedures, key=lambda p: sum(len(d) for d in p.documents))
    text = answer(procedure, "documents").text
    listed = [doc for doc in procedure.documents if f"• {doc}" in text]
    assert len(listed) < len(procedure.documents) and "Xem đầy đủ" in text
    assert all(doc in answer(procedure, "documents").details for doc in procedure.documents)


def test_overview_without_aspect() -> None:
    procedure = CATALOG.get("tam_tru")
    assert procedure is not None
    result = answer(procedure, None)
    lines = result.text.splitlines()
    assert lines[0] == "Đăng ký tạm trú:"
    assert [line.split(":")[0] for line in lines[1:4]] == ["Nơi nộp", "Thời hạn", "Lệ phí"]
    assert answer(procedure, "weather").text == result.text


@pytest.mark.parametrize("procedure", ENTRIES, ids=lambda p: p.id)
def test_details_hold_the_whole_entry(procedure: Procedure) -> None:
    text = answer(procedure, "fee").details
    assert text.startswith(procedure.name.upper())
    for part in (
        procedure.authority,
        procedure.duration,
        procedure.fee,
        *procedure.documents,
        *procedure.legal_basis,
        *(s.note for s in procedure.submit),
    ):
        assert part in text
    assert procedure.checked.strftime("%d/%m/%Y") in text
    assert len(text) < 4000  # one Telegram message


def test_no_procedure_gives_the_portal_politely() -> None:
    result = answer(None, "fee")
    assert PORTAL_URL in result.text
    assert "anh/chị" in result.text
    assert result.procedure_id is None


# --- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lam so do", "so_do"),
        ("làm sổ đỏ", "so_do"),
        ("bằng lái", "giay_phep_lai_xe"),
        ("bang lai", "giay_phep_lai_xe"),
        ("đổi bằng lái xe online được không", "giay_phep_lai_xe"),
        ("gplx", "giay_phep_lai_xe"),
        ("passport", "ho_chieu"),
        ("pasport", "ho_chieu"),
        ("làm hộ chiếu mất bao lâu", "ho_chieu"),
        ("dang ky tam tru", "tam_tru"),
        ("đăng kí tạm trú", "tam_tru"),
        ("đăng ký tạm trú cho người thuê trọ", "tam_tru"),
        ("nhập hộ khẩu cho con", "thuong_tru"),
        ("cccd", "can_cuoc"),
        ("làm lại căn cước bị mất", "can_cuoc"),
        ("lý lịch tư pháp", "ly_lich_tu_phap"),
        ("li lich tu phap", "ly_lich_tu_phap"),
        ("làm giấy khai sinh cho con cần gì", "khai_sinh"),
        ("dang ky ket hon", "ket_hon"),
        ("xin giấy xác nhận độc thân", "xac_nhan_hon_nhan"),
        ("báo tử cho bố", "khai_tu"),
        ("sửa ngày sinh trong giấy khai sinh", "cai_chinh_ho_tich"),
        ("sao y bản chính", "chung_thuc"),
        ("xin giấy phép xây dựng nhà 4 tầng", "giay_phep_xay_dung"),
        ("sang tên sổ đỏ", "sang_ten_dat"),
        ("thua ke dat cua bo me", "sang_ten_dat"),
        ("đăng ký hộ kinh doanh", "ho_kinh_doanh"),
        ("mở công ty", "thanh_lap_doanh_nghiep"),
        ("thanh lap cong ti", "thanh_lap_doanh_nghiep"),
        ("sang tên xe máy", "dang_ky_xe"),
        ("cà vẹt xe", "dang_ky_xe"),
        ("sang tên ô tô", "dang_ky_xe"),
        ("khaisinh", "khai_sinh"),
        ("hochieu", "ho_chieu"),
    ],
)
def test_search_finds_everyday_names(text: str, expected: str) -> None:
    found = CATALOG.search(text)
    assert found, text
    assert found[0].id == expected, (text, _ids(found))
    assert len(found) <= 3


def test_search_offers_close_matches_for_a_vague_question() -> None:
    found = _ids(CATALOG.search("đăng ký kinh doanh"))
    assert found[:2] == ["ho_kinh_doanh", "thanh_lap_doanh_nghiep"]
    assert "so_do" in _ids(CATALOG.search("sang tên sổ đỏ"))


@pytest.mark.parametrize(
    "text",
    [
        "giá vàng hôm nay",
        "hồ gươm ô nhiễm",
        "tôi ở tổ dân phố 5",
        "",
        "   ",
        "thủ tục",
        "cấp lại",
        "visa",
    ],
)
def test_search_finds_nothing_for_unrelated_text(text: str) -> None:
    assert CATALOG.search(text) == []


def test_search_limit() -> None:
    assert len(CATALOG.search("sang tên sổ đỏ", limit=1)) == 1
    assert len(CATALOG.search("sang tên sổ đỏ", limit=10)) <= 3


def test_suggest_gives_buttons_or_the_portal() -> None:
    vague = suggest("đăng ký kinh doanh")
    assert [o.procedure_id for o in vague.options] == ["ho_kinh_doanh", "thanh_lap_doanh_nghiep"]
    assert vague.options[0].label == "Đăng ký hộ kinh doanh"
    nothing = suggest("giá vàng hôm nay")
    assert nothing.options == ()
    assert PORTAL_URL in nothing.text
    assert nothing.text == answer(None).text


# --- validation -------------------------------------------------------------------------------


def _raw_entry() -> dict[str, object]:
    return {
        "id": "thu",
        "name": "Thủ tục thử",
        "aliases": ["thu"],
        "authority": "UBND cấp xã",
        "level": "xa",
        "submit": [{"method": "truc_tiep", "note": "Tại Bộ phận Một cửa."}],
        "online_url": PORTAL_URL,
        "documents": ["Tờ khai."],
        "duration": "03 ngày làm việc.",
        "fee": "Miễn phí.",
        "legal_basis": ["Luật thử"],
        "checked": "2025-07-01",
        "certain": True,
    }


def test_validation_rejects_incomplete_or_unexplained_entries() -> None:
    Catalog.model_validate({"procedures": [_raw_entry()]})
    changes: list[dict[str, object]] = [
        {"documents": []},
        {"legal_basis": []},
        {"level": "huyen"},
        {"certain": False},
        {"certain": True, "uncertain_note": "?"},
        {"checked": "hôm qua"},
        {"submit": [{"method": "fax", "note": "x"}]},
        {"unknown_field": 1},
    ]
    for change in changes:
        with pytest.raises(ValidationError):
            Catalog.model_validate({"procedures": [{**_raw_entry(), **change}]})
    with pytest.raises(ValidationError):
        Catalog.model_validate({"procedures": [_raw_entry(), _raw_entry()]})


def test_structured_legal_basis_and_provenance_are_validated() -> None:
    law = {"kind": "Luật", "number": "60/2014/QH13", "date": "2014-11-20"}
    decree = {"kind": "Nghị định", "number": "120/2025/NĐ-CP", "date": "2025-06-11"}
    entry = {
        **_raw_entry(),
        "legal_basis": [
            {**law, "title": "Luật Hộ tịch"},
            {
                **decree,
                "title": "quy định về phân định thẩm quyền",
                "note": "hiệu lực từ 01/7/2025",
            },
        ],
        "sources": [{"title": "Toàn văn", "url": "https://thuvienphapluat.vn/x"}],
        "certain": False,
        "uncertain_note": "Mức phí có thể đã thay đổi, anh/chị xem thông tin mới nhất tại:",
        "unverified": [{"fact": "mức phí", "reason": "không tìm được văn bản"}],
    }
    procedure = Catalog.model_validate({"procedures": [entry]}).procedures[0]
    assert procedure.legal_basis == (
        "Luật Hộ tịch (số 60/2014/QH13, ngày 20/11/2014)",
        "Nghị định 120/2025/NĐ-CP ngày 11/06/2025 quy định về phân định thẩm quyền "
        "(hiệu lực từ 01/7/2025)",
    )
    assert procedure.short_legal_basis() == "Luật Hộ tịch; Nghị định 120/2025/NĐ-CP"
    assert LegalDocument(kind="Luật", title="Luật X").cite() == "Luật X"
    bad: list[dict[str, object]] = [
        {"legal_basis": [{"kind": "Công văn", "number": "1", "title": "x"}]},
        {"sources": [{"title": "x", "url": "thuvienphapluat.vn"}]},
        {"certain": True, "uncertain_note": None},  # unverified facts, yet certain
        {"uncertain_note": "Chưa kiểm tra lại lệ phí. Xem cổng:"},  # two sentences
        {"uncertain_note": "Mức phí có thể đã thay đổi"},  # not followed by the link
        {"unverified": [{"fact": "", "reason": "x"}]},
    ]
    for change in bad:
        with pytest.raises(ValidationError):
            Catalog.model_validate({"procedures": [{**entry, **change}]})


def test_catalog_check_lists_stale_and_uncertain_entries(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    checked = max(p.checked for p in ENTRIES)
    assert main(["catalog", "check", "--today", checked.isoformat()]) == 0
    out = capsys.readouterr().out
    uncertain = [p for p in ENTRIES if not p.certain]
    assert f"{len(ENTRIES)} entries, 0 stale" in out
    assert f"{len(uncertain)} with unverified facts" in out
    for procedure in uncertain:
        assert f"  {procedure.id} ({procedure.name}), checked {procedure.checked:%Y-%m-%d}:" in out
        assert all(f"    - {u.fact} — {u.reason}" in out for u in procedure.unverified)
    late = (checked + timedelta(days=181)).isoformat()
    assert main(["catalog", "check", "--today", late]) == 1
    out = capsys.readouterr().out
    assert f"{len(ENTRIES)} stale (checked more than 180 days ago)" in out
    assert f"  khai_sinh: checked {checked:%Y-%m-%d} (181 days)" in out
    assert main(["catalog", "check", "--today", late, "--max-age-days", "365"]) == 0
    capsys.readouterr()
    old = tmp_path / "old.yml"
    old.write_text(yaml.safe_dump({"procedures": [_raw_entry()]}, allow_unicode=True), "utf-8")
    assert main(["catalog", "check", "--file", str(old), "--today", "2026-12-06"]) == 1
    assert "thu: checked 2025-07-01 (523 days)" in capsys.readouterr().out
    assert main(["catalog", "check", "--today", "hôm nay"]) == 2
    assert "civicbot:" in capsys.readouterr().err


def test_parse_catalog_reads_yaml() -> None:
    text = yaml.safe_dump({"procedures": [_raw_entry()]}, allow_unicode=True)
    assert parse_catalog(text).ids == ("thu",)
