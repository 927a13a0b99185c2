"""Does Vietnamese word segmentation (pyvi) help the classifiers? Measured on TRAINING data.

Cross-validates the same TF-IDF + logistic regression on (a) our folded words and
(b) pyvi-segmented words, folded afterwards (compounds joined with "_").
Run: `python -m venv /tmp/pyvienv && /tmp/pyvienv/bin/pip install pyvi scikit-learn pyyaml`,
then `PYTHONPATH=nlu:. /tmp/pyvienv/bin/python scripts/segmentation_check.py`.
"""

from __future__ import annotations

import time

from civicbot_nlu.data import classification_tasks, training_examples
from civicbot_nlu.normalize import normalize
from pyvi import ViTokenizer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import FeatureUnion, Pipeline


def pipeline() -> Pipeline:
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    classifier = LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced")
    return Pipeline([("features", FeatureUnion([("w", words), ("c", chars)])), ("lr", classifier)])


def segmented(text: str) -> str:
    return " ".join(
        normalize(piece).replace(" ", "_") for piece in ViTokenizer.tokenize(text).split()
    )


def main() -> None:
    tasks = classification_tasks(training_examples())
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for name, (texts, labels) in tasks.items():
        for label, prepare in (("folded words", normalize), ("pyvi segmented", segmented)):
            started = time.perf_counter()
            prepared = [prepare(t) for t in texts]
            prep_ms = (time.perf_counter() - started) / len(texts) * 1000
            scores = cross_val_score(pipeline(), prepared, labels, cv=folds)
            print(
                f"{name:9} {label:15} accuracy {scores.mean():.3f} ± {scores.std():.3f} "
                f"(preparing {prep_ms:.2f} ms/message)",
                flush=True,
            )


if __name__ == "__main__":
    main()
