"""Email digests for people who were away: unread messages and missed calls,
batched, at most one per interval (docs/accounts.md, "Email digest")."""
