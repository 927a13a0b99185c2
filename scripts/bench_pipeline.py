"""The whole pipeline under load: the product (`civicbot run`, in its own process) with its
Telegram bot polling a fake Bot API server in this process, the real Rasa server and a SQLite
database; compared with the raw NLU in the same run.

Run with `make bench` (or `.venv/bin/python scripts/bench_pipeline.py`). Reply latency is
the time from a message entering the fake Telegram server to the bot's first sendMessage
for that chat after it, so it includes long polling, the NLU, the database and sending.

With `--hops` the product runs with probes (installed by this script, not by the product)
and each reply is cut into hops: inject -> the fake answers getUpdates -> the product has it
-> its handler starts -> stored -> NLU asked/answered -> first sendMessage; plus the product's
event-loop lag and the CPU time of each process per message. Monotonic clocks are shared by
the processes of one machine, so times from both sides compare directly.

`BENCH_PROFILE=FILE` profiles the product during the burst (cProfile on CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake Bot API server lives with the tests
sys.path.insert(0, str(ROOT))

from fake_telegram import FakeTelegram  # noqa: E402

from bot.bench import Latency, percentile, throughput  # noqa: E402
from bot.config import settings  # noqa: E402
from bot.nlu import server  # noqa: E402

FIRST_CHAT = 7_000_000
WARM_UP_CHAT = 8_000_000  # other citizens: the measured ones still come for the first time


def workload() -> list[str]:
    with (ROOT / "tests" / "data" / "nlu_dev.csv").open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f) if row["text"].strip()]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one, summed over a process's
    threads (Linux schedstat): the second tells load from other processes apart from idling."""
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            on_cpu, queued, _ = (task / "schedstat").read_text().split()
            running += int(on_cpu)
            waiting += int(queued)
    return running / 1e9, waiting / 1e9


# --- the fake, with the time each update left it --------------------------------------------


class TimedFake(FakeTelegram):
    """The fake Bot API server, noting when getUpdates first returned each update."""

    def __init__(self) -> None:
        super().__init__()
        self.returned: dict[int, float] = {}

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        batch = await super()._api_getUpdates(params)
        now = time.monotonic()
        for update in batch:
            self.returned.setdefault(int(update["update_id"]), now)
        return batch


@dataclass(frozen=True)
class Sample:
    update_id: int
    chat: int
    injected: float
    replied: float


@dataclass(frozen=True)
class Run:
    samples: list[Sample]
    seconds: float

    @property
    def latency(self) -> Latency:
        return Latency(tuple((s.replied - s.injected) * 1000 for s in self.samples))


async def drive(
    fake: FakeTelegram,
    texts: list[str],
    chats: int,
    rate: float | None,
    first_chat: int = FIRST_CHAT,
) -> Run:
    """Send `texts` round-robin from `chats` citizens, at `rate` per second (None: at once),
    each chat waiting for its reply before its next message, as a person does."""
    pending: dict[int, list[str]] = {first_chat + i: [] for i in range(chats)}
    for i, text in enumerate(texts):
        pending[first_chat + i % chats].append(text)
    replies: dict[int, asyncio.Queue[float]] = {chat: asyncio.Queue() for chat in pending}
    samples: list[Sample] = []
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
        await asyncio.sleep(interval * (chat - first_chat) / chats)
        for text in messages:
            while not replies[chat].empty():  # a second reply to the previous message
                replies[chat].get_nowait()
            started = time.monotonic()
            update = fake.inject_text(chat, text)
            answered_at = await asyncio.wait_for(replies[chat].get(), timeout=60)
            samples.append(Sample(int(update["update_id"]), chat, started, answered_at))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    try:
        await asyncio.gather(*(citizen(chat, messages) for chat, messages in pending.items()))
    finally:
        watcher.cancel()
    return Run(samples, time.monotonic() - started)


# --- probes inside the product (`--as-product FILE`) ----------------------------------------

_update: contextvars.ContextVar[int] = contextvars.ContextVar("bench_update", default=-1)


