"""Cross-validate the text classifiers' settings on the TRAINING data only.

Run with the NLU environment: `PYTHONPATH=nlu:. nlu/.venv/bin/python scripts/crossval.py [PART…]`
with PART among `c` (regularisation), `features` (word order, negation, head clause),
`classifiers` (other models and an ensemble), `reject` (the out_of_scope threshold) and
`errors` (the held-out errors of the chosen pipeline, to write data against),
`calibrated` (the SVM with sigmoid probabilities), `diacritics` (the text as typed, with
its marks, beside the folded text; accuracy split by messages with and without
diacritics), `softmax` (the uncalibrated SVM with a softmax of its margins for intent)
and `routed` (the chosen typed parts with each task's candidate classifiers);
all of them when none is named; `PART:TASK` (e.g. `diacritics:category`) runs a part on
one task. `added:FILE` (e.g. `added:categories`) asks whether the
examples of one data file help: the other files' examples are held out fold by fold and
predicted by models trained with and without that file. Settings are chosen here, never
on the dev sets (tests/data/nlu_dev*.csv), which are only run to report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from civicbot_nlu.data import HARD_KINDS, classification_tasks, training_examples
from civicbot_nlu.features import document, marked_field
from civicbot_nlu.labels import (
    FeatureOptions,
    SoftmaxLinearSVC,
    classifier,
    classifier_of,
    softmax,
    text_pipeline,
    tfidf_features,
)
from civicbot_nlu.normalize import has_diacritics
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

FOLDS = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
CHOSEN = FeatureOptions()  # the features part found no gain over v1 (docs/nlu-report.md)
# Session 4: the text as typed beside it, read by a second model for messages with marks.
TYPED = FeatureOptions(unfolded_words=2, unfolded_chars=True)
# Each task's classifier as nlu/config.yml sets it (`diacritics` part).
CLASSIFIERS = {"intent": "svm_softmax", "category": "svm", "procedure": "logistic"}


class Routed(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """What a classifier with `typed: true` does in the pipeline: messages typed with
    diacritics are read by a model that also sees the typed parts, the others by a model of
    the folded text only."""

    def __init__(self, kind: str = "logistic") -> None:
        self.kind = kind

    def _pipeline(self, options: FeatureOptions) -> Pipeline:
        c = 10.0 if self.kind == "logistic" else 1.0
        return Pipeline(
            [("features", tfidf_features(options)), ("classifier", classifier_of(self.kind, c))]
        )

    def fit(self, texts: list[str], labels: list[str]) -> Routed:
        targets = np.asarray(labels)  # CalibratedClassifierCV counts classes with `y == c`
        self.plain_ = self._pipeline(CHOSEN).fit(texts, targets)
        self.typed_ = self._pipeline(TYPED).fit(texts, targets)
        self.classes_ = self.plain_.classes_
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        probabilities: np.ndarray = self.plain_.predict_proba(texts)
        marked = [i for i, text in enumerate(texts) if marked_field(text)]
        if marked:
            probabilities[marked] = self.typed_.predict_proba([texts[i] for i in marked])
        return probabilities

    def predict(self, texts: list[str]) -> np.ndarray:
        best: np.ndarray = self.classes_[self.predict_proba(texts).argmax(axis=1)]
        return best


_HARD: set[str] = set()
_MARKED: set[str] = set()  # documents of messages typed with diacritics


def tasks() -> dict[str, tuple[list[str], list[str]]]:
    """Each task's texts as `features.document`s, with their labels."""
    examples = training_examples()
    _HARD.update(document(e.text) for e in examples if e.source in HARD_KINDS)
    _MARKED.update(document(e.text) for e in examples if has_diacritics(e.text))
    return {
        name: ([document(text) for text in texts], labels)
        for name, (texts, labels) in classification_tasks(examples).items()
    }


