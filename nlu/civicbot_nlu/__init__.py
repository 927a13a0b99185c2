"""CivicBot's Vietnamese NLU: text normalisation and custom Rasa components.

`normalize` and `patterns` are stdlib only and shared with the app; the component
modules (`tokenizer`, `extractors`, `labels`) import Rasa and load only in its server.
"""
