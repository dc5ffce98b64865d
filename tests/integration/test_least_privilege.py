"""The application logs in as a role that can append and read, never rewrite history."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

from akashone_es import Settings, open_storage
from akashone_es.errors import ConfigurationError
from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.persistence.roles import app_dsn, ensure_app_role, scram_matches
from akashone_es.storage import Storage
from projections.identity import IdentityProjection
from projections.rebuild import rebuild
from tests.cli.conftest import run_cli, start_cli
from tests.conftest import TEST_SETTINGS, fresh_database

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
            row = conn.execute("SELECT current_user, current_database()").fetchone()
        assert row is not None
        assert f"{row['current_database']}_app" == row["current_user"]

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


def _role(prefix: str) -> str:
    return f"akashone_{prefix}_{uuid.uuid4().hex[:8]}"


def _dbname(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


def _drop_role(dsn: str, role: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _one(dsn: str, statement: Any, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(statement, params).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def other_dsn(server_dsn: str) -> Iterator[str]:
    """A second fresh database on the same server: another deployment."""
    with fresh_database(server_dsn) as url:
        yield url


class TestOneRolePerDeployment:
    def test_two_databases_get_two_roles_that_cannot_reach_each_other(
            self, storage: Storage, other_dsn: str) -> None:
        """Roles are server-wide: by default each database gets its own, so the other
        deployment's application credentials read nothing of this one."""
        other = open_storage(Settings(**TEST_SETTINGS), dsn=other_dsn)  # type: ignore[arg-type]
        other.close()
        mine = app_dsn(storage.dsn, storage.settings)
        theirs = app_dsn(other_dsn, other.settings)
        assert psycopg.conninfo.conninfo_to_dict(mine)["user"] != (
            psycopg.conninfo.conninfo_to_dict(theirs)["user"])
        intruder = psycopg.conninfo.make_conninfo(mine, user=(
            psycopg.conninfo.conninfo_to_dict(theirs)["user"]))
        with psycopg.connect(intruder) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM users")

    def test_dropping_the_database_drops_its_role(self, server_dsn: str) -> None:
        """Test databases come and go by the hundred: their roles must not pile up."""
        url = with_database(server_dsn, f"akashone_test_{uuid.uuid4().hex[:12]}")
        ensure_database(url)
        try:
            open_storage(Settings(**TEST_SETTINGS), dsn=url).close()  # type: ignore[arg-type]
            role = psycopg.conninfo.conninfo_to_dict(app_dsn(url, Settings()))["user"]
            assert 1 == _one(server_dsn, "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                             (role,))
        finally:
            drop_database(url)
        assert 0 == _one(server_dsn, "SELECT count(*) FROM pg_roles WHERE rolname = %s",
                         (role,))

    def test_a_role_another_database_uses_is_refused(self, server_dsn: str) -> None:
        """One AKASHONE_APP_ROLE for two deployments: the second is refused, naming the
        first database and the setting, and gets no table and no password change."""
        role = _role("shared")
        settings = Settings(**{**TEST_SETTINGS, "app_role": role,  # type: ignore[arg-type]
                               "app_password": "first-pw"})
        first, second = (with_database(server_dsn, f"akashone_test_{uuid.uuid4().hex[:12]}")
                         for _ in range(2))
        try:
            for url in (first, second):
                ensure_database(url)
            open_storage(settings, dsn=first).close()
            verifier = _one(server_dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                            (role,))
            other = Settings(**{**TEST_SETTINGS, "app_role": role,  # type: ignore[arg-type]
                                "app_password": "second-pw"})
            with pytest.raises(ConfigurationError,
                               match=rf"AKASHONE_APP_ROLE.*{role}.*{_dbname(first)}"):
                open_storage(other, dsn=second)
            assert verifier == _one(
                server_dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
            assert _one(second, "SELECT to_regclass('akashone_events')") is None
        finally:
            for url in (first, second):
                drop_database(url)
            _drop_role(server_dsn, role)


class TestPassword:
    def test_password_is_sent_hashed_and_only_when_it_changes(self, dsn: str) -> None:
        """What reaches the server is a SCRAM verifier, never the password (a DDL log would
        keep it); a start with the same password changes nothing, a new one replaces it."""
        role = _role("pw")

        def verifier() -> str:
            return str(_one(dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                            (role,)))

        try:
            with psycopg.connect(dsn, autocommit=True) as conn, tempfile.TemporaryFile() as wire:
                conn.pgconn.trace(wire.fileno())
                ensure_app_role(conn, role, "first-Secret-1")
                conn.pgconn.untrace()
                wire.seek(0)
                sent = wire.read()
            assert b"first-Secret-1" not in sent
            assert b"SCRAM-SHA-256$" in sent
            first = verifier()
            assert scram_matches(first, "first-Secret-1")
            assert not scram_matches(first, "first-Secret-2")
            with psycopg.connect(dsn, autocommit=True) as conn:
                ensure_app_role(conn, role, "first-Secret-1")
            assert first == verifier()  # same salt: no ALTER ROLE ran
            with psycopg.connect(dsn, autocommit=True) as conn:
                ensure_app_role(conn, role, "second-Secret-2")
            assert scram_matches(verifier(), "second-Secret-2")
        finally:
            _drop_role(dsn, role)


class TestPowerfulRoles:
    @pytest.mark.parametrize("attribute", ["CREATEROLE", "CREATEDB", "member of CREATEDB",
                                           "member of pg_write_server_files"])
    def test_a_role_with_powers_is_refused_untouched(self, dsn: str, attribute: str) -> None:
        """CREATEROLE (on PostgreSQL <= 15 it can grant itself the owner's role), CREATEDB,
        and membership in a role that has them are refused by name; no password is set."""
        role, helper = _role("powers"), _role("helper")
        with psycopg.connect(dsn, autocommit=True) as conn:
            if attribute.startswith("member of "):
                granted = attribute.removeprefix("member of ")
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
                if granted == "CREATEDB":
                    conn.execute(sql.SQL("CREATE ROLE {} CREATEDB").format(
                        sql.Identifier(helper)))
                    granted = helper
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(granted),
                                                              sql.Identifier(role)))
                expected = granted
            else:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(
                    sql.Identifier(role), sql.SQL(attribute)))
                expected = attribute
            try:
                with pytest.raises(ConfigurationError, match=rf"AKASHONE_APP_ROLE.*{expected}"):
                    ensure_app_role(conn, role, "some-Secret-1")
                assert _one(dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                            (role,)) is None
            finally:
                for name in (role, helper):
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                        sql.Identifier(name)))


