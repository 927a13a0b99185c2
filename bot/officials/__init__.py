"""The officials' side: invites, ticket actions, notifications, escalation."""
