"""The whole pipeline under load: python-telegram-bot polling the fake Bot API, the real Rasa
server, the conversation and a SQLite database; compared with the raw NLU in the same run.

Run with `make bench` (or `.venv/bin/python scripts/bench_pipeline.py`). Reply latency is
the time from a message entering the fake Telegram server to the bot's first sendMessage
for that chat after it, so it includes long polling, the NLU, the database and sending.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API server lives with the tests

from fake_telegram import FakeTelegram  # noqa: E402

from bot.bench import Latency, throughput  # noqa: E402
from bot.channels.telegram import build_application, running_telegram  # noqa: E402
from bot.config import settings  # noqa: E402
from bot.conversation.engine import Conversation  # noqa: E402
from bot.nlu import server  # noqa: E402
from bot.nlu.client import NluClient  # noqa: E402
from storage.db import create_db_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

FIRST_CHAT = 7_000_000


def workload() -> list[str]:
    with (ROOT / "tests" / "data" / "nlu_dev.csv").open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f) if row["text"].strip()]


async def drive(fake: FakeTelegram, texts: list[str], chats: int, rate: float | None) -> Latency:
    """Send `texts` round-robin from `chats` citizens, at `rate` per second (None: at once),
    each chat waiting for its reply before its next message, as a person does."""
    pending: dict[int, list[str]] = {FIRST_CHAT + i: [] for i in range(chats)}
    for i, text in enumerate(texts):
        pending[FIRST_CHAT + i % chats].append(text)
    latencies: list[float] = []
    interval = 1.0 / rate * chats if rate else 0.0

    async def citizen(chat: int, messages: list[str]) -> None:
        await asyncio.sleep(interval * (chat - FIRST_CHAT) / chats)
        for text in messages:
            started = time.monotonic()
            before = len(fake.calls_to("sendMessage", chat_id=chat))
            fake.inject_text(chat, text)
            calls = await fake.wait_for(
                "sendMessage", before + 1, timeout=60, where=lambda c: c.params["chat_id"] == chat
            )
            latencies.append((calls[before].at - started) * 1000)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    await asyncio.gather(*(citizen(chat, messages) for chat, messages in pending.items()))
    return Latency(tuple(latencies))


async def main(args: argparse.Namespace) -> None:
    texts = workload()[: args.messages]
    with tempfile.TemporaryDirectory() as directory, server.local_server(settings) as (url, token):
        database = f"sqlite:///{directory}/bench.db"
        upgrade(database)
        engine = create_db_engine(database)
        raw_rate = await throughput(url, token, texts, concurrency=16)
        print(f"raw NLU through the client, 16 in flight: {raw_rate:.0f} messages/s")
        async with NluClient(url, token) as nlu:
            conversation = Conversation(nlu=nlu, engine=engine)
            with FakeTelegram() as fake:
                app = build_application(conversation, token=fake.token, base_url=fake.base_url)
                async with running_telegram(app, poll_timeout=1):
                    await drive(fake, texts[:20], chats=5, rate=None)  # warm-up
                    started = time.monotonic()
                    burst = await drive(fake, texts, chats=args.chats, rate=None)
                    seconds = time.monotonic() - started
                    pipeline_rate = len(texts) / seconds
                    print(
                        f"pipeline, {args.chats} chats as fast as they can: "
                        f"{pipeline_rate:.0f} messages/s "
                        f"({pipeline_rate / raw_rate:.0%} of the raw NLU); "
                        + burst.line("reply latency")
                    )
                    paced = await drive(fake, texts, chats=args.chats, rate=args.rate)
                    print(f"pipeline at {args.rate:.0f} messages/s: " + paced.line("reply latency"))
        engine.dispose()
    print(
        f"(mean NLU share of a reply: see `civicbot bench`; messages: {len(texts)}, "
        f"median text {statistics.median(len(t) for t in texts):.0f} chars)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50.0)
    asyncio.run(main(parser.parse_args()))
