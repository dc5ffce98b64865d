"""Applying stored events to a projection, stopping cleanly before the first it cannot apply.

An event cannot be applied when it does not decode (unknown topic, bad state), when its handler
raises, or when the database refuses the handler's statements (a NUL character, a value out of
range, a broken constraint, an index row too large, a statement timeout). Such an event must not
wedge the projection: everything before it is applied, and the caller records the failure with
the checkpoint just before it. Only what is transient (``transient``) is not the event's fault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from akashone_es.logging import get_logger
from projections.bulk import execute_bulk
from projections.engine import Batch, Projection, Query
from projections.failures import Failure
from projections.log import Row

log = get_logger(__name__)
Decode = Callable[[str, Any, int, bytes], Any]
#: SQLSTATE classes and codes that say nothing about the event: the connection is gone or
#: going (08, 57P01-57P05), the server lacks resources or failed (53, 58, XX), the transaction
#: lost a race or waited too long for a lock (40, 55P03, 25P03). The batch is retried later.
#: Everything else the database says about an event's statements (psycopg classes some of it,
#: e.g. an index row too large or a statement timeout, as OperationalError) is the event's
#: fault: retrying forever would wedge the projection with nothing recorded.
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "58", "XX"})
TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05", "55P03", "25P03"})
DECODER = "mapper.decode"


def transient(exc: psycopg.Error) -> bool:
    """Whether ``exc`` is not the fault of the statements that raised it (so it propagates)."""
    sqlstate = exc.sqlstate
    if sqlstate is None:  # raised by psycopg itself: a lost connection, or a value it refused
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return sqlstate[:2] in TRANSIENT_CLASSES or sqlstate in TRANSIENT_CODES


def apply_rows(conn: psycopg.Connection[Any], projection: Projection, decode: Decode,
               rows: Sequence[Row], skip: frozenset[int] = frozenset(),
               then: Sequence[tuple[Query, Sequence[Any]]] = (), *,
               bulk: bool = False) -> Failure | None:
    """Apply ``rows`` in the caller's transaction; positions in ``skip`` are left out.

    When every event applies, the statements of ``then`` (the checkpoint) follow in the same
    pipeline and None is returned. Otherwise the events before the first one that cannot be
    applied are applied, ``then`` is not run, and that event's ``Failure`` is returned.
    ``bulk`` (a replay into fresh tables): long runs of inserts go as a COPY first
    (``projections.bulk``); when anything is refused, the batch is applied statement by
    statement as without it.
    """
    events, failure, batch = _plan(projection, decode, rows, skip)
    if failure is None:
        for query, params in then:
            batch.add(query, params)
    if (bulk and _execute(conn, batch, bulk=True)) or _execute(conn, batch):
        return failure
    # The database refused something in the batch: apply event by event to find which.
    for event, row in events:
        single = Batch()
        projection.handle(event, row[0], single)
        try:
            _must_execute(conn, single)
        except psycopg.Error as exc:
            if transient(exc):
                raise
            return Failure.of(projection.name, row, projection.handler_name(event), exc)
    if failure is None and then:  # only ``then`` was refused: not an event's fault
        _must_execute(conn, Batch.of(then))
    return failure


def execute_batch(conn: psycopg.Connection[Any], batch: Batch, *, bulk: bool = False) -> None:
    """Send ``batch`` in the caller's transaction, each attempt under a savepoint: with
    ``bulk``, long runs of inserts as a COPY first (``projections.bulk``) and, when the
    database refuses that, the statements one by one, so what is raised is what a
    statement itself raises (and an insert that skips a taken id skips it)."""
    if not (bulk and _execute(conn, batch, bulk=True)):
        _must_execute(conn, batch)


def _plan(projection: Projection, decode: Decode, rows: Sequence[Row], skip: frozenset[int]
          ) -> tuple[list[tuple[Any, Row]], Failure | None, Batch]:
    """Decode each event and collect its handler's statements, up to the first that fails."""
    events: list[tuple[Any, Row]] = []
    batch = Batch()
    for row in rows:
        position, originator_id, version, topic, state, _ = row
        if position in skip:
            log.info("projection.quarantined_skipped", projection=projection.name,
                     position=position)
            continue
        try:
            event = decode(topic, originator_id, version, bytes(state))
        except Exception as exc:  # noqa: BLE001 - any decode failure makes the event poison
            return events, Failure.of(projection.name, row, DECODER, exc), batch
        try:
            projection.handle(event, position, batch)
        except Exception as exc:  # noqa: BLE001 - a handler bug stops only this projection
            failure = Failure.of(projection.name, row, projection.handler_name(event), exc)
            return events, failure, _batch(projection, events)
        events.append((event, row))
    return events, None, batch


def _batch(projection: Projection, events: Sequence[tuple[Any, Row]]) -> Batch:
    # Built afresh from the events that passed: a handler that raised may have left half its
    # statements (or rows merged into a set-based statement) in the batch.
    batch = Batch()
    for event, row in events:
        projection.handle(event, row[0], batch)
    return batch


def _execute(conn: psycopg.Connection[Any], batch: Batch, *, bulk: bool = False) -> bool:
    """Run ``batch`` in one pipeline (``bulk``: with COPYs, ``projections.bulk``) under a
    savepoint; False (rolled back) when refused."""
    if not batch.statements:
        return True
    try:
        _must_execute(conn, batch, bulk=bulk)
    except psycopg.Error as exc:
        if transient(exc):
            raise
        return False
    return True


def _must_execute(conn: psycopg.Connection[Any], batch: Batch, *, bulk: bool = False
                  ) -> None:
    with conn.transaction(), conn.cursor() as cur:
        if bulk:
            execute_bulk(cur, batch)
            return
        with conn.pipeline():
            batch.execute(cur)
