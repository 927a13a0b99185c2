"""Tickets: filing, the workflow, escalation and the notices they queue."""
