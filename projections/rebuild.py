"""Rebuild into a shadow schema, verify against the live tables, swap atomically; status."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.logging import get_logger
from projections.engine import (
    LIVE_SCHEMA,
    LOCK_CHECKPOINT,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Batch,
    Projection,
    read_checkpoints,
)
from projections.log import LOCK_EVENTS, LogReader, head

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

    @property
    def ok(self) -> bool:
        return self.live == self.replayed


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


def _replay(conn: psycopg.Connection[Any], target: Projection, reader: LogReader, start: int,
            stop: int, batch_size: int, progress: Progress | None) -> int:
    """Apply events in (start, stop] to ``target`` batch by batch; returns the position."""
    position = start
    while position < stop:
        events, reached = reader.read(conn, position, stop, batch_size, target.topics())
        batch = Batch()
        target.apply(events, batch)
        with conn.transaction(), conn.cursor() as cur, conn.pipeline():
            batch.execute(cur)
        position = reached
        if progress:
            progress(target.name, position, stop)
    return position


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


def _current_position(conn: psycopg.Connection[Any], projection: Projection) -> int:
    return read_checkpoints(conn).get(projection.name, 0)


def rebuild(dsn: str, projection_cls: type[Projection], reader: LogReader, *,
            batch_size: int = 5000, progress: Progress | None = None) -> int:
    """Replay the whole log into shadow tables, then swap them in; returns the position.

    Writers keep appending during the long replay; only the final step (the tail of the log,
    then DROP live + SET SCHEMA shadow + checkpoint) holds the events table's EXCLUSIVE lock
    and the checkpoint row, so nothing appended meanwhile is missed or applied twice.
    """
    with psycopg.connect(dsn, autocommit=True) as conn, _exclusive(conn):
        shadow = _fresh_shadow(conn, projection_cls)
        position = _replay(conn, shadow, reader, 0, head(conn), batch_size, progress)
        live = projection_cls(schema=LIVE_SCHEMA)
        with conn.transaction():
            conn.execute(LOCK_EVENTS)
            conn.execute(REGISTER_CHECKPOINT, (live.name,))
            conn.execute(LOCK_CHECKPOINT, (live.name,))
            final = head(conn)
            events, _ = reader.read(conn, position, final, 10**9, shadow.topics())
            batch = Batch()
            shadow.apply(events, batch)
            for table in live.tables:
                batch.add(sql.SQL("DROP TABLE IF EXISTS {}").format(
                    sql.Identifier(LIVE_SCHEMA, table.name)), ())
                batch.add(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    sql.Identifier(SHADOW_SCHEMA, table.name), sql.Identifier(LIVE_SCHEMA)), ())
            batch.add(SET_CHECKPOINTS, (final, [live.name]))
            with conn.cursor() as cur:
                for query, params in batch.statements:
                    cur.execute(query, params)
        _drop_shadow(conn)
    log.info("projection.rebuilt", projection=projection_cls.name, position=final)
    return final


def verify(dsn: str, projection_cls: type[Projection], reader: LogReader, *,
           batch_size: int = 5000, progress: Progress | None = None) -> VerifyResult:
    """Replay into shadow tables up to the live checkpoint and compare content checksums."""
    with psycopg.connect(dsn, autocommit=True) as conn, _exclusive(conn):
        live = projection_cls(schema=LIVE_SCHEMA)
        shadow = _fresh_shadow(conn, projection_cls)
        position = _replay(conn, shadow, reader, 0, _current_position(conn, live), batch_size,
                           progress)
        try:
            with conn.transaction():
                if live.mode == "inline":
                    conn.execute(LOCK_EVENTS)
                conn.execute(LOCK_CHECKPOINT, (live.name,))
                target = _current_position(conn, live)
                _replay(conn, shadow, reader, position, target, 10**9, None)
                result = VerifyResult(live.name, target, checksums(conn, live),
                                      checksums(conn, shadow))
        finally:
            _drop_shadow(conn)
    return result


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    mode: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


def status(conn: psycopg.Connection[Any], projections: list[Projection]) -> list[ProjectionStatus]:
    """Head position, checkpoint and lag of each projection."""
    last = head(conn)
    positions = read_checkpoints(conn)
    return [ProjectionStatus(p.name, p.mode, positions.get(p.name, 0), last) for p in projections]



