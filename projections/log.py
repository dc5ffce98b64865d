"""Reading the event log in batches, decoded, for catch-up, rebuild and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.application import PydanticMapper
from projections.positions import (  # noqa: F401 - the log's readers import them from here
    EVENTS,
    READ_ALL,
    READ_TOPICS,
    START,
    Key,
    head,
    pending,
)
from projections.quarantine import quarantined

#: a stored event: (position, originator id, originator version, topic, state, transaction)
Row = tuple[int, Any, int, str, Any, int]


LOCK_EVENTS = sql.SQL("LOCK TABLE {events} IN EXCLUSIVE MODE").format(events=EVENTS)


class LogReader:
    """Decodes stored events into domain events with the application's mapper."""

    def __init__(self, mapper: PydanticMapper) -> None:
        self.mapper = mapper

    def read_rows(self, conn: psycopg.Connection[Any], after: Key, upto: Key, limit: int,
                  topics: Sequence[str] | None) -> tuple[list[Row], Key]:
        """Stored events in (after, upto] in reading order, at most ``limit``, undecoded
        (projections decode each one on its own, so one bad event cannot hide the others);
        and the key read up to. ``upto`` must be at most ``head()``: nothing can still be
        added below it."""
        with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
            if topics is None:
                cur.execute(READ_ALL, (*after, *upto, limit), prepare=True)
            else:
                cur.execute(READ_TOPICS, (*after, *upto, list(topics), limit), prepare=True)
            rows = cur.fetchall()
        reached = Key(rows[-1][5], rows[-1][0]) if len(rows) == limit else upto
        return rows, reached

    def read(self, conn: psycopg.Connection[Any], after: Key, upto: Key, limit: int,
             topics: Sequence[str] | None) -> tuple[list[tuple[Any, int]], Key]:
        """Events in (after, upto], decoded, with their positions; and the key read up to."""
        rows, reached = self.read_rows(conn, after, upto, limit, topics)
        decode = self.mapper.decode
        return [(decode(topic, oid, version, bytes(state)), nid)
                for nid, oid, version, topic, state, _ in rows], reached

    def quarantined(self, conn: psycopg.Connection[Any], projection: str) -> frozenset[int]:
        """The positions an operator quarantined for ``projection``."""
        return quarantined(conn, projection)
