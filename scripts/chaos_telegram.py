"""Nothing lost? `civicbot run` against the fake Telegram, with `kill -9` or failing sends.

Starts the fake Bot API (tests/fake_telegram.py, which confirms an update only when a later
``getUpdates`` offset passes it, as Telegram does), a database (SQLite, or a temporary
PostgreSQL server) and `civicbot run` as a subprocess, then:

- ``kill`` (default): a burst of `--chats` × `--messages` texts; once a random share of the
  replies went out, ``kill -9`` of the bot's process group; a restart; then counts.
- ``faults``: no kill; ``sendMessage`` answers 500 for `--fail-500` seconds, then 429
  (``retry_after`` `--retry-after`) for `--fail-429` seconds, while a burst arrives.

Every message is "xin chào" or "cảm ơn" in turn, each answered with one message, so a chat's
replies must alternate greeting, thanks, greeting…: a missing, doubled or overtaken reply shows.
With `--officials N`, the first N chats are officials' (linked to a ward before the start),
who send "/hangdoi" and "giúp" in turn to the desk (the empty queue, the desk's help).
Prints a JSON summary. ``CIVICBOT_NLU_URL`` / ``--nlu-url``: a running NLU server (otherwise
one is started for the run and reused across the restart).

    .venv/bin/python scripts/chaos_telegram.py --database sqlite
    .venv/bin/python scripts/chaos_telegram.py --database postgresql --seed 2
    .venv/bin/python scripts/chaos_telegram.py --scenario faults
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.nlu.server import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402

TEXTS = ("xin chào", "cảm ơn")
GREETING, THANKS = "Xin chào", "Không có gì"  # in the replies to each (case-insensitive)
OFFICIAL_TEXTS = ("/hangdoi", "giúp")
OFFICIAL_REPLIES = ("không có phản ánh nào", "Anh/chị là cán bộ")  # the same, on the desk


@dataclass
class Figures:
    """What one run counted."""

    scenario: str
    database: str
    sent_updates: int  # updates the fake handed out (all confirmed at the end)
    stored: int  # of those, stored as incoming messages
    handled: int  # … and marked handled
    answered_once: int  # messages answered exactly once (counted per chat)
    never_answered: int
    answered_twice: int
    replies_sent: int  # sendMessage calls that succeeded
    replies_recorded: int  # outgoing messages stored with Telegram's message id
    chats_out_of_order: int
    killed_after_replies: int | None
    unrecorded_at_kill: int | None  # replies Telegram had, not yet recorded when killed
    seconds: float
    official_chats: int = 0  # of the chats, officials' (answered by the desk)

    @property
    def lost(self) -> int:
        return self.sent_updates - self.stored


@contextlib.contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A new, empty database URL (migrated by `civicbot run` itself)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'civicbot.db'}"
        return
    import pg

    server = pg.start()
    try:
        yield server.create_database("chaos")
    finally:
        server.stop()


@contextlib.contextmanager
def nlu(url: str | None, token: str | None) -> Iterator[tuple[str, str]]:
    if url:
        yield url, token or ""
        return
    from bot.config import Settings
    from bot.nlu import server

    running = server.start(Settings())
    try:
        yield running.url, running.token
    finally:
        server.stop(running)


class Bot:
    """`civicbot run` in its own process group (its children die with it)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from bot.cli import main; main()", "run"],
                env={**self.env, "PYTHONPATH": str(ROOT)},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive_and(self, condition: Callable[[], object]) -> Callable[[], object]:
        """`condition`, raising at once (with the log's end) if `civicbot run` has exited."""

        def check() -> object:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"civicbot run exited ({self.process.returncode}):\n{tail}")
            return condition()

        return check

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out waiting for {what}")
        time.sleep(0.05)


def _ok_sends(fake: FakeTelegram) -> list[tuple[int, str]]:
    """(chat, text) of the messages the fake accepted, in order."""
    texts: list[tuple[int, str]] = []
    for chat_id in _chats_seen(fake):
        texts.extend((chat_id, m.get("text", "")) for m in fake.bot_messages(chat_id))
    return texts


