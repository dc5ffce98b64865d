"""Places in the log: an event's key in the reading order, the head, how many events lie
between two keys, and the projections' checkpoints. It imports no domain code, so the
command line's quick paths (``projections status``) can read them without loading the
application."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from akashone_es.persistence.names import EVENTS_TABLE

EVENTS = sql.Identifier("public", EVENTS_TABLE)
CHECKPOINTS_TABLE = "akashone_checkpoints"
LIVE_SCHEMA = "public"


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


READ_CHECKPOINTS = sql.SQL(
    "SELECT name, transaction_id, position, live FROM {table}"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))


def read_checkpoints(conn: psycopg.Connection[Any]) -> dict[str, Key]:
    """Every projection's checkpoint; a live projection's is the head (in the reader's
    snapshot, as its rows are)."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        rows = cur.execute(READ_CHECKPOINTS).fetchall()
    last = head(conn, final=True) if any(row[3] for row in rows) else START
    return {row[0]: last if row[3] else Key(int(row[1]), int(row[2])) for row in rows}


def live_projections(conn: psycopg.Connection[Any]) -> set[str]:
    """The inline projections marked live (current by construction)."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        cur.execute(READ_CHECKPOINTS)
        return {row[0] for row in cur if row[3]}
