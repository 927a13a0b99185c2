"""Parse latency of one NLU model on loopback, in one run: p50/p95/p99 of raw `/model/parse`.

Run with the app environment:
`CIVICBOT_NLU_MODEL_PATH=nlu/models/civicbot.tar.gz .venv/bin/python scripts/parse_latency.py`.
It starts the model's Rasa server on 127.0.0.1, warms it up, then sends the messages one
at a time and prints the percentiles with the machine's load average before and after (the
2 cores are shared, so a figure means little without the load beside it). The messages are
the training data's texts (every kind and length, shuffled with a fixed seed); the dev sets
are not read here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time

import httpx
from civicbot_nlu.data import training_examples

from bot.bench import Latency
from bot.config import Settings
from bot.nlu import server

WARM_UP = 50


def messages(count: int) -> list[str]:
    texts = sorted({example.text for example in training_examples()})
    random.Random(0).shuffle(texts)
    return texts[:count]


async def sequential(url: str, token: str, texts: list[str]) -> Latency:
    samples = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for i, text in enumerate(texts):
            started = time.perf_counter()
            response = await http.post("/model/parse", params={"token": token}, json={"text": text})
            response.raise_for_status()
            if i >= WARM_UP:
                samples.append((time.perf_counter() - started) * 1000)
    return Latency(tuple(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="messages timed after warm-up")
    args = parser.parse_args()
    settings = Settings()
    texts = messages(args.count + WARM_UP)
    with server.local_server(settings) as (url, token):
        before = os.getloadavg()
        latency = asyncio.run(sequential(url, token, texts))
        after = os.getloadavg()
    print(f"model {settings.nlu_model_path}")
    print(latency.line("raw /model/parse, one at a time"))
    cores = os.cpu_count()
    print(f"load average (1 min) {before[0]:.1f} before, {after[0]:.1f} after, {cores} cores")


if __name__ == "__main__":
    main()
