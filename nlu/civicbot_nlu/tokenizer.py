"""A Rasa tokenizer that reads Vietnamese with or without diacritics alike."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from civicbot_nlu.normalize import fold, words

# Rasa featurizers and DIET need at least one token; this one stands for "no words".
EMPTY_TOKEN = "__empty__"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class VietnameseTokenizer(Tokenizer):
    """Splits into folded words (no marks, teencode expanded) with original offsets."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """Returns the component's default config."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @staticmethod
    def not_supported_languages() -> Optional[List[Text]]:
        """Any language code is fine; the tokenizer is written for Vietnamese."""
        return None

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> VietnameseTokenizer:
        """Creates a new component (see parent class for full docstring)."""
        return cls(config)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        """Tokens whose text is folded and whose start/end point into the original."""
        text = message.get(attribute) or ""
        tokens = [Token(w.text, w.start, w.end, lemma=w.text) for w in words(text)]
        if not tokens:
            stripped = text.strip()
            start = text.find(stripped) if stripped else 0
            surface = fold(stripped)[:50] or EMPTY_TOKEN
            tokens = [Token(surface, start, start + len(stripped), lemma=surface)]
        patterned: List[Token] = self._apply_token_pattern(tokens)  # Rasa's: Any here
        return patterned
