"""Cross-validate the text classifiers' settings on the TRAINING data only.

Run with the NLU environment: `PYTHONPATH=nlu:. nlu/.venv/bin/python scripts/crossval.py`.
Settings are chosen here, never on the dev set (tests/data/nlu_dev.csv).
"""

from __future__ import annotations

import sys
import time

import yaml
from sklearn.model_selection import StratifiedKFold, cross_val_score

sys.path.insert(0, "nlu")
from civicbot_nlu.labels import text_pipeline  # noqa: E402
from civicbot_nlu.normalize import normalize  # noqa: E402


def examples():
    import glob
    import re

    entity = re.compile(r"\[([^\]]+)\]\([a-z_]+\)")
    for path in sorted(glob.glob("nlu/data/*.yml")):
        for block in yaml.safe_load(open(path, encoding="utf-8"))["nlu"]:
            if "intent" not in block:
                continue
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    text = entity.sub(r"\1", line.strip()[2:])
                    yield normalize(text), block["intent"], block.get("metadata") or {}


def main() -> None:
    data = list(examples())
    tasks = {
        "intent": [(t, i) for t, i, _ in data],
        "category": [(t, m.get("category") or "none") for t, i, m in data if i == "report_problem"],
        "procedure": [(t, m.get("procedure") or "none") for t, i, m in data if i == "ask_procedure"],
    }
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for name, pairs in tasks.items():
        texts, labels = zip(*pairs)
        for c in (1.0, 3.0, 10.0, 30.0, 100.0):
            started = time.perf_counter()
            scores = cross_val_score(text_pipeline(c), texts, labels, cv=folds, n_jobs=1)
            print(f"{name:9} C={c:<5} accuracy {scores.mean():.3f} ± {scores.std():.3f} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
