"""Light text classifiers for the Rasa pipeline: intents, and finer labels of one intent.

`TfidfFeaturizer` computes TF-IDF n-grams of the folded text (words and characters) once
per message, and of the text as typed, marks kept, for a message typed with diacritics;
each classifier is a logistic regression on them, a sigmoid-calibrated linear SVM
(`classifier: svm`) or a linear SVM with a softmax of its margins (`svm_softmax`). With
`typed: true` a classifier holds two models: one of the folded text, which reads messages
without diacritics, and one that also reads the marks, for the others. On this data they
beat DIET's accuracy and train in seconds on two cores (docs/nlu-report.md).

The finer label comes from intent-level metadata in the training data, so one intent is
written in several blocks without splitting it into many intents:

    - intent: report_problem
      metadata: {category: sidewalk}
      examples: | ...

Examples of the intent without the metadata key train the "no label" class (`None`).
Each `MetadataLabelClassifier` in the pipeline handles one (intent, label) pair, e.g.
category for report_problem and procedure for ask_procedure, and sets an output key of
that name: `{"name": "sidewalk", "confidence": 0.93, "ranking": [...]}`.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Text

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import INTENT, METADATA, METADATA_INTENT, TEXT, TEXT_TOKENS
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

from civicbot_nlu.features import (
    document_of,
    head_field,
    marked_field,
    negation_field,
    words_field,
)
from civicbot_nlu.ranking import reject

logger = logging.getLogger(__name__)

NO_LABEL = "__none__"
_MODEL_FILE = "text_classifier.pkl"


FEATURES = "civicbot_tfidf"  # message key of the shared features; never in the output
# The typed parts (`typed_parts`), a message key of their own: a classifier with `typed: true`
# reads messages with diacritics with them and the rest with a model of the folded parts only.
TYPED_FEATURES = "civicbot_tfidf_typed"


@dataclass(frozen=True)
class FeatureOptions:
    """What the TF-IDF features read (chosen by scripts/crossval.py on training data)."""

    word_ngrams: int = 2  # word n-grams 1..n of the folded text
    negation: bool = False  # `neg_<word>` for words in a negation's scope
    head: bool = False  # word n-grams of the head clause of a long message again
    unfolded_words: int = 0  # word n-grams 1..n of the text as typed, marks kept (0: off)
    unfolded_chars: bool = False  # character 2–5-grams of the text as typed, marks kept

    @classmethod
    def from_config(cls, config: Dict[Text, Any]) -> FeatureOptions:
        """The options set in config.yml, defaults for the rest."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})


def tfidf_features(options: FeatureOptions = FeatureOptions()) -> FeatureUnion:
    """TF-IDF of folded word n-grams and character 2–5-grams of `features.document`s,
    with the negation-scope, head-clause and typed parts when `options` ask for them."""
    return FeatureUnion(folded_parts(options) + typed_parts(options))


def folded_parts(options: FeatureOptions) -> list[tuple[str, TfidfVectorizer]]:
    """The vectorizers of the folded text (every message has these features)."""
    parts = [
        (
            "words",
            TfidfVectorizer(
                preprocessor=words_field, ngram_range=(1, options.word_ngrams), sublinear_tf=True
            ),
        ),
        (
            "chars",
            TfidfVectorizer(
                preprocessor=words_field, analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True
            ),
        ),
    ]
    if options.negation:
        negated = TfidfVectorizer(
            preprocessor=negation_field, token_pattern=r"neg_\w+", sublinear_tf=True
        )
        parts.append(("negation", negated))
    if options.head:
        head = TfidfVectorizer(preprocessor=head_field, ngram_range=(1, 2), sublinear_tf=True)
        parts.append(("head", head))
    return parts


def typed_parts(options: FeatureOptions) -> list[tuple[str, TfidfVectorizer]]:
    """The vectorizers of the text as typed, marks kept (empty for a message without any)."""
    parts = []
    if options.unfolded_words:
        words = TfidfVectorizer(
            preprocessor=marked_field, ngram_range=(1, options.unfolded_words), sublinear_tf=True
        )
        parts.append(("typed_words", words))
    if options.unfolded_chars:
        chars = TfidfVectorizer(
            preprocessor=marked_field, analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True
        )
        parts.append(("typed_chars", chars))
    return parts


