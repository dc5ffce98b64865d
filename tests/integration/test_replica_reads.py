"""Reads from a hot standby (``AKASHONE_READ_URL``): a real standby, streaming from a primary.

The test owns both servers: an embedded primary, and a base backup of it started as a hot
standby that replays the primary's WAL as it streams in (``embedded.copy_of(standby=True)``).
Pausing the standby's replay (``pg_wal_replay_pause()``) makes it lag on demand, which is how
the tests tell which server a read went to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from akashone_es.errors import ConfigurationError
from akashone_es.persistence.database import ensure_database, with_database
from akashone_es.persistence.embedded import EmbeddedServer, copy_of
from akashone_es.persistence.replica import CONNECT_SECONDS, MAX_SESSIONS, Standby
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from tests.conftest import TEST_SETTINGS, private_data_dir

DATABASE = "akashone_replicated"


@pytest.fixture(scope="module")
def primary() -> Iterator[EmbeddedServer]:
    with private_data_dir("primary") as home:
        server = EmbeddedServer(home)
        try:
            ensure_database(server.dsn(DATABASE))
            yield server
        finally:
            server.stop()


def start_standby(primary: EmbeddedServer, home: Path) -> EmbeddedServer:
    return copy_of(primary, home, standby=True)


@pytest.fixture(scope="module")
def standby(primary: EmbeddedServer) -> Iterator[EmbeddedServer]:
    with private_data_dir("standby") as home:
        server = start_standby(primary, home)
        try:
            yield server
        finally:
            server.stop()


def replicated(primary: EmbeddedServer, standby: EmbeddedServer, wait: float) -> Storage:
    settings = Settings(**{**TEST_SETTINGS, "read_url": standby.dsn(DATABASE),  # type: ignore[arg-type]
                           "read_wait_seconds": wait})
    return open_storage(settings, dsn=primary.dsn(DATABASE))


@pytest.fixture
def paused(standby: EmbeddedServer) -> Iterator[Any]:
    """Pauses the standby's replay for the block it is called in; resumes at the end."""
    def pause() -> None:
        replay(standby, "pause")

    yield pause
    replay(standby, "resume")


def replay(standby: EmbeddedServer, what: str) -> None:
    with psycopg.connect(standby.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"SELECT pg_wal_replay_{what}()")


def counts(storage: Storage) -> dict[str, int]:
    assert storage._standby is not None
    return dict(storage._standby.counts)


def register(storage: Storage, name: str) -> Any:
    return storage.create_user({"username": name, "email": f"{name}@example.com",
                                "password": "long-enough-1"})


def rows_on(server: EmbeddedServer, table: str) -> int:
    with psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.02)


def test_reads_go_to_the_standby_commands_and_their_own_reads_to_the_primary(
        primary: EmbeddedServer, standby: EmbeddedServer, paused: Any) -> None:
    with replicated(primary, standby, wait=0.3) as storage:
        with storage.acting_as(system="seeding"):
            storage.initialize_default_roles()
            register(storage, "early")
        with storage.acting_as(system="reader"):
            until(lambda: storage.get_user_by_username("early") is not None)
            assert set(counts(storage)) == {"standby"}  # no read waited or went elsewhere

        paused()
        with storage.acting_as(system="writer"):
            late = register(storage, "late")
            role = storage.create_role({"name": "auditors", "description": "read only"})
        with storage.acting_as(system="reader"):
            # the reader has not written: it reads the standby, which has not replayed them
            assert storage.get_user_by_username("late") is None
            assert storage.get_role(role.id) is None
            # a command's own reads (update_role reads the role first) go to the primary
            renamed = storage.update_role(role.id, {"name": "auditors-2"})
            assert renamed is not None
            assert renamed.name == "auditors-2"
        with storage.acting_as(system="writer"):
            # the writer reads its own writes: the standby lags past the wait, so the primary
            started = time.monotonic()
            found = storage.get_user_by_username("late")
            assert found is not None
            assert found.id == late.id
            assert time.monotonic() - started >= 0.25
            assert counts(storage)["lagging"] == 1
            # while known to lag, the next read asks once and does not wait again
            started = time.monotonic()
            assert storage.get_role(role.id) is not None
            assert time.monotonic() - started < 0.25
            assert counts(storage)["lagging"] == 2

        replay(standby, "resume")
        with storage.acting_as(system="reader"):
            until(lambda: storage.get_user_by_username("late") is not None)
            assert storage.get_role(role.id).name == "auditors-2"  # type: ignore[union-attr]


def test_status_says_how_far_the_standby_is_behind(
        primary: EmbeddedServer, standby: EmbeddedServer, paused: Any) -> None:
    with replicated(primary, standby, wait=0.1) as storage:
        with storage.acting_as(system="seeding"):
            storage.initialize_default_roles()
        env = {**os.environ, "DATABASE_URL": primary.dsn(DATABASE),
               "AKASHONE_READ_URL": standby.dsn(DATABASE), "COLUMNS": "80"}
        until(lambda: "standby: 0 bytes" in status(env))
        paused()
        with storage.acting_as(system="writer"):
            register(storage, "unreplayed")
        line = status(env).splitlines()[-1]
        assert line.startswith("standby: ")
        assert int(line.split()[1].replace(",", "")) > 0
        assert len(line) <= 80
    env["AKASHONE_READ_URL"] = "postgresql://postgres@/postgres?host=/nonexistent"
    assert "standby: unreachable" in status(env)
    env["AKASHONE_READ_URL"] = "postgresql://u:hunter%zz2@h/db"
    shown = status(env)
    assert "AKASHONE_READ_URL is not a PostgreSQL DSN" in shown
    assert "hunter" not in shown


