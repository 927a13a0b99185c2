"""Cross-validate a fastText subword classifier on the TRAINING data, folds as crossval.py.

fastText is not a dependency of the project: this measures the option only. Run it in a
scratch Python 3.10 environment with `fasttext-modern numpy pyyaml scikit-learn`:
`PYTHONPATH=nlu:. /tmp/ftvenv/bin/python scripts/crossval_fasttext.py`.
"""

from __future__ import annotations

import os
import tempfile
import time

import fasttext
import numpy as np
from civicbot_nlu.data import HARD_KINDS, classification_tasks, training_examples
from civicbot_nlu.features import negation_marked
from civicbot_nlu.normalize import normalize
from sklearn.model_selection import StratifiedKFold

FOLDS = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
SETTINGS = {
    "epoch 25, lr 0.5, word 2-grams, subwords 2-5": dict(
        epoch=25, lr=0.5, wordNgrams=2, minn=2, maxn=5, dim=50
    ),
    "epoch 50, lr 0.5, word 2-grams, subwords 2-5": dict(
        epoch=50, lr=0.5, wordNgrams=2, minn=2, maxn=5, dim=50
    ),
    "epoch 50, lr 1.0, word 3-grams, subwords 3-5": dict(
        epoch=50, lr=1.0, wordNgrams=3, minn=3, maxn=5, dim=50
    ),
}


def text_of(raw: str) -> str:
    return " ".join(negation_marked(normalize(raw).split()))


def main() -> None:
    examples = training_examples()
    hard_texts = {e.text for e in examples if e.source in HARD_KINDS}
    for name, (texts, labels) in classification_tasks(examples).items():
        folded = [text_of(t) for t in texts]
        hard = np.array([t in hard_texts for t in texts])
        for setting, params in SETTINGS.items():
            predicted = np.empty(len(texts), dtype=object)
            train_seconds = predict_seconds = 0.0
            for train, test in FOLDS.split(folded, labels):
                with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
                    for i in train:
                        handle.write(f"__label__{labels[i]} {folded[i]}\n")
                started = time.perf_counter()
                model = fasttext.train_supervised(handle.name, verbose=0, thread=1, **params)
                train_seconds += time.perf_counter() - started
                os.unlink(handle.name)
                started = time.perf_counter()
                for i in test:
                    predicted[i] = model.predict(folded[i])[0][0].removeprefix("__label__")
                predict_seconds += time.perf_counter() - started
            right = predicted == np.array(labels, dtype=object)
            print(
                f"{name:9} fastText {setting:46} accuracy {right.mean():.3f}, hard kinds "
                f"{right[hard].mean():.3f} (n={hard.sum()}); training {train_seconds / 5:.1f} s "
                f"a fold, {predict_seconds / len(texts) * 1000:.2f} ms a message",
                flush=True,
            )


if __name__ == "__main__":
    main()
