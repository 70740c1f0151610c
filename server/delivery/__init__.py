"""Message delivery, counted: what clients report about the messages they got
live and the ones they had to fetch with ``room:sync`` (docs/realtime.md,
"Delivery, counted")."""
