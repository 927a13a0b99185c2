"""The categories registry (bot/categories.yml): the categories of PRODUCT.md §2 with their
names, the severities of docs/service-levels.md, and every part of the bot reading it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_contract import PRODUCT, product_table
from test_digest import load_generator

from bot import categories
from bot.categories import BY_CODE, CATEGORIES, CATEGORIES_FILE, load
from bot.config import ROOT, Settings
from bot.conversation.texts import CATEGORY_NAMES, CATEGORY_NAMES_EN
from bot.directory.loader import load_directory
from bot.nlu import fallback, result
from bot.web.open311.services import SERVICES
from storage.models import Severity


def test_the_registry_holds_the_categories_of_the_product_in_order() -> None:
    assert [c.code for c in CATEGORIES] == product_table("2.")
    body = PRODUCT.read_text(encoding="utf-8").split("## 2.", 1)[1].split("\n## ", 1)[0]
    names = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \|", body, flags=re.MULTILINE))
    assert {c.code: c.name for c in CATEGORIES} == names


def test_severities_are_those_of_the_service_levels() -> None:
    """docs/service-levels.md names the urgent and the complex categories; the rest are
    normal (so `procedure_delay` is normal, as the app always had it)."""
    levels = (ROOT / "docs" / "service-levels.md").read_text(encoding="utf-8")
    named: dict[str, Severity] = {}
    for severity, row in ((Severity.urgent, "urgent covers"), (Severity.complex, "complex (")):
        line = next(line for line in levels.splitlines() if row in line)
        cell = line.split("|")[2].split("plus")[0]
        named |= dict.fromkeys(re.findall(r"`([a-z_]+)`", cell), severity)
    expected = {c: named.get(c, Severity.normal) for c in BY_CODE}
    assert {c.code: c.severity for c in CATEGORIES} == expected
    assert BY_CODE["procedure_delay"].severity == Severity.normal


def test_only_a_complaint_about_officials_accuses_the_wards_unit() -> None:
    """docs/contract-additions.md §6: a `misconduct` ticket never reaches its ward's unit."""
    assert categories.ACCUSING == ("misconduct",)
    assert categories.accused_ward("misconduct", "00001") == "00001"
    assert categories.accused_ward("misconduct", None) is None
    assert categories.accused_ward("waste", "00001") is None


def test_every_consumer_reads_the_registry() -> None:
    codes = [c.code for c in CATEGORIES]
    assert list(CATEGORY_NAMES) == codes and list(CATEGORY_NAMES_EN) == codes
    assert list(result.CATEGORIES) == codes
    assert {c: fallback.CATEGORY_CUES[c] for c in codes} == {c.code: c.cues for c in CATEGORIES}
    assert [(s.code, s.name, s.group, s.description) for s in SERVICES] == [
        (c.code, c.name, c.open311.group, c.open311.description) for c in CATEGORIES
    ]
    assert Settings().severity_by_category == {c.code: c.severity for c in CATEGORIES}
    # The directory's routing rules are checked against the same codes.
    directory = load_directory(ROOT / "bot" / "directory" / "hanoi.yml")
    assert {c for rule in directory.rules for c in rule.categories} <= set(codes)


def test_the_ticket_generator_takes_the_apps_severities() -> None:
    generator = load_generator()
    assert set(generator.CATEGORIES) <= set(BY_CODE)
    assert {c.code: c.severity.value for c in CATEGORIES} == generator.SEVERITY
    assert generator.SEVERITY["procedure_delay"] == "normal"  # was "complex" there


def _write(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    path = tmp_path / "categories.yml"
    path.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    return path


def _entry(code: str, **changes: object) -> dict[str, object]:
    entry = BY_CODE["other"].model_dump(mode="json")
    return {**entry, "code": code, **changes}


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([_entry("other", severity="asap")], "severity"),
        ([_entry("other"), _entry("other")], "listed twice: other"),
        ([_entry("noise")], "`other` is required"),
        ([_entry("other", cues=["Tiếng ồn"])], "without diacritics"),
        ([_entry("other", colour="red")], "colour"),
        ([_entry("Other")], "code"),
        ([{**_entry("other"), "open311": {"group": "Khác"}}], "description"),
    ],
)
def test_a_broken_registry_is_refused_with_the_reason(
    tmp_path: Path, entries: list[dict[str, object]], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        load(_write(tmp_path, entries))


def test_the_bundled_file_loads_and_a_new_category_is_one_entry(tmp_path: Path) -> None:
    assert load(CATEGORIES_FILE) == CATEGORIES
    bundled = yaml.safe_load(CATEGORIES_FILE.read_text(encoding="utf-8"))
    extra = _entry("noise", name="Tiếng ồn", severity="urgent", cues=["tieng on"])
    grown = load(_write(tmp_path, [*bundled, extra]))
    assert grown[-1].code == "noise" and grown[-1].severity == Severity.urgent
    assert tuple(c.code for c in CATEGORIES) == categories.CODES
