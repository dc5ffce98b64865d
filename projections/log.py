"""Reading the event log in batches, decoded, for catch-up, rebuild and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.application import EVENTS_TABLE, PydanticMapper
from projections.quarantine import quarantined

EVENTS = sql.Identifier("public", EVENTS_TABLE)
#: a stored event: (position, originator id, originator version, topic, state)
Row = tuple[int, Any, int, str, Any]

HEAD = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {events}").format(events=EVENTS)
READ_ALL = sql.SQL(
    "SELECT notification_id, originator_id, originator_version, topic, state FROM {events}"
    " WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
).format(events=EVENTS)
READ_TOPICS = sql.SQL(
    "SELECT notification_id, originator_id, originator_version, topic, state FROM {events}"
    " WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s)"
    " ORDER BY notification_id LIMIT %s"
).format(events=EVENTS)
LOCK_EVENTS = sql.SQL("LOCK TABLE {events} IN EXCLUSIVE MODE").format(events=EVENTS)


def head(conn: psycopg.Connection[Any]) -> int:
    """The last notification id in the log (0 when empty)."""
    row = conn.execute(HEAD).fetchone()
    assert row is not None  # noqa: S101 - max() always returns one row
    return int(row[0] if isinstance(row, tuple) else row["coalesce"])


class LogReader:
    """Decodes stored events into domain events with the application's mapper."""

    def __init__(self, mapper: PydanticMapper) -> None:
        self.mapper = mapper

    def read_rows(self, conn: psycopg.Connection[Any], after: int, upto: int, limit: int,
                  topics: Sequence[str] | None) -> tuple[list[Row], int]:
        """Stored events in (after, upto], at most ``limit``, undecoded (projections decode
        each one on its own, so one bad event cannot hide the others); and the position read
        up to."""
        with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
            if topics is None:
                cur.execute(READ_ALL, (after, upto, limit), prepare=True)
            else:
                cur.execute(READ_TOPICS, (after, upto, list(topics), limit), prepare=True)
            rows = cur.fetchall()
        reached = rows[-1][0] if len(rows) == limit else upto
        return rows, reached

    def read(self, conn: psycopg.Connection[Any], after: int, upto: int, limit: int,
             topics: Sequence[str] | None) -> tuple[list[tuple[Any, int]], int]:
        """Events in (after, upto], at most ``limit``, decoded; and the position read up to."""
        rows, reached = self.read_rows(conn, after, upto, limit, topics)
        decode = self.mapper.decode
        events = [(decode(topic, oid, version, bytes(state)), nid)
                  for nid, oid, version, topic, state in rows]
        return events, reached

    def quarantined(self, conn: psycopg.Connection[Any], projection: str) -> frozenset[int]:
        """The positions an operator quarantined for ``projection``."""
        return quarantined(conn, projection)
