"""CPU time of one Bot API call in the bot's process, per networking backend of
python-telegram-bot: its own `HTTPXRequest` and ours, `AiohttpRequest`.

The fake Bot API server runs in a subprocess, so only the caller's CPU is counted.
`sendMessage` is called `--calls` times, `--in-flight` at a time, for each backend in turn,
`--rounds` times (the machine's speed drifts; the rounds show by how much).

Run with `make bench` (or `.venv/bin/python scripts/bench_bot_api.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API server lives with the tests
sys.path.insert(0, str(ROOT))

from fake_telegram import TOKEN  # noqa: E402
from telegram import Bot  # noqa: E402
from telegram.request import BaseRequest, HTTPXRequest  # noqa: E402

from bot.channels.bot_api_request import AiohttpRequest  # noqa: E402

SERVE_FAKE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from fake_telegram import FakeTelegram
fake = FakeTelegram().start()
print(fake.base_url, flush=True)
time.sleep(3600)
"""


async def cpu_per_call(base_url: str, backend: BaseRequest, calls: int, in_flight: int) -> float:
    """Microseconds of this process's CPU per sendMessage."""
    bot = Bot(TOKEN, base_url=base_url, request=backend)
    async with bot:
        for _ in range(100):
            await bot.send_message(7_000_000, "warm-up")
        left = list(range(calls))

        async def sender() -> None:
            while left:
                i = left.pop()
                await bot.send_message(7_000_000 + i % 50, f"Xin chào anh/chị, tin nhắn số {i}")

        started = time.process_time()
        await asyncio.gather(*(sender() for _ in range(in_flight)))
        return (time.process_time() - started) / calls * 1e6


async def main(args: argparse.Namespace) -> None:
    fake = subprocess.Popen(
        [sys.executable, "-c", SERVE_FAKE, str(ROOT / "tests")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        base_url = fake.stdout.readline().strip()
        backends: dict[str, Callable[[], BaseRequest]] = {
            "HTTPXRequest (PTB's own)": lambda: HTTPXRequest(connection_pool_size=args.in_flight),
            "AiohttpRequest (ours)": lambda: AiohttpRequest(connection_limit=args.in_flight),
        }
        results: dict[str, list[float]] = {name: [] for name in backends}
        for _ in range(args.rounds):
            for name, make in backends.items():
                results[name].append(
                    await cpu_per_call(base_url, make(), args.calls, args.in_flight)
                )
        print(f"sendMessage, {args.calls} calls, {args.in_flight} in flight, CPU µs per call:")
        for name, values in results.items():
            print(f"  {name}: " + ", ".join(f"{v:.0f}" for v in values))
    finally:
        fake.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
