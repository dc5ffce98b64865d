"""The application logs in as a role that can append and read, never rewrite history."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

from akashone_es import Settings, open_storage
from akashone_es.errors import ConfigurationError
from akashone_es.persistence.roles import app_dsn, ensure_app_role
from akashone_es.storage import Storage
from projections.identity import IdentityProjection
from projections.rebuild import rebuild
from tests.conftest import TEST_SETTINGS

REWRITES = [
    "UPDATE akashone_events SET topic = topic",
    "DELETE FROM akashone_events",
    "TRUNCATE akashone_events",
    "UPDATE akashone_snapshots SET state = state",
    "DELETE FROM akashone_snapshots",
    "TRUNCATE akashone_snapshots",
    "ALTER TABLE akashone_events DISABLE TRIGGER akashone_events_no_update_delete",
    "ALTER TABLE akashone_events DISABLE TRIGGER ALL",
    "ALTER TABLE akashone_snapshots DISABLE TRIGGER ALL",
    "SET session_replication_role = replica",
    "DROP TABLE akashone_events",
    "LOCK TABLE akashone_events IN EXCLUSIVE MODE",
]


@pytest.fixture
def snapshotted(dsn: str) -> Iterator[Storage]:
    """Storage snapshotting every 2 events, with a user that has a snapshot."""
    settings = Settings(**{**TEST_SETTINGS, "snapshot_interval": 2})  # type: ignore[arg-type]
    store = open_storage(settings, dsn=dsn)
    try:
        with store.acting_as(system="tests"):
            user = store.create_user({"username": "kavya", "email": "kavya@example.in",
                                      "password": "password-k1"})
            store.update_user(user.id, {"status": "suspended"})
            yield store
    finally:
        store.close()


@pytest.fixture
def app_conn(snapshotted: Storage) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the application's own role to the storage's database (in a
    transaction: LOCK TABLE is refused outside one for another reason)."""
    with psycopg.connect(app_dsn(snapshotted.dsn, snapshotted.settings)) as conn:
        yield conn


class TestApplicationRole:
    def test_pool_logs_in_as_the_application_role(self, storage: Storage) -> None:
        """The storage's connections are the application role's, not the owner's."""
        with storage.app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SELECT current_user").fetchone()
        assert row is not None
        assert "akashone_app" == row["current_user"]

    @pytest.mark.parametrize("statement", REWRITES)
    def test_application_role_cannot_rewrite_the_log_or_snapshots(
            self, snapshotted: Storage, app_conn: psycopg.Connection[Any], statement: str
    ) -> None:
        """Neither rows nor triggers of the events and snapshots tables can be touched: the
        role lacks the privilege itself (the append-only triggers are a second wall)."""
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match=r"permission denied|must be owner"):
            app_conn.execute(statement)
        with psycopg.connect(snapshotted.dsn) as owner:
            counts = owner.execute("SELECT (SELECT count(*) FROM akashone_events),"
                                   " (SELECT count(*) FROM akashone_snapshots)").fetchone()
        assert counts is not None
        assert counts[0] >= 2
        assert 1 == counts[1]

    def test_application_role_appends_and_reads(self, snapshotted: Storage,
                                                app_conn: psycopg.Connection[Any]) -> None:
        """Commands (a small save and a large pipelined one) and reads still work."""
        with snapshotted.acting_as(system="tests"):
            created = snapshotted.initialize_default_permissions()
            user = snapshotted.create_user({"username": "arjun", "email": "arjun@example.in",
                                            "password": "password-a1"})
            assert created > 0
            found = snapshotted.get_user(user.id)
        assert found is not None
        assert "arjun" == found.username
        row = app_conn.execute("SELECT count(*) FROM akashone_events").fetchone()
        assert row is not None
        assert row[0] > created

    def test_writes_continue_after_a_rebuild_swaps_the_tables(self, snapshotted: Storage
                                                              ) -> None:
        """Tables a rebuild swaps in (created by the owner) are writable by the role too."""
        rebuild(snapshotted.dsn, IdentityProjection, snapshotted.reader)
        with snapshotted.acting_as(system="tests"):
            user = snapshotted.create_user({"username": "meera", "email": "meera@example.in",
                                            "password": "password-m1"})
            assert "meera" == snapshotted.get_user(user.id).username  # type: ignore[union-attr]

    def test_refuses_a_superuser_as_application_role(self, dsn: str) -> None:
        """A role that could bypass the triggers is refused by name, before anything opens."""
        with psycopg.connect(dsn) as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles"
                                     " WHERE rolname = current_user").fetchone()
            owner = conn.execute("SELECT current_user").fetchone()
        if not (superuser and superuser[0] and owner):
            pytest.skip("the server's DSN user is not a superuser")
        settings = Settings(**{**TEST_SETTINGS, "app_role": owner[0]})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="AKASHONE_APP_ROLE"):
            open_storage(settings, dsn=dsn)


class TestRoleCreation:
    def test_processes_creating_the_role_at_once_all_succeed(self, dsn: str) -> None:
        """Roles are cluster-wide and set-ups of different databases run at the same time:
        four racing creators of one new role all succeed, and the role exists once."""
        role = f"akashone_race_{uuid.uuid4().hex[:8]}"
        barrier = threading.Barrier(4)

        def create() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                barrier.wait()
                ensure_app_role(conn, role, None)

        try:
            with ThreadPoolExecutor(4) as pool:
                for future in [pool.submit(create) for _ in range(4)]:
                    future.result()
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                                   (role,)).fetchone()
            assert row is not None
            assert 1 == row[0]
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
