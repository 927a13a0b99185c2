"""Where the browser tests save their screenshots."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bot.config import ROOT


def screenshot_folder() -> Path:
    """`docs/` with CIVICBOT_UPDATE_SCREENSHOTS=1 (to refresh the README's pictures), else a
    temporary folder, so that a test run leaves the work tree as it was."""
    if os.environ.get("CIVICBOT_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs"
    return Path(tempfile.mkdtemp(prefix="civicbot-screens-"))
