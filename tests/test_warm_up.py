"""What the first message would load inside the event loop is loaded on a thread when the
app starts: the place names' index took 3 to 7 s to build, and while the first message
reading a place built it, no chat and no page was answered."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bot import app
from bot.config import Settings
from bot.nlu import location


class _Stopped(Exception):
    """Raised where `serve` would migrate the database: the test needs no more of it."""


def test_serve_builds_the_place_index_on_a_thread_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built_on: list[threading.Thread] = []
    built = threading.Event()
    build = location._build

    def recorded_build() -> location._Data:
        built_on.append(threading.current_thread())
        data = build()
        built.set()
        return data

    def stop(url: str) -> None:
        raise _Stopped

    monkeypatch.setattr(location, "_loaded", None)  # as in a process just started
    monkeypatch.setattr(location, "_build", recorded_build)
    monkeypatch.setattr(app, "upgrade", stop)
    config = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(_Stopped):
        asyncio.run(app.serve(config))
    assert built.wait(120), "the place index was not built at start-up"
    assert built_on and built_on[0] is not threading.main_thread()
