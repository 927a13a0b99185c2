"""The `civicbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from bot.config import Settings, settings

if TYPE_CHECKING:
    from sqlmodel import Session

Handler = Callable[[argparse.Namespace, Settings], int]


@contextlib.contextmanager
def database(config: Settings) -> Iterator[Session]:
    """A session on the configured database, migrated to the newest schema first."""
    from storage import migrate
    from storage.db import create_db_engine, get_session

    migrate.upgrade(config.database_url)
    engine = create_db_engine(config.database_url)
    try:
        with get_session(engine) as session:
            yield session
    finally:
        engine.dispose()


def invocation() -> str:
    """This command line as typed, for reports that say how they were made."""
    return "civicbot " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def nlu_train(args: argparse.Namespace, config: Settings) -> int:
    """Train the NLU model when it is missing or older than its inputs."""
    from bot.nlu import server

    path = server.train(config, force=args.force)
    print(path)
    return 0


def nlu_serve(args: argparse.Namespace, config: Settings) -> int:
    """Run one Rasa replica in the foreground (`--host 0.0.0.0`: for other machines; the
    app lists the replicas in CIVICBOT_NLU_URL and they share CIVICBOT_NLU_TOKEN)."""
    from bot.nlu import server

    if args.host != server.LOOPBACK and "nlu_token" not in config.model_fields_set:
        print(
            "civicbot: serving beyond loopback needs CIVICBOT_NLU_TOKEN set (the app "
            "must send the same one).",
            file=sys.stderr,
        )
        return 2
    if not config.nlu_model_path.exists():
        server.train(config)
    running = server.start(config, port=args.port, quiet=False, host=args.host)
    print(f"NLU server at {running.url} (token in CIVICBOT_NLU_TOKEN)", file=sys.stderr)
    try:
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(running)
    return 0


def nlu_parse(args: argparse.Namespace, config: Settings) -> int:
    """Print one JSON object per message (PRODUCT.md §4)."""
    from bot.nlu import server
    from bot.nlu.client import NluClient

    if args.jsonl == (args.text is not None):
        print("Give either TEXT or --jsonl.", file=sys.stderr)
        return 2

    async def run(url: str, token: str) -> None:
        async with NluClient.from_settings(url, token, config) as client:
            lines = (line.rstrip("\n") for line in sys.stdin) if args.jsonl else [args.text]
            for line in lines:
                result = await client.parse(line)
                print(json.dumps(result.as_json(), ensure_ascii=False), flush=True)

    with server.local_server(config) as (url, token):
        asyncio.run(run(url, token))
    return 0


def nlu_eval(args: argparse.Namespace, config: Settings) -> int:
    """Score the NLU on a labelled CSV and print (and optionally write) the report."""
    from civicbot_nlu.data import training_examples

    from bot.nlu import evaluate, server
    from bot.nlu.client import NluClient

    examples = evaluate.read_examples(Path(args.file), (e.text for e in training_examples()))

    async def run(url: str, token: str) -> evaluate.Report:
        async with NluClient.from_settings(url, token, config) as client:
            await client.parse("xin chào")  # warm-up, not counted
            return await evaluate.evaluate(client, examples)

    with server.local_server(config) as (url, token):
        report = asyncio.run(run(url, token))
    text = evaluate.markdown(report, source=args.file, command=invocation())
    print(text)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text + "\n", encoding="utf-8")
    if args.chart:
        evaluate.confusion_chart(report, Path(args.chart))
    return 0


def bench(args: argparse.Namespace, config: Settings) -> int:
    """Measure the NLU's latency and throughput on loopback."""
    from bot.bench import run_nlu_bench
    from bot.nlu import server

    with server.local_server(config) as (url, token):
        lines = asyncio.run(run_nlu_bench(url, token, rounds=args.rounds))
    print(f"# {invocation()}")
    print("\n".join(lines))
    return 0


def run(args: argparse.Namespace, config: Settings) -> int:
    """Run the product: web chat, webhooks and every configured channel."""
    from bot.app import serve

    if not _shared_secrets_set(config):
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


def _shared_secrets_set(config: Settings) -> bool:
    """False, with what to set, when a secret every process must share is generated."""
    missing = config.missing_shared_secrets()
    if missing:
        print(
            "civicbot: on PostgreSQL every process must share its secrets; set "
            f"{', '.join(missing)} to the same values in every process (`openssl rand -hex "
            "32` makes one; see docs/deploy.md).",
            file=sys.stderr,
        )
    return not missing


