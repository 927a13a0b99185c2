"""An official publishes a ticket's summary and a note from the dashboard in headless Chromium,
and the public reads them (and not the citizen's text) through Open311 in the same browser."""

from __future__ import annotations

import pytest
from screens import screenshot_folder
from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session
from test_dashboard import CHROMIUM, CODE, outbox_texts, served  # noqa: F401 - a fixture

from storage.models import OfficialRole, utcnow

pytestmark = pytest.mark.browser


def test_in_chromium_an_official_publishes_and_the_public_reads_it(
    engine: Engine,
    served: str,  # noqa: F811 - the fixture imported above
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install -y chromium).", pytrace=False)
    from playwright.sync_api import expect, sync_playwright

    with Session(engine, expire_on_commit=False) as session:
        two_wards_and_city(session)
        handler = linked_official(session, "ward-a", "chat-a", OfficialRole.handler, now=utcnow())
        ticket = waste_ticket(
            session,
            "ward-a",
            now=utcnow(),
            location_text="số 9 ngõ 4",
            description="Tôi tên là Trần Văn Bình, 0912 345 678: nhà số 9 đổ rác ra ngõ",
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="vi-VN")
            page.goto(f"{served}/dashboard")
            page.get_by_label("Số hiệu cán bộ").fill(str(handler.id))
            page.get_by_role("button", name="Gửi mã đăng nhập").click()
            code = CODE.search(outbox_texts(engine, "chat-a")[-1])
            assert code is not None
            page.get_by_label("Mã đăng nhập").fill(code.group(1))
            page.get_by_role("button", name="Đăng nhập").click()
            page.goto(f"{served}/dashboard/tickets/{ticket.code}")
            expect(page.get_by_role("heading", name="Công khai trên Open311")).to_be_visible()
            page.get_by_label("Tóm tắt thay cho lời người dân").fill(
                "Rác thải sinh hoạt bị đổ ra ngõ, chưa được thu gom."
            )
            page.get_by_role("button", name="Lưu tóm tắt").click()
            expect(page.get_by_text("Đã lưu tóm tắt công khai")).to_be_visible()
            page.get_by_label("Tiến độ, kết quả").fill("Tổ dân phố đã nhắc nhở, rác đã được dọn.")
            page.get_by_role("button", name="Công bố").click()
            expect(page.get_by_text("Đã công bố thông báo")).to_be_visible()
            page.screenshot(path=str(screenshot_folder() / "dashboard-open311.png"), full_page=True)

            for fmt in ("json", "xml"):
                page.goto(f"{served}/open311/v2/requests/{ticket.code}.{fmt}")
                text = page.content()
                assert "Rác thải sinh hoạt bị đổ ra ngõ, chưa được thu gom." in text
                assert "Tổ dân phố đã nhắc nhở, rác đã được dọn." in text
                for secret in ("Trần Văn Bình", "0912", "số 9", "nhà số 9"):
                    assert secret not in text
        finally:
            browser.close()
