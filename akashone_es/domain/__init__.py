"""Aggregates and their events, one module per bounded context."""
