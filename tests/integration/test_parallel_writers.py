"""Writers in parallel, followers exact: 8 writer processes append with no table lock (random
save sizes, sleeps inside their transactions, saves rolled back by the database, writers
SIGKILLed mid-transaction) while two follower processes apply async projections and seal the
hash chain. Every committed event must be applied exactly once by each, and the chain must
verify. ``AKASHONE_EXACTNESS_SECONDS`` sets how long the writers run (default 8).
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from akashone_es import audit
from akashone_es.export import Filters, export, verify_export
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.activity import ActivityProjection
from projections.positions import head, read_checkpoints
from projections.rebuild import verify
from tests.integration.parallel_log import AppliedProjection
from tests.integration.test_rebuild_and_faults import child_env, wait_until

WRITERS = 8
SECONDS = float(os.environ.get("AKASHONE_EXACTNESS_SECONDS", "8"))


def _start(dsn: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.parallel_log", *args],
                            env=child_env(dsn), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _started(writer: subprocess.Popen[bytes]) -> float:
    """Wait until ``writer`` writes (a Python process takes a second or more to import and
    open its storage, many more on a busy machine); the seconds waited."""
    begun = time.monotonic()
    assert writer.stdout is not None
    assert writer.stdout.readline() == b"writing\n", writer.stderr.read()  # type: ignore[union-attr]
    return time.monotonic() - begun


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


#: whether a committed event lies at or above the readers' mark (an older transaction runs)
HELD_BACK = ("SELECT EXISTS (SELECT 1 FROM akashone_events"
             " WHERE transaction_id >= public.akashone_horizon())")


def test_every_committed_event_is_applied_once_by_every_follower(
        storage: Storage, dsn: str, processes: list[subprocess.Popen[bytes]]) -> None:
    rng = random.Random()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in AppliedProjection().ddl():
            conn.execute(statement)
    followers = [_start(dsn, "follower", dsn, name)
                 for name in (ActivityProjection.name, AppliedProjection.name)]
    processes += followers
    for follower in followers:  # ready before the first write
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"following\n", follower.stderr.read()  # type: ignore[union-attr]

    seed = 0
    writers: list[subprocess.Popen[bytes]] = []
    for index in range(WRITERS):
        seed += 1
        writers.append(_start(dsn, "writer", dsn, str(index), str(seed)))
    processes += writers
    for writer in writers:
        _started(writer)
    killed = held_back = 0
    # the writers write for SECONDS in all: the time a restarted writer takes to start
    # (while the others write) is added, so a slow start does not shorten the run
    deadline = time.monotonic() + SECONDS
    with psycopg.connect(dsn, autocommit=True) as probe:
        while time.monotonic() < deadline:
            pause = time.monotonic() + rng.uniform(0.2, 1.0)
            while time.monotonic() < pause:
                # committed events a follower may not read yet: an older transaction (a
                # writer's, or a follower's own) is in flight
                held_back += bool(_scalar(probe, HELD_BACK))
                time.sleep(0.01)
            index = rng.randrange(WRITERS)  # killed wherever it is, mostly in a transaction
            writers[index].send_signal(signal.SIGKILL)
            writers[index].wait(timeout=30)
            killed += 1
            seed += 1
            writers[index] = _start(dsn, "writer", dsn, str(index), str(seed))
            processes.append(writers[index])
            deadline += _started(writers[index])
    for writer in writers:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL, writer.stderr.read()  # type: ignore[union-attr]

    with psycopg.connect(dsn, autocommit=True) as conn:
        # the killed writers' backends end their transactions; then nothing is in flight
        wait_until(lambda: _scalar(conn, "SELECT count(*) FROM pg_stat_activity WHERE"
                                         " datname = current_database() AND xact_start IS"
                                         " NOT NULL AND pid <> pg_backend_pid()"
                                         " AND backend_xid IS NOT NULL") == 0, timeout=60)
        # and no transaction on the server holds the readers' horizon below the last event
        wait_until(lambda: head(conn) == head(conn, final=True), timeout=60)
        last = head(conn)
        wait_until(lambda: all(read_checkpoints(conn).get(name) == last for name in (
            ActivityProjection.name, AppliedProjection.name)), timeout=120)
        wait_until(lambda: audit.sealed_head(conn) == last.position, timeout=60)
        for follower in followers:
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=30)
            assert follower.returncode == 0, follower.stderr.read()  # type: ignore[union-attr]

        events = _scalar(conn, "SELECT count(*) FROM akashone_events")
        rolled_back = _scalar(conn, "SELECT max(notification_id) FROM akashone_events") - events
        parallel = _scalar(conn, "SELECT count(DISTINCT transaction_id) FROM akashone_events"
                                 " WHERE transaction_id > 0")
        assert events > 300, events
        assert killed >= 5, killed
        assert rolled_back > 20, rolled_back
        # exactly once: one row per committed event, each applied once, nothing else
        assert _scalar(conn, "SELECT count(*) FROM parallel_applied") == events
        assert _scalar(conn, "SELECT count(*) FROM parallel_applied WHERE times <> 1") == 0
        assert _scalar(conn, "SELECT count(*) FROM akashone_events e WHERE NOT EXISTS (SELECT 1"
                             " FROM parallel_applied a WHERE a.position = e.notification_id)"
                       ) == 0
        assert _scalar(conn, "SELECT count(*) FROM user_activities") == events
        assert _scalar(conn, "SELECT count(*) FROM akashone_events e WHERE NOT EXISTS (SELECT 1"
                             " FROM user_activities a WHERE a.position = e.notification_id)"
                       ) == 0
        # the case the readers' mark is for happened again and again: events committed
        # while an older transaction was in flight
        assert held_back > 10, (held_back, parallel)
    with psycopg.connect(dsn) as conn:
        verdict = audit.verify(conn)
        assert verdict.ok, verdict
        assert verdict.events == events, verdict
        out = io.StringIO()  # an export in the chain's order checks offline, gaps and all
        summary = export(conn, out, Filters())
    exported = out.getvalue().splitlines()
    assert verify_export(exported, summary.digest).ok
    assert len(exported) == events + 1
    assert verify(dsn, ActivityProjection, storage.reader).ok
    # the inline identity projection kept up too: one user row per registration
    assert _scalar_dsn(dsn, "SELECT count(*) FROM users") == _scalar_dsn(
        dsn, "SELECT count(*) FROM akashone_events"
             " WHERE topic = 'akashone_es.domain.identity:User.Registered'")


def _scalar_dsn(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        return _scalar(conn, query)


def test_after_a_restore_new_events_continue_above_the_logs_transaction_ids(
        storage: Storage, dsn: str, settings: Settings) -> None:
    """A log restored into another server carries transaction ids above that server's own:
    the next start-up rebases the order functions, so new events read after the old ones
    and no follower skips them."""
    for n in range(3):
        storage.create_user({"username": f"before{n}", "email": f"before{n}@example.com",
                             "password": "long-enough-1"})
    storage._catch_up(ActivityProjection.name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        audit.seal(conn)
        # the restore, as seen from the new server: every recorded id far above its own
        with conn.transaction():
            for table in ("akashone_events", "akashone_chain"):
                conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                conn.execute(f"UPDATE {table} SET transaction_id = transaction_id + 10^12")
                conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            conn.execute("UPDATE akashone_checkpoints SET transaction_id = transaction_id + 10^12"
                         " WHERE transaction_id > 0")
        old_last = head(conn, final=True)
    with open_storage(settings, dsn=dsn) as again, again.acting_as(system="tests"):
        for n in range(3):
            again.create_user({"username": f"after{n}", "email": f"after{n}@example.com",
                               "password": "long-enough-1"})
        again._catch_up(ActivityProjection.name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert _scalar(conn, "SELECT min(transaction_id) FROM akashone_events WHERE"
                             f" notification_id > {old_last.position}") > old_last.tx
        assert head(conn) == head(conn, final=True) > old_last
        assert read_checkpoints(conn)[ActivityProjection.name] == head(conn)
        assert _scalar(conn, "SELECT count(*) FROM user_activities") == _scalar(
            conn, "SELECT count(*) FROM akashone_events")
        audit.seal(conn)
    with psycopg.connect(dsn) as conn:
        assert audit.verify(conn).ok


def test_a_read_of_the_activity_log_waits_for_an_older_writer_and_sees_its_own_write(
        storage: Storage, dsn: str) -> None:
    """An older transaction still running holds the readers' mark below the caller's own
    event: the read waits for it to end (here 0.5 s) and then shows the caller's write."""
    storage.create_user({"username": "early", "email": "early@example.com",
                         "password": "long-enough-1"})
    storage.get_user_activities()
    with psycopg.connect(dsn) as older:
        older.execute("SELECT pg_current_xact_id()")  # an id older than the write below
        user = storage.create_user({"username": "mine", "email": "mine@example.com",
                                    "password": "long-enough-1"})
        ended = threading.Timer(0.5, older.commit)
        ended.start()
        started = time.monotonic()
        activities = storage.get_user_activities()
        waited = time.monotonic() - started
        ended.join()
    assert str(user.id) in [a.resource_id for a in activities]
    assert waited >= 0.4
