"""The web chat page in headless Chromium: the session cookie, sending, a photo, the pin, an
over-limit answer and a new conversation. Screenshots go to the test's tmp directory
(CIVICBOT_SCREENSHOTS=dir keeps them elsewhere)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from playwright.async_api import Locator, Page, async_playwright

from bot.channels.web import SESSION_COOKIE, chat_id_of
from bot.config import Settings
from bot.conversation.messages import IncomingMessage, OutputChannel, Reply
from bot.web.app import create_app
from storage import migrate
from storage.db import create_db_engine

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Recorder:
    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []

    async def handle(self, message: IncomingMessage, output: OutputChannel) -> None:
        self.messages.append(message)
        if message.attachments:
            text = "Đã nhận 1 ảnh. Anh/chị gửi thêm ảnh hoặc bấm Xong."
        elif message.location:
            text = f"Đã nhận vị trí {message.location.lat}, {message.location.lon}."
        else:
            text = f"Tôi đã nhận: {message.text}"
        await output.send(message.chat_id, Reply(text))


@asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Recorder]]:
    """The app on a loopback port, in the test's event loop."""
    recorder = Recorder()
    settings = Settings(
        upload_dir=tmp_path / "uploads", web_messages_per_session="3 per 10 seconds"
    )
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate.upgrade(url)  # the page polls for notifications
    engine = create_db_engine(url)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(recorder, settings=settings, engine=engine), log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        server.should_exit = True
        await serving
        engine.dispose()


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("CIVICBOT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"))


@pytest.mark.browser
async def test_the_page_in_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with served(tmp_path) as (url, recorder):
        await _drive(url, recorder, tmp_path)


async def _drive(url: str, recorder: Recorder, tmp_path: Path) -> None:
    photo = tmp_path / "via-he.jpg"
    Image.new("RGB", (1200, 900), (30, 120, 60)).save(photo, "JPEG")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(
            viewport={"width": 420, "height": 820},
            geolocation={"latitude": 21.0245, "longitude": 105.8412},
            permissions=["geolocation"],
            locale="vi-VN",
        )
        page = await context.new_page()
        # An old page's id in localStorage is not used.
        await page.add_init_script("window.localStorage.setItem('civicbot.session', 'web-old')")
        await page.goto(url + "/")
        cookies = {c["name"]: c for c in await context.cookies()}
        token = cookies[SESSION_COOKIE]
        assert token["httpOnly"] and token["sameSite"] == "Lax"
        assert SESSION_COOKIE not in await page.evaluate("document.cookie")
        bubbles = page.locator("#messages .msg.bot .bubble")
        await _send_a_text(page, bubbles, recorder, chat_id_of(token["value"]), tmp_path)
        await _send_a_photo(page, bubbles, recorder, photo, tmp_path)
        await page.click("#location")
        await bubbles.nth(2).wait_for()
        assert await bubbles.nth(2).inner_text() == "Đã nhận vị trí 21.0245, 105.8412."
        await _go_over_the_limit(page, bubbles, recorder, tmp_path)
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click("#reset")
        await page.locator("#intro").wait_for()
        renewed = {c["name"]: c["value"] for c in await context.cookies()}[SESSION_COOKIE]
        assert renewed != token["value"]
        assert await page.evaluate("window.localStorage.getItem('civicbot.session')") is None
        await browser.close()


async def _send_a_text(
    page: Page, bubbles: Locator, recorder: Recorder, session: str | None, tmp_path: Path
) -> None:
    await page.fill("#text", "Đèn đường ngõ 5 Tràng Tiền bị hỏng")
    await page.press("#text", "Enter")
    await bubbles.first.wait_for()
    assert await bubbles.first.inner_text() == "Tôi đã nhận: Đèn đường ngõ 5 Tràng Tiền bị hỏng"
    assert recorder.messages[-1].chat_id == session  # the cookie's session, not "web-old"
    await shot(page, tmp_path, "webchat-send")


