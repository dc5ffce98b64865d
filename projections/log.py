"""Reading the event log in batches, decoded, for catch-up, rebuild and history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from akashone_es.application import EVENTS_TABLE, PydanticMapper
from projections.quarantine import quarantined

EVENTS = sql.Identifier("public", EVENTS_TABLE)
#: a stored event: (position, originator id, originator version, topic, state, transaction)
Row = tuple[int, Any, int, str, Any, int]


class Key(NamedTuple):
    """An event's place in the log's reading order: the writing transaction's id, then the
    notification id (``persistence.database.LOG_ORDER_DDL`` says why). A checkpoint is the
    key of the last event applied; ``position`` is what people see."""

    tx: int
    position: int

    def before(self) -> Key:
        """The checkpoint just below this event (no event lies between)."""
        return Key(self.tx, self.position - 1)


START = Key(0, 0)
_COLUMNS = "notification_id, originator_id, originator_version, topic, state, transaction_id"
_LAST = " ORDER BY transaction_id DESC, notification_id DESC LIMIT 1"
#: the last event no running transaction can still precede: every event at or below it is
#: committed and visible, and nothing can be added below it
HEAD = sql.SQL(
    "SELECT transaction_id, notification_id FROM {events}"
    " WHERE transaction_id < public.akashone_horizon()" + _LAST).format(events=EVENTS)
#: the last event (call it holding the events table's EXCLUSIVE lock: no writer in flight)
FINAL_HEAD = sql.SQL("SELECT transaction_id, notification_id FROM {events}" + _LAST).format(
    events=EVENTS)
_RANGE = (" WHERE (transaction_id, notification_id) > (%s, %s)"
          " AND (transaction_id, notification_id) <= (%s, %s)")
_ORDER = " ORDER BY transaction_id, notification_id LIMIT %s"
READ_ALL = sql.SQL("SELECT " + _COLUMNS + " FROM {events}" + _RANGE + _ORDER).format(
    events=EVENTS)
READ_TOPICS = sql.SQL(
    "SELECT " + _COLUMNS + " FROM {events}" + _RANGE + " AND topic = ANY(%s)" + _ORDER
).format(events=EVENTS)
COUNT = sql.SQL("SELECT count(*) FROM {events}" + _RANGE).format(events=EVENTS)
COUNT_TOPICS = sql.SQL("SELECT count(*) FROM {events}" + _RANGE + " AND topic = ANY(%s)"
                       ).format(events=EVENTS)
LOCK_EVENTS = sql.SQL("LOCK TABLE {events} IN EXCLUSIVE MODE").format(events=EVENTS)


def head(conn: psycopg.Connection[Any], *, final: bool = False) -> Key:
    """The last event a reader may read now (``START`` when there is none); ``final``: the
    last event, for a caller that holds ``LOCK_EVENTS``."""
    row = conn.execute(FINAL_HEAD if final else HEAD).fetchone()
    if row is None:
        return START
    values = tuple(row.values()) if isinstance(row, dict) else row
    return Key(int(values[0]), int(values[1]))


def pending(conn: psycopg.Connection[Any], after: Key, upto: Key,
            topics: Sequence[str] | None = None) -> int:
    """How many events lie in (after, upto] (of ``topics``, when given)."""
    if upto <= after:
        return 0
    if topics is None:
        row = conn.execute(COUNT, (*after, *upto)).fetchone()
    else:
        row = conn.execute(COUNT_TOPICS, (*after, *upto, list(topics))).fetchone()
    assert row is not None  # noqa: S101 - count() always returns one row
    return int(next(iter(row.values())) if isinstance(row, dict) else row[0])


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
