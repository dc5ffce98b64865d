"""Create or upgrade the schema: the log's guard, checkpoints, and every projection's tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from akashone_es.logging import get_logger
from akashone_es.persistence.database import install_append_only_guard
from projections.engine import CHECKPOINTS_DDL, REGISTER_CHECKPOINT, Projection, read_checkpoints
from projections.log import LogReader, head
from projections.rebuild import rebuild

log = get_logger(__name__)
SCHEMA_LOCK = "akashone:schema"


def create_schema(conn: psycopg.Connection[Any], projections: Sequence[Projection]) -> None:
    """Idempotent DDL, serialized across processes by an advisory lock."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,))
        install_append_only_guard(conn)
        conn.execute(CHECKPOINTS_DDL)
        for projection in projections:
            for statement in projection.ddl():
                conn.execute(statement)


def bring_inline_current(dsn: str, conn: psycopg.Connection[Any],
                         projections: Sequence[Projection], reader: LogReader) -> list[str]:
    """Rebuild any inline projection that is behind the log (new, or its tables were dropped).

    Normally inline checkpoints equal the head and this costs two small queries.
    """
    last = head(conn)
    positions = read_checkpoints(conn)
    rebuilt = []
    for projection in projections:
        conn.execute(REGISTER_CHECKPOINT, (projection.name,))
        if projection.mode == "inline" and positions.get(projection.name, 0) < last:
            log.info("projection.behind", projection=projection.name,
                     position=positions.get(projection.name, 0), head=last)
            rebuild(dsn, type(projection), reader)
            rebuilt.append(projection.name)
    return rebuilt
