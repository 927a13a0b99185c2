"""The explicit out_of_scope decision on an intent ranking (stdlib only, tested in the app).

The classifier always names some intent; a message that is none of them ("xe buýt số 32
mấy giờ hết chuyến", "what's the weather") tends to get a flat ranking. Below a threshold
chosen by cross-validation on the training data (scripts/crossval.py `reject`), the
message is out of scope.
"""

from __future__ import annotations

from typing import Any

OUT_OF_SCOPE = "out_of_scope"


def reject(ranking: list[dict[str, Any]], below: float) -> dict[str, Any]:
    """The best intent, or `out_of_scope` when the best intent's probability is under `below`.

    The ranking stays the model's; the rejection is as sure as the best intent was unsure.
    """
    best = ranking[0]
    if best["confidence"] >= below or best["name"] == OUT_OF_SCOPE:
        return best
    return {"name": OUT_OF_SCOPE, "confidence": 1.0 - best["confidence"]}
