"""The `courier` CLI commands, one module each."""
