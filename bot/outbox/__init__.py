"""The outbox: every notification goes out through it, once (the worker is `worker.py`)."""