def _chats_seen(fake: FakeTelegram) -> set[int]:
    return {int(c.params["chat_id"]) for c in fake.calls_to("sendMessage")}


def _quiet(fake: FakeTelegram, expected: int, settle: float, timeout: float) -> None:
    """Until every update is confirmed and no reply came for `settle` s (or all came)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(_ok_sends(fake))
        if count != last:
            last, since = count, time.monotonic()
        if not fake.pending_updates and (count >= expected or time.monotonic() - since > settle):
            time.sleep(min(settle, 1.0))  # a late duplicate still counts
            return
        time.sleep(0.1)


def run(
    *,
    scenario: str,
    kind: str,
    chats: int,
    messages: int,
    seed: int,
    nlu_url: str,
    nlu_token: str,
    fail_500: float = 20.0,
    fail_429: float = 10.0,
    retry_after: int = 5,
    settle: float = 8.0,
    timeout: float = 180.0,
    log: Path | None = None,
    extra_env: dict[str, str] | None = None,
    officials: int = 0,
) -> Figures:
    rng = random.Random(seed)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as tmp,
        FakeTelegram(max_poll_seconds=1.0) as fake,
        database(kind, Path(tmp)) as url,
    ):
        env = {
            **os.environ,
            "CIVICBOT_DATABASE_URL": url,
            "CIVICBOT_NLU_URL": nlu_url,
            "CIVICBOT_NLU_TOKEN": nlu_token,
            "CIVICBOT_TELEGRAM_TOKEN": fake.token,
            "CIVICBOT_TELEGRAM_BASE_URL": fake.base_url,
            "CIVICBOT_HTTP_HOST": "127.0.0.1",
            "CIVICBOT_HTTP_PORT": str(free_port()),
            # On PostgreSQL `run` refuses generated secrets (several processes must share
            # them); one for this run, kept across the restarts.
            "CIVICBOT_DASHBOARD_SECRET": secrets.token_hex(32),
            **(extra_env or {}),
        }
        ids = [1_000_000 + i for i in range(chats)]
        if officials:
            _link_officials(url, ids[:officials])
            # No jobs: the week's digest they would send the officials is not a reply.
            env["CIVICBOT_RUN_JOBS"] = "false"
        bot = Bot(env, log or Path(tmp) / "bot.log")
        bot.start()
        try:
            _wait(bot.alive_and(lambda: fake.calls_to("getUpdates")), 120, "the first getUpdates")
            total = chats * messages
            killed_at: int | None = None
            unrecorded: int | None = None
            if scenario == "faults":
                fake.fail("sendMessage", status=500, seconds=fail_500)
            threshold = rng.randint(total // 10, total * 6 // 10)
            for round_ in range(messages):
                for number, chat_id in enumerate(ids):
                    texts = OFFICIAL_TEXTS if number < officials else TEXTS
                    fake.inject_text(chat_id, texts[round_ % 2])
                time.sleep(rng.uniform(0.0, 0.05))
            if scenario == "kill":
                _wait(lambda: len(_ok_sends(fake)) >= threshold, 120, f"{threshold} replies")
                bot.kill()
                killed_at = len(_ok_sends(fake))
                unrecorded = killed_at - _recorded(url)
                polls = len(fake.calls_to("getUpdates"))
                bot.start()
                _wait(
                    bot.alive_and(lambda: len(fake.calls_to("getUpdates")) > polls),
                    120,
                    "the restart",
                )
            else:
                time.sleep(max(fail_500 - (time.monotonic() - started), 0))
                fake.heal()
                fake.fail("sendMessage", status=429, seconds=fail_429, retry_after=retry_after)
            _quiet(fake, total, settle, timeout)
        finally:
            bot.stop()
        figures = _count(fake, url, ids, messages, scenario, kind, killed_at, officials)
        figures.unrecorded_at_kill = unrecorded
        figures.seconds = round(time.monotonic() - started, 1)
        return figures


def _link_officials(url: str, chat_ids: list[int]) -> None:
    """The database migrated, a ward, and an official of it linked to each of these chats."""
    from seed import linked_official, two_wards_and_city
    from sqlmodel import Session

    from storage import migrate
    from storage.db import create_db_engine
    from storage.models import OfficialRole, utcnow

    migrate.upgrade(url)
    engine = create_db_engine(url)
    try:
        with Session(engine) as session:
            two_wards_and_city(session)
            for chat_id in chat_ids:
                linked_official(session, "ward-a", str(chat_id), OfficialRole.handler, now=utcnow())
    finally:
        engine.dispose()


def _recorded(url: str) -> int:
    """Replies stored as sent (with Telegram's message id)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT count(*) FROM message WHERE direction = 'out' "
                        "AND channel_message_id IS NOT NULL"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _count(
    fake: FakeTelegram,
    url: str,
    ids: list[int],
    messages: int,
    scenario: str,
    kind: str,
    killed_at: int | None,
    officials: int = 0,
) -> Figures:
    handed_out = len(ids) * messages - len(fake.pending_updates)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT chat_id, channel_message_id, handled_at, direction FROM message "
                "WHERE channel = 'telegram'"
            )
        ).all()
    engine.dispose()
    incoming = [r for r in rows if r[3] == "in"]
    recorded = [r for r in rows if r[3] == "out" and r[1] is not None]
    answered_once = never = twice = disorder = 0
    sends = _ok_sends(fake)
    for number, chat_id in enumerate(ids):
        texts = [t for c, t in sends if c == chat_id]
        got = len(texts)
        answered_once += min(got, messages)
        never += max(messages - got, 0)
        twice += max(got - messages, 0)
        # in order: greeting, thanks, greeting… once a resent reply (the same text twice in
        # a row: sent, not recorded, killed) is counted once
        distinct = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]
        replies = OFFICIAL_REPLIES if number < officials else (GREETING, THANKS)
        expected = [replies[i % 2] for i in range(len(distinct))]
        if any(
            want.lower() not in text.lower() for want, text in zip(expected, distinct, strict=True)
        ):
            disorder += 1
    return Figures(
        scenario=scenario,
        database=kind,
        sent_updates=handed_out,
        stored=len(incoming),
        handled=sum(1 for r in incoming if r[2] is not None),
        answered_once=answered_once,
        never_answered=never,
        answered_twice=twice,
        replies_sent=len(sends),
        replies_recorded=len(recorded),
        chats_out_of_order=disorder,
        killed_after_replies=killed_at,
        unrecorded_at_kill=None,
        seconds=0.0,
        official_chats=officials,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=("kill", "faults"), default="kill")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--fail-500", type=float, default=20.0)
    parser.add_argument("--fail-429", type=float, default=10.0)
    parser.add_argument("--retry-after", type=int, default=5)
    parser.add_argument("--nlu-url", default=os.environ.get("CIVICBOT_NLU_URL"))
    parser.add_argument("--nlu-token", default=os.environ.get("CIVICBOT_NLU_TOKEN"))
    parser.add_argument("--log", type=Path)
    parser.add_argument("--officials", type=int, default=0, help="of the chats, officials'")
    args = parser.parse_args()
    if args.scenario == "faults" and args.chats == 20 and args.messages == 10:
        args.chats, args.messages = 4, 8  # the 32 replies
    with nlu(args.nlu_url, args.nlu_token) as (url, token):
        for index in range(args.runs):
            figures = run(
                scenario=args.scenario,
                kind=args.database,
                chats=args.chats,
                messages=args.messages,
                seed=args.seed + index,
                nlu_url=url,
                nlu_token=token,
                fail_500=args.fail_500,
                fail_429=args.fail_429,
                retry_after=args.retry_after,
                log=args.log,
                settle=45.0 if args.scenario == "faults" else 30.0,
                officials=args.officials,
            )
            print(json.dumps({**asdict(figures), "lost": figures.lost}, ensure_ascii=False))


if __name__ == "__main__":
    main()
