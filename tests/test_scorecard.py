"""The public scorecard (issue 19): a hand-built November 2026 with every figure worked out by
hand, on SQLite and PostgreSQL; suppression of small cells; the league table; periods in
local time; and the privacy rules (no text, no code, no coordinates, nothing finer than the
ward) in the JSON and the page.

Tickets are built with the digest tests' `add_ticket` (the workflow's audit trail). The
threshold is 3 here (`MIN`): a figure over 1 or 2 tickets is suppressed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from test_dashboard import NoConversation
from test_digest import SECRET_NAME, SECRET_PHONES, SECRET_TEXT, Spec, add_ticket, local

from bot.config import settings
from bot.digest.scorecard import (
    Figure,
    Period,
    Scorecard,
    UnitScore,
    UnknownPublicUnit,
    league_between,
    parse_period,
    scorecard,
    unit_history,
)
from bot.web.app import STATIC_DIR, create_app
from bot.web.scorecard import scorecard_routes
from storage.models import Citizen, Ticket, Unit, UnitKind

TZ = "Asia/Ho_Chi_Minh"
MIN = 3
NOV, Q4 = Period("month", 2026, 11), Period("quarter", 2026, 4)
NOW = local("2026-12-06 12:00")
A, B, C, D = "phuong-ba-dinh", "phuong-hoan-kiem", "phuong-tay-ho", "phuong-ngoc-ha"
BODY, COMPANY = "so-xay-dung", "nuoc-sach-ha-noi"
LATITUDE, LONGITUDE = 21.034512, 105.841298

# fmt: off
SPECS = (
    # Ward A: received 6 in November (1–5 and 15), 16 is December's.
    # 1: accepted 1 h (on time), resolved 48 h (on time), rated 5.
    Spec(1, A, "sidewalk", "2026-11-02 09:00", "2026-11-02 17:00", "2026-11-06 17:00",
         (("2026-11-02 10:00", "accept"), ("2026-11-04 09:00", "resolve"),
          ("2026-11-05 09:00", "rate", "5"))),
    # 2: accepted late (24 h), resolved late (168 h), rated 2.
    Spec(2, A, "waste", "2026-11-03 09:00", "2026-11-03 17:00", "2026-11-07 17:00",
         (("2026-11-04 09:00", "accept"), ("2026-11-10 09:00", "resolve"),
          ("2026-11-11 09:00", "rate", "2"))),
    # 3: resolved 11-06, reopened 11-07 (new deadline 11-12), resolved again 11-08 (72 h, on
    # time), rated 4: two resolutions, the first reopened.
    Spec(3, A, "sidewalk", "2026-11-05 08:00", "2026-11-05 16:00", "2026-11-09 17:00",
         (("2026-11-05 09:00", "accept"), ("2026-11-06 08:00", "resolve"),
          ("2026-11-07 08:00", "reopen", "2026-11-12 17:00"), ("2026-11-08 08:00", "resolve"),
          ("2026-11-09 09:00", "rate", "4"))),
    # 4: accepted on time, resolved 36 h (on time), rated 3.
    Spec(4, A, "waste", "2026-11-10 10:00", "2026-11-10 18:00", "2026-11-14 17:00",
         (("2026-11-10 11:00", "accept"), ("2026-11-11 22:00", "resolve"),
          ("2026-11-12 09:00", "rate", "3"))),
    # 5: never accepted.
    Spec(5, A, "sidewalk", "2026-11-20 10:00", "2026-11-20 18:00", "2026-11-26 17:00"),
    # 15: 1 November 03:00 local (31 October 20:00 UTC): November's; accepted on time.
    Spec(15, A, "sidewalk", "2026-11-01 03:00", "2026-11-03 17:00", "2026-11-09 17:00",
         (("2026-11-02 09:00", "accept"),)),
    # 16: 1 December 05:00 local (30 November 22:00 UTC): December's, not November's.
    Spec(16, A, "sidewalk", "2026-12-01 05:00", "2026-12-01 17:00", "2026-12-07 17:00"),
    # Ward B: received 4, accepted on time 4/4, resolved on time 3/4, rated 5 5 4.
    Spec(6, B, "traffic", "2026-11-02 09:00", "2026-11-02 17:00", "2026-11-06 17:00",
         (("2026-11-02 09:30", "accept"), ("2026-11-03 09:00", "resolve"),
          ("2026-11-03 12:00", "rate", "5"))),
    Spec(7, B, "traffic", "2026-11-09 09:00", "2026-11-09 17:00", "2026-11-13 17:00",
         (("2026-11-09 10:00", "accept"), ("2026-11-12 09:00", "resolve"),
          ("2026-11-13 09:00", "rate", "5"))),
    Spec(8, B, "sidewalk", "2026-11-16 09:00", "2026-11-16 17:00", "2026-11-20 17:00",
         (("2026-11-16 10:00", "accept"), ("2026-11-17 09:00", "resolve"),
          ("2026-11-18 09:00", "rate", "4"))),
    Spec(9, B, "sidewalk", "2026-11-25 09:00", "2026-11-25 17:00", "2026-11-29 17:00",
         (("2026-11-25 10:00", "accept"), ("2026-11-30 18:00", "resolve"))),
    # Ward C: 2 tickets only: every figure suppressed.
    Spec(10, C, "waste", "2026-11-03 09:00", "2026-11-03 17:00", "2026-11-07 17:00",
         (("2026-11-03 10:00", "accept"), ("2026-11-04 09:00", "resolve"),
          ("2026-11-04 12:00", "rate", "1")), ward_of=A),
    Spec(11, C, "waste", "2026-11-04 09:00", "2026-11-04 17:00", "2026-11-08 17:00", ward_of=A),
    # The city body: 12 accepted late, 13 resolved late, 14 on time; no ratings.
    Spec(12, BODY, "construction", "2026-11-05 09:00", "2026-11-05 17:00", "2026-11-12 17:00",
         (("2026-11-06 09:00", "accept"), ("2026-11-07 09:00", "resolve")), ward_of=A),
    Spec(13, BODY, "construction", "2026-11-06 09:00", "2026-11-06 17:00", "2026-11-12 17:00",
         (("2026-11-06 10:00", "accept"), ("2026-11-13 09:00", "resolve")), ward_of=A),
    Spec(14, BODY, "construction", "2026-11-07 09:00", "2026-11-07 17:00", "2026-11-12 17:00",
         (("2026-11-07 10:00", "accept"), ("2026-11-08 09:00", "resolve")), ward_of=A),
    # 17: A's in October: in the quarter, not in November.
    Spec(17, A, "waste", "2026-10-20 09:00", "2026-10-20 17:00", "2026-10-24 17:00",
         (("2026-10-20 10:00", "accept"),)),
)
# fmt: on


def fill(engine: Engine) -> None:
    with Session(engine) as session:
        for unit_id, name, kind, ward in (
            (A, "UBND phường Ba Đình", UnitKind.ward, "00004"),
            (B, "UBND phường Hoàn Kiếm", UnitKind.ward, "00070"),
            (C, "UBND phường Tây Hồ", UnitKind.ward, "00091"),
            (D, "UBND phường Ngọc Hà", UnitKind.ward, "00025"),
            (BODY, "Sở Xây dựng Hà Nội", UnitKind.city, None),
            (COMPANY, "Công ty TNHH MTV Nước sạch Hà Nội", UnitKind.company, None),
        ):
            session.add(Unit(id=unit_id, name=name, kind=kind, ward_code=ward))
        session.add(Unit(id="phuong-cu", name="Phường đã giải thể", kind="ward", active=False))
        citizen = Citizen(display_name=SECRET_NAME, phone=SECRET_PHONES[0])
        session.add(citizen)
        session.flush()
        assert citizen.id is not None
        for spec in SPECS:
            add_ticket(session, spec, citizen.id)
        for ticket in session.exec(select(Ticket)).all():
            ticket.latitude, ticket.longitude = LATITUDE, LONGITUDE
            session.add(ticket)
        session.commit()


@pytest.fixture
def filled(engine: Engine) -> Engine:
    fill(engine)
    return engine


def card(engine: Engine, period: Period = NOV, min_tickets: int = MIN) -> Scorecard:
    with Session(engine) as session:
        return scorecard(session=session, period=period, tz=TZ, min_tickets=min_tickets, now=NOW)


def shown(f: Figure) -> float | None:
    """A figure's value; suppressed ones must carry neither value nor base."""
    if f.suppressed:
        assert f.value is None and f.base is None and f.suppressed == "few_tickets"
        return None
    return f.value


