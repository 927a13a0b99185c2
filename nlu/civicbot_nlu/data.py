"""Reading the Rasa YAML training data without Rasa (for checks, scripts and evaluation)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# The files written for issue 15's kinds of message (stories about earlier complaints and
# ratings in words, indirect procedure questions, near-miss out-of-scope, long messages,
# English):
# scripts/crossval*.py report the held-out accuracy on them apart.
HARD_KINDS = frozenset(("stories", "indirect", "out_of_scope", "long", "english"))
_ENTITY = re.compile(r"\[([^\]]+)\]\([a-z_]+\)")


@dataclass(frozen=True)
class TrainingExample:
    """One training message with entity markup removed, its intent and intent metadata."""

    text: str
    intent: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file's name without .yml


def training_examples(directory: Path = DATA_DIR) -> list[TrainingExample]:
    """Every example of every intent block in the YAML files of `directory`."""
    examples = []
    for path in sorted(directory.glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" not in block:
                continue
            metadata = block.get("metadata") or {}
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    text = _ENTITY.sub(r"\1", line.strip()[2:])
                    examples.append(TrainingExample(text, block["intent"], metadata, path.stem))
    return examples


def classification_tasks(
    examples: list[TrainingExample],
) -> dict[str, tuple[list[str], list[str]]]:
    """(texts, labels) for the three classifiers: intent, category and procedure."""

    def task(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
        return [text for text, _ in pairs], [label for _, label in pairs]

    def label(example: TrainingExample, key: str) -> str:
        return str(example.metadata.get(key) or "none")

    return {
        "intent": task([(e.text, e.intent) for e in examples]),
        "category": task(
            [(e.text, label(e, "category")) for e in examples if e.intent == "report_problem"]
        ),
        "procedure": task(
            [(e.text, label(e, "procedure")) for e in examples if e.intent == "ask_procedure"]
        ),
    }
