"""The channel-free conversation: messages in, replies out. It imports no channel."""
