"""`civicbot bench`: speed of the NLU as the app sees it (latency and throughput)."""

from __future__ import annotations

import asyncio
import csv
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.nlu.client import NluClient

WORKLOAD = Path(__file__).resolve().parent.parent / "tests" / "data" / "nlu_dev.csv"


def percentile(values: list[float] | tuple[float, ...], percent: float) -> float:
    """Nearest-rank percentile: the smallest value with `percent` % of values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Latency:
    """Per-request times in milliseconds."""

    samples: tuple[float, ...]

    def percentile(self, percent: float) -> float:
        return percentile(self.samples, percent)

    def line(self, label: str) -> str:
        return (
            f"{label}: n={len(self.samples)} p50 {self.percentile(50):.1f} ms, "
            f"p95 {self.percentile(95):.1f} ms, p99 {self.percentile(99):.1f} ms, "
            f"mean {statistics.fmean(self.samples):.1f} ms"
        )


def workload() -> list[str]:
    """Realistic messages: the dev set's texts."""
    with WORKLOAD.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


async def sequential_latency(url: str, token: str, messages: list[str]) -> tuple[Latency, Latency]:
    """One request at a time: raw `/model/parse`, then through the app's client."""
    raw: list[float] = []
    async with httpx.AsyncClient(base_url=url) as http:
        for text in messages:
            started = time.perf_counter()
            response = await http.post("/model/parse", params={"token": token}, json={"text": text})
            response.raise_for_status()
            raw.append((time.perf_counter() - started) * 1000)
    through_client: list[float] = []
    async with NluClient(url, token) as client:
        for text in messages:
            started = time.perf_counter()
            await client.parse(text)
            through_client.append((time.perf_counter() - started) * 1000)
    return Latency(tuple(raw)), Latency(tuple(through_client))


async def throughput(url: str, token: str, messages: list[str], concurrency: int) -> float:
    """Messages per second with `concurrency` requests in flight through the client."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in messages:
        queue.put_nowait(text)
    async with NluClient(url, token) as client:

        async def worker() -> None:
            while not queue.empty():
                await client.parse(queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(messages) / (time.perf_counter() - started)


async def run_nlu_bench(url: str, token: str, *, rounds: int = 2) -> list[str]:
    """The NLU benchmark's report lines."""
    messages = workload()
    async with NluClient(url, token) as client:
        for text in messages[:50]:
            await client.parse(text)  # warm-up
    raw, through_client = await sequential_latency(url, token, messages * rounds)
    lines = [
        raw.line("raw /model/parse, sequential"),
        through_client.line("app client, sequential"),
    ]
    for concurrency in (1, 4, 16):
        rate = await throughput(url, token, messages * rounds, concurrency)
        lines.append(f"app client, {concurrency:>2} in flight: {rate:.0f} messages/s")
    return lines
