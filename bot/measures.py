"""What each process measures for `/metrics` (bot/metrics.py): kept apart from the database
and the web so that any layer may record into it."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TURN_SECONDS = Histogram(
    "civicbot_turn_seconds",
    "From a stored message to its replies queued (one turn of the conversation).",
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NLU_SECONDS = Histogram(
    "civicbot_nlu_seconds",
    "NLU parse time per message, Rasa or the keyword fallback.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
NLU_FALLBACKS = Counter(
    "civicbot_nlu_fallbacks", "Messages understood by the keyword fallback (no Rasa answered)."
)