def score(
    name: str, setting: str, make: Callable[[], BaseEstimator], texts: list[str], labels: list[str]
) -> None:
    """Accuracy over all held-out folds, and on the held-out examples of the hard kinds."""
    started = time.perf_counter()
    predicted = cross_val_predict(make(), texts, labels, cv=FOLDS, n_jobs=1)
    right = np.array(predicted) == np.array(labels)
    hard = np.array([text in _HARD for text in texts])
    print(
        f"{name:9} {setting:34} accuracy {right.mean():.3f}, hard kinds {right[hard].mean():.3f} "
        f"(n={hard.sum()}) ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )


def regularisation(data: dict[str, tuple[list[str], list[str]]]) -> None:
    for name, (texts, labels) in data.items():
        for c in (3.0, 10.0, 30.0):
            score(name, f"C={c}", partial(text_pipeline, c, CHOSEN), texts, labels)


def features(data: dict[str, tuple[list[str], list[str]]]) -> None:
    options = {
        "words 1-2 (v1)": FeatureOptions(),
        "words 1-3": FeatureOptions(word_ngrams=3),
        "words 1-2 + negation": FeatureOptions(negation=True),
        "words 1-2 + head clause": FeatureOptions(head=True),
        "words 1-3 + negation + head": FeatureOptions(word_ngrams=3, negation=True, head=True),
    }
    for name, (texts, labels) in data.items():
        for setting, option in options.items():
            score(name, setting, partial(text_pipeline, 10.0, option), texts, labels)


def classifiers(data: dict[str, tuple[list[str], list[str]]]) -> None:
    def with_features(model: BaseEstimator) -> Callable[[], Pipeline]:
        return lambda: Pipeline([("features", tfidf_features(CHOSEN)), ("classifier", model)])

    models: dict[str, Callable[[], BaseEstimator]] = {
        "logistic regression C=10": with_features(classifier(10.0)),
        "linear SVM C=1": with_features(LinearSVC(C=1.0, class_weight="balanced")),
        "complement naive Bayes": with_features(ComplementNB(alpha=0.3)),
        "SGD modified Huber": with_features(
            SGDClassifier(loss="modified_huber", alpha=1e-4, class_weight="balanced")
        ),
        "ensemble LR + SVM + NB (soft)": with_features(
            VotingClassifier(
                [
                    ("lr", classifier(10.0)),
                    ("svm", CalibratedClassifierCV(LinearSVC(class_weight="balanced"), cv=3)),
                    ("nb", ComplementNB(alpha=0.3)),
                ],
                voting="soft",
            )
        ),
    }
    for name, (texts, labels) in data.items():
        for setting, make in models.items():
            score(name, setting, make, texts, labels)


_PROBABILITIES: dict[str, np.ndarray] = {}


def held_out_probabilities(name: str, texts: list[str], labels: list[str]) -> np.ndarray:
    """The chosen pipeline's held-out class probabilities (columns in sorted label order),
    computed once per task for the parts that read them."""
    if name not in _PROBABILITIES:
        model = text_pipeline(10.0, CHOSEN)
        _PROBABILITIES[name] = cross_val_predict(
            model, texts, labels, cv=FOLDS, method="predict_proba"
        )
    return _PROBABILITIES[name]


def errors(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """The held-out errors of the chosen pipeline on the training examples (never a dev
    set's): where new training data of the failing kinds is worth writing."""
    examples = {document(e.text): e for e in training_examples()}
    for name in ("intent", "category"):
        texts, labels = data[name]
        probabilities = held_out_probabilities(name, texts, labels)
        classes = np.array(sorted(set(labels)))
        for text, gold, row in zip(texts, labels, probabilities, strict=True):
            said = classes[row.argmax()]
            if said != gold:
                example = examples.get(text)
                source = example.source if example else "?"
                print(
                    f"error     {name:9} {source:13} {gold} -> {said} ({row.max():.2f}): "
                    f"{example.text if example else text}",
                    flush=True,
                )


def calibrated(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """The linear SVM with probabilities (which the pipeline needs for its confidences),
    against the logistic regression: accuracy, and how often the best label is under 0.5
    (the dialogue asks again then)."""
    models: dict[str, Callable[[], BaseEstimator]] = {
        "logistic regression C=10": partial(text_pipeline, 10.0, CHOSEN),
        "linear SVM C=1, sigmoid-calibrated": lambda: Pipeline(
            [("features", tfidf_features(CHOSEN)), ("classifier", classifier_of("svm", 1.0))]
        ),
    }
    for name, (texts, labels) in data.items():
        classes = np.array(sorted(set(labels)))
        for setting, make in models.items():
            started = time.perf_counter()
            probabilities = cross_val_predict(
                make(), texts, labels, cv=FOLDS, method="predict_proba"
            )
            right = classes[probabilities.argmax(axis=1)] == np.array(labels)
            hard = np.array([text in _HARD for text in texts])
            unsure = (probabilities.max(axis=1) < 0.5).mean()
            print(
                f"{name:9} {setting:36} accuracy {right.mean():.3f}, hard kinds "
                f"{right[hard].mean():.3f}, best under 0.5: {unsure:.3f} "
                f"({time.perf_counter() - started:.1f} s)",
                flush=True,
            )


def reject(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """Out of scope when the best intent's probability is under a threshold."""
    texts, labels = data["intent"]
    probabilities = held_out_probabilities("intent", texts, labels)
    classes = np.array(sorted(set(labels)))
    gold = np.array(labels)
    for threshold in (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5):  # 0: the trained class alone
        predicted = classes[probabilities.argmax(axis=1)]
        predicted[probabilities.max(axis=1) < threshold] = "out_of_scope"
        said = predicted == "out_of_scope"
        meant = gold == "out_of_scope"
        precision = (said & meant).sum() / max(said.sum(), 1)
        recall = (said & meant).sum() / max(meant.sum(), 1)
        print(
            f"reject    threshold {threshold:<5} intent accuracy {(predicted == gold).mean():.4f} "
            f"out_of_scope precision {precision:.3f} recall {recall:.3f}",
            flush=True,
        )


def added(source: str) -> None:
    """Held-out accuracy on the other files' examples, trained without and with `source`
    (the classifiers as chosen, `Routed`)."""
    examples = training_examples()
    rest = classification_tasks([e for e in examples if e.source != source])
    extra = classification_tasks([e for e in examples if e.source == source])
    for name, (texts, labels) in rest.items():
        documents = [document(text) for text in texts]
        extra_documents = [document(text) for text in extra[name][0]]
        accuracy = {}
        for with_extra in (False, True):
            right = np.zeros(len(documents), dtype=bool)
            for train, test in FOLDS.split(documents, labels):
                x = [documents[i] for i in train] + (extra_documents if with_extra else [])
                y = [labels[i] for i in train] + (extra[name][1] if with_extra else [])
                model = Routed(CLASSIFIERS[name]).fit(x, y)
                predicted = model.predict([documents[i] for i in test])
                right[test] = np.array(predicted) == np.array([labels[i] for i in test])
            accuracy[with_extra] = right
        marked = np.array([has_diacritics(text) for text in texts])
        gain = accuracy[True].astype(float) - accuracy[False].astype(float)
        se = gain.std(ddof=1) / np.sqrt(len(gain))
        print(
            f"{name:9} held out from the other files (n={len(documents)}): without {source} "
            f"{accuracy[False].mean():.4f}, with it {accuracy[True].mean():.4f} "
            f"(+{len(extra_documents)}); typed with diacritics (n={marked.sum()}) "
            f"{accuracy[False][marked].mean():.4f} -> {accuracy[True][marked].mean():.4f}, "
            f"without {accuracy[False][~marked].mean():.4f} -> "
            f"{accuracy[True][~marked].mean():.4f}; gain {gain.mean():+.4f} ± {se:.4f}",
            flush=True,
        )


def report(
    name: str, setting: str, texts: list[str], right: np.ndarray, base: np.ndarray | None
) -> None:
    """Accuracy overall, with and without diacritics and on the hard kinds; against `base`
    (the first setting's held-out rights), the difference and its paired standard error."""
    marked = np.array([text in _MARKED for text in texts])
    hard = np.array([text in _HARD for text in texts])
    line = (
        f"{name:9} {setting:40} accuracy {right.mean():.4f}, with diacritics "
        f"{right[marked].mean():.4f} (n={marked.sum()}), without {right[~marked].mean():.4f} "
        f"(n={(~marked).sum()}), hard kinds {right[hard].mean():.4f} (n={hard.sum()})"
    )
    if base is not None:
        for label, rows in (("all", np.ones_like(marked)), ("with", marked)):
            gain = right[rows].astype(float) - base[rows].astype(float)
            se = gain.std(ddof=1) / np.sqrt(len(gain))
            line += f"; {label} {gain.mean():+.4f} ± {se:.4f}"
    print(line, flush=True)


def confidence(name: str, setting: str, probabilities: np.ndarray, right: np.ndarray) -> None:
    """What the dialogue does with the best label's probability: under 0.5 it asks again
    (flow.CONFIDENT), from 0.8 a request may interrupt a form (flow.SURE)."""
    best = probabilities.max(axis=1)
    acted, sure = best >= 0.5, best >= 0.8
    print(
        f"{name:9} {setting:40} best under 0.5: {1 - acted.mean():.3f} (right when acted on "
        f"{right[acted].mean():.4f}), at least 0.8: {sure.mean():.3f} (right "
        f"{right[sure].mean():.4f}), log loss {log_loss(probabilities, right):.4f}",
        flush=True,
    )


def log_loss(probabilities: np.ndarray, right: np.ndarray) -> float:
    """Mean negative log probability of the best label when right, of 1 − best when wrong
    (a proxy that needs no class order: how much the confidence can be trusted)."""
    best = np.clip(probabilities.max(axis=1), 1e-9, 1 - 1e-9)
    return float(-np.where(right, np.log(best), np.log(1 - best)).mean())


_UNFOLDED = {
    "folded words 1-2 + chars 2-5 (v1)": FeatureOptions(),
    "routed, + typed words 1-2": FeatureOptions(unfolded_words=2),
    "routed, + typed words 1": FeatureOptions(unfolded_words=1),
    "routed, + typed words 1-2 + chars": FeatureOptions(unfolded_words=2, unfolded_chars=True),
    "routed, + typed words 1 + chars": FeatureOptions(unfolded_words=1, unfolded_chars=True),
}


def diacritics(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """The text as typed, marks kept, beside the folded text (which merges "bán" and "bạn").

    "routed": the model with the typed parts reads the messages typed with diacritics, the
    model of the folded text the others (what `typed: true` of a classifier does in the
    pipeline). Each task with the classifiers worth trying on it.
    """
    models: dict[str, Callable[[], BaseEstimator]] = {
        "LR": partial(classifier, 10.0),
        "SVM": partial(classifier_of, "svm_softmax", 1.0),
        "calibrated SVM": partial(classifier_of, "svm", 1.0),
    }
    tried = {"intent": ("LR", "SVM"), "category": ("LR", "calibrated SVM"), "procedure": ("LR",)}
    for name, (texts, labels) in data.items():
        classes = np.array(sorted(set(labels)))
        marked = np.array([text in _MARKED for text in texts])
        base = None
        for model in tried[name]:
            for setting, option in _UNFOLDED.items():
                started = time.perf_counter()
                pipeline = Pipeline(
                    [("features", tfidf_features(option)), ("classifier", models[model]())]
                )
                probabilities = cross_val_predict(
                    pipeline, texts, labels, cv=FOLDS, method="predict_proba"
                )
                right = classes[probabilities.argmax(axis=1)] == np.array(labels)
                if option == CHOSEN:
                    plain, plain_probabilities = right, probabilities
                else:  # routed
                    right = np.where(marked, right, plain)
                    probabilities = np.where(marked[:, None], probabilities, plain_probabilities)
                base = right if base is None else base
                report(name, f"{model}: {setting}", texts, right, base)
                seconds = f"({time.perf_counter() - started:.0f} s)"
                confidence(name, seconds, probabilities, right)


def softmax_svm(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """Intent by the uncalibrated linear SVM, probabilities a softmax of its margins times a
    scale, against the logistic regression: how many fall under the dialogue's thresholds."""
    texts, labels = data["intent"]
    classes = np.array(sorted(set(labels)))
    gold = np.array(labels)
    lr = cross_val_predict(
        text_pipeline(10.0, CHOSEN), texts, labels, cv=FOLDS, method="predict_proba"
    )
    lr_right = classes[lr.argmax(axis=1)] == gold
    report("intent", "logistic regression C=10", texts, lr_right, None)
    confidence("intent", "logistic regression C=10", lr, lr_right)
    for options, label in ((CHOSEN, ""), (SOFTMAX_FEATURES, " + typed words")):
        svm = Pipeline([("features", tfidf_features(options)), ("classifier", SoftmaxLinearSVC())])
        margins = cross_val_predict(svm, texts, labels, cv=FOLDS, method="decision_function")
        right = classes[margins.argmax(axis=1)] == gold
        report("intent", f"linear SVM C=1{label}", texts, right, lr_right)
        for scale in (1.0, 2.0, 3.0, 5.0, 8.0, 12.0):
            probabilities = softmax(margins * scale)
            confidence("intent", f"  softmax of margins x {scale}", probabilities, right)


SOFTMAX_FEATURES = FeatureOptions(unfolded_words=2)


def routed(data: dict[str, tuple[list[str], list[str]]]) -> None:
    """The chosen typed parts, routed, with each task's candidate classifiers (on the data
    as it is now), against the logistic regression of the folded text."""
    candidates = {
        "intent": ("logistic", "svm_softmax"),
        "category": ("logistic", "svm"),
        "procedure": ("logistic",),
    }
    for name, (texts, labels) in data.items():
        classes = np.array(sorted(set(labels)))
        gold = np.array(labels)
        plain = cross_val_predict(text_pipeline(10.0, CHOSEN), texts, labels, cv=FOLDS)
        base = np.array(plain) == gold
        report(name, "LR, folded text only", texts, base, None)
        for kind in candidates[name]:
            started = time.perf_counter()
            probabilities = cross_val_predict(
                Routed(kind), texts, gold, cv=FOLDS, method="predict_proba"
            )
            right = classes[probabilities.argmax(axis=1)] == gold
            report(name, f"{kind}, routed typed parts", texts, right, base)
            confidence(name, f"({time.perf_counter() - started:.0f} s)", probabilities, right)


PARTS = {
    "c": regularisation,
    "features": features,
    "classifiers": classifiers,
    "reject": reject,
    "errors": errors,
    "calibrated": calibrated,
    "diacritics": diacritics,
    "softmax": softmax_svm,
    "routed": routed,
}


def main() -> None:
    data = tasks()
    print(f"{sum(len(t) for t, _ in data.values())} examples over {len(data)} tasks", flush=True)
    for part in sys.argv[1:] or PARTS:
        if part.startswith("added:"):
            added(part.removeprefix("added:"))
        elif ":" in part:  # PART:TASK, e.g. diacritics:category: that task only
            part, task = part.split(":")
            PARTS[part]({task: data[task]})
        else:
            PARTS[part](data)


if __name__ == "__main__":
    main()
