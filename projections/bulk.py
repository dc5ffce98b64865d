"""A replay's long runs of plain inserts, sent as one ``COPY`` each.

A rebuild (or verify, or ``as_of``) replays the log into fresh tables: most of its statements
are inserts, thousands of the same one in a batch (``Batch.grouped``). A ``COPY`` adds those
rows for a fraction of the server's and the client's work. It must add exactly the rows the
inserts would have, so a run goes as a COPY only when:

- the statement is a plain insert: nothing but parameters for values, at most skipping a row
  whose id is taken (``copy_target``);
- every value is of a Python type the column reads from a COPY's text as it would from the
  insert's parameter (``copies_as_inserts``): a float meeting a numeric column does not (the
  insert's cast keeps 15 digits, the COPY reads Python's 17), nor a time or a boolean meeting
  a text column (the server writes its own format, psycopg another).

Where an insert would have skipped a row (a taken id), the COPY fails instead: the caller
rolls the batch back and sends it again statement by statement (``projections.apply``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Json, Jsonb

from projections.engine import Batch, Query, send_runs

#: a run of at least this many inserts of one statement goes as a COPY
COPY_MIN_ROWS = 32
#: ``INSERT INTO "schema"."table" (columns) VALUES (%s, ...)``, with nothing but parameters
#: for values, optionally skipping a row whose id is taken and returning the row
PLAIN_INSERT = re.compile(
    rb'INSERT INTO ("([a-z_]+)"\."([a-z_]+)") \(([a-z0-9_]+(?:, [a-z0-9_]+)*)\)'
    rb' VALUES \((%s(?:, %s)*)\)(?: ON CONFLICT \(id\) DO NOTHING)?(?: RETURNING \*)?')
#: the Python types a column takes through a COPY as an insert stores them, by the column's
#: type as ``format_type`` names it (a prefix where a length follows: ``character varying``)
ACCEPTED: dict[str, frozenset[type]] = {
    "text": frozenset({str}), "character varying": frozenset({str}),
    "character": frozenset({str}),
    "uuid": frozenset({UUID, str}),
    "numeric": frozenset({int, Decimal, str}), "bigint": frozenset({int}),
    "integer": frozenset({int}), "smallint": frozenset({int}),
    "boolean": frozenset({bool}),
    "timestamp with time zone": frozenset({datetime, str}), "date": frozenset({date, str}),
    "jsonb": frozenset({Jsonb, Json, str}), "json": frozenset({Jsonb, Json, str}),
    "bytea": frozenset({bytes}),
}
COLUMN_TYPES = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
                " AND a.attnum > 0 AND NOT a.attisdropped")


class CopyTarget(NamedTuple):
    statement: bytes  # COPY "schema"."table" (columns) FROM STDIN
    schema: str
    table: str
    columns: tuple[str, ...]


_TARGETS: dict[bytes, CopyTarget | None] = {}


def copy_target(query: Query) -> CopyTarget | None:
    """The COPY for a plain insert (``PLAIN_INSERT``); None for any other statement."""
    if not isinstance(query, bytes):
        return None
    if query in _TARGETS:
        return _TARGETS[query]
    match = PLAIN_INSERT.fullmatch(query)
    found = None
    if match is not None and match[4].count(b",") == match[5].count(b","):
        found = CopyTarget(b"COPY %s (%s) FROM STDIN" % (match[1], match[4]),
                           match[2].decode(), match[3].decode(),
                           tuple(match[4].decode().split(", ")))
    if len(_TARGETS) < 4096:
        _TARGETS[query] = found
    return found


def accepted(column_type: str) -> frozenset[type]:
    """The Python types a column of ``column_type`` takes through a COPY (``ACCEPTED``); an
    array's, a list; none for any other type."""
    if column_type.endswith("[]"):
        return frozenset({list})
    return ACCEPTED.get(column_type.split("(", maxsplit=1)[0], frozenset())


def copies_as_inserts(cur: psycopg.Cursor[Any], target: CopyTarget,
                      rows: Sequence[Sequence[Any]]) -> bool:
    """Whether a COPY of ``rows`` stores what the insert would: each value is None or of a
    type its column accepts (``accepted``)."""
    with cur.connection.cursor(row_factory=tuple_row) as own:
        types: dict[str, str] = dict(
            own.execute(COLUMN_TYPES, (target.schema, target.table)).fetchall())
    if not set(target.columns) <= types.keys():
        return False
    takes = [accepted(types[column]) for column in target.columns]
    return all(len(row) == len(takes) for row in rows) and all(
        value is None or type(value) in ok
        for row in rows for value, ok in zip(row, takes, strict=True))


def execute_bulk(cur: psycopg.Cursor[Any], batch: Batch) -> None:
    """Send ``batch`` in the caller's transaction: a long run of plain inserts as one COPY,
    the other runs in pipelines between them. Raises where the database refuses a row (a
    taken id included): the caller sends the batch again with ``Batch.execute``."""
    pending: list[tuple[Query, list[Sequence[Any]]]] = []
    for query, params in [*batch.grouped(), (b"", [])]:
        target = copy_target(query) if len(params) >= COPY_MIN_ROWS else None
        if target is not None and not copies_as_inserts(cur, target, params):
            target = None
        if target is None and query:
            pending.append((query, params))
            continue
        if pending:
            with cur.connection.pipeline():
                send_runs(cur, pending)
            pending = []
        if target is not None:
            with cur.copy(target.statement) as copy:
                for row in params:
                    copy.write_row(row)