async def _send_a_photo(
    page: Page, bubbles: Locator, recorder: Recorder, photo: Path, tmp_path: Path
) -> None:
    async with page.expect_file_chooser() as chooser:
        await page.click("#photo")
    await (await chooser.value).set_files(str(photo))
    await bubbles.nth(1).wait_for()
    assert "Đã nhận 1 ảnh" in await bubbles.nth(1).inner_text()
    mine = page.locator("#messages .msg.user .bubble img")
    assert await mine.count() == 1
    assert await mine.evaluate("img => img.complete && img.naturalWidth") == 1200
    assert recorder.messages[-1].attachments[0].file_id.startswith("web:")
    await shot(page, tmp_path, "webchat-photo")


async def _go_over_the_limit(
    page: Page, bubbles: Locator, recorder: Recorder, tmp_path: Path
) -> None:
    """Over the limit (3 messages per 10 s here; photos count apart): the page says so and
    keeps what was typed."""
    await page.fill("#text", "Gửi lại lần nữa")
    await page.press("#text", "Enter")
    await bubbles.nth(3).wait_for()
    await page.fill("#text", "Tin nhắn thứ năm")
    await page.press("#text", "Enter")
    toast = page.locator("#toast")
    await toast.wait_for()
    assert "Anh/chị gửi tin nhắn hơi nhanh" in await toast.inner_text()
    assert await page.input_value("#text") == "Tin nhắn thứ năm"
    assert await page.locator("#messages .msg.user.failed").count() == 1
    await shot(page, tmp_path, "webchat-over-limit")
    assert len(recorder.messages) == 4


# Phones people hold: an iPhone SE (1st gen.), a small Android, an iPhone 8.
PHONES = [(320, 568), (360, 740), (375, 667)]


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), PHONES, ids=[f"{w}x{h}" for w, h in PHONES])
async def test_the_page_on_a_phone(tmp_path: Path, width: int, height: int) -> None:
    """No sideways scrolling, a header of at most two lines with "Hà Nội" kept together, and
    the text box's placeholder on one line (at 320 px it wrapped, its second line cut)."""
    async with served(tmp_path) as (url, _), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(
            viewport={"width": width, "height": height},
            is_mobile=True,
            has_touch=True,
            locale="vi-VN",
        )
        page = await context.new_page()
        await page.goto(url + "/")
        await page.fill("#text", "Đèn đường ngõ 5 Tràng Tiền bị hỏng")
        await page.press("#text", "Enter")
        await page.locator("#messages .msg.bot .bubble").first.wait_for()
        await page.fill("#text", "")
        await shot(page, tmp_path, f"webchat-phone-{width}")
        layout = await page.evaluate(_LAYOUT)
        await browser.close()
    assert layout["scrollWidth"] <= width, layout
    assert layout["headerHeight"] <= 64, layout
    assert layout["h1Lines"] <= 2 and "Hà Nội" in layout["h1LastLine"], layout
    assert layout["placeholderWidth"] <= layout["textboxInnerWidth"], layout


_LAYOUT = """() => {
  const h1 = document.querySelector('.bar h1');
  const range = document.createRange();
  range.selectNodeContents(h1);
  const lines = [...new Set([...range.getClientRects()].map(r => Math.round(r.top)))];
  const last = Math.max(...lines);
  const words = h1.textContent.split(/ /);
  const lastLine = [];  // the words whose box starts on the last line
  let offset = 0;
  for (const word of words) {
    const r = document.createRange();
    r.setStart(h1.firstChild, offset);
    r.setEnd(h1.firstChild, offset + word.length);
    if (Math.round(r.getClientRects()[0].top) === last) lastLine.push(word);
    offset += word.length + 1;
  }
  const box = document.querySelector('#text');
  const style = getComputedStyle(box);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  return {
    scrollWidth: document.documentElement.scrollWidth,
    headerHeight: document.querySelector('.bar').getBoundingClientRect().height,
    h1Lines: lines.length,
    h1LastLine: lastLine.join(' ').replace(/\\u00a0/g, ' '),
    placeholderWidth: ctx.measureText(box.placeholder).width,
    textboxInnerWidth: box.clientWidth - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight),
  };
}"""
