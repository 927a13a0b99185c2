"""Weekly complaint digests."""
