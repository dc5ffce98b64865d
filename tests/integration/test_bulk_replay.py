"""A replay (rebuild, verify, ``as_of``) sends long runs of plain inserts as one COPY
(``projections.bulk``): the tables it builds are the ones the same statements build one by
one, including where an insert would skip a row (``ON CONFLICT DO NOTHING``: the COPY fails
and the batch is applied again statement by statement) and where a value's type would be
stored otherwise by a COPY (a float meeting a numeric column)."""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from akashone_es.storage import Storage
from projections.apply import apply_rows
from projections.engine import Batch, Projection, Table
from projections.positions import START, head
from projections.rebuild import replay

EVENTS = 90  # the default roles and these users: runs well past COPY_MIN_ROWS


class Numbered(Projection):
    """A row per event, keyed by its position (or, with ``pairs``, by half of it: two
    events share each id, and the first one's row is kept)."""

    name = "test_bulk"
    mode = "async"
    handles_all = True
    tables = (Table("test_bulk", "id bigint PRIMARY KEY, position bigint NOT NULL,"
                                 " ratio numeric", order_by="id"),)
    pairs: ClassVar[bool] = False
    ratio: ClassVar[bool] = False

    def prepare(self) -> None:
        self.insert = self.q("INSERT INTO {t} (id, position, ratio) VALUES (%s, %s, %s)"
                             " ON CONFLICT (id) DO NOTHING", t="test_bulk")

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        batch.add(self.insert, (position // 2 if self.pairs else position, position,
                                position / 3 if self.ratio else position))


class Paired(Numbered):
    pairs = True


class Ratios(Numbered):
    ratio = True


@pytest.fixture
def log(storage: Storage) -> Storage:
    for n in range(EVENTS):
        storage.create_user({"username": f"bulk{n}", "email": f"bulk{n}@example.com",
                             "password": "long-enough-1"})
    return storage


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many batches went statement by statement, and how many runs as a COPY."""
    counts = {"one_by_one": 0, "copied": 0}
    one_by_one, copy = Batch.execute, psycopg.Cursor.copy

    def counted(self: Batch, cur: psycopg.Cursor[Any]) -> None:
        counts["one_by_one"] += 1
        one_by_one(self, cur)

    def copying(self: psycopg.Cursor[Any], statement: Any, *args: Any, **kwargs: Any) -> Any:
        counts["copied"] += 1
        return copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(Batch, "execute", counted)
    monkeypatch.setattr(psycopg.Cursor, "copy", copying)
    return counts


def replayed(dsn: str, storage: Storage, cls: type[Numbered], schema: str, *,
             bulk: bool, row_factory: Any = tuple_row) -> list[tuple[Any, ...]]:
    """Every row of ``cls``'s table, replayed over the whole log into ``schema`` on a
    connection of ``row_factory``."""
    projection = cls(schema=schema)
    with psycopg.connect(dsn, autocommit=True, row_factory=row_factory) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for statement in projection.ddl():
            conn.execute(statement)
        if bulk:
            _, failure = replay(conn, projection, storage.reader, START, head(conn), 1000,
                                None)
        else:
            rows, _ = storage.reader.read_rows(conn, START, head(conn), 10**6, None)
            with conn.transaction():
                failure = apply_rows(conn, projection, storage.reader.mapper.decode, rows)
        assert failure is None
        with conn.cursor(row_factory=tuple_row) as cur:
            return cur.execute(sql.SQL("SELECT id, position, ratio FROM {} ORDER BY id").format(
                sql.Identifier(schema, "test_bulk"))).fetchall()


def test_long_runs_of_inserts_go_as_a_copy(dsn: str, log: Storage,
                                           sent: dict[str, int]) -> None:
    rows = replayed(dsn, log, Numbered, "bulk_copied", bulk=True)
    assert sent == {"one_by_one": 0, "copied": 1}  # one batch, one run
    assert [row[0] for row in rows] == [row[1] for row in rows]
    assert len(rows) >= EVENTS
    assert rows == replayed(dsn, log, Numbered, "bulk_one_by_one", bulk=False)


def test_a_connection_of_dict_rows_copies_too(dsn: str, log: Storage,
                                              sent: dict[str, int]) -> None:
    """``as_of`` replays on a connection of the pool's kind, whose rows are dicts."""
    rows = replayed(dsn, log, Numbered, "bulk_dicts", bulk=True, row_factory=dict_row)
    assert sent == {"one_by_one": 0, "copied": 1}
    assert rows == replayed(dsn, log, Numbered, "bulk_dicts_one_by_one", bulk=False)


def test_a_row_an_insert_would_skip_sends_the_batch_again_one_by_one(
        dsn: str, log: Storage, sent: dict[str, int]) -> None:
    rows = replayed(dsn, log, Paired, "bulk_paired", bulk=True)
    assert sent["copied"] == 1
    assert sent["one_by_one"] == 1  # the COPY failed on a taken id: sent again
    assert all(position // 2 == id_ for id_, position, _ in rows)
    assert rows == replayed(dsn, log, Paired, "bulk_paired_one_by_one", bulk=False)


def test_floats_are_inserted_as_the_inline_path_inserts_them(
        dsn: str, log: Storage, sent: dict[str, int]) -> None:
    """A float cast by an INSERT keeps 15 digits, one read by a COPY 17: never copied."""
    rows = replayed(dsn, log, Ratios, "bulk_ratios", bulk=True)
    assert sent == {"one_by_one": 0, "copied": 0}
    assert rows == replayed(dsn, log, Ratios, "bulk_ratios_one_by_one", bulk=False)
