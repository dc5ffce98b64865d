"""Create or upgrade the schema: the log's guard, checkpoints, and every projection's tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from eventsourcing.application import Application

from akashone_es.errors import ConfigurationError, ProjectionError
from akashone_es.logging import get_logger
from akashone_es.persistence.database import install_append_only_guard
from akashone_es.persistence.roles import grant_app_privileges
from projections.engine import (
    CHECKPOINTS_DDL,
    EVENTS_SEQUENCE,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Projection,
    Table,
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
    """Names of the projections that have at least one table missing, or older than its
    code (a column added since is absent): both are rebuilt from the log."""
    missing = set()
    for projection in projections:
        for table in projection.tables:
            row = conn.execute("SELECT to_regclass(%s)",
                               (f"{projection.schema}.{table.name}",)).fetchone()
            if row is None or row[0] is None or _lacks_added_columns(conn, projection, table):
                missing.add(projection.name)
    return missing


def _lacks_added_columns(conn: psycopg.Connection[Any], projection: Projection,
                         table: Table) -> bool:
    if not table.added:
        return False
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s"
        " AND table_name = %s AND column_name = ANY(%s)",
        (projection.schema, table.name, list(table.added))).fetchone()
    return row is None or row[0] < len(table.added)


def create_library_tables(conn: psycopg.Connection[Any], app: Application[Any]) -> None:
    """The library's tables, types and indexes, created by the owner (call it under
    ``schema_lock``): the application's pool logs in as a role that may not create them."""
    recorders = [app.recorder, *([app.snapshots.recorder] if app.snapshots else [])]
    for recorder in recorders:
        statements = recorder.sql_create_statements  # type: ignore[attr-defined]
        for statement in statements:
            if "CREATE TYPE" in statement.as_string(None):
                # no IF NOT EXISTS for types: the library also tries and tolerates this
                with suppress(psycopg.errors.DuplicateObject), conn.transaction():
                    conn.execute(statement)
        with conn.transaction():
            for statement in statements:
                if "CREATE TYPE" not in statement.as_string(None):
                    conn.execute(statement)
    for recorder in recorders:
        # the composite types exist now; the library registers them after creating them
        recorder.datastore.register_type_adapters()  # type: ignore[attr-defined]


def create_schema(conn: psycopg.Connection[Any], projections: Sequence[Projection], *,
                  app_role: str | None = None) -> None:
    """Idempotent DDL (call it under ``schema_lock``); with ``app_role``, that role's grants."""
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
        if app_role is not None:
            grant_app_privileges(conn, app_role)


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
            try:
                rebuild(dsn, type(projection), reader)
            except ProjectionError as exc:
                # An event it cannot apply (recorded; status shows it) must not keep storage
                # closed: the operator needs it open to quarantine the event. While the
                # failure is recorded, appends are refused (SET_CHECKPOINTS_TO_CURRENT), so
                # an inline projection's checkpoint cannot move past rows it lacks.
                log.warning("projection.rebuild_failed", projection=projection.name,
                            error=str(exc))
                if projection.name in dropped:  # its tables are new and empty: start over
                    conn.execute(SET_CHECKPOINTS, (0, [projection.name]))
                continue
            rebuilt.append(projection.name)
    return rebuilt
