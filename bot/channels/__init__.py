"""Channels: Telegram, Zalo and the local web chat turn their updates into IncomingMessage."""
