"""The read side: projections that turn the event log into indexed PostgreSQL tables."""
