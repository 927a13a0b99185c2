"""Weekly digests on a year of tickets: how long one week's digest takes at 250k, 500k and
1,000,000 tickets on PostgreSQL, and which indexes the queries use.

Run with `make bench` (or `.venv/bin/python scripts/bench_digest.py`). The first run starts a
PostgreSQL server from the binaries tests/pg.py finds, with its data directory under
`var/bench-digest/` (kept), and fills three databases in one pass of
scripts/generate_tickets.py: a year of 1,000,000 tickets, and the same tickets of the last
half year and quarter (about 500k and 250k). The three hold the same recent weeks, so the week
measured has the same tickets in all three and only the table around it grows. Later runs
reuse the data and take a minute or so.

Measured: the digest of the week that ended just before the data's "now" (the one Monday's
schedule sends), city-wide, for a busy ward and a city body, and for all units in a row (the
SQL of Monday's job, without charts); the median of `--runs` after one warm-up run. Then
EXPLAIN (ANALYZE) of every statement of a city-wide and a ward digest on the largest
database: the indexes each uses, and any sequential scan of a large table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL starter lives with the tests
sys.path.insert(0, str(ROOT / "scripts"))

import generate_tickets  # noqa: E402
import pg  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from bot.digest.aggregate import IsoWeek, weekly_digest  # noqa: E402
from bot.digest.render import chart_png  # noqa: E402
from storage import migrate  # noqa: E402
from storage.db import create_db_engine  # noqa: E402
from storage.models import Unit  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DIRECTORY = ROOT / "var" / "bench-digest"
# The data set. Changing any of these makes the next run generate it again.
TICKETS = 1_000_000
DAYS = 365
END = datetime.fromisoformat("2026-11-23T08:00:00+07:00")  # Monday 08:00: 2026-W47 is due
SEED = 1
# Database name -> the days of filing it keeps (None: all).
SIZES: dict[str, float | None] = {"digest_1m": None, "digest_500k": 182.5, "digest_250k": 91.25}
DATA = {
    "version": 1,
    "tickets": TICKETS,
    "days": DAYS,
    "end": END.isoformat(),
    "seed": SEED,
    "sizes": SIZES,
}
SETTINGS = {  # a modest production-like server; no fsync: the data is a cache, remade at will
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "1GB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "random_page_cost": "1.1",  # data in RAM or on SSD, as on any current server
    "max_connections": "20",
}
BIG_TABLES = ("ticket", "ticket_event", "message")


def prepare_data(server: pg.PostgresServer) -> dict[str, str]:
    """The databases of DATA, generated unless the kept ones match; name -> URL."""
    marker = DIRECTORY / "data.json"
    urls = {name: server.url_of(name) for name in SIZES}
    if marker.exists() and json.loads(marker.read_text()) == DATA:
        for url in urls.values():
            migrate.upgrade(url)  # newer migrations (indexes) since the data was made
        return urls
    for name in urls:
        server.drop_database(name)
        server.create_database(name)
    print(f"Generating {TICKETS:,} tickets (once; kept in {DIRECTORY}) …", flush=True)
    began = time.monotonic()
    stats = generate_tickets.generate_into(
        [generate_tickets.Target(urls[name], keep) for name, keep in SIZES.items()],
        tickets=TICKETS,
        days=DAYS,
        end=END,
        seed=SEED,
        progress=True,
    )
    seconds = time.monotonic() - began
    for name, url in urls.items():
        counts = stats[url].counts
        print(
            f"  {name}: {counts['ticket']:,} tickets, {counts['ticket_event']:,} events, "
            f"{counts['message']:,} messages"
        )
    print(f"  generated and loaded in {seconds:.0f} s (all three databases, one pass)")
    marker.write_text(json.dumps(DATA))
    return urls


# --- Measuring -----------------------------------------------------------------------------


def median_ms(work: Callable[[], object], runs: int) -> float:
    """The median wall time of `work` over `runs` runs, after one warm-up run."""
    work()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def digest_ms(engine: Engine, week: IsoWeek, unit_id: str | None, runs: int) -> float:
    def work() -> None:
        with Session(engine) as session:
            weekly_digest(session=session, week=week, unit_id=unit_id, tz=TZ)

    return median_ms(work, runs)


def all_units_seconds(engine: Engine, week: IsoWeek) -> tuple[float, int]:
    """Every unit's digest in a row (what Monday's job computes, charts aside)."""
    with Session(engine) as session:
        units = list(session.exec(select(Unit.id).order_by(col(Unit.id))).all())
        began = time.perf_counter()
        for unit_id in units:
            weekly_digest(session=session, week=week, unit_id=unit_id, tz=TZ)
        return time.perf_counter() - began, len(units)


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with parameters) run on `engine` inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def explain(engine: Engine, week: IsoWeek, unit_id: str | None) -> list[str]:
    """One line per statement of a digest: its time and the scans it used."""
    with statements(engine) as seen, Session(engine) as session:
        weekly_digest(session=session, week=week, unit_id=unit_id, tz=TZ)
    lines = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            row = cursor.fetchone()
            assert row is not None
            document = row[0][0]
            scans = []
            for node in _plan_nodes(document["Plan"]):
                relation, index = node.get("Relation Name"), node.get("Index Name")
                if index:
                    scans.append(f"{node['Node Type']} {index}")
                elif relation and node["Node Type"] == "Seq Scan":
                    flag = " (LARGE TABLE!)" if relation in BIG_TABLES else ""
                    scans.append(f"Seq Scan {relation}{flag}")
            what = " ".join(statement.split())[:60]
            used = ", ".join(dict.fromkeys(scans)) or "no table scan"
            lines.append(f"{document['Execution Time']:8.1f} ms  {what}…  [{used}]")
    finally:
        raw.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--regenerate", action="store_true", help="make the data again")
    args = parser.parse_args(argv)
    if args.regenerate:
        (DIRECTORY / "data.json").unlink(missing_ok=True)
    began = time.monotonic()
    server = pg.start_in(DIRECTORY, SETTINGS, keep=True)  # the data is kept between runs
    try:
        print(f"PostgreSQL {server.version}, data in {DIRECTORY}; {SETTINGS}")
        urls = prepare_data(server)
        end = END
        week = IsoWeek.last_complete(end, TZ)
        older = week
        for _ in range(8):
            older = older.previous()
        engines = {name: create_db_engine(url) for name, url in urls.items()}
        largest = engines["digest_1m"]
        with Session(largest) as session:
            city = weekly_digest(session=session, week=week, unit_id=None, tz=TZ)
        ward = f"ubnd-{city.top_wards[0].key}"
        body = "so-xay-dung"
        print(
            f"\nWeek {week} (digest due {end:%Y-%m-%d %H:%M}); busiest ward unit {ward}; "
            f"median of {args.runs} runs after a warm-up.\n"
        )
        print(
            "| tickets in the table | filed in the week | city-wide | "
            f"one ward ({ward}) | {body} | all units, one by one |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for name in ("digest_250k", "digest_500k", "digest_1m"):
            engine = engines[name]
            with engine.connect() as connection:
                total = connection.exec_driver_sql("SELECT count(*) FROM ticket").scalar_one()
            with Session(engine) as session:
                received = weekly_digest(session=session, week=week, unit_id=None, tz=TZ)
            all_seconds, units = all_units_seconds(engine, week)
            print(
                f"| {total:,} | {received.counts.received:,} | "
                f"{digest_ms(engine, week, None, args.runs):,.0f} ms | "
                f"{digest_ms(engine, week, ward, args.runs):,.0f} ms | "
                f"{digest_ms(engine, week, body, args.runs):,.0f} ms | "
                f"{all_seconds:.1f} s ({units} units) |",
                flush=True,
            )
        print(
            f"\nAn older week on the largest table ({older}: its 'open at the end' goes "
            f"through every status change since): city-wide "
            f"{digest_ms(largest, older, None, args.runs):,.0f} ms, one ward "
            f"{digest_ms(largest, older, ward, args.runs):,.0f} ms."
        )
        png_ms = median_ms(lambda: chart_png(city), args.runs)
        print(f"Chart (PNG, matplotlib) of the city-wide digest: {png_ms:,.0f} ms.")
        print(
            f"The city-wide digest of {week}: {city.counts.received:,} received, "
            f"{city.counts.resolved:,} resolved, {city.counts.open:,} open and "
            f"{city.counts.overdue:,} overdue at the end, on time "
            f"{(city.on_time_rate or 0) * 100:.1f} %, medians "
            f"{city.median_hours_to_accept} h to accept and {city.median_hours_to_resolve} h "
            "to resolve."
        )
        for label, unit_id in (("city-wide", None), (ward, ward)):
            print(f"\nEXPLAIN (ANALYZE) of each statement of the {label} digest, 1M tickets:")
            print("\n".join(explain(largest, week, unit_id)))
        for engine in engines.values():
            engine.dispose()
    finally:
        server.stop()
    print(f"\n({time.monotonic() - began:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
