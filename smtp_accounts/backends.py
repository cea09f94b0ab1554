"""Django EmailBackend over the outbox (being written)."""
