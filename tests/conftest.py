"""Shared fixtures: the real Rasa server, started once for the whole run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.config import settings
from bot.nlu import server


@pytest.fixture(scope="session")
def nlu_server() -> Iterator[server.RunningServer]:
    """A real Rasa server on loopback with the trained model (`make test` trains it)."""
    if not settings.nlu_model_path.exists():
        pytest.fail(f"No trained model at {settings.nlu_model_path}: run `make test`.")
    running = server.start(settings)
    yield running
    server.stop(running)
