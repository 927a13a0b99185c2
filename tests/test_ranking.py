"""The explicit out_of_scope decision on the intent ranking."""

from __future__ import annotations

from civicbot_nlu.ranking import reject

RANKING = [
    {"name": "report_problem", "confidence": 0.34},
    {"name": "help", "confidence": 0.33},
    {"name": "out_of_scope", "confidence": 0.30},
]


def test_an_unsure_best_intent_becomes_out_of_scope() -> None:
    decided = reject(RANKING, below=0.4)
    assert decided["name"] == "out_of_scope"
    assert abs(decided["confidence"] - 0.66) < 1e-9


def test_a_sure_enough_best_intent_stays() -> None:
    assert reject(RANKING, below=0.3) == RANKING[0]
    assert reject(RANKING, below=0.0) == RANKING[0]  # 0 turns the decision off


def test_out_of_scope_itself_is_kept_as_the_model_said() -> None:
    ranking = [{"name": "out_of_scope", "confidence": 0.2}, {"name": "greet", "confidence": 0.1}]
    assert reject(ranking, below=0.5) == ranking[0]