# Records who applies the async projection: a trigger on its checkpoint row.
WHO_DDL = """
    CREATE TABLE who_applies (login text NOT NULL);
    CREATE FUNCTION who_applies() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO who_applies VALUES (session_user);
        RETURN NEW;
    END $$;
    CREATE TRIGGER who_applies AFTER UPDATE ON akashone_checkpoints
        FOR EACH ROW WHEN (NEW.name = 'user_activities') EXECUTE FUNCTION who_applies();
"""


class TestProjectionRunnersLogInAsTheApplication:
    @pytest.fixture
    def pending(self, storage: Storage) -> str:
        """A database with async events pending and the recording trigger; its app role."""
        storage.create_user({"username": "ravi", "email": "ravi@example.in",
                             "password": "password-r1"})
        with psycopg.connect(storage.dsn, autocommit=True) as conn:
            conn.execute(WHO_DDL)
        return str(psycopg.conninfo.conninfo_to_dict(
            app_dsn(storage.dsn, storage.settings))["user"])

    def _logins(self, dsn: str) -> set[str]:
        with psycopg.connect(dsn) as conn:
            return {row[0] for row in conn.execute("SELECT login FROM who_applies")}

    def test_catch_up_runs_as_the_application_role(self, dsn: str, pending: str) -> None:
        """``projections catch-up`` holds no owner rights, and still applies and checkpoints."""
        done = run_cli("projections", "catch-up", database_url=dsn)
        assert 0 == done.returncode, done.stderr
        assert {pending} == self._logins(dsn)

    def test_run_follows_as_the_application_role(self, dsn: str, pending: str) -> None:
        """The long-running follower logs in as the application role too."""
        process = start_cli("projections", "run", database_url=dsn)
        try:
            deadline = time.monotonic() + 120
            while not self._logins(dsn) and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)
        assert {pending} == self._logins(dsn)