class _Probes:
    """Notes of (event, update_id, time) at the product's hops; "lag" notes carry the event
    loop's lateness in microseconds instead of an update id."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, float]] = []

    def note(self, event: str, update_id: int | None = None) -> None:
        at = time.monotonic()
        self.events.append((event, _update.get() if update_id is None else update_id, at))

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(self.events, out)

    def around_sync(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def traced(*args: Any, **kwargs: Any) -> Any:
            self.note(f"{name}_start")
            try:
                return function(*args, **kwargs)
            finally:
                self.note(f"{name}_end")

        return traced

    def around_async(
        self, name: str, function: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Any]:
        async def traced(*args: Any, **kwargs: Any) -> Any:
            self.note(f"{name}_start")
            try:
                return await function(*args, **kwargs)
            finally:
                self.note(f"{name}_end")

        return traced


def _trace_telegram(probes: _Probes) -> None:
    """Note each poll's return and each update as it is polled, queued and started."""
    from telegram.ext import ExtBot

    from bot.channels.telegram import PerChatUpdateProcessor

    get_updates = ExtBot.get_updates

    async def traced_get_updates(self: Any, *args: Any, **kwargs: Any) -> Any:
        updates = await get_updates(self, *args, **kwargs)
        probes.note("poll_returned", len(updates))
        for update in updates:
            probes.note("polled", update.update_id)
        return updates

    do_process = PerChatUpdateProcessor.do_process_update

    async def traced_do_process(self: Any, update: Any, coroutine: Awaitable[Any]) -> None:
        update_id = getattr(update, "update_id", -1)
        probes.note("queued", update_id)

        async def started() -> Any:
            _update.set(update_id)
            probes.note("started")
            return await coroutine

        await do_process(self, update, started())

    ExtBot.get_updates = traced_get_updates  # type: ignore[method-assign]
    PerChatUpdateProcessor.do_process_update = traced_do_process  # type: ignore[method-assign]


def _monitor_lag(probes: _Probes) -> None:
    """While the product serves: how late a 5 ms sleep wakes up, the time the loop was busy
    with something else."""
    import bot.app

    serve = bot.app.serve

    async def serve_with_lag_monitor(config: Any, **options: Any) -> None:
        async def monitor() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.005)
                late = time.monotonic() - before - 0.005
                probes.events.append(("lag", round(late * 1e6), time.monotonic()))

        task = asyncio.create_task(monitor())
        try:
            await serve(config, **options)
        finally:
            task.cancel()

    bot.app.serve = serve_with_lag_monitor


def install_probes(path: str) -> None:
    """Wrap the product's hops to note (event, update_id, time); written to `path` at exit."""
    import atexit

    from bot.channels.telegram import TelegramOutput
    from bot.conversation import engine
    from bot.nlu.client import NluClient

    probes = _Probes()
    atexit.register(probes.dump, path)
    _trace_telegram(probes)
    engine._Turn.store = probes.around_sync("store", engine._Turn.store)  # type: ignore[method-assign]
    engine._Turn.run = probes.around_async("turn", engine._Turn.run)  # type: ignore[method-assign]
    NluClient.parse = probes.around_async("nlu", NluClient.parse)  # type: ignore[method-assign]
    TelegramOutput.send = probes.around_async("send", TelegramOutput.send)  # type: ignore[method-assign]
    _monitor_lag(probes)


def install_profiler(path: str) -> None:
    """cProfile on CPU time between SIGUSR1 and SIGUSR2 (the burst), saved to `path`:
    neither start-up imports nor time spent waiting for a CPU count."""
    import cProfile

    profiler = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(path)

    signal.signal(signal.SIGUSR2, stop)


def run_as_product(path: str) -> None:
    if path:
        install_probes(path)
    if "BENCH_PROFILE" in os.environ:
        install_profiler(os.environ["BENCH_PROFILE"])
    from bot.cli import main as civicbot

    sys.exit(civicbot(["run"]))


