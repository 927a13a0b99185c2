"""CPU time of a citizen's turn without HTTP: `Desk.handle` with the NLU's answers known in
advance and a collecting output, on a SQLite file, 50 chats at once.

The dev-set messages are parsed once by the real Rasa server (started here); then each round
sends all of them again from 50 new citizens, 8 messages each, as `bench_pipeline.py` does.
What is left is the product's own work on a message: storing, the dialogue, the database.

Run with `.venv/bin/python scripts/bench_turn.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
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
    """The NLU's answers, parsed beforehand."""

    def __init__(self, answers: dict[str, NluResult]) -> None:
        self._answers = answers

    async def parse(self, text: str) -> NluResult:
        return self._answers[text]


async def parse_all(texts: list[str]) -> dict[str, NluResult]:
    with local_server(settings) as (url, token):
        async with NluClient(url, token) as client:
            return {text: await client.parse(text) for text in texts}


async def main(args: argparse.Namespace) -> None:
    texts = workload()[: args.messages]
    answers = await parse_all(texts)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/bench.db"
        upgrade(url)
        engine = create_db_engine(url)
        desk = Desk(Conversation(nlu=KnownAnswers(answers), engine=engine), engine=engine)
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

        await one_round()  # warm-up
        results = [await one_round() for _ in range(args.rounds)]
        engine.dispose()
    print(
        f"turn without HTTP, {len(texts)} messages from {CHATS} chats a round, CPU ms a "
        "message: " + ", ".join(f"{r:.2f}" for r in results)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
