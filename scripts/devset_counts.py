#!/usr/bin/env python3
"""Counts for the dev sets: .venv/bin/python scripts/devset_counts.py."""

import collections
import csv
import os
import re
from pathlib import Path

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
EN = re.compile(
    r"\b(is|are|was|how|what|who|where|why|you|your|there|someone|please|of|and|with|for|have|just|want|help|stars?|my|need|from|this|hotel|near|officer|office|documents|some|guys|every|noisy|keep|much|thanks?|translate|won|last|night|whole|our|mine|it's|i'm|lol|get|apply|does|cost|about|next|still|now|right|real|person|file|complaint|english|good|job|very|too|slow|status|ticket|open|bar|burned|number|call|think|might|neighbour|register|residence|hanoi)\b",
    re.I,
)
TC = re.compile(r"pa[- ]?20\d\d", re.I)


def diacritics(t: str) -> bool:
    return any(ord(c) > 127 and c.isalpha() for c in t)


def kind(t: str) -> str:
    """english = at least two English-only words; short one-word English replies
    ("yes", "bye", "menu") are counted with the texts without diacritics."""
    if len(EN.findall(t)) >= 2:
        return "english"
    return "with_diacritics" if diacritics(t) else "no_diacritics"


def show(title: str, c: collections.Counter[str]) -> None:
    print(f"  {title}:")
    for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"    {k or '(empty)':38s} {v}")


def read(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(Path(D, name).read_text(encoding="utf-8").splitlines()))


def show_script(rows: list[dict[str, str]]) -> None:
    show("script", collections.Counter(kind(r["text"]) for r in rows))
    vi = [r for r in rows if kind(r["text"]) != "english"]
    nd = sum(1 for r in vi if not diacritics(r["text"]))
    print(f"  Vietnamese rows without diacritics: {nd}/{len(vi)} = {nd / len(vi):.1%}")


def show_nlu_set(name: str) -> list[dict[str, str]]:
    rows = read(name)
    print(f"{name}: {len(rows)} rows")
    show("intent", collections.Counter(r["intent"] for r in rows))
    show(
        "category (report_problem rows)",
        collections.Counter(r["category"] for r in rows if "report_problem" in r["intent"]),
    )
    show(
        "procedure (ask_procedure rows)",
        collections.Counter(r["procedure"] for r in rows if "ask_procedure" in r["intent"]),
    )
    show_script(rows)
    print("  ticket-code mentions:", sum(1 for r in rows if TC.search(r["text"])))
    return rows


show_nlu_set("nlu_dev2.csv")

rows = read("emergencies.csv")
print(f"\nemergencies.csv: {len(rows)} rows")
show("emergency", collections.Counter(r["emergency"] for r in rows))
show(
    "numbers (yes rows)", collections.Counter(r["numbers"] for r in rows if r["emergency"] == "yes")
)
show_script(rows)


def show_kinds(name: str, kinds_name: str, by_script: bool = False) -> None:
    """A set with issue 15's kind of each message in a file beside it, keyed by text, so that
    the set keeps the columns the evaluation reads."""
    print()
    rows = show_nlu_set(name)
    kinds = {r["text"]: r["kind"] for r in read(kinds_name)}
    missing = [r["text"] for r in rows if r["text"] not in kinds]
    if missing or len(kinds) != len(rows):
        raise SystemExit(f"{kinds_name} does not match {name}: {missing[:3]}")
    show("kind", collections.Counter(kinds[r["text"]] for r in rows))
    show(
        "kind / intent",
        collections.Counter(f"{kinds[r['text']]} / {r['intent']}" for r in rows),
    )
    if by_script:
        show(
            "intent / script",
            collections.Counter(f"{r['intent']} / {kind(r['text'])}" for r in rows),
        )


if Path(D, "nlu_dev3.csv").exists():
    show_kinds("nlu_dev3.csv", "dev3_kinds.csv")
if Path(D, "nlu_dev4.csv").exists():
    show_kinds("nlu_dev4.csv", "dev4_kinds.csv", by_script=True)
