"""Time travel: every read method of ``Storage`` over the log as it stood at a moment.

``storage.as_of(moment)`` replays the log up to ``moment`` (a time: every event whose
timestamp is at or before it; or a log position: the log as it stood once that event was
in it, in reading order) into temporary tables of one connection,
through the same projections that build the live tables, and returns a view of the storage
whose reads run on those tables. One mechanism serves every kind (users, roles, invoices,
resources, ...) and every read method, with the same tenant rules: the acting context is the
live one. Writes through the view are refused. The replay costs what a rebuild costs (the
whole log up to the moment, ~20k events/s), so the view is for auditors and operators.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.errors import PermissionDeniedError, ProjectionError, ValidationError
from akashone_es.storage.limits import BIGINT_MAX, bound_problem
from projections.engine import Projection
from projections.log import LogReader, Row
from projections.positions import START, Key, head
from projections.rebuild import replay

#: temporary tables: private to the view's connection, gone when it closes
PAST_SCHEMA = "pg_temp"


#: for each aggregate with an event after the moment, the version of its first such event:
#: that event and every later one of the aggregate are left out (its history is a prefix)
CUTS = sql.SQL(
    "SELECT originator_id, min(originator_version) FROM public.akashone_events"
    " WHERE (convert_from(state, 'UTF8')::jsonb ->> 'timestamp')::timestamptz > %s"
    " GROUP BY originator_id")
AT_POSITION = sql.SQL(
    "SELECT transaction_id, notification_id FROM public.akashone_events"
    " WHERE notification_id <= %s ORDER BY notification_id DESC LIMIT 1")


class UntilReader(LogReader):
    """Reads only what happened at or before ``until``: an event whose own timestamp is later
    is left out, and so is every later event of its aggregate (a backdated event recorded
    later counts from the moment it names, as ``history`` shows it)."""

    def __init__(self, reader: LogReader, until: datetime, cuts: dict[Any, int]) -> None:
        super().__init__(reader.mapper)
        self.until = until
        self.cuts = cuts

    def read_rows(self, conn: psycopg.Connection[Any], after: Key, upto: Key, limit: int,
                  topics: Any) -> tuple[list[Row], Key]:
        rows, reached = super().read_rows(conn, after, upto, limit, topics)
        return [row for row in rows if row[2] < self.cuts.get(row[1], row[2] + 1)], reached


class _OneConnection:
    """Stands in for the pool's datastore: every read of the view runs on one connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    @contextmanager
    def get_connection(self) -> Iterator[psycopg.Connection[Any]]:
        yield self.conn


def moment_of(moment: Any) -> datetime | int:
    """``as_of``'s argument checked: an aware time, or a log position (0 or more)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValidationError.single("moment", "a time must carry its time zone")
        problem = bound_problem(moment)  # a read: any year both sides hold
        if problem is not None:
            raise ValidationError.single("moment", problem)
        return moment
    if isinstance(moment, int) and not isinstance(moment, bool) and 0 <= moment <= BIGINT_MAX:
        return moment
    raise ValidationError.single("moment", "must be a time with a time zone or a log "
                                           "position (an integer, 0 or more)")


def open_past(storage: Any, moment: datetime | int) -> Any:
    """A copy of ``storage`` reading from the log replayed up to ``moment``."""
    pool = storage._datastore.pool
    conn = psycopg.connect(pool.conninfo, **pool.kwargs)
    conn.autocommit = True
    try:
        reader = storage.reader
        stop = head(conn)
        if isinstance(moment, int):
            stop = min(stop, _key_of(conn, moment))
        else:
            with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                cuts: dict[Any, int] = dict(cur.execute(CUTS, (moment,)).fetchall())
            reader = UntilReader(reader, moment, cuts)
        replayed = [_replayed(conn, type(p), reader, stop, storage.settings.batch_size)
                    for p in storage.projections]
    except BaseException:
        conn.close()
        raise
    past = copy.copy(storage)
    past._datastore = _OneConnection(conn)
    past.projections = replayed
    past.moment = moment
    past._save = _refuse_writes
    past._standby = None  # the replayed tables live on this one connection
    past._catch_up = lambda _name: None  # the replay applied everything up to the moment
    past._enter = storage._enter  # contexts are resolved against the present
    past.close = conn.close
    return past


def _key_of(conn: psycopg.Connection[Any], position: int) -> Key:
    """The log as it stood once the event at ``position`` was in it ends at that event's key
    (the nearest event below, when none is there)."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        row = cur.execute(AT_POSITION, (position,)).fetchone()
    return START if row is None else Key(int(row[0]), int(row[1]))


def _replayed(conn: psycopg.Connection[Any], cls: type[Projection], reader: LogReader,
              stop: Key, batch_size: int) -> Projection:
    projection = cls(schema=PAST_SCHEMA)
    for statement in projection.ddl():
        conn.execute(statement)
    _, failure = replay(conn, projection, reader, START, stop, batch_size, None)
    if failure is not None:
        raise ProjectionError(failure.message("replay into the past of projection"))
    return projection


def _refuse_writes(*_: Any) -> None:
    raise PermissionDeniedError("a view of the past is read-only: write through the storage "
                                "itself")
