"""Configuration: one `Settings` class read from CIVICBOT_* variables and `.env`."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
NLU_DIR = ROOT / "nlu"


class Settings(BaseSettings):
    """Names and defaults as in ../shared/PRODUCT.md §5."""

    model_config = SettingsConfigDict(
        env_prefix="CIVICBOT_", env_file=ROOT / ".env", extra="ignore"
    )

    database_url: str = f"sqlite:///{ROOT / 'var' / 'civicbot.db'}"
    nlu_url: str | None = None
    nlu_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    telegram_token: str | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    zalo_bot_token: str | None = None
    zalo_bot_base_url: str = "https://bot-api.zaloplatforms.com"
    zalo_webhook_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    units_file: Path | None = None
    timezone: str = "Asia/Ho_Chi_Minh"

    # Not part of the contract: tuning an operator rarely needs.
    nlu_timeout_seconds: float = 5.0
    nlu_max_chars: int = 1000
    nlu_model_path: Path = NLU_DIR / "models" / "civicbot.tar.gz"

    @cached_property
    def nlu_python(self) -> Path:
        """The Rasa environment's interpreter."""
        return NLU_DIR / ".venv" / "bin" / "python"


settings = Settings()