def row(score: UnitScore) -> tuple[object, ...]:
    return (
        score.rank,
        shown(score.received),
        shown(score.on_time_acceptance),
        shown(score.on_time_resolution),
        shown(score.median_hours_to_resolve),
        shown(score.ratings),
        shown(score.satisfaction),
        score.distribution,
        shown(score.reopen_rate),
    )


def test_periods_parse_and_bound_in_local_time() -> None:
    assert parse_period("2026-11") == NOV and parse_period(" 2026-q4 ") == Q4
    assert (
        str(NOV) == "2026-11" and str(Q4) == "2026-Q4" and str(parse_period("2026-3")) == "2026-03"
    )
    assert (NOV.title, Q4.title) == ("Tháng 11/2026", "Quý IV/2026")
    for bad in ("2026-13", "2026-00", "2026-Q5", "2026", "11/2026", "", "2026-W47", "99999-01"):
        with pytest.raises(ValueError):
            parse_period(bad)
    assert NOV.bounds(TZ) == (
        datetime(2026, 10, 31, 17, tzinfo=UTC),
        datetime(2026, 11, 30, 17, tzinfo=UTC),
    )
    assert Q4.bounds(TZ) == (
        datetime(2026, 9, 30, 17, tzinfo=UTC),
        datetime(2026, 12, 31, 17, tzinfo=UTC),
    )
    assert Period("month", 2026, 1).previous() == Period("month", 2025, 12)
    assert Period("quarter", 2026, 4).next() == Period("quarter", 2027, 1)
    assert Period.containing(datetime(2026, 11, 30, 17, 30, tzinfo=UTC), "month", TZ) == Period(
        "month", 2026, 12
    )
    assert [str(p) for p in Q4.recent(3)] == ["2026-Q2", "2026-Q3", "2026-Q4"]