def status(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "akashone_es.cli", "projections", "status"],
                          capture_output=True, text=True, env=env, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_session_waits_for_the_standby_to_replay_its_own_writes(
        primary: EmbeddedServer, standby: EmbeddedServer, paused: Any) -> None:
    with replicated(primary, standby, wait=10.0) as storage:
        with storage.acting_as(system="seeding"):
            storage.initialize_default_roles()
        paused()
        with storage.acting_as(system="writer"):
            written = register(storage, "waited-for")
            resume = threading.Timer(0.4, replay, (standby, "resume"))
            resume.start()
            started = time.monotonic()
            found = storage.get_user_by_username("waited-for")
            waited = time.monotonic() - started
            resume.join()
        assert found is not None
        assert found.id == written.id
        assert 0.3 <= waited < 10.0
        # the initialization's own reads went to the primary; this one to the standby, once
        # it had replayed the write
        assert counts(storage) == {"waited": 1}


def test_an_uncommitted_write_elsewhere_does_not_hold_a_session_back(
        primary: EmbeddedServer, standby: EmbeddedServer) -> None:
    """WAL written after the session's commit by a transaction still open stays unflushed
    (so unsent) until someone commits: the session waits for its own commit, not for it."""
    with replicated(primary, standby, wait=5.0) as storage, \
            psycopg.connect(primary.dsn(DATABASE)) as bystander:
        with storage.acting_as(system="seeding"):
            storage.initialize_default_roles()
        bystander.execute("CREATE TABLE IF NOT EXISTS bystander (x int)")
        bystander.commit()
        with storage.acting_as(system="writer"):
            role = storage.create_role({"name": "committed-first"})
            bystander.execute("INSERT INTO bystander SELECT generate_series(1, 20)")
            started = time.monotonic()
            assert storage.get_role(role.id) is not None
            assert time.monotonic() - started < 2.0
        bystander.rollback()
        assert "lagging" not in counts(storage)


def test_a_standby_that_goes_away_sends_reads_to_the_primary(
        primary: EmbeddedServer) -> None:
    with private_data_dir("lost-standby") as home:
        standby = start_standby(primary, home)
        try:
            storage = replicated(primary, standby, wait=1.0)
            with storage.acting_as(system="tests"):
                storage.initialize_default_roles()
                assert storage.get_roles()
                assert counts(storage) == {"standby": 1}
        finally:
            standby.stop()  # the standby's only user: this stops the server
        with storage, storage.acting_as(system="tests"):
            # the pooled connection is broken: the read is retried on the primary
            register(storage, "after-the-standby")
            assert storage.get_user_by_username("after-the-standby") is not None
            # then the standby is skipped for a while, without waiting for it
            started = time.monotonic()
            assert storage.get_roles()
            assert time.monotonic() - started < 1.0
            assert counts(storage)["down"] >= 1


def test_a_standby_behind_at_start_is_said_and_reads_still_answer(
        primary: EmbeddedServer, standby: EmbeddedServer, paused: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Opening waits a moment for the standby to replay what the primary has; a standby
    still behind after it is named in a warning, and the storage opens: its reads find the
    standby behind and are served."""
    with replicated(primary, standby, wait=0.3) as storage, storage.acting_as(system="tests"):
        storage.initialize_default_roles()
        until(lambda: rows_on(standby, "roles") > 0)
        paused()
        register(storage, "while-paused")
    capsys.readouterr()
    started = time.monotonic()
    with replicated(primary, standby, wait=0.3) as storage, storage.acting_as(system="tests"):
        assert time.monotonic() - started >= CONNECT_SECONDS
        assert "standby.behind_at_start" in capsys.readouterr().err
        assert storage.get_roles()
        register(storage, "after-opening")  # the session's own write: read from the primary
        assert storage.get_user_by_username("after-opening") is not None
        assert counts(storage).get("lagging", 0) >= 1


def test_a_read_url_that_is_not_a_standby_of_the_primary_is_refused(
        primary: EmbeddedServer, standby: EmbeddedServer, tmp_path: Path) -> None:
    def opened(read_url: str) -> str:
        settings = Settings(**{**TEST_SETTINGS, "read_url": read_url})  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError) as refused:
            open_storage(settings, dsn=primary.dsn(DATABASE)).close()
        message = str(refused.value)
        assert "\n" not in message
        return message

    assert "not in recovery" in opened(primary.dsn(DATABASE))
    assert "database 'postgres'" in opened(standby.dsn("postgres"))
    for url in ("postgresql://u:hunter2@[h/db", "postgresql://u:hunter%zz2@h/db"):
        message = opened(url)
        assert message.startswith("AKASHONE_READ_URL is not a PostgreSQL DSN")
        assert "hunter" not in message
    assert "cannot connect" in opened(with_database(
        f"postgresql://postgres@/postgres?host={tmp_path}", DATABASE))


def test_sessions_remembered_stay_bounded(primary: EmbeddedServer,
                                         standby: EmbeddedServer) -> None:
    """Past ``MAX_SESSIONS`` sessions, every session reads after one position asked at its
    next read: past the writes of all of them."""
    def on_primary() -> Any:
        return psycopg.connect(primary.dsn(DATABASE), autocommit=True, row_factory=dict_row)

    replica = Standby(standby.dsn(DATABASE), on_primary, pool_size=1, wait_seconds=0.0)
    try:
        replica.wrote("first")
        first = replica._needed("first")  # the primary's position, asked now
        assert first > 0
        assert replica._needed("never-wrote") == 0
        for n in range(MAX_SESSIONS):
            replica.wrote(f"s{n}")
        assert len(replica._written) <= MAX_SESSIONS
        assert replica._needed("never-wrote") >= first  # the floor covers everyone
        assert replica._needed("s1") >= first
    finally:
        replica.close()
