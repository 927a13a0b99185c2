"""Recall and false alarms of the emergency detector on a labelled CSV (text, emergency,
numbers), e.g. tests/data/emergencies.csv, written by an author who never saw the code.

    .venv/bin/python scripts/emergency_eval.py tests/data/emergencies.csv [--misses]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from bot.conversation.dialogue.emergency import detect


def main(path: str, show_misses: bool) -> None:
    rows = list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))
    emergencies = [r for r in rows if r["emergency"] == "yes"]
    others = [r for r in rows if r["emergency"] != "yes"]
    found = [(r, detect(r["text"])) for r in emergencies]
    caught = [(r, d) for r, d in found if d is not None]
    numbers_right = [r for r, d in caught if d and set(r["numbers"].split("|")) <= set(d.numbers)]
    alarms = [r for r in others if detect(r["text"]) is not None]
    print(f"{path}: {len(emergencies)} emergencies, {len(others)} near misses")
    print(f"recall: {len(caught)}/{len(emergencies)} = {len(caught) / len(emergencies):.1%}")
    print(
        f"right numbers among those caught: {len(numbers_right)}/{len(caught)}"
        f" = {len(numbers_right) / max(1, len(caught)):.1%}"
    )
    print(f"false alarms: {len(alarms)}/{len(others)} = {len(alarms) / len(others):.1%}")
    if show_misses:
        for r, d in found:
            if d is None:
                print("MISSED", r["text"])
        for r in alarms:
            print("FALSE ALARM", r["text"])


if __name__ == "__main__":
    main(sys.argv[1], "--misses" in sys.argv)
