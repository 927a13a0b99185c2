"""The procedure catalog of PRODUCT.md §3: facts per procedure and short answers about them."""

from bot.catalog.catalog import (
    ASPECT_TITLES,
    DETAILS_BUTTON,
    MAX_ANSWER_CHARS,
    PORTAL_URL,
    Answer,
    Catalog,
    Option,
    Procedure,
    Submission,
    answer,
    answer_aspects,
    details,
    load_catalog,
    suggest,
)

__all__ = [
    "ASPECT_TITLES",
    "DETAILS_BUTTON",
    "MAX_ANSWER_CHARS",
    "PORTAL_URL",
    "Answer",
    "Catalog",
    "Option",
    "Procedure",
    "Submission",
    "answer",
    "answer_aspects",
    "details",
    "load_catalog",
    "suggest",
]
