"""The chat-turn schema and the store over it (needs the `db` extra)."""
