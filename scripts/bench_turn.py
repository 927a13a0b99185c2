"""CPU time of a citizen's turn without HTTP: `Desk.handle` with the NLU's answers known in
advance and a collecting output, on a SQLite file, 50 chats at once.

Each round sends the dev-set messages from 50 new citizens, 8 messages each, as
`bench_pipeline.py` does. The real Rasa server (started here) parses every text the dialogue
asks about once, in the warm-up round (the dialogue parses some texts a second time, e.g. the
held message of "phản ánh …"; the messages themselves are parsed one at a time before);
the measured rounds send the same messages in the same chats,
so their parses are remembered and what is left is the product's own work on a message:
storing, the dialogue, the database. A parse not seen in the warm-up is asked of Rasa and
counted.

Run with `.venv/bin/python scripts/bench_turn.py [--rounds N] [--profile FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_pipeline import workload  # noqa: E402

from bot.config import settings  # noqa: E402
from bot.conversation.engine import Conversation  # noqa: E402
from bot.conversation.messages import CollectingOutput, IncomingMessage  # noqa: E402
from bot.nlu.client import NluClient  # noqa: E402
from bot.nlu.result import NluResult  # noqa: E402
from bot.nlu.server import local_server  # noqa: E402
from bot.officials.desk import Desk  # noqa: E402
from storage.db import create_db_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

CHATS = 50


class KnownAnswers:
    """The NLU's answers, each text asked of the real NLU once and remembered."""

    def __init__(self, client: NluClient) -> None:
        self._client = client
        self._answers: dict[str, NluResult] = {}
        self.asked = 0

    async def parse(self, text: str) -> NluResult:
        known = self._answers.get(text)
        if known is None:
            self.asked += 1
            known = self._answers[text] = await self._client.parse(text)
        return known


async def main(args: argparse.Namespace) -> None:
    texts = workload()[: args.messages]
    with local_server(settings) as (url, token):
        async with NluClient(url, token) as client:
            answers = KnownAnswers(client)
            for text in texts:  # one at a time: Rasa's answers, never the keyword fallback's
                await answers.parse(text)
            await measure(args, texts, answers)


async def measure(args: argparse.Namespace, texts: list[str], answers: KnownAnswers) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/bench.db"
        upgrade(url)
        engine = create_db_engine(url)
        desk = Desk(Conversation(nlu=answers, engine=engine), engine=engine)
        output = CollectingOutput()
        message_ids = itertools.count()
        citizens = itertools.count(7_000_000)

        async def chat(messages: list[str]) -> None:
            user = str(next(citizens))
            for text in messages:
                incoming = IncomingMessage(
                    channel="telegram", chat_id=user, user_id=user,
                    message_id=str(next(message_ids)), text=text,
                )  # fmt: skip
                await desk.handle(incoming, output)

        async def one_round() -> float:
            started = time.process_time()
            await asyncio.gather(*(chat(texts[i::CHATS]) for i in range(CHATS)))
            return (time.process_time() - started) / len(texts) * 1000

        await one_round()  # warm-up: every parse asked of Rasa once
        warm = answers.asked
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler is not None:
            profiler.enable()
        results = [await one_round() for _ in range(args.rounds)]
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        engine.dispose()
    figures = ", ".join(f"{r:.2f}" for r in results)
    print(
        f"turn without HTTP, {len(texts)} messages from {CHATS} chats a round, CPU ms a "
        f"message: {figures} (parses asked of Rasa: {warm} in the warm-up, "
        f"{answers.asked - warm} after)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="cProfile (CPU time) of the measured rounds, to FILE")
    asyncio.run(main(parser.parse_args()))
