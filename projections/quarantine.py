"""Quarantined positions: events an operator decided a projection skips.

The decision is an event in the log (``Quarantine.Recorded``), so catch-up, rebuild and verify
read the same set and a rebuilt projection equals the live one. A small partial index on the
events table keeps the lookup cheap however long the log grows.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

from akashone_es.domain.operations import Quarantine
from akashone_es.persistence.names import EVENTS_TABLE

QUARANTINE_TOPIC = get_topic(Quarantine.Recorded)
QUARANTINE_INDEX = "akashone_events_quarantine_idx"

# Created only when missing: CREATE INDEX takes a SHARE lock on the events table even with
# IF NOT EXISTS, which would pause writers each time a process opens storage.
QUARANTINE_INDEX_DDL = sql.SQL(
    "DO $$ BEGIN IF to_regclass({qualified}) IS NULL THEN"
    " CREATE INDEX {index} ON {events} (notification_id) WHERE topic = {topic};"
    " END IF; END $$"
).format(qualified=sql.Literal(f"public.{QUARANTINE_INDEX}"),
         index=sql.Identifier(QUARANTINE_INDEX),
         events=sql.Identifier("public", EVENTS_TABLE), topic=sql.Literal(QUARANTINE_TOPIC))

# The topic is a literal, not a parameter, so the planner can use the partial index.
READ_QUARANTINES = sql.SQL(
    "SELECT state FROM {events} WHERE topic = {topic} ORDER BY notification_id"
).format(events=sql.Identifier("public", EVENTS_TABLE),
         topic=sql.Literal(QUARANTINE_TOPIC)).as_bytes(None)


def quarantined(conn: psycopg.Connection[Any], projection: str) -> frozenset[int]:
    """The log positions ``projection`` skips."""
    positions = set()
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        cur.execute(READ_QUARANTINES)
        for (state,) in cur:
            # Read leniently: a malformed record (written behind the API's back) must not stop
            # every projection; it is simply not a quarantine.
            try:
                data = orjson.loads(bytes(state))
            except orjson.JSONDecodeError:
                continue
            if (isinstance(data, dict) and data.get("projection") == projection
                    and isinstance(data.get("position"), int)):
                positions.add(data["position"])
    return frozenset(positions)
