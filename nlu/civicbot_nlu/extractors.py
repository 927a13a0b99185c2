"""A Rasa entity extractor for ticket codes, phone numbers and procedure aspects."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from civicbot_nlu.patterns import find_all


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class PatternEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Adds `ticket_code`, `phone` and `aspect` entities with normalised values."""

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> PatternEntityExtractor:
        """Creates the component; it has nothing to train."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends the pattern entities of each message to its entities."""
        for message in messages:
            found = [
                {
                    "entity": match.entity,
                    "value": match.value,
                    "start": match.start,
                    "end": match.end,
                    "confidence_entity": 1.0,
                }
                for match in find_all(message.get(TEXT) or "")
            ]
            message.set(
                ENTITIES,
                message.get(ENTITIES, []) + self.add_extractor_name(found),
                add_to_output=True,
            )
        return messages
