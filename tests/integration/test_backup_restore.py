"""Backup and restore: the log comes back whole, and the reading order goes on after it.

A base backup (``pg_basebackup``, with the WAL it needs replayed at start) keeps the
server's own history, transaction ids included: the restored server goes on where the
backup was taken, with no rebase.

A ``pg_dump`` of a live database restored with ``pg_restore`` into a fresh server (both
servers are embedded servers the test owns, so the dump and the restore use one PostgreSQL
version whatever server the rest of the suite runs on): the projections and the hash chain
verify, and events written after the restore are read after the old ones by every
follower. The fresh server's own transaction ids start far below the ones the log recorded,
so this is the case the order functions are rebased for (``persistence.database.rebase_log_order``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from akashone_es import audit
from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.persistence.embedded import EmbeddedServer, copy_of, programs
from akashone_es.settings import Settings
from akashone_es.storage import PROJECTIONS, Storage, open_storage
from projections.activity import ActivityProjection
from projections.positions import START, Key, head, read_checkpoints
from projections.rebuild import verify
from tests.conftest import log_size, private_data_dir


def run(*args: str | Path) -> None:
    """Run a PostgreSQL program; its stderr is the failure's message."""
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def servers() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """Two fresh servers: the one backed up, and the one restored into."""
    with private_data_dir("backup") as first, private_data_dir("restore") as second:
        source = EmbeddedServer(first)
        try:
            target = EmbeddedServer(second)
            try:
                yield source, target
            finally:
                target.stop()
        finally:
            source.stop()


def _scalar(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def write_history(storage: Storage) -> None:
    """Users, an organization, a move into it; the activity log caught up."""
    organization = storage.create_organization({"name": "Acme"})
    register(storage, [f"before{n}" for n in range(5)])
    user = storage.get_user_by_username("before0")
    assert user is not None
    storage.update_user(user.id, {"organization_id": organization.id})
    storage._catch_up(ActivityProjection.name)


def backed_up(settings: Settings, dsn: str) -> tuple[audit.Digest, Key, int]:
    """The history written into ``dsn`` and sealed: its digest, last event and size."""
    with open_storage(settings, dsn=dsn) as storage, storage.acting_as(system="tests"):
        storage.initialize_default_roles()
        write_history(storage)
    with psycopg.connect(dsn, autocommit=True) as conn:
        digest = audit.digest(conn)  # seals what is pending first
        old_last = head(conn, final=True)
    return digest, old_last, log_size(dsn)


def check_restored(settings: Settings, target: str, digest: audit.Digest, old_last: Key,
                   events_before: int) -> None:
    """Projections and chain verify; new writes read after the old ones, by every follower."""
    with open_storage(settings, dsn=target) as restored, restored.acting_as(system="tests"):
        assert all(verify(target, cls, restored.reader).ok for cls in PROJECTIONS)
        with psycopg.connect(target) as conn:
            verdict = audit.verify(conn, digest)
        assert verdict.ok, verdict
        assert verdict.events == events_before
        moved = restored.get_user_by_username("before0")
        assert moved is not None
        assert moved.organization_id is not None

        register(restored, [f"after{n}" for n in range(5)])
        restored._catch_up(ActivityProjection.name)
        with psycopg.connect(target, autocommit=True) as conn:
            last = head(conn)
            assert last == head(conn, final=True)
            assert _scalar(target, "SELECT min(transaction_id) FROM akashone_events"
                                   f" WHERE notification_id > {old_last.position}") > old_last.tx
            assert read_checkpoints(conn)[ActivityProjection.name] == last
            rows, _ = restored.reader.read_rows(conn, START, last, 10**9, None)
            positions = [row[0] for row in rows]
            assert positions == sorted(positions)
            assert len(positions) == log_size(target) > events_before
            assert _scalar(target, "SELECT count(*) FROM user_activities") == log_size(target)
            audit.seal(conn)
        with psycopg.connect(target) as conn:
            assert audit.verify(conn, digest).ok
        assert restored.get_user_by_username("after4") is not None


def register(storage: Storage, names: list[str]) -> None:
    for name in names:
        storage.create_user({"username": name, "email": f"{name}@example.com",
                             "password": "long-enough-1"})


def test_a_dump_restored_into_a_fresh_server_verifies_and_goes_on_in_order(
        settings: Settings, servers: tuple[EmbeddedServer, EmbeddedServer],
        tmp_path: Path) -> None:
    source, fresh = servers
    dsn = with_database(source.dsn("postgres"), "akashone_backed_up")
    ensure_database(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(1500):  # a server with some history: its ids above a fresh one's
            conn.execute("SELECT pg_current_xact_id()")
    digest, old_last, events_before = backed_up(settings, dsn)

    dump = tmp_path / "akashone.dump"
    tools = programs()
    run(tools / "pg_dump", "--format=custom", "--no-owner", "--no-privileges",
        f"--file={dump}", dsn)
    target = with_database(fresh.dsn("postgres"), "akashone_restored")
    ensure_database(target)
    try:
        run(tools / "pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
            f"--dbname={target}", dump)
        # the fresh server's transaction ids are below the log's: a plain restore would
        # leave new events sorted before old ones
        assert _scalar(target, "SELECT pg_current_xact_id()::text::bigint") < old_last.tx

        check_restored(settings, target, digest, old_last, events_before)
    finally:
        drop_database(target)
        drop_database(dsn)


def test_a_base_backup_started_as_a_server_verifies_and_goes_on_in_order(
        settings: Settings) -> None:
    """``pg_basebackup`` of a running server, started as a server of its own: the WAL it
    carries is replayed, the log verifies, and the ids go on (no rebase is needed)."""
    with private_data_dir("based") as first, private_data_dir("copy") as second:
        source = EmbeddedServer(first)
        try:
            dsn = with_database(source.dsn("postgres"), "akashone_based")
            ensure_database(dsn)
            digest, old_last, events_before = backed_up(settings, dsn)
            restored = copy_of(source, second, standby=False)
        finally:
            source.stop()  # the copy is a server of its own
        try:
            target = with_database(restored.dsn("postgres"), "akashone_based")
            check_restored(settings, target, digest, old_last, events_before)
            with psycopg.connect(target) as conn:  # the same history: no offset was needed
                assert conn.execute("SELECT prosrc FROM pg_proc WHERE proname ="
                                    " 'akashone_xact'").fetchone() == (
                    "SELECT pg_current_xact_id()::text::bigint",)
        finally:
            restored.stop()
