"""Reading the NLU training data from the app side (for checks and evaluation)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config import NLU_DIR

_ENTITY = re.compile(r"\[([^\]]+)\]\([a-z_]+\)")


@dataclass(frozen=True)
class TrainingExample:
    """One training message with entity markup removed, its intent and intent metadata."""

    text: str
    intent: str
    metadata: dict[str, Any] = field(default_factory=dict)


def training_examples(directory: Path = NLU_DIR / "data") -> list[TrainingExample]:
    """Every example of every intent block in the Rasa YAML files of `directory`."""
    examples = []
    for path in sorted(directory.glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" not in block:
                continue
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    text = _ENTITY.sub(r"\1", line.strip()[2:])
                    examples.append(
                        TrainingExample(text, block["intent"], block.get("metadata") or {})
                    )
    return examples
