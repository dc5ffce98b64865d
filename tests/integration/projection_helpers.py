"""Given domain events, when a projection applies them, then the rows of its tables.

Each call projects into a fresh schema of the test database (``Projection(schema=...)``), so
one test can project the same events once and twice and compare the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from akashone_es.domain.base import DomainEvent
from projections.engine import Batch, Projection

Row = dict[str, Any]
Given = Sequence[Any]  # events (positions 1, 2, ...) or (event, position) pairs


def collect(*aggregates: Any) -> list[Any]:
    """The pending events of the aggregates, in the order given."""
    events: list[Any] = []
    for aggregate in aggregates:
        events += aggregate.collect_events()
    return events


def stamped(events: Iterable[DomainEvent], **metadata: Any) -> list[Any]:
    """The events with ``metadata`` set (as the application stamps them at save time)."""
    return [e.model_copy(update={"metadata": {k: str(v) if isinstance(v, uuid.UUID) else v
                                             for k, v in metadata.items()}})
            for e in events]


def positioned(given: Given) -> list[tuple[Any, int]]:
    """(event, position) pairs; bare events get the positions 1, 2, 3, ..."""
    pairs: list[tuple[Any, int]] = []
    for index, item in enumerate(given, start=1):
        pairs.append(item if isinstance(item, tuple) else (item, index))
    return pairs


def _instance(projection: Projection | type[Projection]) -> Projection:
    cls = projection if isinstance(projection, type) else type(projection)
    return cls(schema=f"given_{uuid.uuid4().hex[:10]}")


def _project(dsn: str, projection: Projection | type[Projection],
             pairs: list[tuple[Any, int]]) -> dict[str, list[Row]]:
    target = _instance(projection)
    batch = Batch()
    target.apply(pairs, batch)
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target.schema)))
            for statement in target.ddl():
                conn.execute(statement)
        with conn.transaction(), conn.cursor() as cur, conn.pipeline():
            batch.execute(cur)
        return {table.name: _rows(conn, target, table.name) for table in target.tables}


def _rows(conn: psycopg.Connection[Any], projection: Projection, table: str) -> list[Row]:
    order_by = next(t.order_by for t in projection.tables if t.name == table)
    query = sql.SQL("SELECT * FROM {} ORDER BY " + order_by).format(projection.t(table))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query).fetchall()


def project_all(dsn: str, projection: Projection | type[Projection], given: Given
                ) -> dict[str, list[Row]]:
    """Every table's rows after the projection applied the events once, in order."""
    return _project(dsn, projection, positioned(given))


def project_all_twice(dsn: str, projection: Projection | type[Projection], given: Given
                      ) -> dict[str, list[Row]]:
    """Every table's rows after each event was delivered twice in a row (at-least-once)."""
    pairs = [pair for pair in positioned(given) for _ in range(2)]
    return _project(dsn, projection, pairs)


def project(dsn: str, projection: Projection | type[Projection], given: Given,
            table: str) -> list[Row]:
    """The rows of ``table`` after the projection applied the events once."""
    return project_all(dsn, projection, given)[table]


def project_twice(dsn: str, projection: Projection | type[Projection], given: Given,
                  table: str) -> list[Row]:
    """The rows of ``table`` after each event was delivered twice."""
    return project_all_twice(dsn, projection, given)[table]

