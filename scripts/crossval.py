"""Cross-validate the text classifiers' settings on the TRAINING data only.

Run with the NLU environment: `PYTHONPATH=nlu:. nlu/.venv/bin/python scripts/crossval.py`.
Settings are chosen here, never on the dev set (tests/data/nlu_dev.csv).
"""

from __future__ import annotations

import time

from civicbot_nlu.data import classification_tasks, training_examples
from civicbot_nlu.labels import text_pipeline
from civicbot_nlu.normalize import normalize
from sklearn.model_selection import StratifiedKFold, cross_val_score


def main() -> None:
    tasks = classification_tasks(training_examples())
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for name, (texts, labels) in tasks.items():
        folded = [normalize(text) for text in texts]
        for c in (1.0, 3.0, 10.0, 30.0, 100.0):
            started = time.perf_counter()
            scores = cross_val_score(text_pipeline(c), folded, labels, cv=folds, n_jobs=1)
            print(
                f"{name:9} C={c:<5} accuracy {scores.mean():.3f} ± {scores.std():.3f} "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
