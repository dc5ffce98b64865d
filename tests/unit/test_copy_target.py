"""``copy_target``: which of a replay's statements may go as a COPY (a plain insert, nothing but
parameters for values), and the COPY that adds the same rows."""

from __future__ import annotations

import pytest
from psycopg import sql

from projections.bulk import accepted, copy_target

INSERT = b'INSERT INTO "s"."usage" (id, user_id, quantity) VALUES (%s, %s, %s)'


@pytest.mark.parametrize("tail", [b"", b" ON CONFLICT (id) DO NOTHING",
                                  b" ON CONFLICT (id) DO NOTHING RETURNING *",
                                  b" RETURNING *"])
def test_a_plain_insert_is_copied_into_its_columns(tail: bytes) -> None:
    target = copy_target(INSERT + tail)
    assert target is not None
    assert target.statement == b'COPY "s"."usage" (id, user_id, quantity) FROM STDIN'
    assert (target.schema, target.table, target.columns) == ("s", "usage",
                                                             ("id", "user_id", "quantity"))


@pytest.mark.parametrize("query", [
    # a value computed by the server, or cast: the COPY would store the text as given
    b'INSERT INTO "s"."usage" (id, user_id, quantity) VALUES (%s, %s, %s::numeric * 2)',
    b'INSERT INTO "s"."usage" (id, user_id, at) VALUES (%s, %s, now())',
    # a conflict that changes a row, or another arbiter: not what a COPY does
    INSERT + b" ON CONFLICT (id) DO UPDATE SET quantity = EXCLUDED.quantity",
    INSERT + b" ON CONFLICT (id, user_id) DO NOTHING",
    # columns and values that do not pair up
    b'INSERT INTO "s"."usage" (id, user_id) VALUES (%s, %s, %s)',
    b'INSERT INTO "s"."usage" VALUES (%s, %s)',
    b'UPDATE "s"."usage" SET quantity = %s WHERE id = %s',
    b'WITH v AS (SELECT 1) INSERT INTO "s"."usage" (id) VALUES (%s)',
    INSERT + b"; DROP TABLE x",
])
def test_anything_else_is_not(query: bytes) -> None:
    assert copy_target(query) is None


def test_a_composed_statement_is_not() -> None:
    composed = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(sql.Identifier("s", "t"))
    assert copy_target(composed) is None


@pytest.mark.parametrize(("column", "takes", "refuses"), [
    ("text", str, float), ("character varying(255)", str, bool),
    ("numeric(12,2)", int, float), ("timestamp with time zone", str, float),
    ("uuid[]", list, str), ("timestamp without time zone", None, str),
    ("double precision", None, float),
])
def test_a_column_takes_only_types_a_copy_stores_as_an_insert_would(
        column: str, takes: type | None, refuses: type) -> None:
    assert refuses not in accepted(column)
    if takes is not None:
        assert takes in accepted(column)
    else:
        assert accepted(column) == frozenset()
