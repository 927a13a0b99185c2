"""The public scorecard in headless Chromium, as a citizen opens it on a phone: no sign-in,
the league table of the last complete month over generated tickets (the bundled wards and
city bodies), a quarter, one ward's page with its chart; no citizen data on any of them.
Screenshots: docs/scorecard.png and docs/scorecard-unit.png (CIVICBOT_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from screens import screenshot_folder
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select
from test_dashboard import CHROMIUM, served  # noqa: F401 - a fixture
from test_digest import load_generator

from storage.db import create_db_engine
from storage.models import Ticket, Unit, UnitKind

pytestmark = pytest.mark.browser


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """8,000 generated tickets over the 120 days before now (what `served` serves)."""
    url = f"sqlite:///{tmp_path / 'civicbot.db'}"
    generator = load_generator()
    generator.generate_into(
        [generator.Target(url)], tickets=8000, days=120, end=datetime.now(UTC), seed=11
    )
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


def test_in_chromium_anyone_reads_the_scorecard_on_a_phone(
    engine: Engine,
    served: str,  # noqa: F811 - the fixture imported above
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium).", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    with Session(engine) as session:
        ticket = session.exec(select(Ticket).limit(1)).one()
        busiest = session.exec(
            select(Unit.name)
            .join(Ticket, col(Ticket.lead_unit_id) == col(Unit.id))
            .where(Unit.kind == UnitKind.ward)
            .group_by(col(Unit.name))
            .order_by(func.count().desc(), col(Unit.name))
            .limit(1)
        ).one()
        secrets = [ticket.code, ticket.description[:30]]
        if ticket.latitude is not None:
            secrets.append(f"{ticket.latitude:.4f}")
    folder = screenshot_folder()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 412, "height": 915}, locale="vi-VN")
            missing: list[str] = []  # anything the pages ask for and do not get
            page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
            page.goto(f"{served}/bang-xep-hang")
            expect(page.get_by_role("heading", name="Xếp hạng phường, xã")).to_be_visible()
            league = page.locator("#league tbody tr")
            assert league.count() == 126
            assert league.first.locator("td").first.inner_text() == "1"
            ranks = [r for r in league.locator("td.rank").all_inner_texts() if r]
            assert ranks == [str(n) for n in range(1, len(ranks) + 1)] and len(ranks) > 60
            assert page.locator("#league td.na").count() > 0  # some small cells hidden
            expect(page.get_by_text("không công bố để bảo vệ người phản ánh")).to_be_visible()
            assert page.locator("#bodies tbody tr").count() == 11
            # Readable on a phone: the page itself does not scroll sideways (tables do).
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 412
            page.screenshot(path=str(folder / "scorecard.png"))

            page.get_by_role("link", name=re.compile(r"^Quý ")).first.click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Quý")

            page.locator("#league").get_by_role("link", name=busiest, exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_have_text(busiest)
            expect(page.get_by_role("heading", name="12 tháng gần đây")).to_be_visible()
            chart = page.locator("figure.chart svg")
            expect(chart).to_be_visible()
            assert chart.locator("rect.bar").count() >= 4
            assert chart.locator("circle.dot").count() >= 1
            assert page.evaluate("document.documentElement.scrollWidth") <= 412
            page.screenshot(path=str(folder / "scorecard-unit.png"), full_page=True)
            unit_html = page.content()

            assert missing == []
            page.goto(f"{served}/api/scorecard?period=2026-Q4")
            json_text = page.inner_text("body")
            for text in (unit_html, json_text):
                for secret in secrets:
                    assert secret not in text
        finally:
            browser.close()
