"""`civicbot official invite` as an operator runs it (found trying the product,
docs/usability-review.md, session 4: it printed `https://t.me/<bot>?start=…`, a placeholder
the operator had to replace with the bot's name)."""

from __future__ import annotations

import re

import pytest
from fake_telegram import BOT_USERNAME, TOKEN, FakeTelegram

from bot.cli import main as cli_main
from bot.config import settings

CODE = re.compile(r"Code: (CB-\w{4}-\w{4})")


def _invite(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    args = ["official", "invite", "--unit", "ubnd-00229", "--name", "Nguyễn Thị Lan"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    match = CODE.search(out)
    assert match is not None, out
    return out, match.group(1)


def test_the_link_names_the_bot_from_get_me(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)
    with FakeTelegram() as telegram:
        monkeypatch.setattr(settings, "telegram_token", TOKEN)
        monkeypatch.setattr(settings, "telegram_base_url", telegram.base_url)
        out, code = _invite(capsys)
        assert telegram.calls_to("getMe")
    assert f"https://t.me/{BOT_USERNAME}?start={code.replace('-', '')}" in out
    assert "<bot>" not in out


def test_without_telegram_no_made_up_link(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings, "database_url", database_url)
    monkeypatch.setattr(settings, "telegram_token", None)
    out, _ = _invite(capsys)
    assert "t.me" not in out and "<bot>" not in out
    # A token whose Bot API does not answer: the code still, no link, and why on stderr.
    monkeypatch.setattr(settings, "telegram_token", TOKEN)
    monkeypatch.setattr(settings, "telegram_base_url", "http://127.0.0.1:9/bot")
    assert cli_main(["official", "invite", "--unit", "ubnd-00229", "--name", "Trần Văn B"]) == 0
    captured = capsys.readouterr()
    assert CODE.search(captured.out) and "t.me" not in captured.out
    assert "getMe" in captured.err