def worker(args: argparse.Namespace, config: Settings) -> int:
    """Run the periodic jobs (escalation, reminders, weekly digests) when this process leads;
    any number may run: one leads, the others stand by."""
    from bot.jobs import work

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(work(config))
    return 0


def telegram_set_webhook(args: argparse.Namespace, config: Settings) -> int:
    """Register CIVICBOT_TELEGRAM_WEBHOOK_URL and its secret with Telegram, once per deploy."""
    from telegram import Bot
    from telegram.error import TelegramError

    from bot.channels.telegram import set_webhook

    url = args.url or config.telegram_webhook_url
    if not (config.telegram_token and url):
        print(
            "civicbot: set CIVICBOT_TELEGRAM_TOKEN and CIVICBOT_TELEGRAM_WEBHOOK_URL (or --url).",
            file=sys.stderr,
        )
        return 2
    if "telegram_webhook_secret" not in config.model_fields_set:
        print(
            "civicbot: set CIVICBOT_TELEGRAM_WEBHOOK_SECRET: every app process checks "
            "deliveries against it.",
            file=sys.stderr,
        )
        return 2

    async def register(token: str, url: str) -> None:
        async with Bot(token, base_url=config.telegram_base_url) as bot:
            await set_webhook(bot, url=url, secret=config.telegram_webhook_secret)

    try:
        asyncio.run(register(config.telegram_token, url))
    except (TelegramError, ValueError) as error:
        print(f"civicbot: setWebhook failed: {error}", file=sys.stderr)
        return 1
    print(f"Telegram webhook: {url}")
    return 0


def db_upgrade(args: argparse.Namespace, config: Settings) -> int:
    """Migrate the database (CIVICBOT_DATABASE_URL) to the newest schema."""
    from sqlalchemy.engine import make_url

    from storage import migrate

    migrate.upgrade(config.database_url, revision=args.revision)
    where = make_url(config.database_url).render_as_string(hide_password=True)
    print(f"{where}: at revision {migrate.current_revision(config.database_url)}")
    return 0


def official_invite(args: argparse.Namespace, config: Settings) -> int:
    """Create (or find) an official and print a one-time code that links their account."""
    from datetime import UTC, datetime

    from bot.directory.store import ensure_directory
    from bot.officials.invites import INVITE_VALIDITY, invite_official
    from storage.models import OfficialRole

    with database(config) as session:
        ensure_directory(session=session)
        try:
            official, code = invite_official(
                session=session, unit_id=args.unit, name=args.name,
                role=OfficialRole(args.role), now=datetime.now(UTC),
            )  # fmt: skip
        except ValueError as error:
            print(f"civicbot: {error}", file=sys.stderr)
            return 1
    print(f"Official #{official.id} {official.name} ({official.role.value}, {official.unit_id})")
    days = INVITE_VALIDITY.days
    print(f"Code: {code}  (valid {days} days; send it to the bot on Telegram or Zalo)")
    username = telegram_username(config)
    if username:
        print(f"Telegram link: https://t.me/{username}?start={code.replace('-', '')}")
    elif config.telegram_token:
        print("(no Telegram link: the Bot API's getMe did not answer)", file=sys.stderr)
    return 0


def telegram_username(config: Settings) -> str | None:
    """The bot's username from the Bot API's getMe (CIVICBOT_TELEGRAM_TOKEN and _BASE_URL),
    for its t.me link; None without a token or an answer."""
    import json
    import urllib.error
    import urllib.request

    if not config.telegram_token:
        return None
    url = f"{config.telegram_base_url}{config.telegram_token}/getMe"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            me = json.load(answer)
    except (OSError, ValueError):  # unreachable, refused, or not JSON
        return None
    username = (me.get("result") or {}).get("username") if isinstance(me, dict) else None
    return username if isinstance(username, str) and username else None