def test_november_matches_hand_computed_figures(filled: Engine) -> None:
    s = card(filled)
    assert (s.period, s.kind, s.title, s.complete, s.min_tickets) == (
        "2026-11",
        "month",
        "Tháng 11/2026",
        True,
        MIN,
    )
    assert (s.period_start, s.period_end) == (local("2026-11-01 00:00"), local("2026-12-01 00:00"))
    by_id = {w.unit_id: w for w in (*s.wards, *s.city_bodies)}
    # A: received 1 2 3 4 5 15; acceptances with a deadline 1 2 3 4 15, on time all but 2;
    # resolved 1 2 3 4 (48 168 72 36 h), on time but 2; median (48 + 72) / 2; ratings 5 2 4 3;
    # resolutions 1 2 3 3 4, the first of 3 reopened.
    assert row(by_id[A]) == (
        2,
        6,
        0.8,
        0.75,
        60.0,
        4,
        3.5,
        {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1},
        0.2,
    )
    # B: 24 72 24 105 h, 9 late; ratings 5 5 4 (14 / 3).
    assert row(by_id[B]) == (
        1,
        4,
        1.0,
        0.75,
        48.0,
        3,
        4.67,
        {"1": 0, "2": 0, "3": 0, "4": 1, "5": 2},
        0.0,
    )
    # C: 2 tickets, 1 acceptance, 1 resolution, 1 rating: all under 3, all suppressed.
    assert row(by_id[C]) == (None, None, None, None, None, None, None, None, None)
    # D: nothing at all: nothing to hide, nothing to rate.
    no_ratings = {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}
    assert row(by_id[D]) == (None, 0, None, None, None, 0, None, no_ratings, None)
    assert by_id[D].received == Figure(value=0, base=0)
    # The city body: 12 accepted late, 13 resolved late; 24 48 168 h; no ratings.
    assert row(by_id[BODY]) == (None, 3, 0.6667, 0.6667, 48.0, 0, None, no_ratings, 0.0)
    assert by_id[A].on_time_resolution == Figure(value=0.75, base=4)
    assert by_id[A].reopen_rate == Figure(value=0.2, base=5)
    assert by_id[B].ratings == Figure(value=3, base=3)
    # League: A and B resolve 75 % on time; B's ratings are better. C and D have no place.
    assert [(w.unit_id, w.rank) for w in s.wards] == [(B, 1), (A, 2), (D, None), (C, None)]
    assert [b.unit_id for b in s.city_bodies] == [COMPANY, BODY]  # by name
    assert "phuong-cu" not in by_id  # inactive units are not published
    assert (by_id[A].ward_code, by_id[BODY].ward_code) == ("00004", None)


