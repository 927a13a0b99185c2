"""The whole pipeline under load: the product (`civicbot run`, in its own process) with its
Telegram bot polling a fake Bot API server in this process, the real Rasa server and a SQLite
database; compared with the raw NLU in the same run.

Run with `make bench` (or `.venv/bin/python scripts/bench_pipeline.py`). Reply latency is
the time from a message entering the fake Telegram server to the bot's first sendMessage
for that chat after it, so it includes long polling, the NLU, the database and sending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API server lives with the tests

from fake_telegram import FakeTelegram  # noqa: E402

from bot.bench import Latency, throughput  # noqa: E402
from bot.config import settings  # noqa: E402
from bot.nlu import server  # noqa: E402

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
    replies: dict[int, asyncio.Queue[float]] = {chat: asyncio.Queue() for chat in pending}
    latencies: list[float] = []
    interval = 1.0 / rate * chats if rate else 0.0

    async def watch() -> None:
        # One reader of the fake's call log for all chats: scanning it once per chat and
        # poll would load the fake (same process) more than the bot does.
        seen = len(fake.calls)
        while True:
            calls = fake.calls
            for call in calls[seen:]:
                if call.method == "sendMessage" and call.params.get("chat_id") in replies:
                    replies[call.params["chat_id"]].put_nowait(call.at)
            seen = len(calls)
            await asyncio.sleep(0.002)

    async def citizen(chat: int, messages: list[str]) -> None:
        await asyncio.sleep(interval * (chat - FIRST_CHAT) / chats)
        for text in messages:
            while not replies[chat].empty():  # a second reply to the previous message
                replies[chat].get_nowait()
            started = time.monotonic()
            fake.inject_text(chat, text)
            answered_at = await asyncio.wait_for(replies[chat].get(), timeout=60)
            latencies.append((answered_at - started) * 1000)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(citizen(chat, messages) for chat, messages in pending.items()))
    finally:
        watcher.cancel()
    return Latency(tuple(latencies))


@contextlib.contextmanager
def product(fake: FakeTelegram, nlu_url: str, nlu_token: str, directory: str) -> Iterator[None]:
    """`civicbot run` in its own process, its Telegram bot pointed at the fake."""
    env = dict(
        os.environ,
        CIVICBOT_DATABASE_URL=f"sqlite:///{directory}/bench.db",
        CIVICBOT_NLU_URL=nlu_url,
        CIVICBOT_NLU_TOKEN=nlu_token,
        CIVICBOT_HTTP_PORT=str(server.free_port()),
        CIVICBOT_TELEGRAM_TOKEN=fake.token,
        CIVICBOT_TELEGRAM_BASE_URL=fake.base_url,
    )
    env.pop("CIVICBOT_TELEGRAM_WEBHOOK_URL", None)
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
        if "BENCH_PROFILE" in os.environ
        else []
    )
    process = subprocess.Popen(
        [sys.executable, *profile, "-m", "bot.cli", "run"], env=env, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 120
        while not fake.calls_to("getUpdates"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("civicbot run did not start polling")
            time.sleep(0.2)
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


async def main(args: argparse.Namespace) -> None:
    texts = workload()[: args.messages]
    with tempfile.TemporaryDirectory() as directory, server.local_server(settings) as (url, token):
        raw_rate = await throughput(url, token, texts, concurrency=16)
        print(f"raw NLU through the client, 16 in flight: {raw_rate:.0f} messages/s")
        with FakeTelegram() as fake, product(fake, url, token, directory):
            await drive(fake, texts[:20], chats=5, rate=None)  # warm-up
            started = time.monotonic()
            burst = await drive(fake, texts, chats=args.chats, rate=None)
            pipeline_rate = len(texts) / (time.monotonic() - started)
            print(
                f"pipeline, {args.chats} chats as fast as they can: "
                f"{pipeline_rate:.0f} messages/s ({pipeline_rate / raw_rate:.0%} of the raw NLU); "
                + burst.line("reply latency")
            )
            paced = await drive(fake, texts, chats=args.chats, rate=args.rate)
            print(f"pipeline at {args.rate:.0f} messages/s: " + paced.line("reply latency"))
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