def classifier(c: float) -> LogisticRegression:
    """Logistic regression with classes weighted by their rarity."""
    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


def classifier_of(kind: str, c: float) -> Any:
    """The classifier named in config.yml, classes weighted by their rarity: `logistic`;
    `svm`, a linear SVM with probabilities from a sigmoid per class fitted on 5 internal
    folds (one SVM on all the data, so a message costs one linear model); `svm_softmax`, a
    linear SVM with probabilities from a softmax of its margins."""
    if kind == "logistic":
        return classifier(c)
    if kind == "svm":
        svm = LinearSVC(C=c, class_weight="balanced")
        return CalibratedClassifierCV(svm, cv=5, method="sigmoid", ensemble=False)
    if kind == "svm_softmax":
        return SoftmaxLinearSVC(C=c, scale=SOFTMAX_SCALE)
    raise ValueError(f"unknown classifier {kind!r}: logistic, svm or svm_softmax")


# The SVM's margins times 3 leave as many intents under the dialogue's 0.5 as the logistic
# regression's probabilities, and those over it are right as often (scripts/crossval.py
# softmax).
SOFTMAX_SCALE = 3.0


class SoftmaxLinearSVC(ClassifierMixin, BaseEstimator):
    """A linear SVM whose probabilities are a softmax of its margins times `scale`.

    One linear model a message, like the logistic regression; no calibration folds. The
    ranking is the SVM's; `scale` only sets how sure the best label looks.
    """

    def __init__(self, C: float = 1.0, scale: float = 1.0) -> None:
        self.C = C
        self.scale = scale

    def fit(self, features: Any, labels: Any) -> SoftmaxLinearSVC:
        """Fits the SVM, classes weighted by their rarity."""
        svm = LinearSVC(C=self.C, class_weight="balanced").fit(features, labels)
        self.classes_ = svm.classes_
        self.coef_ = svm.coef_
        self.intercept_ = svm.intercept_
        return self

    def decision_function(self, features: Any) -> np.ndarray:
        """The margins, one column per class."""
        margins: np.ndarray = np.asarray(features @ self.coef_.T) + self.intercept_
        return margins

    def predict_proba(self, features: Any) -> np.ndarray:
        """A softmax of the scaled margins."""
        return softmax(self.decision_function(features) * self.scale)

    def predict(self, features: Any) -> np.ndarray:
        """The best label."""
        best: np.ndarray = self.classes_[self.decision_function(features).argmax(axis=1)]
        return best


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    scores = scores - scores.max(axis=1, keepdims=True)
    exponentials = np.exp(scores)
    probabilities: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return probabilities


def text_pipeline(c: float, options: FeatureOptions = FeatureOptions()) -> Pipeline:
    """Features and classifier in one estimator (for cross-validation on `document`s)."""
    return Pipeline([("features", tfidf_features(options)), ("classifier", classifier(c))])


def message_document(message: Message, options: FeatureOptions) -> str:
    """The message as the vectorizers read it (`civicbot_nlu.features.document`), from the
    tokenizer's folded words."""
    folded = [token.text for token in message.get(TEXT_TOKENS) or []]
    text = message.get(TEXT) or ""
    unfolded = bool(options.unfolded_words or options.unfolded_chars)
    return document_of(
        folded, text, negation=options.negation, head=options.head, unfolded=unfolded
    )


def fast_transform(features: FeatureUnion, texts: List[str]) -> scipy.sparse.csr_matrix:
    """`features.transform(texts)` without FeatureUnion's joblib overhead (≈1 ms a call)."""
    parts = [vectorizer.transform(texts) for _, vectorizer in features.transformer_list]
    return scipy.sparse.hstack(parts, format="csr")


def fast_probabilities(model: LogisticRegression, features: Any) -> np.ndarray:
    """`model.predict_proba(features)` without scikit-learn's input validation overhead."""
    scores = features @ model.coef_.T + model.intercept_
    if scores.shape[1] == 1:  # two classes: the logistic function
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack([1.0 - positive, positive])
    scores = scores - scores.max(axis=1, keepdims=True)
    exponentials = np.exp(scores)
    probabilities: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return probabilities


