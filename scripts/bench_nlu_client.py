"""HTTP clients for the NLU side by side in one run: the CPU each costs the product per parse.

The product's share of a message's CPU decides the pipeline's throughput (the 2 cores are
full in `bench_pipeline.py`'s bursts), so what an HTTP client costs per parse, against the
CPU of the whole pipeline per message, is what it costs in throughput.

Against the real Rasa server (started here, or `CIVICBOT_NLU_URL`), each client sends the
dev-set messages with 8 requests in flight (the NLU client's limit); the clients take turns,
round after round, so that the machine's drift touches them alike. This process's CPU time
(`time.process_time`) per parse is the client's cost: the server runs in another process.

Run with `.venv/bin/python scripts/bench_nlu_client.py [--rounds N] [--messages N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bench import workload  # noqa: E402
from bot.config import settings  # noqa: E402
from bot.nlu.client import MAX_IN_FLIGHT, NluClient  # noqa: E402
from bot.nlu.server import local_server  # noqa: E402

Post = Callable[[str], Awaitable[Any]]
Variant = Callable[[str, str], AbstractAsyncContextManager[Post]]


@asynccontextmanager
async def with_httpx(url: str, token: str) -> AsyncIterator[Post]:
    """httpx with its own transport (httpcore)."""
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits, timeout=5.0) as http:
        parse_url = httpx.URL(f"{url}/model/parse", params={"token": token})

        async def post(text: str) -> Any:
            response = await http.post(parse_url, json={"text": text})
            response.raise_for_status()
            return response.json()

        yield post


@asynccontextmanager
async def with_aiohttp(url: str, token: str) -> AsyncIterator[Post]:
    """aiohttp's client session (its C HTTP parser)."""
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(text: str) -> Any:
            async with http.post(
                f"{url}/model/parse", params={"token": token}, json={"text": text}
            ) as response:
                response.raise_for_status()
                return await response.json()

        yield post


@asynccontextmanager
async def with_nlu_client(url: str, token: str) -> AsyncIterator[Post]:
    """The product's NluClient: aiohttp plus the mapping and the place resolution."""
    async with NluClient(url, token) as client:
        yield client.parse


VARIANTS: dict[str, Variant] = {
    "httpx": with_httpx,
    "aiohttp": with_aiohttp,
    "NluClient": with_nlu_client,
}


async def one_round(
    variant: Variant, url: str, token: str, texts: list[str]
) -> tuple[float, float]:
    """CPU ms per parse in this process, and parses per second."""
    async with variant(url, token) as post:
        await asyncio.gather(*(post(text) for text in texts[:MAX_IN_FLIGHT]))  # connect
        queue = list(reversed(texts))

        async def worker() -> None:
            while queue:
                await post(queue.pop())

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(MAX_IN_FLIGHT)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / len(texts) * 1000, len(texts) / wall


async def compare(args: argparse.Namespace, url: str, token: str) -> None:
    texts = [text for text in workload() if text.strip()][: args.messages]
    chosen = {name: VARIANTS[name] for name in args.variants}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen}
    for variant in chosen.values():  # warm-up
        await one_round(variant, url, token, texts[:50])
    for round_number in range(1, args.rounds + 1):
        for name, variant in chosen.items():
            cpu, rate = await one_round(variant, url, token, texts)
            results[name].append((cpu, rate))
            print(f"round {round_number} {name:>10}: {cpu:.3f} ms CPU a parse, {rate:.0f}/s")
    print(f"\n{len(texts)} messages x {args.rounds} rounds, {MAX_IN_FLIGHT} in flight; medians:")
    for name, rows in results.items():
        cpu = statistics.median(row[0] for row in rows)
        rate = statistics.median(row[1] for row in rows)
        print(f"{name:>10}: {cpu:.3f} ms CPU a parse (this process), {rate:.0f} parses/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    arguments = parser.parse_args()
    # Started before the event loop: Rasa dies with the thread that started it (PDEATHSIG).
    with local_server(settings) as (nlu_url, nlu_token):
        asyncio.run(compare(arguments, nlu_url, nlu_token))
