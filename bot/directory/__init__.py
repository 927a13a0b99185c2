"""Responsible units, routing rules and the working-time calendar (CIVICBOT_UNITS_FILE)."""