def _persist(model_storage: ModelStorage, resource: Resource, model: Any) -> None:
    with model_storage.write_to(resource) as directory:
        (directory / _MODEL_FILE).write_bytes(pickle.dumps(model))


def _restore(model_storage: ModelStorage, resource: Resource) -> tuple[Any, Any]:
    """The pair persisted (the folded and the typed part); a model trained before the
    typed part had one object."""
    try:
        with model_storage.read_from(resource) as directory:
            restored = pickle.loads((directory / _MODEL_FILE).read_bytes())
    except (ValueError, FileNotFoundError):
        return None, None
    return restored if isinstance(restored, tuple) else (restored, None)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class TfidfFeaturizer(GraphComponent):
    """Computes the TF-IDF features once per message for all the classifiers below."""

    @staticmethod
    def required_components() -> List[type]:
        """Needs folded tokens."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The fields of `FeatureOptions`."""
        return asdict(FeatureOptions())

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        features: Optional[FeatureUnion] = None,
        typed: Optional[FeatureUnion] = None,
    ) -> None:
        """Creates the featurizer around optional fitted vectorizers."""
        self._options = FeatureOptions.from_config(config)
        self._model_storage = model_storage
        self._resource = resource
        self._features = features
        self._typed = typed

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TfidfFeaturizer:
        """Creates an unfitted featurizer."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TfidfFeaturizer:
        """Loads the fitted vectorizers."""
        features, typed = _restore(model_storage, resource)
        return cls(config, model_storage, resource, features, typed)

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the vocabulary and IDF weights on every training text."""
        documents = [message_document(m, self._options) for m in training_data.training_examples]
        self._features = FeatureUnion(folded_parts(self._options)).fit(documents)
        typed = typed_parts(self._options)
        self._typed = FeatureUnion(typed).fit(documents) if typed else None
        _persist(self._model_storage, self._resource, (self._features, self._typed))
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Adds the features to every training message."""
        self.process(training_data.training_examples)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Adds the features to each message, in one batch."""
        if self._features is None or not messages:
            return messages
        documents = [message_document(m, self._options) for m in messages]
        rows = fast_transform(self._features, documents)
        typed = fast_transform(self._typed, documents) if self._typed is not None else None
        for i, message in enumerate(messages):
            message.set(FEATURES, rows[i])
            if typed is not None:
                message.set(TYPED_FEATURES, typed[i])
        return messages


def _folded(messages: List[Message]) -> scipy.sparse.csr_matrix:
    return scipy.sparse.vstack([m.get(FEATURES) for m in messages], format="csr")


def _with_typed(messages: List[Message]) -> scipy.sparse.csr_matrix:
    rows = [scipy.sparse.hstack([m.get(FEATURES), m.get(TYPED_FEATURES)]) for m in messages]
    return scipy.sparse.vstack(rows, format="csr")


def _is_marked(message: Message) -> bool:
    """Whether the message was typed with diacritics (its typed features are not empty)."""
    typed = message.get(TYPED_FEATURES)
    return typed is not None and typed.nnz > 0


def _probabilities(model: Any, features: scipy.sparse.csr_matrix) -> np.ndarray:
    if isinstance(model, LogisticRegression):
        return fast_probabilities(model, features)
    probabilities: np.ndarray = model.predict_proba(features)
    return probabilities


