"""The log's table names, in a module that imports nothing: the command line's quick paths
(``projections status``) read the log without loading the application."""

EVENTS_TABLE = "akashone_events"
SNAPSHOTS_TABLE = "akashone_snapshots"
