"""The officials' side: invites, sign-in and the chat desk (above `bot/tickets/`)."""
