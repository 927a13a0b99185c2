"""The `civicbot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings, settings

Handler = Callable[[argparse.Namespace, Settings], int]


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
    """Run the Rasa server in the foreground on loopback."""
    from bot.nlu import server

    if not config.nlu_model_path.exists():
        server.train(config)
    running = server.start(config, port=args.port, quiet=False)
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

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


def db_upgrade(args: argparse.Namespace, config: Settings) -> int:
    """Migrate the database (CIVICBOT_DATABASE_URL) to the newest schema."""
    from sqlalchemy.engine import make_url

    from storage import migrate

    migrate.upgrade(config.database_url, revision=args.revision)
    where = make_url(config.database_url).render_as_string(hide_password=True)
    print(f"{where}: at revision {migrate.current_revision(config.database_url)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All commands and their options."""
    parser = argparse.ArgumentParser(prog="civicbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    nlu = commands.add_parser("nlu", help="the Vietnamese NLU (Rasa)").add_subparsers(
        dest="nlu_command", required=True
    )
    train = nlu.add_parser("train", help="train the model if missing or stale")
    train.add_argument("--force", action="store_true", help="train even if up to date")
    train.set_defaults(handler=nlu_train)

    serve = nlu.add_parser("serve", help="run the Rasa server on loopback")
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

    bench_parser = commands.add_parser("bench", help="measure NLU latency and throughput")
    bench_parser.add_argument("--rounds", type=int, default=2, help="passes over the workload")
    bench_parser.set_defaults(handler=bench)

    run_parser = commands.add_parser("run", help="run the product (web chat at CIVICBOT_HTTP_*)")
    run_parser.set_defaults(handler=run)

    db = commands.add_parser("db", help="the database").add_subparsers(
        dest="db_command", required=True
    )
    upgrade = db.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    upgrade.set_defaults(handler=db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `civicbot`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
