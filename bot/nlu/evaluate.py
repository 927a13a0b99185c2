"""`civicbot nlu eval`: accuracy, macro-F1, confusion and latency on a labelled CSV."""

from __future__ import annotations

import csv
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from civicbot_nlu.normalize import has_diacritics, normalize

from bot.bench import percentile
from bot.nlu.client import NluClient
from bot.nlu.result import NluResult

FIELDS = ("intent", "category", "procedure")
NULL = "∅"


@dataclass(frozen=True)
class Example:
    """One labelled message; each gold field is the set of right answers (NULL for null)."""

    text: str
    gold: dict[str, frozenset[str]]
    seen: bool = False  # the same folded text is in the training data

    @property
    def accented(self) -> bool:
        return has_diacritics(self.text)


@dataclass
class Outcome:
    example: Example
    predicted: dict[str, str]
    seconds: float


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def rows(self, field_name: str, subset: str = "all") -> list[Outcome]:
        """Outcomes that count for a field: category only on complaints, procedure only on
        procedure questions (by the gold intent); `subset` "unseen" keeps messages not in
        the training data, "with"/"without" those unseen with or without diacritics."""
        chosen = self.outcomes
        if subset != "all":
            chosen = [o for o in chosen if not o.example.seen]
        if field_name == "category":
            chosen = [o for o in chosen if "report_problem" in o.example.gold["intent"]]
        elif field_name == "procedure":
            chosen = [o for o in chosen if "ask_procedure" in o.example.gold["intent"]]
        if subset == "with":
            chosen = [o for o in chosen if o.example.accented]
        elif subset == "without":
            chosen = [o for o in chosen if not o.example.accented]
        return chosen

    def accuracy(self, field_name: str, subset: str = "all") -> tuple[float, int]:
        rows = self.rows(field_name, subset)
        right = sum(o.predicted[field_name] in o.example.gold[field_name] for o in rows)
        return (right / len(rows) if rows else float("nan")), len(rows)

    def macro_f1(self, field_name: str, subset: str = "all") -> float:
        pairs = [_pair(o, field_name) for o in self.rows(field_name, subset)]
        labels = {gold for gold, _ in pairs}
        scores = []
        for label in labels:
            tp = sum(g == label and p == label for g, p in pairs)
            fp = sum(g != label and p == label for g, p in pairs)
            fn = sum(g == label and p != label for g, p in pairs)
            scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return statistics.fmean(scores) if scores else float("nan")

    def confusion(self, field_name: str) -> tuple[list[str], dict[tuple[str, str], int]]:
        pairs = Counter(_pair(o, field_name) for o in self.rows(field_name))
        labels = sorted({label for pair in pairs for label in pair})
        return labels, dict(pairs)

    def precision_recall(self, label: str, subset: str = "unseen") -> tuple[float, float]:
        """Precision and recall of one intent: how often saying it was right, and how many
        of the messages that meant it were read so."""
        pairs = [_pair(o, "intent") for o in self.rows("intent", subset)]
        right = sum(g == label and p == label for g, p in pairs)
        said = sum(p == label for _, p in pairs)
        meant = sum(g == label for g, _ in pairs)
        return (right / said if said else float("nan")), (right / meant if meant else float("nan"))

    def latency_ms(self) -> tuple[float, float]:
        times = [o.seconds * 1000 for o in self.outcomes]
        return percentile(times, 50), percentile(times, 95)

    def sources(self) -> Counter[str]:
        return Counter(o.predicted["source"] for o in self.outcomes)

    def errors(self, field_name: str) -> list[Outcome]:
        return [
            o for o in self.rows(field_name)
            if o.predicted[field_name] not in o.example.gold[field_name]
        ]  # fmt: skip


def read_examples(path: Path, trained: Iterable[str] = ()) -> list[Example]:
    """Read `text,intent,category,procedure` (empty = null, `a|b` = either).

    `trained` are training texts: examples whose folded text is among them are marked seen.
    """
    known = {normalize(text) for text in trained}
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Example(
                text=row["text"],
                gold={
                    name: frozenset((row.get(name) or "").split("|")) - {""} or frozenset({NULL})
                    for name in FIELDS
                },
                seen=normalize(row["text"]) in known,
            )
            for row in csv.DictReader(handle)
        ]


async def evaluate(client: NluClient, examples: Iterable[Example]) -> Report:
    """Parse every example one at a time (so that latencies are per message)."""
    report = Report()
    for example in examples:
        started = time.perf_counter()
        result = await client.parse(example.text)
        elapsed = time.perf_counter() - started
        report.outcomes.append(Outcome(example, _predicted(result), elapsed))
    return report


