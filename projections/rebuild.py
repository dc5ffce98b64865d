"""Rebuild into a shadow schema, verify against the live tables, swap atomically; status."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.errors import ProjectionError
from akashone_es.logging import get_logger
from projections.apply import apply_rows
from projections.engine import (
    LOCK_CHECKPOINT,
    MARK_LIVE,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Projection,
    Query,
)
from projections.failures import CLEAR as CLEAR_FAILURE
from projections.failures import Failure, read_failures, record_failure
from projections.log import LOCK_EVENTS, LogReader
from projections.positions import LIVE_SCHEMA, START, Key, head, pending, read_checkpoints

log = get_logger(__name__)
SHADOW_SCHEMA = "akashone_rebuild"
#: one rebuild or verify at a time per database: they share the shadow schema
REBUILD_LOCK = "akashone:rebuild"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableChecksum:
    table: str
    rows: int
    checksum: str


@dataclass(frozen=True)
class VerifyResult:
    projection: str
    position: int
    live: list[TableChecksum]
    replayed: list[TableChecksum]
    #: an event the projection cannot apply, at or past ``position``; None when there is none
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.live == self.replayed


def checksums(conn: psycopg.Connection[Any], projection: Projection) -> list[TableChecksum]:
    """Row count and md5 of each table of ``projection`` in its schema."""
    result = []
    for table in projection.tables:
        row = conn.execute(table.checksum_query(projection.schema)).fetchone()
        assert row is not None  # noqa: S101 - an aggregate query always returns a row
        rows, digest = (row[0], row[1]) if isinstance(row, tuple) else (row["rows"],
                                                                        row["checksum"])
        result.append(TableChecksum(table.name, int(rows), str(digest)))
    return result


def replay(conn: psycopg.Connection[Any], target: Projection, reader: LogReader, start: Key,
           stop: Key, batch_size: int, progress: Progress | None) -> tuple[Key, Failure | None]:
    """Apply events in (start, stop] to ``target`` batch by batch, skipping quarantined
    positions; returns the key reached and the event it could not apply, if any. ``stop``
    is at most ``head()`` (or the caller holds the events table's lock). Progress counts the
    events read, of those in the range. Long runs of inserts go as a COPY
    (``apply_rows(bulk=True)``)."""
    position = start
    skip = reader.quarantined(conn, target.name)
    total = pending(conn, start, stop, target.topics()) if progress else 0
    done = 0
    while position < stop:
        rows, reached = reader.read_rows(conn, position, stop, batch_size, target.topics())
        with conn.transaction():
            failure = apply_rows(conn, target, reader.mapper.decode, rows, skip, bulk=True)
        if failure is not None:
            return failure.key.before(), failure
        position = reached
        done += len(rows)
        if progress:
            progress(target.name, done, max(total, done))
    return position, None


def _stopped(dsn: str, failure: Failure, what: str) -> ProjectionError:
    """Record the failure (status shows it until a rebuild or catch-up gets past it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        record_failure(conn, failure)
    log.error("projection.rebuild_stopped", projection=failure.projection,
              position=failure.position, originator_id=failure.originator_id,
              topic=failure.topic, handler=failure.handler, error=failure.error)
    return ProjectionError(failure.message(what))


def _fresh_shadow(conn: psycopg.Connection[Any], projection_cls: type[Projection]) -> Projection:
    shadow = projection_cls(schema=SHADOW_SCHEMA)
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(SHADOW_SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SHADOW_SCHEMA)))
        for statement in shadow.ddl():
            conn.execute(statement)
    return shadow