def test_quarter_and_threshold(filled: Engine) -> None:
    q4 = {w.unit_id: w for w in card(filled, Q4).wards}
    assert shown(q4[A].received) == 8  # 17 (October) and 16 (December) too
    assert shown(q4[A].on_time_acceptance) == round(5 / 6, 4)
    # With a threshold of 5, B's 4 tickets and 3 ratings are hidden, A's 6 tickets are not.
    five = {w.unit_id: w for w in card(filled, min_tickets=5).wards}
    assert shown(five[A].received) == 6
    # A's on-time resolution rate is over 4 resolved tickets: hidden, so A has no place.
    assert shown(five[A].on_time_resolution) is None and five[A].rank is None
    assert shown(five[A].satisfaction) is None and five[A].distribution is None  # 4 ratings
    assert shown(five[A].reopen_rate) == 0.2
    assert row(five[B])[:3] == (None, None, None)


def test_running_month_counts_up_to_now(filled: Engine) -> None:
    with Session(filled) as session:
        december = scorecard(
            session=session,
            period=Period("month", 2026, 12),
            tz=TZ,
            min_tickets=1,
            now=local("2026-12-01 06:00"),
        )
    assert not december.complete and december.period_end == local("2026-12-01 06:00")
    assert {w.unit_id: shown(w.received) for w in december.wards}[A] == 1


def test_league_of_any_span_and_unit_history(filled: Engine) -> None:
    with Session(filled) as session:
        table = league_between(
            session=session,
            start=local("2026-11-01 00:00"),
            end=local("2026-12-01 00:00"),
            min_tickets=MIN,
        )
        history = unit_history(session=session, unit_id=A, tz=TZ, min_tickets=MIN, now=NOW)
        with pytest.raises(UnknownPublicUnit):
            unit_history(session=session, unit_id="phuong-cu", tz=TZ, min_tickets=MIN, now=NOW)
    assert [(w.unit_id, w.rank) for w in table] == [(B, 1), (A, 2), (D, None), (C, None)]
    assert [p for p, _title, _s in history.months][-3:] == ["2026-10", "2026-11", "2026-12"]
    assert len(history.months) == 12 and len(history.quarters) == 4
    months = {p: s for p, _t, s in history.months}
    assert row(months["2026-11"])[1:] == row(card(filled).wards[1])[1:]
    assert shown(months["2026-10"].received) is None  # 1 ticket: suppressed
    assert shown(months["2026-09"].received) == 0


def test_no_text_code_or_coordinates_in_the_json(filled: Engine) -> None:
    for period in (NOV, Q4):
        text = json.dumps(card(filled, period).model_dump(mode="json"), ensure_ascii=False)
        for secret in (SECRET_NAME, "Bí Mật", SECRET_TEXT, *SECRET_PHONES, "424242", "PA-2026"):
            assert secret not in text
        for coordinate in (str(LATITUDE), str(LONGITUDE), "21.03", "105.84"):
            assert coordinate not in text
        # No field names that would carry text or places finer than a ward.
        for field in ("description", "location", "latitude", "longitude", "code", "phone"):
            assert f'"{field}"' not in text


