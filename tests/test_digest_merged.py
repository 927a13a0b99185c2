"""The weekly digest lists the duplicates merged in the week (issue 19), on both databases:
per unit and city-wide, in every format and in the chat message, without citizen data."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from seed import linked_official, two_wards_and_city, waste_ticket
from sqlalchemy import Engine
from sqlmodel import Session

from bot.digest.aggregate import Digest, IsoWeek, weekly_digest
from bot.digest.render import FORMATS, message_text, render
from bot.duplicates.merge import merge
from storage.models import OfficialRole

MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội, week 48
W48 = IsoWeek(2026, 48)
SECRET = "Nhà ông Bí Mật số 424242"


def test_the_digest_lists_the_duplicates_merged_in_the_week(engine: Engine) -> None:
    with Session(engine) as session:
        two_wards_and_city(session)
        handler = linked_official(session, "ward-a", "a1", OfficialRole.handler, now=MONDAY)
        kept = waste_ticket(
            session, "ward-a", now=MONDAY, description=SECRET, ward=("00001", "Phường A")
        )
        duplicate = waste_ticket(
            session, "ward-a", now=MONDAY, chat="other", ward=("00001", "Phường A")
        )
        other_unit = waste_ticket(session, "ward-b", now=MONDAY, chat="third")
        merge(
            session=session,
            duplicate=duplicate,
            into=kept,
            official=handler,
            now=MONDAY + timedelta(hours=2),
        )
        codes = (kept.code, duplicate.code, other_unit.code)
        digests = {
            unit: weekly_digest(
                session=session,
                week=W48,
                unit_id=unit,
                tz="Asia/Ho_Chi_Minh",
                now=MONDAY + timedelta(days=7),
            )
            for unit in ("ward-a", "ward-b", None)
        }
        earlier = weekly_digest(
            session=session,
            week=W48.previous(),
            unit_id=None,
            tz="Asia/Ho_Chi_Minh",
            now=MONDAY + timedelta(days=7),
        )
    kept_code, duplicate_code, _ = codes
    for unit in ("ward-a", None):
        [merged] = digests[unit].merged_duplicates
        assert (merged.code, merged.into, merged.ward_name) == (
            duplicate_code,
            kept_code,
            "Phường A",
        )
        assert merged.category_name == "Rác thải, vệ sinh môi trường"
    assert digests["ward-b"].merged_duplicates == earlier.merged_duplicates == ()

    digest: Digest = digests["ward-a"]
    assert json.loads(render(digest, "json"))["merged_duplicates"][0]["into"] == kept_code
    assert Digest.model_validate_json(render(digest, "json")) == digest
    assert f"| {duplicate_code} | {kept_code} |" in render(digest, "md")
    assert "Phản ánh trùng đã gộp (1)" in render(digest, "md")
    rows = list(csv.reader(io.StringIO(render(digest, "csv"))))
    assert [
        "Trùng đã gộp",
        duplicate_code,
        "Rác thải, vệ sinh môi trường",
        "Gộp vào",
        kept_code,
    ] in rows
    assert f"<td>{duplicate_code}</td><td>{kept_code}</td>" in render(digest, "html")
    assert f"Phản ánh trùng đã gộp: {duplicate_code} → {kept_code}" in message_text(digest)
    for fmt in FORMATS:
        assert "Bí Mật" not in render(digest, fmt) and "424242" not in render(digest, fmt)