@contextmanager
def _exclusive(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold the rebuild lock (a session advisory lock) for the block."""
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (REBUILD_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (REBUILD_LOCK,))


def _drop_shadow(conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
        sql.Identifier(SHADOW_SCHEMA)))


def _current_position(conn: psycopg.Connection[Any], projection: Projection) -> Key:
    return read_checkpoints(conn).get(projection.name, START)


def rebuild(dsn: str, projection_cls: type[Projection], reader: LogReader, *,
            batch_size: int = 5000, progress: Progress | None = None) -> Key:
    """Replay the whole log into shadow tables, then swap them in; returns the checkpoint.

    Writers keep appending during the long replay; only the final step (the tail of the log,
    then DROP live + SET SCHEMA shadow + checkpoint) holds the events table's EXCLUSIVE lock
    and the checkpoint row, so nothing appended meanwhile is missed or applied twice. An event
    the projection cannot apply (and no operator quarantined) leaves the live tables as they
    were, is recorded, and raises ``ProjectionError`` naming it.
    """
    with psycopg.connect(dsn, autocommit=True) as conn, _exclusive(conn):
        shadow = _fresh_shadow(conn, projection_cls)
        position, failure = replay(conn, shadow, reader, START, head(conn), batch_size,
                                   progress)
        if failure is not None:
            _drop_shadow(conn)
            raise _stopped(dsn, failure, "rebuild of projection")
        live = projection_cls(schema=LIVE_SCHEMA)
        swap: list[tuple[Query, Sequence[Any]]] = []
        for table in live.tables:
            swap.append((sql.SQL("DROP TABLE IF EXISTS {}").format(
                sql.Identifier(LIVE_SCHEMA, table.name)), ()))
            swap.append((sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(SHADOW_SCHEMA, table.name), sql.Identifier(LIVE_SCHEMA)), ()))
        try:
            with conn.transaction():
                conn.execute(LOCK_EVENTS)
                conn.execute(REGISTER_CHECKPOINT, (live.name,))
                conn.execute(LOCK_CHECKPOINT, (live.name,))
                final = head(conn, final=True)  # no writer is in flight: the lock waited
                rows, _ = reader.read_rows(conn, position, final, 10**9, shadow.topics())
                failure = apply_rows(conn, shadow, reader.mapper.decode, rows,
                                     reader.quarantined(conn, live.name), then=[
                                         *swap, (CLEAR_FAILURE, (live.name, *final)),
                                         _checkpoint_at(live, final)])
                if failure is not None:
                    raise _Abandon  # roll the tail back: the live tables stay as they were
        except _Abandon:
            _drop_shadow(conn)
            assert failure is not None  # noqa: S101 - _Abandon is raised only with a failure
            raise _stopped(dsn, failure, "rebuild of projection") from None
        _drop_shadow(conn)
    log.info("projection.rebuilt", projection=projection_cls.name, position=final.position)
    return final


def _checkpoint_at(projection: Projection, position: Key) -> tuple[Query, Sequence[Any]]:
    """The swap's checkpoint: an inline projection swapped in at the head is live."""
    if projection.mode == "inline":
        return MARK_LIVE, (*position, projection.name)
    return SET_CHECKPOINTS, (*position, [projection.name])


class _Abandon(Exception):  # noqa: N818 - a control-flow signal, never seen outside
    """Leave the swap transaction, rolling it back."""


def verify(dsn: str, projection_cls: type[Projection], reader: LogReader, *,
           batch_size: int = 5000, progress: Progress | None = None) -> VerifyResult:
    """Replay into shadow tables up to the live checkpoint and compare content checksums;
    then replay on to the head, so an event the projection cannot apply (a stuck checkpoint)
    is reported even when the live tables agree with the log below it."""
    with psycopg.connect(dsn, autocommit=True) as conn, _exclusive(conn):
        live = projection_cls(schema=LIVE_SCHEMA)
        shadow = _fresh_shadow(conn, projection_cls)
        try:
            # up to the live checkpoint, but not past what a reader may read now
            position, failure = replay(conn, shadow, reader, START,
                                       min(_current_position(conn, live), head(conn)),
                                       batch_size, progress)
            if failure is not None:
                return VerifyResult(live.name, position.position, [], [],
                                    failure.message("replay of projection"))
            with conn.transaction():
                if live.mode == "inline":
                    conn.execute(LOCK_EVENTS)
                conn.execute(LOCK_CHECKPOINT, (live.name,))
                target = _current_position(conn, live)
                _, failure = replay(conn, shadow, reader, position, target, 10**9, None)
                live_sums, replayed = checksums(conn, live), checksums(conn, shadow)
            problem = failure.message("replay of projection") if failure else None
            if problem is None:
                _, failure = replay(conn, shadow, reader, target, head(conn), batch_size, None)
                recorded = read_failures(conn).get(live.name)
                failure = failure or recorded
                problem = failure.message() if failure else None
            return VerifyResult(live.name, target.position, live_sums, replayed, problem)
        finally:
            _drop_shadow(conn)
