"""PostgreSQL: DSN to eventsourcing env, the embedded server, the recorder and schema guards."""