def markdown(report: Report, *, source: str, command: str) -> str:
    """The report as Markdown."""
    unseen = report.rows("intent", "unseen")
    lines = [
        f"Evaluated on `{source}`: {len(report.outcomes)} messages, of which {len(unseen)} "
        f"never seen in training ({len(report.rows('intent', 'with'))} with diacritics, "
        f"{len(report.rows('intent', 'without'))} without). "
        f"Answered by: {dict(report.sources())}.",
        "",
        f"Command: `{command}`",
        "",
        "Messages never seen in training (the targets are judged here):",
        "",
        "| field | n | accuracy | with diacritics | without diacritics | macro-F1 |",
        "|---|---|---|---|---|---|",
    ]
    for name in FIELDS:
        acc, n = report.accuracy(name, "unseen")
        with_acc, with_n = report.accuracy(name, "with")
        without_acc, without_n = report.accuracy(name, "without")
        lines.append(
            f"| {name} | {n} | {acc:.1%} | {with_acc:.1%} (n={with_n}) "
            f"| {without_acc:.1%} (n={without_n}) | {report.macro_f1(name, 'unseen'):.3f} |"
        )
    lines += [
        "",
        'All messages, including short ones that also occur in training ("ok", "vâng"):',
        "",
        "| field | n | accuracy | macro-F1 |",
        "|---|---|---|---|",
    ]
    for name in FIELDS:
        acc, n = report.accuracy(name)
        lines.append(f"| {name} | {n} | {acc:.1%} | {report.macro_f1(name):.3f} |")
    precision, recall = report.precision_recall("out_of_scope")
    p50, p95 = report.latency_ms()
    lines += [
        "",
        f"The `out_of_scope` decision on unseen messages: precision {precision:.1%}, "
        f"recall {recall:.1%}.",
        "",
        "Category is scored on messages whose gold intent is `report_problem`, procedure on "
        "those whose gold intent is `ask_procedure`, end to end: a wrong intent makes the "
        "category or procedure wrong too.",
        "",
        f"Parse latency through the app's client, one message at a time on loopback: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms.",
        "",
    ]
    for name in FIELDS:
        labels, counts = report.confusion(name)
        lines += [f"### Confusion: {name} (rows gold, columns predicted)", "", "```"]
        lines += _matrix_text(labels, counts)
        lines += ["```", ""]
    for name in FIELDS:
        wrong = report.errors(name)
        if wrong:
            lines += [f"### Errors: {name} ({len(wrong)})", ""]
            lines += [
                f"- `{o.example.text[:100]}`: gold {'|'.join(sorted(o.example.gold[name]))}, "
                f"got {o.predicted[name]}"
                for o in wrong
            ]
            lines.append("")
    return "\n".join(lines)


def confusion_chart(report: Report, path: Path) -> None:
    """A PNG of the intent and category confusion matrices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(18, 8))
    for axis, name in zip(axes, ("intent", "category"), strict=True):
        labels, counts = report.confusion(name)
        grid = [[counts.get((g, p), 0) for p in labels] for g in labels]
        axis.imshow(grid, cmap="Blues")
        axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.set_xlabel("predicted")
        axis.set_ylabel("gold")
        acc, n = report.accuracy(name)
        axis.set_title(f"{name}: accuracy {acc:.1%} (n={n})")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value:
                    colour = "white" if value > max(map(max, grid)) / 2 else "black"
                    axis.text(j, i, str(value), ha="center", va="center", fontsize=7, color=colour)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _predicted(result: NluResult) -> dict[str, str]:
    return {
        "intent": result.intent,
        "category": result.category or NULL,
        "procedure": result.procedure or NULL,
        "source": result.source,
    }


def _pair(outcome: Outcome, field_name: str) -> tuple[str, str]:
    """(gold, predicted) with an either-or gold resolved in the prediction's favour."""
    gold = outcome.example.gold[field_name]
    predicted = outcome.predicted[field_name]
    return (predicted if predicted in gold else min(gold)), predicted


def _matrix_text(labels: list[str], counts: dict[tuple[str, str], int]) -> list[str]:
    short = [label[:6] for label in labels]
    width = max(len(label) for label in labels)
    head = " " * (width + 1) + " ".join(f"{s:>6}" for s in short)
    body = [
        f"{g:<{width}} " + " ".join(f"{counts.get((g, p), 0) or '.':>6}" for p in labels)
        for g in labels
    ]
    return [head, *body]
