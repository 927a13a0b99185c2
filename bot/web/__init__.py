"""The ASGI app: local web chat, webhooks and health check."""