# --- reading the hops ------------------------------------------------------------------------

HOPS = (
    ("fake answers getUpdates", "injected", "returned"),
    ("product has the update", "returned", "polled"),
    ("handed to the processor", "polled", "queued"),
    ("waits for its chat/slot", "queued", "started"),
    ("to storing", "started", "store_start"),
    ("storing (DB, sync)", "store_start", "store_end"),
    ("to NLU request", "store_end", "nlu_start"),
    ("NLU (HTTP to Rasa)", "nlu_start", "nlu_end"),
    ("NLU answer to send", "nlu_end", "send_start"),
    ("sendMessage reaches the fake", "send_start", "replied"),
)


def hop_table(run: Run, fake: TimedFake, events: list[tuple[str, int, float]]) -> list[str]:
    """Median and p95 of each hop, in ms, for the messages of `run`."""
    first: dict[int, dict[str, float]] = defaultdict(dict)
    for event, update_id, at in events:
        first[update_id].setdefault(event, at)
    table: dict[str, list[float]] = defaultdict(list)
    for sample in run.samples:
        times = {
            **first.get(sample.update_id, {}),
            "injected": sample.injected,
            "replied": sample.replied,
        }
        if sample.update_id in fake.returned:
            times["returned"] = fake.returned[sample.update_id]
        for label, start, end in HOPS:
            if start in times and end in times:
                table[label].append((times[end] - times[start]) * 1000)
    lines = [f"  {'hop':32} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}  n"]
    for label, _, _ in HOPS:
        values = table.get(label, [])
        if values:
            lines.append(
                f"  {label:32} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
                f"{statistics.fmean(values):8.1f}  {len(values)}"
            )
    begun, ended = min(s.injected for s in run.samples), max(s.replied for s in run.samples)
    lags = [lag / 1000 for event, lag, at in events if event == "lag" and begun <= at <= ended]
    polls = [n for event, n, at in events if event == "poll_returned" and begun <= at <= ended]
    if lags:
        lines.append(
            f"  product event loop: a 5 ms timer fires late by p50 {percentile(lags, 50):.1f} ms, "
            f"p95 {percentile(lags, 95):.1f} ms, max {max(lags):.1f} ms"
        )
    if polls:
        lines.append(
            f"  getUpdates answers: {len(polls)}, {statistics.fmean(polls):.1f} updates each "
            f"(max {max(polls)})"
        )
    return lines


# --- the benchmark ---------------------------------------------------------------------------


@dataclass
class Product:
    process: subprocess.Popen[bytes]
    hops_file: str | None

    def events(self) -> list[tuple[str, int, float]]:
        if self.hops_file is None or not Path(self.hops_file).exists():
            return []
        with open(self.hops_file, encoding="utf-8") as f:
            return [(str(e), int(u), float(t)) for e, u, t in json.load(f)]