class _TextClassifier(GraphComponent):
    """Shared life cycle: fit a classifier on the shared features, persist, load, rank."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """`C` is the inverse regularisation strength; `classifier` is `logistic` or `svm`;
        `typed`: messages with diacritics are read by a second model that also sees the
        featurizer's typed parts."""
        return {"C": 10.0, "classifier": "logistic", "typed": False}

    @staticmethod
    def required_components() -> List[type]:
        """Needs the shared TF-IDF features."""
        return [TfidfFeaturizer]

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Any = None,
        typed_model: Any = None,
    ) -> None:
        """Creates the component around optional trained classifiers."""
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._model = model
        self._typed_model = typed_model

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> _TextClassifier:
        """Creates an untrained component."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> _TextClassifier:
        """Loads the trained classifiers, if training produced them."""
        model, typed_model = _restore(model_storage, resource)
        if model is None:
            logger.warning("%s has no trained model.", cls.__name__)
        return cls(config, model_storage, resource, model, typed_model)

    def _fit(self, messages: List[Message], labels: List[str]) -> Resource:
        # An array: CalibratedClassifierCV counts each class with `y == class_`, which a
        # list of strings answers with one False (and then "fewer than 5 examples").
        targets = np.asarray(labels)
        self._model = self._new_model().fit(_folded(messages), targets)
        if self._config["typed"]:
            if any(m.get(TYPED_FEATURES) is None for m in messages):
                raise ValueError("`typed: true` needs the featurizer's unfolded parts.")
            self._typed_model = self._new_model().fit(_with_typed(messages), targets)
        _persist(self._model_storage, self._resource, (self._model, self._typed_model))
        return self._resource

    def _new_model(self) -> Any:
        return classifier_of(self._config["classifier"], self._config["C"])

    def _rankings(self, messages: List[Message]) -> List[List[Dict[str, Any]]]:
        """For each message, every label with its probability, best first."""
        assert self._model is not None
        probabilities = _probabilities(self._model, _folded(messages))
        if self._typed_model is not None:
            marked = [i for i, m in enumerate(messages) if _is_marked(m)]
            if marked:
                typed = _with_typed([messages[i] for i in marked])
                probabilities[marked] = _probabilities(self._typed_model, typed)
        classes = [None if c == NO_LABEL else str(c) for c in self._model.classes_]
        return [
            sorted(
                (
                    {"name": name, "confidence": float(p)}
                    for name, p in zip(classes, row, strict=True)
                ),
                key=lambda item: item["confidence"],
                reverse=True,
            )
            for row in probabilities
        ]

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to training data."""
        return training_data


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class TfidfIntentClassifier(_TextClassifier):
    """Classifies intents from folded text."""

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the classifier on all intent examples."""
        examples = training_data.intent_examples
        return self._fit(examples, [m.get(INTENT) for m in examples])

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """`reject_below`: a best intent less probable than this becomes `out_of_scope`."""
        return {**_TextClassifier.get_default_config(), "reject_below": 0.0}

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets `intent` and `intent_ranking` like Rasa's own classifiers."""
        if self._model is None or not messages:
            return messages
        for message, ranking in zip(messages, self._rankings(messages), strict=True):
            message.set(INTENT, reject(ranking, self._config["reject_below"]), add_to_output=True)
            message.set("intent_ranking", ranking[:10], add_to_output=True)
        return messages


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class MetadataLabelClassifier(_TextClassifier):
    """Predicts an intent's metadata label (category, procedure) from folded text."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """`label` is the metadata key; `intent` the intent whose examples carry it."""
        return {**_TextClassifier.get_default_config(), "label": None, "intent": None}

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Any = None,
        typed_model: Any = None,
    ) -> None:
        """Creates the component; `label` and `intent` must be configured."""
        super().__init__(config, model_storage, resource, model, typed_model)
        if not self._config["label"] or not self._config["intent"]:
            raise ValueError("MetadataLabelClassifier needs `label` and `intent` set.")
        self._label: str = self._config["label"]
        self._intent: str = self._config["intent"]

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the label classifier on the examples of the configured intent."""
        examples, labels = [], []
        for example in training_data.intent_examples:
            if example.get(INTENT) != self._intent:
                continue
            metadata = (example.get(METADATA) or {}).get(METADATA_INTENT) or {}
            examples.append(example)
            labels.append(str(metadata.get(self._label) or NO_LABEL))
        if len(set(labels)) < 2:
            logger.warning("No %s labels to learn for intent %s.", self._label, self._intent)
            return self._resource
        return self._fit(examples, labels)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the output key `<label>` to the best label and its probability."""
        if self._model is None or not messages:
            return messages
        for message, ranking in zip(messages, self._rankings(messages), strict=True):
            best = ranking[0]
            message.set(
                self._label,
                {"name": best["name"], "confidence": best["confidence"], "ranking": ranking[:5]},
                add_to_output=True,
            )
        return messages