# --- The page and its JSON ------------------------------------------------------------------


@pytest.fixture
def client(filled: Engine) -> Iterator[TestClient]:
    """The scorecard's routes at a fixed moment (6 December 2026), threshold 3."""
    config = settings.model_copy(update={"scorecard_min_tickets": MIN, "timezone": TZ})
    app = Starlette(
        routes=[
            *scorecard_routes(engine=filled, settings=config, clock=lambda: NOW),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    with TestClient(app) as test_client:
        yield test_client


def test_the_json_is_the_scorecard(client: TestClient, filled: Engine) -> None:
    answer = client.get("/api/scorecard?period=2026-11")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == card(filled).model_dump(mode="json")
    assert client.get("/api/scorecard").json()["period"] == "2026-11"  # the last complete month
    assert client.get("/api/scorecard?period=2026-Q4").json()["kind"] == "quarter"
    ward = client.get(f"/api/scorecard/units/{A}").json()
    assert ward["unit_id"] == A and len(ward["months"]) == 12
    for bad in ("2026-13", "2027-01", "abc", "2026-11' OR 1=1", "9" * 5000):
        refused = client.get("/api/scorecard", params={"period": bad})
        assert refused.status_code == 400 and refused.json()["error"] == "bad_period"
    assert client.get("/api/scorecard/units/no-such-unit").status_code == 404
    assert client.get("/api/scorecard/units/phuong-cu").status_code == 404


def test_the_pages_show_the_league_and_hide_small_cells(client: TestClient) -> None:
    page = client.get("/bang-xep-hang?ky=2026-11")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "<script" not in html
    assert "Tháng 11/2026" in html and "Xếp hạng phường, xã" in html
    league = html[html.index('id="league"') : html.index('id="bodies"')]
    # B first, then A; C's figures are dashes, with the reason in the footer.
    assert league.index("Hoàn Kiếm") < league.index("Ba Đình") < league.index("Tây Hồ")
    assert "4,67★" in league and "75,0%" in league and "60,0" in league
    tay_ho = league[league.index("Tây Hồ") :].split("</tr>")[0]
    assert tay_ho.count("—") == 6
    assert "ít hơn 3 phản ánh" in html
    assert "Sở Xây dựng Hà Nội" in html[html.index('id="bodies"') :]
    unit = client.get(f"/bang-xep-hang/{A}")
    assert unit.status_code == 200 and "<svg" in unit.text and "<rect" in unit.text
    assert "Tháng 11/2026" in unit.text and "Quý IV/2026" in unit.text
    assert client.get("/bang-xep-hang?ky=2026-99").status_code == 400
    assert "Kỳ báo cáo không hợp lệ" in client.get("/bang-xep-hang?ky=x").text
    assert client.get("/bang-xep-hang/<script>").status_code == 404
    assert client.get("/static/scorecard.css").status_code == 200


def test_no_citizen_data_on_the_pages(client: TestClient) -> None:
    texts = [
        client.get(path).text
        for path in (
            "/bang-xep-hang?ky=2026-11",
            "/bang-xep-hang?ky=2026-Q4",
            f"/bang-xep-hang/{A}",
            f"/bang-xep-hang/{C}",
            f"/api/scorecard/units/{A}",
        )
    ]
    for text in texts:
        for secret in (SECRET_NAME, "Bí Mật", SECRET_TEXT, *SECRET_PHONES, "424242", "PA-2026"):
            assert secret not in text
        for coordinate in ("21.03", "105.84", "21,03", "105,84"):
            assert coordinate not in text


def test_the_app_serves_it_without_signing_in(engine: Engine) -> None:
    app = create_app(NoConversation(), engine=engine)
    with TestClient(app, follow_redirects=False) as test_client:
        assert test_client.get("/bang-xep-hang").status_code == 200
        assert test_client.get("/api/scorecard").json()["wards"] == []