@contextlib.contextmanager
def product(
    fake: FakeTelegram, nlu_url: str, nlu_token: str, directory: str, hops: bool
) -> Iterator[Product]:
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
    hops_file = f"{directory}/hops.json" if hops else None
    probed = hops_file is not None or "BENCH_PROFILE" in os.environ
    command = [__file__, "--as-product", hops_file or ""] if probed else ["-m", "bot.cli", "run"]
    process = subprocess.Popen([sys.executable, *command], env=env, cwd=ROOT)
    running = Product(process, hops_file)
    try:
        deadline = time.monotonic() + 120
        while not fake.calls_to("getUpdates"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("civicbot run did not start polling")
            time.sleep(0.2)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@contextlib.contextmanager
def nlu_server() -> Iterator[tuple[str, str, int | None]]:
    """The Rasa server (its pid too when started here, for its CPU time)."""
    if settings.nlu_url:
        yield settings.nlu_url, settings.nlu_token, None
        return
    running = server.start(settings)
    try:
        yield running.url, running.token, running.process.pid
    finally:
        server.stop(running)


async def measured(
    label: str, pids: dict[str, int], work: Callable[[], Awaitable[Run]]
) -> tuple[Run, str]:
    """Run `work`, with the CPU time each process spent on it per message."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    run = await work()
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    parts = []
    for name in pids:
        on_cpu = (after[name][0] - before[name][0]) / len(run.samples) * 1000
        waited = (after[name][1] - before[name][1]) / len(run.samples) * 1000
        parts.append(f"{name} {on_cpu:.1f} (+{waited:.1f} waiting for a CPU)")
    cores = sum(after[n][0] - before[n][0] for n in pids) / run.seconds
    return run, f"  CPU ms per message ({label}): {', '.join(parts)}; {cores:.2f} cores busy"


async def main(args: argparse.Namespace) -> None:
    texts = workload()[: args.messages]
    with tempfile.TemporaryDirectory() as directory, nlu_server() as (url, token, rasa_pid):
        fake = TimedFake()
        with fake, product(fake, url, token, directory, args.hops) as running:
            pids = {"product": running.process.pid, "bench+fake": os.getpid()}
            if rasa_pid is not None:
                pids["rasa"] = rasa_pid
            # Warm-up: the whole workload once, so that every code path has run (SQL
            # statements compiled, modules imported) as in a service that has been up a while.
            await drive(fake, texts, chats=args.chats, rate=None, first_chat=WARM_UP_CHAT)
            profiling = "BENCH_PROFILE" in os.environ
            runs: list[tuple[str, Run]] = []
            shares = []
            # The machine's speed drifts by tens of percent within minutes, so each burst is
            # compared with the raw NLU measured right before and right after it (the product
            # idle, long polling), and the bursts are repeated.
            raw_rates = [await throughput(url, token, texts, concurrency=16)]
            for round_no in range(1, args.rounds + 1):
                if profiling:
                    running.process.send_signal(signal.SIGUSR1)
                burst, burst_cpu = await measured(
                    "burst", pids, lambda: drive(fake, texts, chats=args.chats, rate=None)
                )
                if profiling:
                    running.process.send_signal(signal.SIGUSR2)
                raw_rates.append(await throughput(url, token, texts, concurrency=16))
                raw_rate = statistics.mean(raw_rates[-2:])
                pipeline_rate = len(texts) / burst.seconds
                shares.append(pipeline_rate / raw_rate)
                print(
                    f"round {round_no}: raw NLU through the client, 16 in flight, before and "
                    f"after: {raw_rates[-2]:.0f} and {raw_rates[-1]:.0f} messages/s; pipeline, "
                    f"{args.chats} chats as fast as they can: {pipeline_rate:.0f} messages/s "
                    f"({shares[-1]:.0%} of the raw NLU); " + burst.latency.line("reply latency")
                )
                print(burst_cpu)
                runs.append((f"burst {round_no}", burst))
            print(
                f"share of the raw NLU over {args.rounds} rounds: median "
                f"{statistics.median(shares):.0%} (from {min(shares):.0%} to {max(shares):.0%})"
            )
            for rate in args.rate:
                paced, paced_cpu = await measured(
                    f"{rate:.0f}/s",
                    pids,
                    partial(drive, fake, texts, chats=args.chats, rate=rate),
                )
                print(
                    f"pipeline offered {rate:.0f} messages/s "
                    f"(achieved {len(texts) / paced.seconds:.0f}): "
                    + paced.latency.line("reply latency")
                )
                print(paced_cpu)
                runs.append((f"offered {rate:.0f}/s", paced))
        events = running.events()
        for label, run in runs if events else []:
            print(f"hops, {label}:")
            print("\n".join(hop_table(run, fake, events)))
    print(
        f"(messages: {len(texts)}, median text {statistics.median(len(t) for t in texts):.0f} "
        "chars)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--as-product":
        run_as_product(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="raw NLU + burst, in turn")
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[50.0], help="paced rates, messages/s"
    )
    parser.add_argument("--hops", action="store_true", help="time each hop inside the product")
    asyncio.run(main(parser.parse_args()))
