"""The one-message save's own exchange with the server (``recorder.exchange``/``first_row``):
it reads results without a cursor, so it must raise, load and let go as a cursor does."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.pq import ExecStatus, TransactionStatus

from akashone_es.persistence.recorder import _ADAPTING, exchange, first_row

TABLE = ("CREATE TABLE t (id uuid PRIMARY KEY, name text NOT NULL, n bigint, ok boolean,"
         " at timestamptz NOT NULL DEFAULT now(), price numeric, tags text[])")


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(TABLE)
        yield c


def test_one_result_per_statement_and_the_row_loaded_as_a_cursor_loads_it(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    uid = uuid4()
    results = exchange(conn, (
        "BEGIN; INSERT INTO t (id, name, n, ok, price, tags) VALUES"
        f" ('{uid}', 'ä €', 12345678901, true, 10.50, ARRAY['a','b']) RETURNING *;"
        " COMMIT").encode())
    assert [r.status for r in results] == [
        ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK]
    row = first_row(conn, results[1])
    cursor_row = conn.cursor(row_factory=psycopg.rows.dict_row).execute(
        "SELECT * FROM t WHERE id = %s", (uid,)).fetchone()
    assert row == cursor_row
    assert isinstance(row["id"], UUID)
    assert isinstance(row["at"], datetime)
    assert row["name"] == "ä €"
    assert row["tags"] == ["a", "b"]
    assert conn.info.transaction_status == TransactionStatus.IDLE


def test_the_failing_statements_error_is_raised_and_what_follows_does_not_run(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    uid = uuid4()
    conn.execute("INSERT INTO t (id, name) VALUES (%s, 'first')", (uid,))
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        exchange(conn, (f"BEGIN; INSERT INTO t (id, name) VALUES ('{uid}', 'again');"
                        f" INSERT INTO t (id, name) VALUES ('{uuid4()}', 'after'); COMMIT"
                        ).encode())
    assert raised.value.diag.constraint_name == "t_pkey"
    assert conn.info.transaction_status == TransactionStatus.INERROR
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT name FROM t").fetchall() == [("first",)]


def test_a_timestamp_is_read_in_the_sessions_time_zone(
        conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """As a cursor reads it (an Indian server's sessions may run in Asia/Kolkata)."""
    conn.execute("SET TimeZone = 'Asia/Kolkata'")
    results = exchange(conn, f"INSERT INTO t (id, name) VALUES ('{uuid4()}', 'x')"
                             " RETURNING at".encode())
    at = first_row(conn, results[0])["at"]
    assert at.utcoffset() == timedelta(hours=5, minutes=30)


def test_the_adapters_of_a_closed_connection_are_let_go(dsn: str) -> None:
    """The quoting cursor and the loaders hold their connection: the entry of a closed one
    goes when one is added."""
    first = psycopg.connect(dsn, autocommit=True)
    first_row(first, exchange(first, b"SELECT 1 AS one")[0])
    assert first in _ADAPTING
    ref = weakref.ref(first)
    first.close()
    del first
    with psycopg.connect(dsn, autocommit=True) as second:
        assert first_row(second, exchange(second, b"SELECT 2 AS two")[0]) == {"two": 2}
    gc.collect()
    assert ref() is None
