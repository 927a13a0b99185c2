"""Configuration: one `Settings` class read from CIVICBOT_* variables and `.env`."""

from __future__ import annotations

import secrets
from datetime import date, time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import limits
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from bot.categories import CATEGORIES
from storage.db import DEFAULT_DATABASE_URL, use_database
from storage.models import Severity

ROOT = Path(__file__).resolve().parent.parent
NLU_DIR = ROOT / "nlu"


# --- Service-level defaults (see `Settings.severity_by_category` and the fields after it) ---
#
# Modelled on Hà Nội's rules for citizens' reports on its own platform: Quy chế quản lý, vận
# hành và sử dụng Ứng dụng Công dân số Thủ đô iHanoi, ban hành kèm theo Quyết định số
# 1207/QĐ-UBND ngày 28/02/2025 của UBND Thành phố Hà Nội (as reported by Tiền Phong, 03/03/2025,
# https://thactrang.com/tin-tuc/ha-noi-quy-dinh-ro-thoi-han-phai-xu-ly-phan-anh-cua-nguoi-dan-
# tren-ihanoi-195527.html, and Lao động Thủ đô, https://laodongthudo.vn/ha-noi-ban-hanh-quy-che-
# quan-ly-van-hanh-ung-dung-cong-dan-thu-do-so-ihanoi-185721.html; the decision's own text was
# not reachable here). What those sources state, and CivicBot follows:
# - three levels: khẩn (urgent: natural disasters, epidemics, accidents, theft and robbery,
#   dangers to safety, security and order that need handling at once), phức tạp (complex:
#   several bodies involved, or a procedure the law prescribes) and bình thường (normal);
# - every report is accepted within 8 working hours, verification on site included;
# - an urgent report is handled within 4 working hours after acceptance.
# NOT found in what is reachable here: the decision's limits for normal and complex reports.
# The 5 and 15 working days below are CivicBot's own earlier figures, kept until they are
# checked against the decision's text (docs/service-levels.md).

DEFAULT_SEVERITY_BY_CATEGORY: dict[str, Severity] = {c.code: c.severity for c in CATEGORIES}
DEFAULT_ACCEPT_HOURS: dict[Severity, float] = {
    Severity.urgent: 8,
    Severity.normal: 8,
    Severity.complex: 8,
}
# Working hours to handle a report after its acceptance; a level without a figure (None) is
# given working days instead (`DEFAULT_RESOLVE_DAYS`).
DEFAULT_HANDLE_HOURS: dict[Severity, float | None] = {
    Severity.urgent: 4,
    Severity.normal: None,
    Severity.complex: None,
}
DEFAULT_RESOLVE_DAYS: dict[Severity, int] = {
    Severity.urgent: 1,
    Severity.normal: 5,
    Severity.complex: 15,
}
# Words (folded, without diacritics) that make any report urgent whatever its category: the
# decision's accidents and dangers to safety and security. Whole words or phrases.
DEFAULT_URGENT_WORDS: tuple[str, ...] = tuple(
    word.strip()
    for word in """
    tai nan, nguy hiem, nguy co sap, sap do, do sap, bi sap, cay do, cay gay, day dien dut,
    day dien roi, dien giat, ro ri khi, ro ri gas, ro gas, chay no, phat no, sat lo, sut lun,
    ho tu than, mat nap cong, mat nap ho ga, trom cuop, cuop giat, an cuop, danh nhau,
    hon chien, mat an toan, mat an ninh, de doa tinh mang, nguoi bi thuong, dich benh, ngo doc
    """.split(",")
)
# Holidays that `holidays.Vietnam` lists but no law in force confirms (see calendar.py): they
# count as working days until the operator removes them here.
DEFAULT_UNCONFIRMED_HOLIDAYS: tuple[str, ...] = ("Ngày Văn hóa Việt Nam",)
_SERVICE_LEVEL_DEFAULTS: dict[str, Any] = {
    "severity_by_category": DEFAULT_SEVERITY_BY_CATEGORY,
    "accept_hours": DEFAULT_ACCEPT_HOURS,
    "handle_hours": DEFAULT_HANDLE_HOURS,
    "resolve_days": DEFAULT_RESOLVE_DAYS,
}

RATE_LIMIT_FIELDS = (
    *(
        f"web_{what}_per_{who}"
        for what in ("messages", "updates", "photos")
        for who in ("client", "session")
    ),
    "web_sessions_per_client",
)


