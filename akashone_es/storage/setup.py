"""Create or upgrade the schema: the log's guard, checkpoints, and every projection's tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger
from akashone_es.persistence.database import install_append_only_guard
from projections.engine import (
    CHECKPOINTS_DDL,
    EVENTS_SEQUENCE,
    REGISTER_CHECKPOINT,
    Projection,
    read_checkpoints,
)
from projections.log import LogReader, head
from projections.rebuild import rebuild

log = get_logger(__name__)
SCHEMA_LOCK = "akashone:schema"


@contextmanager
def schema_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Serialize schema creation and upgrade across processes (a session advisory lock)."""
    conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (SCHEMA_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SCHEMA_LOCK,))


def missing_tables(conn: psycopg.Connection[Any], projections: Sequence[Projection]
                   ) -> set[str]:
    """Names of the projections that have at least one table missing."""
    missing = set()
    for projection in projections:
        for table in projection.tables:
            row = conn.execute("SELECT to_regclass(%s)",
                               (f"{projection.schema}.{table.name}",)).fetchone()
            if row is None or row[0] is None:
                missing.add(projection.name)
    return missing


def create_schema(conn: psycopg.Connection[Any], projections: Sequence[Projection]) -> None:
    """Idempotent DDL (call it under ``schema_lock``)."""
    with conn.transaction():
        install_append_only_guard(conn)
        row = conn.execute("SELECT pg_get_serial_sequence('public.akashone_events',"
                           " 'notification_id')").fetchone()
        if row is None or row[0] != EVENTS_SEQUENCE:
            raise ConfigurationError(f"the events table's sequence is {row and row[0]!r}, "
                                     f"expected {EVENTS_SEQUENCE!r}")
        conn.execute(CHECKPOINTS_DDL)
        for projection in projections:
            for statement in projection.ddl():
                conn.execute(statement)


def bring_current(dsn: str, conn: psycopg.Connection[Any], projections: Sequence[Projection],
                  reader: LogReader, dropped: set[str]) -> list[str]:
    """Rebuild projections whose tables were missing (``dropped``) and inline projections
    that are behind the log (new ones); normally this costs two small queries.
    """
    last = head(conn)
    positions = read_checkpoints(conn)
    rebuilt = []
    for projection in projections:
        conn.execute(REGISTER_CHECKPOINT, (projection.name,))
        behind = projection.mode == "inline" and positions.get(projection.name, 0) < last
        if last > 0 and (behind or projection.name in dropped):
            log.info("projection.behind", projection=projection.name,
                     position=positions.get(projection.name, 0), head=last)
            rebuild(dsn, type(projection), reader)
            rebuilt.append(projection.name)
    return rebuilt
