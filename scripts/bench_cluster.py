"""Throughput of CivicBot deployed behind nginx: 1 or 2 app processes × 1 or 2 Rasa replicas.

Each configuration is started as tests/cluster.py starts it (PostgreSQL, `civicbot nlu serve`
replicas, nginx with TLS, `civicbot run` processes, the fake Telegram posting every update to
the webhook through nginx), then `--chats` citizens each send `--messages` questions, each
after the answer to the one before (as people do). Throughput: messages answered per second
from the first message sent to the last answer. The configurations run one after the other
in one run (twice each with `--rounds 2`, interleaved), on the same machine.

    .venv/bin/python scripts/bench_cluster.py --chats 40 --messages 6
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
cluster_module: Any = importlib.import_module("cluster")
pg: Any = importlib.import_module("pg")

QUESTIONS = (
    "làm căn cước cho con cần gì",
    "lam ho chieu het bao nhieu tien",
    "đăng ký tạm trú cho người thuê trọ nộp ở đâu",
    "xin giay khai sinh cho con o dau",
    "cấp lại giấy phép lái xe bị mất làm thế nào",
    "đăng ký kết hôn cần giấy tờ gì",
)
CONFIGURATIONS = ((1, 1), (2, 2), (1, 2), (2, 1))


async def _answered(fake: Any, chat: int, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(fake.sent_texts(chat)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"chat {chat}: no answer {count}")
        await asyncio.sleep(0.02)


async def _citizen(fake: Any, chat: int, messages: int) -> None:
    for index in range(messages):
        fake.inject_text(chat, QUESTIONS[(chat + index) % len(QUESTIONS)])
        await _answered(fake, chat, index + 1)


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (a replica is `civicbot nlu serve` and
    the Rasa process it starts), from /proc."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(_rss_mib(int(child)) for child in children)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(server: Any, apps: int, replicas: int, chats: int, messages: int) -> dict[str, Any]:
    url = server.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    directory = Path(tempfile.mkdtemp(prefix="civicbot-bench-"))
    cluster = cluster_module.Cluster.start(directory, url, apps=apps, replicas=replicas)
    try:
        first = 1_000_000 * (apps * 10 + replicas)

        async def warm_up() -> None:  # one message per app process and replica, not counted
            await asyncio.gather(*(_citizen(cluster.fake, first - 1 - i, 1) for i in range(4)))

        async def everyone() -> None:
            await asyncio.gather(
                *(_citizen(cluster.fake, first + i, messages) for i in range(chats))
            )

        asyncio.run(warm_up())
        load_before = _load()
        began = time.monotonic()
        asyncio.run(everyone())
        seconds = time.monotonic() - began
        answered = sum(len(cluster.fake.sent_texts(first + i)) for i in range(chats))
        replica_mib = [round(_rss_mib(p.pid)) for p in cluster.replicas]
        app_mib = [round(_rss_mib(a.process.pid)) for a in cluster.apps if a.process]
        return {
            "apps": apps,
            "replicas": replicas,
            "messages": chats * messages,
            "answered": answered,
            "seconds": round(seconds, 2),
            "per_second": round(chats * messages / seconds, 2),
            "replica_rss_mib": replica_mib,
            "app_rss_mib": app_mib,
            "load_before": load_before,
            "load_after": _load(),
        }
    finally:
        cluster.stop()
        server.drop_database(url.rsplit("/", 1)[1])
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=40)
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    server = pg.start()
    results = []
    try:
        for _ in range(args.rounds):
            for apps, replicas in CONFIGURATIONS:
                result = measure(server, apps, replicas, args.chats, args.messages)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        server.stop()
    print(f"# {' '.join(sys.argv)}; {os.cpu_count()} cores")
    print(
        "| app processes | Rasa replicas | messages | seconds | messages/s | RSS per replica, "
        "per app (MiB) | load before → after |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['apps']} | {r['replicas']} | {r['messages']} | {r['seconds']} | "
            f"{r['per_second']} | {r['replica_rss_mib']}, {r['app_rss_mib']} | "
            f"{r['load_before']} → {r['load_after']} |"
        )


if __name__ == "__main__":
    main()