class Settings(BaseSettings):
    """Names and defaults as in ../shared/PRODUCT.md §5."""

    model_config = SettingsConfigDict(
        env_prefix="CIVICBOT_", env_file=ROOT / ".env", extra="ignore"
    )

    # Secrets (and a URL that may hold a password) stay out of repr() and tracebacks' locals.
    database_url: str = Field(default=DEFAULT_DATABASE_URL, repr=False)
    nlu_url: str | None = None
    nlu_token: str = Field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    telegram_token: str | None = Field(default=None, repr=False)
    telegram_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str = Field(
        default_factory=lambda: secrets.token_urlsafe(24), repr=False
    )
    zalo_bot_token: str | None = Field(default=None, repr=False)
    zalo_bot_base_url: str = "https://bot-api.zaloplatforms.com"
    zalo_webhook_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    units_file: Path | None = None
    timezone: str = "Asia/Ho_Chi_Minh"

    # Not part of the contract: tuning an operator rarely needs.
    nlu_timeout_seconds: float = 5.0
    nlu_max_chars: int = 1000
    nlu_model_path: Path = NLU_DIR / "models" / "civicbot.tar.gz"

    # --- Service levels: severities, deadlines in working time, escalation -----------------
    # (bot/directory/deadlines.py, bot/tickets/escalation.py; the rules they follow are in
    # the comment above `DEFAULT_SEVERITY_BY_CATEGORY`). The maps below are JSON in the
    # environment and are merged over the defaults: `{"traffic": "urgent"}` changes one.
    severity_by_category: dict[str, Severity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_BY_CATEGORY)
    )
    default_severity: Severity = Severity.normal  # other categories and unknown ones
    # A report whose text names an accident or a danger is urgent whatever its category
    # (CIVICBOT_URGENT_WORDS, a JSON list of folded words; `[]` turns this off).
    urgent_words: tuple[str, ...] = DEFAULT_URGENT_WORDS
    # Working hours to accept a report, per severity (1207/QĐ-UBND: 8 for every level).
    accept_hours: dict[Severity, float] = Field(default_factory=lambda: dict(DEFAULT_ACCEPT_HOURS))
    # Working hours to handle it after acceptance (1207/QĐ-UBND: urgent 4); `null` for a
    # level means: use `resolve_days`.
    handle_hours: dict[Severity, float | None] = Field(
        default_factory=lambda: dict(DEFAULT_HANDLE_HOURS)
    )
    # Working days to resolve, per severity without `handle_hours` (CivicBot's own figures).
    resolve_days: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_RESOLVE_DAYS))
    # Working hours after a missed deadline (supervisors told) before the parent unit is told.
    escalation_step_hours: float = 8.0
    # A question the citizen leaves unanswered this many working days: they are reminded and
    # the unit told it may conclude the ticket (the resolve clock is stopped meanwhile).
    citizen_answer_days: int = Field(default=5, ge=1)
    # Office hours of a working day, local time; lunch is not working time.
    work_periods: tuple[tuple[time, time], ...] = ((time(8), time(12)), (time(13), time(17)))
    # Days `holidays.Vietnam` does not know yet (late government decisions).
    extra_holidays: tuple[date, ...] = ()
    # Names of `holidays.Vietnam` holidays not counted as days off (CIVICBOT_UNCONFIRMED_
    # HOLIDAYS, a JSON list; `[]` once the law confirms them). See bot/directory/calendar.py.
    unconfirmed_holidays: tuple[str, ...] = DEFAULT_UNCONFIRMED_HOLIDAYS
    extra_workdays: tuple[date, ...] = ()

    # --- The procedure catalog (bot/catalog/procedures.yml) ---------------------------------
    # An entry whose `checked` date is older than this is stale: `civicbot catalog check`
    # lists it and the test suite fails on it.
    catalog_max_age_days: int = Field(default=180, ge=1)

    # --- Open311 GeoReport v2 (bot/web/open311/) ---------------------------------------------
    # API keys allowed to POST service requests, a JSON list in the environment:
    # CIVICBOT_OPEN311_API_KEYS='["key-of-app-1", "key-of-app-2"]'. Empty: POST is refused.
    open311_api_keys: list[str] = []

    # --- Web chat abuse limits (bot/channels/web_limits.py) ----------------------------------
    # Moving windows in the `limits` syntax ("N per [M] second|minute|hour|day", several
    # joined by ";"), counted per client address and per web chat session. Over the limit the
    # request gets HTTP 429 and a polite Vietnamese message.
    web_messages_per_client: str = "40 per 10 seconds; 600 per hour"
    web_messages_per_session: str = "8 per 10 seconds; 30 per minute; 300 per hour"
    web_updates_per_client: str = "600 per minute"  # the page polls every 4 s per tab
    web_updates_per_session: str = "60 per minute"
    web_photos_per_client: str = "60 per hour"
    web_photos_per_session: str = "10 per 10 minutes; 30 per day"
    web_sessions_per_client: str = "30 per hour"  # new sessions: no way round the above
    # The web chat's session cookie lives this many days (notifications reach it meanwhile).
    web_session_days: int = Field(default=180, ge=1)
    # Photos from the web chat: largest upload, and where they are kept (JPEG, by hash).
    web_photo_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    upload_dir: Path = ROOT / "var" / "uploads"

    # --- The public scorecard (bot/digest/scorecard.py, /bang-xep-hang) ---------------------
    # A figure computed over fewer tickets than this (but some) is not published: "—".
    scorecard_min_tickets: int = Field(default=5, ge=1)

    # --- Proof of the fix (bot/tickets/proof.py) ----------------------------------------------
    # Categories a unit may only resolve with a photo of the result (CIVICBOT_PROOF_REQUIRED,
    # a JSON list of category codes, e.g. '["sidewalk", "waste"]'). Empty: a photo is optional.
    proof_required: tuple[str, ...] = ()

    # --- Per-citizen daily caps, every channel (bot/tickets/intake.py) ------------------------
    # Tickets filed and people asked for by one citizen per local day (CIVICBOT_TIMEZONE).
    max_tickets_per_day: int = Field(default=10, ge=1)
    max_person_requests_per_day: int = Field(default=5, ge=1)

    # --- One problem, one ticket (bot/duplicates/) -------------------------------------------
    # An open ticket covers a new report of its category in its ward, or pinned within this
    # many metres of its pin, filed at most this many days after it (and saying much the same).
    duplicate_radius_m: float = Field(default=150.0, ge=0)
    duplicate_days: int = Field(default=28, ge=1)

    # --- Officials' dashboard (bot/web/dashboard/) -------------------------------------------
    # Signs the dashboard's session cookies; generated when unset (a restart then signs
    # everyone out). Set it when several processes serve the dashboard.
    dashboard_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    # The dashboard's public address, for the sign-in links sent to officials' chats
    # (default: http://CIVICBOT_HTTP_HOST:CIVICBOT_HTTP_PORT).
    dashboard_url: str | None = None
    # Sign-in budgets per hour (bot/officials/signin.py). Codes asked for on the sign-in page
    # by anyone: per official, per client address, and in all; links an official asks for
    # in their own chat (/dangnhap), which anonymous requests cannot spend.
    dashboard_codes_per_official: int = Field(default=3, ge=1)
    dashboard_codes_per_client: int = Field(default=10, ge=1)
    dashboard_codes_overall: int = Field(default=60, ge=1)
    dashboard_chat_signins_per_official: int = Field(default=5, ge=1)

    # --- Several processes on one PostgreSQL (docs/deploy.md) ---------------------------------
    # Whether `civicbot run` also runs the periodic jobs (escalation, reminders, the weekly
    # digests). Either way they run in one process of the cluster at a time: the one holding
    # the jobs' lock (storage/locks.py). `false` leaves them to `civicbot worker`.
    run_jobs: bool = True
    # The database connection pool of each process (SQLAlchemy's QueuePool; PostgreSQL).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    # Log lines as text, or as JSON objects one per line (for a log collector).
    log_format: Literal["text", "json"] = "text"
    # `/metrics` (Prometheus) answers requests from loopback, or any request carrying
    # `Authorization: Bearer <this token>`; without a token only loopback may read it.
    metrics_token: str | None = Field(default=None, repr=False)

    # --- Personal data (bot/retention.py, `civicbot purge`; docs/security.md) ---------------
    # Days message texts and phone numbers are kept; `civicbot purge` blanks older ones.
    retention_days: int = Field(default=365, ge=1)

    @field_validator(*RATE_LIMIT_FIELDS)
    @classmethod
    def _rate_limits_parse(cls, value: str) -> str:
        limits.parse_many(value)  # ValueError for a malformed one: caught at start-up
        return value

    @field_validator(
        "severity_by_category", "accept_hours", "handle_hours", "resolve_days", mode="before"
    )
    @classmethod
    def _merge_over_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        defaults = _SERVICE_LEVEL_DEFAULTS[info.field_name or ""]
        return {**defaults, **value} if isinstance(value, dict) else value

    @property
    def web_base_url(self) -> str:
        """This server's public address, for links sent to chats (no trailing "/")."""
        return (self.dashboard_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def missing_shared_secrets(self) -> list[str]:
        """The variables that must be set, not generated, when this is one of several
        processes on one PostgreSQL: a secret generated per process differs between them
        (webhooks refused with 403, dashboard sessions valid in one process only)."""
        if make_url(self.database_url).get_backend_name() != "postgresql":
            return []
        needed = {
            "dashboard_secret": True,
            "telegram_webhook_secret": bool(self.telegram_token and self.telegram_webhook_url),
            "zalo_webhook_secret": bool(self.zalo_bot_token),
            "nlu_token": bool(self.nlu_url),
        }
        return [
            f"CIVICBOT_{name.upper()}"
            for name, need in needed.items()
            if need and name not in self.model_fields_set
        ]

    @cached_property
    def nlu_python(self) -> Path:
        """The Rasa environment's interpreter."""
        return NLU_DIR / ".venv" / "bin" / "python"


settings = Settings()
use_database(  # read when first used: tests may change them
    lambda: settings.database_url,
    pool=lambda: {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_seconds,
    },
)
