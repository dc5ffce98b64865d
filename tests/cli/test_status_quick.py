"""``projections status`` reads the server straight (no storage opened: a quick start, and
nothing changed), and falls back to opening the storage when that is not enough."""

from __future__ import annotations

import re
import subprocess

import psycopg

from akashone_es.persistence.embedded import EmbeddedServer
from akashone_es.storage import Storage
from projections.overview import status
from tests.cli.conftest import ENTRY_POINT, Cli, Query, cli_env
from tests.conftest import private_data_dir

CHECKPOINTS = "SELECT name, transaction_id, position, live, updated_at FROM akashone_checkpoints"
#: the storage's set-up replaces the append's guard function (a new row version each time)
GUARD_VERSION = "SELECT xmin::text FROM pg_proc WHERE proname = 'akashone_lock_events'"


def _register(storage: Storage, count: int) -> None:
    for n in range(count):
        storage.create_user({"username": f"quick{n}", "email": f"quick{n}@example.com",
                             "password": "long-enough-1"})


def test_status_shows_what_the_storage_sees_and_writes_nothing(
        storage: Storage, cli: Cli, query: Query, dsn: str) -> None:
    _register(storage, 3)
    before, guard = sorted(query(CHECKPOINTS)), query(GUARD_VERSION)

    shown = cli("projections", "status")

    assert shown.returncode == 0, shown.stderr
    with psycopg.connect(dsn) as conn:
        rows = status(conn, storage.projections)
    for row in rows:
        cells = (row.name, row.mode, row.position, row.head, row.lag)
        assert re.search(r"\s*│\s*".join(map(str, cells)), shown.stdout), (cells, shown.stdout)
    assert next(r for r in rows if r.name == "user_activities").lag > 0  # not caught up
    assert sorted(query(CHECKPOINTS)) == before
    assert query(GUARD_VERSION) == guard  # no set-up ran: the storage was never opened


def test_an_older_schema_is_brought_current_first(storage: Storage, cli: Cli,
                                                  query: Query) -> None:
    """The quick read needs the reading order's function: without it, the storage opens
    (and its set-up puts it back) before the status is read."""
    _register(storage, 1)
    guard = query(GUARD_VERSION)
    query("DROP FUNCTION public.akashone_horizon()")

    shown = cli("projections", "status")

    assert shown.returncode == 0, shown.stderr
    assert "identity" in shown.stdout
    assert query("SELECT to_regprocedure('public.akashone_horizon()') IS NOT NULL") == [(True,)]
    assert query(GUARD_VERSION) != guard


def test_on_the_embedded_server_it_reads_straight_too() -> None:
    """No DATABASE_URL: the status starts (or joins) the embedded server and reads it
    without opening the storage."""
    with private_data_dir("quick-status") as home:
        env = {**cli_env(), "AKASHONE_DATA_DIR": str(home)}
        env.pop("DATABASE_URL", None)  # CI's second run sets it

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(ENTRY_POINT), *args], env=env, capture_output=True,
                                  text=True, timeout=180, check=False)

        assert run("init").returncode == 0
        server = EmbeddedServer(home)  # held, so the status finds it running
        try:
            with psycopg.connect(server.dsn("akashone")) as conn:
                guard = conn.execute(GUARD_VERSION).fetchall()
                shown = run("projections", "status")
                assert shown.returncode == 0, shown.stderr
                assert re.search(r"identity\s*│\s*inline", shown.stdout), shown.stdout
                assert conn.execute(GUARD_VERSION).fetchall() == guard  # storage not opened
        finally:
            server.stop()


def test_status_names_the_transaction_that_holds_followers_back(
        storage: Storage, cli: Cli, server_dsn: str) -> None:
    """Found in review: with a transaction holding an id open in another database of the
    server, ``status`` showed lag 0 beside events written after it, and nothing said why.
    It says how many events wait and which transaction (pid, database) they wait for."""
    with psycopg.connect(server_dsn) as other:  # the server's own database, not the log's
        other.execute("SELECT txid_current()")  # holds an id until it ends
        pid = other.info.backend_pid
        _register(storage, 2)
        shown = cli("projections", "status")
        assert shown.returncode == 0, shown.stderr
        line = " ".join(shown.stdout.split())
        assert "events written but not readable yet" in line, shown.stdout
        assert f"pid {pid}" in line
        other.rollback()
    shown = cli("projections", "status")
    assert "not readable yet" not in shown.stdout
