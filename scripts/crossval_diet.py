"""DIET alone and as a second opinion beside the TF-IDF logistic regression, on TRAINING data.

One fold of crossval.py's folds is held out (DIET trains for minutes, so not all five):
DIET (`nlu/config-diet.yml`'s featurizers, intent only, the given epochs) and the chosen
logistic regression are trained on the other four fifths, and the held-out examples'
intents are predicted by each and by a weighted mean of their probabilities. Run with the
NLU environment: `PYTHONPATH=nlu:. nlu/.venv/bin/python scripts/crossval_diet.py --epochs N`.
The dev sets are never read here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from civicbot_nlu.data import HARD_KINDS, TrainingExample, training_examples
from civicbot_nlu.features import document
from civicbot_nlu.labels import text_pipeline
from civicbot_nlu.normalize import has_diacritics
from sklearn.model_selection import StratifiedKFold

FOLDS = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)  # as in crossval.py
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # DIET's share of the mean; 0 is the LR alone
NLU_DIR = Path(__file__).resolve().parent.parent / "nlu"


def diet_config(epochs: int) -> dict[str, object]:
    """config-diet.yml's featurizers and DIET, for the intent only, every intent ranked."""
    config = yaml.safe_load((NLU_DIR / "config-diet.yml").read_text(encoding="utf-8"))
    pipeline = []
    for component in config["pipeline"]:
        if component["name"] == "DIETClassifier":
            component.update(epochs=epochs, entity_recognition=False, ranking_length=0)
        if component["name"] != "LexicalSyntacticFeaturizer":
            pipeline.append(component)
        if component["name"] == "DIETClassifier":
            break
    return {**config, "pipeline": pipeline}


def write_data(examples: list[TrainingExample], path: Path) -> None:
    """The examples as Rasa NLU YAML, one block per intent."""
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(" ".join(example.text.split()))
    blocks = [
        {"intent": intent, "examples": "".join(f"- {text}\n" for text in texts)}
        for intent, texts in by_intent.items()
    ]
    path.write_text(yaml.safe_dump({"version": "3.1", "nlu": blocks}, allow_unicode=True))


async def diet_probabilities(model: str, texts: list[str], classes: list[str]) -> np.ndarray:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    rows = []
    for text in texts:
        parsed = await agent.parse_message(text)
        ranking = {r["name"]: r["confidence"] for r in parsed["intent_ranking"]}
        rows.append([ranking.get(name, 0.0) for name in classes])
    return np.array(rows)


def train_diet(examples: list[TrainingExample], epochs: int, directory: Path) -> str:
    from rasa.model_training import train_nlu

    (directory / "config.yml").write_text(yaml.safe_dump(diet_config(epochs)))
    write_data(examples, directory / "nlu.yml")
    started = time.perf_counter()
    model = train_nlu(
        str(directory / "config.yml"),
        str(directory / "nlu.yml"),
        str(directory),
        fixed_model_name="diet",
    )
    print(f"DIET, {epochs} epochs: trained in {time.perf_counter() - started:.1f} s", flush=True)
    if model is None:
        raise SystemExit("DIET did not train")
    return str(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    examples = training_examples()
    labels = [e.intent for e in examples]
    train, test = next(FOLDS.split(examples, labels))
    train_examples = [examples[i] for i in train]
    held_out = [examples[i] for i in test]
    gold = np.array([e.intent for e in held_out])
    hard = np.array([e.source in HARD_KINDS for e in held_out])
    marked = np.array([has_diacritics(e.text) for e in held_out])

    lr = text_pipeline(10.0).fit(
        [document(e.text) for e in train_examples], [e.intent for e in train_examples]
    )
    classes = list(lr.classes_)
    lr_probabilities = lr.predict_proba([document(e.text) for e in held_out])
    with tempfile.TemporaryDirectory() as directory:
        model = train_diet(train_examples, args.epochs, Path(directory))
        started = time.perf_counter()
        diet = asyncio.run(diet_probabilities(model, [e.text for e in held_out], classes))
        per_message = (time.perf_counter() - started) / len(held_out) * 1000
    print(f"held out: {len(held_out)} of {len(examples)} examples; DIET {per_message:.1f} ms each")
    for weight in WEIGHTS:
        predicted = np.array(classes)[(weight * diet + (1 - weight) * lr_probabilities).argmax(1)]
        right = predicted == gold
        print(
            f"DIET weight {weight:<4} intent {right.mean():.3f}, with diacritics "
            f"{right[marked].mean():.3f} (n={marked.sum()}), without {right[~marked].mean():.3f}, "
            f"hard kinds {right[hard].mean():.3f} (n={hard.sum()})",
            flush=True,
        )


if __name__ == "__main__":
    main()
