"""Create or upgrade the schema: the log's guard, checkpoints, and every projection's tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from eventsourcing.application import Application

from akashone_es.errors import ProjectionError
from akashone_es.logging import get_logger
from akashone_es.persistence.database import install_append_only_guard, rebase_log_order
from akashone_es.persistence.roles import grant_app_privileges
from akashone_es.personal import ensure_keys_table
from akashone_es.storage.resources import SYNC_STAMPS_DDL
from projections.billing_tables import BILLED_ONCE_DDL
from projections.engine import (
    AT_HEAD,
    CHECKPOINTS_DDL,
    MARK_LIVE,
    NOT_LIVE,
    REGISTER_CHECKPOINT,
    SET_CHECKPOINTS,
    Projection,
    Table,
)
from projections.failures import read_failures
from projections.log import LOCK_EVENTS, LogReader
from projections.positions import START, head, live_projections, read_checkpoints
from projections.quarantine import quarantined
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
        ensure_keys_table(conn, app_role)
        conn.execute(CHECKPOINTS_DDL)
        conn.execute(BILLED_ONCE_DDL)
        conn.execute(SYNC_STAMPS_DDL)
        for projection in projections:
            for statement in projection.ddl():
                conn.execute(statement)
        if app_role is not None:
            grant_app_privileges(conn, app_role)
    offset = rebase_log_order(conn)
    if offset is not None:
        log.warning("log.rebased", offset=offset, reason="the log's transaction ids are above "
                    "this server's (a restore): new events continue above them")


def bring_current(dsn: str, conn: psycopg.Connection[Any], projections: Sequence[Projection],
                  reader: LogReader, dropped: set[str]) -> list[str]:
    """Rebuild projections whose tables were missing (``dropped``) and inline projections
    that are not live (new ones, or stopped); an inline projection found at the head goes live
    without one. Normally this costs a few small queries.
    """
    last = head(conn, final=True)  # whether the log holds any committed event at all
    live = live_projections(conn)
    failed = read_failures(conn)
    rebuilt = []
    for projection in projections:
        conn.execute(REGISTER_CHECKPOINT, (projection.name,))
        inline = projection.mode == "inline"
        emptied = last > START and projection.name in dropped  # its rows must come from the log
        if (inline and not emptied and projection.name not in live | set(failed)
                and go_live(conn, projection)):
            continue
        stale = inline and (projection.name not in live or projection.name in failed)
        stop = failed.get(projection.name)
        if stale and not emptied and stop is not None and stop.position not in quarantined(
                conn, projection.name):
            # it stopped at an event it cannot apply, and nothing has changed that: a rebuild
            # would replay the whole log to stop there again, at every start. ``projections
            # rebuild`` (after a fix) or a quarantine of that event resumes it.
            log.warning("projection.still_stopped", projection=projection.name,
                        position=stop.position,
                        hint=f"akashone-es projections quarantine {projection.name} "
                             f"{stop.position}, or rebuild it once its handler is fixed")
            continue
        if last > START and (stale or emptied):
            log.info("projection.behind", projection=projection.name,
                     position=read_checkpoints(conn).get(projection.name, START).position,
                     head=last.position)
            try:
                rebuild(dsn, type(projection), reader)
            except ProjectionError as exc:
                # An event it cannot apply (recorded; status shows it) must not keep storage
                # closed: the operator needs it open to quarantine the event. While the
                # failure is recorded, the append guard refuses writes, so an inline
                # projection cannot take rows on top of tables that lack some.
                log.warning("projection.rebuild_failed", projection=projection.name,
                            error=str(exc))
                if projection.name in dropped:  # its tables are new and empty: start over
                    conn.execute(SET_CHECKPOINTS, (0, 0, [projection.name]))
                    conn.execute(NOT_LIVE, (projection.name,))
                continue
            rebuilt.append(projection.name)
    return rebuilt


def go_live(conn: psycopg.Connection[Any], projection: Projection) -> bool:
    """Mark an inline projection live if its checkpoint is at the head and no failure is
    recorded for it; under the events table's lock, so no append comes between."""
    with conn.transaction():
        conn.execute(LOCK_EVENTS)
        row = conn.execute(AT_HEAD, (projection.name,)).fetchone()
        if row is None or not row[0]:
            return False
        conn.execute(MARK_LIVE, (*head(conn, final=True), projection.name))
    log.info("projection.live", projection=projection.name)
    return True
