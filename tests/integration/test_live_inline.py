"""Inline projections go live once and are not checkpointed per append; the append's guard.

An inline projection at the head is marked live when storage opens; from then on its
checkpoint reads as the head and no append writes to the checkpoints table. The lock
function every append calls refuses the append when a writer's inline projection is not live
or is stopped, and when a live projection is one the writer does not apply.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from akashone_es.errors import ProjectionError
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.activity import ActivityProjection
from projections.billing import BillingProjection
from projections.identity import IdentityProjection
from projections.overview import status
from projections.positions import START, head, read_checkpoints
from tests.conftest import log_size

INLINE = (IdentityProjection.name, BillingProjection.name)


def rows(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def register(storage: Storage, name: str) -> None:
    storage.create_user({"username": name, "email": f"{name}@example.in",
                         "password": "password-1"})


def checkpoint_rows(dsn: str) -> dict[str, tuple[int, bool]]:
    return {name: (position, live) for name, position, live in rows(
        dsn, "SELECT name, position, live FROM akashone_checkpoints")}


class TestLive:
    def test_inline_projections_are_live_and_read_as_the_head(
            self, storage: Storage, dsn: str) -> None:
        register(storage, "asha")
        before = checkpoint_rows(dsn)
        register(storage, "ravi")

        assert checkpoint_rows(dsn) == before, "an append wrote to the checkpoints table"
        assert all(before[name][1] for name in INLINE)
        assert not before[ActivityProjection.name][1], "an async projection is never live"
        with psycopg.connect(dsn) as conn:
            # the last event: the readers' head stops below any transaction in flight on the
            # server, in any database (another test run's, an operator's)
            last = head(conn, final=True)
            positions = read_checkpoints(conn)
            lags = {s.name: s.lag for s in status(conn, list(storage.projections))}
        assert all(positions[name] == last for name in INLINE)
        assert positions[ActivityProjection.name] < last
        assert all(lags[name] == 0 for name in INLINE)

    def test_a_database_from_before_live_goes_live_without_a_rebuild(
            self, storage: Storage, dsn: str, settings: Settings) -> None:
        """The upgrade: no ``live`` column, the old lock function, inline checkpoints moved
        to the head by every append, no transaction ids in the log. Opening adds the columns
        and marks them live; nothing is replayed (the rows stay as they are: a marker row the
        log knows nothing of survives); old events read first, in position order."""
        register(storage, "asha")
        storage.close()
        last = rows(dsn, "SELECT max(notification_id) FROM akashone_events")[0][0]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE akashone_checkpoints DROP COLUMN live")
            for table in ("akashone_checkpoints", "akashone_events", "akashone_chain"):
                conn.execute(f"ALTER TABLE {table} DROP COLUMN transaction_id")
            conn.execute("UPDATE akashone_checkpoints SET position = %s WHERE name = ANY(%s)",
                         (last, list(INLINE)))
            conn.execute("DROP FUNCTION akashone_lock_events(text[], boolean)")
            conn.execute("CREATE FUNCTION akashone_lock_events() RETURNS void LANGUAGE sql"
                         " AS 'SELECT NULL'")
            conn.execute("INSERT INTO roles (id, name, created_at, updated_at)"
                         " VALUES (gen_random_uuid(), 'marker', now(), now())")

        reopened = open_storage(settings, dsn=dsn)
        try:
            assert all(live for name, (_, live) in checkpoint_rows(dsn).items()
                       if name in INLINE)
            assert rows(dsn, "SELECT count(*) FROM roles WHERE name = 'marker'") == [(1,)]
            assert rows(dsn, "SELECT count(*) FROM pg_proc WHERE proname ="
                             " 'akashone_lock_events'") == [(1,)]
            with reopened.acting_as(system="tests"):
                register(reopened, "ravi")
                assert reopened.get_user_by_username("ravi") is not None
            assert rows(dsn, "SELECT count(*) FROM akashone_events WHERE transaction_id = 0") \
                == [(last,)]
            with psycopg.connect(dsn) as conn:  # old events first, in position order
                read, _ = reopened.reader.read_rows(conn, START, head(conn), 10**9, None)
            positions = [row[0] for row in read]
            assert positions == sorted(positions)
            assert len(positions) == log_size(dsn) > last
        finally:
            reopened.close()

    def test_an_inline_projection_behind_the_head_is_rebuilt_not_marked_live(
            self, storage: Storage, dsn: str, settings: Settings) -> None:
        """Not live and behind (e.g. added to the code later): rebuilt from the log."""
        register(storage, "asha")
        storage.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE akashone_checkpoints SET live = false, position = 0"
                         " WHERE name = %s", (IdentityProjection.name,))
            conn.execute("DELETE FROM users")  # rows only a replay brings back

        reopened = open_storage(settings, dsn=dsn)
        try:
            assert checkpoint_rows(dsn)[IdentityProjection.name][1]
            assert rows(dsn, "SELECT username FROM users") == [("asha",)]
        finally:
            reopened.close()


class TestGuard:
    def test_a_writer_that_does_not_apply_a_live_projection_is_refused(
            self, storage: Storage, dsn: str, settings: Settings) -> None:
        """Another version of the code, without the billing projection, would leave it
        behind unseen: its appends are refused, and nothing is written."""
        older = open_storage(settings, dsn=dsn,
                             projections=(IdentityProjection, ActivityProjection))
        try:
            size = log_size(dsn)
            with older.acting_as(system="tests"), pytest.raises(ProjectionError) as raised:
                register(older, "asha")
            assert "billing" in str(raised.value)
            assert log_size(dsn) == size
            assert rows(dsn, "SELECT count(*) FROM users WHERE username = 'asha'") == [(0,)]
        finally:
            older.close()
        register(storage, "asha")  # the full writer still appends

    def test_an_inline_projection_not_live_refuses_appends(
            self, storage: Storage, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE akashone_checkpoints SET live = false WHERE name = %s",
                         (BillingProjection.name,))
        size = log_size(dsn)
        with pytest.raises(ProjectionError, match="not current"):
            register(storage, "asha")
        assert log_size(dsn) == size

    def test_only_the_application_role_may_call_the_lock_function(
            self, storage: Storage, dsn: str) -> None:
        """The lock function is the owner's (one, with the guard's arguments); the
        application role may execute it, PUBLIC may not."""
        grants = rows(dsn, "SELECT proacl::text FROM pg_proc WHERE proname ="
                           " 'akashone_lock_events'")
        assert len(grants) == 1
        acl = grants[0][0]
        assert not re.search(r"(^|[{,])=X", acl), f"PUBLIC may execute it: {acl}"
        assert "_app=X/" in acl, acl