def official_list(args: argparse.Namespace, config: Settings) -> int:
    """List officials: unit, role, channel, linked or not."""
    from sqlmodel import col, select

    from storage.models import Official

    with database(config) as session:
        statement = select(Official).order_by(col(Official.unit_id), col(Official.id))
        if args.unit:
            statement = statement.where(Official.unit_id == args.unit)
        for o in session.exec(statement):
            linked = "-" if o.active else "removed"
            if o.active and o.channel and o.linked_at:
                linked = f"{o.channel.value} {o.linked_at:%Y-%m-%d}"
            print(f"{o.id}\t{o.unit_id}\t{o.role.value}\t{linked}\t{o.name}")
    return 0


def official_signin_link(args: argparse.Namespace, config: Settings) -> int:
    """Print a one-time URL that signs an official in to the dashboard (bot/web/dashboard/)."""
    from datetime import UTC, datetime

    from bot.officials.signin import LINK_VALIDITY, create_signin_link, signin_link_url

    try:
        with database(config) as session:
            token = create_signin_link(
                session=session, official_id=args.official, now=datetime.now(UTC)
            )
    except ValueError as error:
        print(f"civicbot: {error}", file=sys.stderr)
        return 1
    print(signin_link_url(token, args.base_url))
    minutes = int(LINK_VALIDITY.total_seconds() // 60)
    print(f"(one use, valid {minutes} minutes)", file=sys.stderr)
    return 0


def official_remove(args: argparse.Namespace, config: Settings) -> int:
    """Deactivate an official: chat account unlinked, dashboard sessions ended."""
    from datetime import UTC, datetime

    from bot.officials.invites import remove_official

    try:
        with database(config) as session:
            official = remove_official(
                session=session, official_id=args.official, actor="cli", now=datetime.now(UTC)
            )
    except ValueError as error:
        print(f"civicbot: {error}", file=sys.stderr)
        return 1
    print(f"Official #{official.id} {official.name} removed: unlinked, signed out everywhere.")
    return 0


def purge(args: argparse.Namespace, config: Settings) -> int:
    """Blank message texts and phone numbers older than the retention period."""
    from datetime import UTC, datetime, timedelta

    from bot.retention import purge as purge_rows

    days = args.days if args.days is not None else config.retention_days
    if days < 1:
        print("civicbot: --days must be at least 1.", file=sys.stderr)
        return 2
    before = datetime.now(UTC) - timedelta(days=days)
    with database(config) as session:
        purged = purge_rows(session=session, before=before, dry_run=args.dry_run)
    verb = "would blank" if args.dry_run else "blanked"
    print(f"Personal data older than {days} days (before {before:%Y-%m-%d %H:%M} UTC): {verb}")
    for line in purged.lines():
        print(f"  {line}")
    return 0


# --- units: the directory (bot/directory) --------------------------------------------------


def units_import(args: argparse.Namespace, config: Settings) -> int:
    """Check a directory file; if it is valid, migrate the database and load it."""
    from bot.directory.loader import DirectoryFileError, format_problem, load_directory
    from bot.directory.store import import_directory

    try:
        directory = load_directory(Path(args.file))
    except DirectoryFileError as error:
        for line, message in error.errors:
            print(format_problem(args.file, line, message), file=sys.stderr)
        print(f"{args.file}: {len(error.errors)} error(s); nothing imported.", file=sys.stderr)
        return 1
    for line, message in directory.warnings:
        print(format_problem(args.file, line, f"warning: {message}"), file=sys.stderr)
    with database(config) as session:
        summary = import_directory(session=session, directory=directory, actor="cli")
    print("\n".join(summary.lines()))
    return 0


def units_show(args: argparse.Namespace, config: Settings) -> int:
    """Print the units as a tree by parent, and the routing rules."""
    from bot.directory.show import rules_table, unit_officials, unit_tree

    with database(config) as session:
        try:
            lines = unit_tree(session=session, root_id=args.unit)
        except KeyError:
            print(f"civicbot: unknown unit {args.unit}", file=sys.stderr)
            return 1
        if args.unit:
            lines += ["", *unit_officials(session=session, unit_id=args.unit)]
        lines += ["", *rules_table(session=session)]
    print("\n".join(lines))
    return 0


# --- digest: weekly complaint digests (bot/digest) ------------------------------------------


def digest(args: argparse.Namespace, config: Settings) -> int:
    """Print (or write) one week's digest, for one unit or the whole city."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.digest.aggregate import IsoWeek, UnknownUnit, parse_iso_week
    from bot.digest.render import csv_bytes, render
    from bot.digest.scorecard import digest_with_league

    tz = ZoneInfo(config.timezone)
    last = IsoWeek.last_complete(datetime.now(UTC), tz)
    try:
        week = parse_iso_week(args.week) if args.week else last
    except ValueError as error:
        print(f"civicbot: {error}", file=sys.stderr)
        return 2
    try:
        with database(config) as session:
            found = digest_with_league(
                session=session,
                week=week,
                unit_id=args.unit,
                tz=tz,
                min_tickets=config.scorecard_min_tickets,
            )
    except UnknownUnit:
        print(f"civicbot: unknown unit {args.unit}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(render(found, args.format))
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "csv":
        output.write_bytes(csv_bytes(found))  # with the byte-order mark spreadsheets need
    else:
        output.write_text(render(found, args.format), encoding="utf-8")
    print(f"{output}: digest {week} ({found.unit_name})", file=sys.stderr)
    return 0


# --- catalog: the procedure catalog's upkeep (bot/catalog) -----------------------------------


def catalog_check(args: argparse.Namespace, config: Settings) -> int:
    """List stale and uncertain catalog entries; exit 1 when any entry is stale."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from bot.catalog.catalog import load_catalog, load_catalog_file
    from bot.catalog.provenance import report, staleness

    try:
        catalog = load_catalog_file(Path(args.file)) if args.file else load_catalog()
        today = date.fromisoformat(args.today) if args.today else None
    except (OSError, ValueError) as error:
        print(f"civicbot: {error}", file=sys.stderr)
        return 2
    today = today or datetime.now(ZoneInfo(config.timezone)).date()
    max_age = args.max_age_days or config.catalog_max_age_days
    findings = staleness(catalog, today=today, max_age_days=max_age)
    print(report(findings, today=today, max_age_days=max_age, total=len(catalog.procedures)))
    return 1 if any(f.stale for f in findings) else 0


# The subcommands of a parser, as `add_subparsers` returns them.
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_nlu_commands(commands: _Commands) -> None:
    nlu = commands.add_parser("nlu", help="the Vietnamese NLU (Rasa)").add_subparsers(
        dest="nlu_command", required=True
    )
    train = nlu.add_parser("train", help="train the model if missing or stale")
    train.add_argument("--force", action="store_true", help="train even if up to date")
    train.set_defaults(handler=nlu_train)

    serve = nlu.add_parser("serve", help="run one Rasa server (a replica)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=5005)
    serve.set_defaults(handler=nlu_serve)

    parse = nlu.add_parser("parse", help="print what the NLU understands, as JSON")
    parse.add_argument("text", nargs="?", help="the message")
    parse.add_argument("--jsonl", action="store_true", help="one message per stdin line")
    parse.set_defaults(handler=nlu_parse)

    evaluate = nlu.add_parser("eval", help="accuracy, F1, confusion, latency on a CSV")
    evaluate.add_argument("file", help="CSV with text,intent,category,procedure")
    evaluate.add_argument("--report", help="also write the Markdown report here")
    evaluate.add_argument("--chart", help="also write the confusion matrices as PNG here")
    evaluate.set_defaults(handler=nlu_eval)


def _add_run_commands(commands: _Commands) -> None:
    """What runs the product and prepares it: bench, run, worker, telegram, db."""
    bench_parser = commands.add_parser("bench", help="measure NLU latency and throughput")
    bench_parser.add_argument("--rounds", type=int, default=2, help="passes over the workload")
    bench_parser.set_defaults(handler=bench)

    run_parser = commands.add_parser("run", help="run the product (web chat at CIVICBOT_HTTP_*)")
    run_parser.set_defaults(handler=run)

    worker_parser = commands.add_parser(
        "worker", help="run the periodic jobs (one process of the cluster at a time)"
    )
    worker_parser.set_defaults(handler=worker)

    telegram = commands.add_parser("telegram", help="the Telegram bot").add_subparsers(
        dest="telegram_command", required=True
    )
    set_hook = telegram.add_parser(
        "set-webhook", help="register CIVICBOT_TELEGRAM_WEBHOOK_URL and its secret (deploy step)"
    )
    set_hook.add_argument("--url", help="default: CIVICBOT_TELEGRAM_WEBHOOK_URL")
    set_hook.set_defaults(handler=telegram_set_webhook)

    db = commands.add_parser("db", help="the database").add_subparsers(
        dest="db_command", required=True
    )
    upgrade = db.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    upgrade.set_defaults(handler=db_upgrade)


def _add_official_commands(commands: _Commands) -> None:
    official = commands.add_parser("official", help="officials and their accounts").add_subparsers(
        dest="official_command", required=True
    )
    invite = official.add_parser("invite", help="a one-time code linking an official's account")
    invite.add_argument("--unit", required=True, help="unit id (see `civicbot units show`)")
    invite.add_argument("--name", required=True, help="the official's full name")
    invite.add_argument("--role", default="handler", choices=["handler", "supervisor", "leader"])
    invite.set_defaults(handler=official_invite)
    listing = official.add_parser("list", help="officials, their units and linked accounts")
    listing.add_argument("--unit", help="only this unit")
    listing.set_defaults(handler=official_list)
    signin_link = official.add_parser(
        "signin-link", help="a one-time URL signing an official in to the web dashboard"
    )
    signin_link.add_argument("--official", type=int, required=True, help="official id (list)")
    signin_link.add_argument(
        "--base-url",
        help="the dashboard's public base URL "
        "(default: http://CIVICBOT_HTTP_HOST:CIVICBOT_HTTP_PORT)",
    )
    signin_link.set_defaults(handler=official_signin_link)
    remove = official.add_parser("remove", help="deactivate an official; ends their sessions")
    remove.add_argument("--official", type=int, required=True, help="official id (list)")
    remove.set_defaults(handler=official_remove)


def _add_data_commands(commands: _Commands) -> None:
    """The data's upkeep: purge, units, digest, catalog."""
    purge_parser = commands.add_parser(
        "purge", help="blank message texts and phone numbers past CIVICBOT_RETENTION_DAYS"
    )
    purge_parser.add_argument("--dry-run", action="store_true", help="only count")
    purge_parser.add_argument("--days", type=int, help="override CIVICBOT_RETENTION_DAYS")
    purge_parser.set_defaults(handler=purge)

    units = commands.add_parser("units", help="the units directory and routing").add_subparsers(
        dest="units_command", required=True
    )
    units_load = units.add_parser("import", help="check a directory file and load it")
    units_load.add_argument("file", help="YAML directory file (see bot/directory/hanoi.yml)")
    units_load.set_defaults(handler=units_import)
    units_tree = units.add_parser("show", help="the units by parent and the routing rules")
    units_tree.add_argument("--unit", help="only this unit's subtree, with its officials")
    units_tree.set_defaults(handler=units_show)

    digest_parser = commands.add_parser("digest", help="a week's complaint digest")
    digest_parser.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: the last one)")
    digest_parser.add_argument("--unit", help="unit id (default: the whole city)")
    digest_parser.add_argument("--format", default="md", choices=["md", "json", "csv", "html"])
    digest_parser.add_argument("--output", help="write to this file instead of printing")
    digest_parser.set_defaults(handler=digest)

    catalog = commands.add_parser("catalog", help="the procedure catalog").add_subparsers(
        dest="catalog_command", required=True
    )
    check = catalog.add_parser("check", help="stale and uncertain entries (exit 1 if stale)")
    check.add_argument("--max-age-days", type=int, help="default: CIVICBOT_CATALOG_MAX_AGE_DAYS")
    check.add_argument("--today", help="the date to check against, YYYY-MM-DD (default: today)")
    check.add_argument("--file", help="a catalog file to check (default: the bundled one)")
    check.set_defaults(handler=catalog_check)


def build_parser() -> argparse.ArgumentParser:
    """All commands and their options."""
    parser = argparse.ArgumentParser(prog="civicbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_nlu_commands(commands)
    _add_run_commands(commands)
    _add_official_commands(commands)
    _add_data_commands(commands)
    return parser


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(config: Settings, *, verbose: bool = False) -> None:
    """Text lines, or JSON objects one per line (CIVICBOT_LOG_FORMAT=json) with the same
    fields plus the process id and any exception, for a log collector."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                json_ensure_ascii=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    """Entry point of `civicbot`."""
    args = build_parser().parse_args(argv)
    configure_logging(settings, verbose=args.verbose)
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
