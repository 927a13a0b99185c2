"""Precision and recall of the duplicate matcher (bot/duplicates/matcher.py) on the
hand-written pairs of tests/data/duplicate_pairs.yml.

    .venv/bin/python scripts/duplicate_eval.py [--pairs FILE] [--threshold T] [--sweep]

Prints, for the "tune" half (on which the threshold was chosen), the held-out "test" half and
all pairs: true and false positives, false negatives, precision and recall; then recall per
kind of positive and the false-positive rate per kind of negative, and the pairs decided
wrongly. `--sweep` adds the figures for thresholds 0.10 to 0.60 on the tune half. Radius and
window are the configured ones (CIVICBOT_DUPLICATE_RADIUS_M, CIVICBOT_DUPLICATE_DAYS).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.config import settings
from bot.duplicates.matcher import THRESHOLD, Limits, Report, score

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "duplicate_pairs.yml"
START = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pair:
    id: str
    split: str
    kind: str
    duplicate: bool
    ticket: Report
    new: Report


def _report(side: dict[str, Any], at: datetime) -> Report:
    pin = side.get("pin") or (None, None)
    ward = side.get("ward")
    return Report(
        category=side["category"],
        text=side["text"],
        at=at,
        place=side.get("place"),
        ward_code=ward,
        ward_name=ward,
        lat=pin[0],
        lon=pin[1],
    )


def load_pairs(path: Path = PAIRS) -> list[Pair]:
    pairs = []
    for item in yaml.safe_load(path.read_text(encoding="utf-8")):
        later = START + timedelta(days=item["b"].get("days_later", 0), hours=3)
        pairs.append(
            Pair(
                id=item["id"],
                split=item["split"],
                kind=item["kind"],
                duplicate=bool(item["duplicate"]),
                ticket=_report(item["a"], START),
                new=_report(item["b"], later),
            )
        )
    return pairs


def limits(threshold: float = THRESHOLD) -> Limits:
    return Limits(
        radius_m=settings.duplicate_radius_m, days=settings.duplicate_days, threshold=threshold
    )


def decide(pair: Pair, bounds: Limits) -> bool:
    found = score(pair.ticket, pair.new, bounds)
    return found is not None and found >= bounds.threshold


@dataclass(frozen=True)
class Figures:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def line(self, name: str) -> str:
        return (
            f"{name:<6} pairs {self.tp + self.fp + self.fn + self.tn:>3}  TP {self.tp:>2}  "
            f"FP {self.fp:>2}  FN {self.fn:>2}  TN {self.tn:>2}  "
            f"precision {self.precision:.3f}  recall {self.recall:.3f}"
        )


def measure(pairs: list[Pair], bounds: Limits) -> Figures:
    tp = fp = fn = tn = 0
    for pair in pairs:
        said = decide(pair, bounds)
        tp += said and pair.duplicate
        fp += said and not pair.duplicate
        fn += not said and pair.duplicate
        tn += not said and not pair.duplicate
    return Figures(tp, fp, fn, tn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    pairs = load_pairs(args.pairs)
    bounds = limits(args.threshold)
    print(f"threshold {bounds.threshold}, radius {bounds.radius_m:g} m, window {bounds.days} days")
    for name in ("tune", "test"):
        print(measure([p for p in pairs if p.split == name], bounds).line(name))
    print(measure(pairs, bounds).line("all"))
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for pair in pairs:
        by_kind[pair.kind].append(decide(pair, bounds) == pair.duplicate)
    print("right per kind: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in by_kind.items()))
    for pair in pairs:
        if decide(pair, bounds) != pair.duplicate:
            found = score(pair.ticket, pair.new, bounds)
            shown = "ruled out" if found is None else f"{found:.3f}"
            print(
                f"  wrong: {pair.id} ({pair.split}, {pair.kind}, duplicate {pair.duplicate}) "
                f"score {shown}"
            )
    if args.sweep:
        tune = [p for p in pairs if p.split == "tune"]
        for step in range(10, 61, 5):
            print(measure(tune, limits(step / 100)).line(f"{step / 100:.2f}"))


if __name__ == "__main__":
    main()
