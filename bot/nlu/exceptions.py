"""Errors of the NLU layer.

NluError
├── NluServerError        the local Rasa server cannot be trained, started or reached
└── NluResponseError      the server answered, but not with a parse result
"""


class NluError(Exception):
    """Base class of the NLU layer's errors."""


class NluServerError(NluError):
    """The local Rasa server cannot be trained, started or reached."""


class NluResponseError(NluError):
    """The server answered, but not with a parse result."""
