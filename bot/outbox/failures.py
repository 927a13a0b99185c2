"""What a failed send means, for the outbox worker: try again later, or give up.

Each channel's output classifies its own errors (`ClassifiesErrors`); what it does not know,
and what outputs without a classification raise, the worker classifies here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Failure:
    """Try again later (after `retry_after` seconds when the channel said so, else after the
    backoff), or give up (`permanent`)."""

    reason: str
    permanent: bool = False
    retry_after: float | None = None


@runtime_checkable
class ClassifiesErrors(Protocol):
    """An output that knows what its channel's errors mean."""

    def classify_error(self, error: Exception) -> Failure | None:
        """What `error` means, or None when it is not one of the channel's own."""
        ...


def classify_generic(error: Exception) -> Failure:
    """Errors no channel claims: a reply refused before sending (ValueError: it would be
    refused again) fails at once; anything else is tried again after the backoff."""
    if isinstance(error, ValueError):
        return Failure(f"invalid reply: {error}", permanent=True)
    return Failure(f"{type(error).__name__}: {error}")
