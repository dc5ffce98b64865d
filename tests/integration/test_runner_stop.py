"""A runner asked to stop returns at its next batch, even while writers append faster than
its projections apply (it would otherwise chase the head for as long as they write), and so
does the chain's sealer beside it."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import psycopg
import pytest
from structlog.testing import capture_logs

from akashone_es import audit
from akashone_es.domain.identity import User
from akashone_es.storage import Storage
from projections.engine import Batch, Projection, Table
from projections.positions import START, head, read_checkpoints
from projections.runner import Runner, advisory_key

APPLY_SECONDS = 0.002  # per event: ~500 events/s, far below what the writer appends


class Slow(Projection):
    name = "test_slow"
    mode = "async"
    handles_all = True
    tables = (Table("test_slow", "position bigint PRIMARY KEY", order_by="position"),)

    def prepare(self) -> None:
        self.insert = self.q("INSERT INTO {t} VALUES (%s) ON CONFLICT DO NOTHING", t="test_slow")

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        time.sleep(APPLY_SECONDS)
        batch.add(self.insert, (position,))


def checkpoint(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return read_checkpoints(conn).get(Slow.name, START).position


@pytest.mark.parametrize("sealing", [False, True], ids=["projection", "and the sealer"])
def test_a_runner_behind_busy_writers_stops_at_its_next_batch(
        storage: Storage, dsn: str, sealing: bool) -> None:
    projection = Slow()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in projection.ddl():
            conn.execute(statement)
    writing = threading.Event()
    writing.set()

    def write() -> None:
        n = 0
        while writing.is_set():
            users = [User(username=f"w{n}-{k}", email=f"w{n}-{k}@example.com",
                          password_hash="x", gst_number=None, account_type="customer",
                          organization_id=None, status="active") for k in range(100)]
            storage.app.save(*users)
            n += 1

    runner = Runner(dsn, [projection], storage.reader, batch_size=50, poll_seconds=0.01,
                    follow=audit.seal if sealing else None)
    # the acting context (the storage fixture's) goes with the writer
    writer = threading.Thread(target=contextvars.copy_context().run, args=(write,),
                              daemon=True)
    follower = threading.Thread(target=runner.run, daemon=True)
    writer.start()
    try:
        follower.start()
        deadline = time.monotonic() + 30
        while checkpoint(dsn) == 0:  # it is applying, behind the writer
            assert time.monotonic() < deadline, "the runner applied nothing"
            time.sleep(0.05)
        time.sleep(0.5)
        runner.stop()
        follower.join(timeout=5)
        assert not follower.is_alive(), "the runner kept chasing the writers"
        with psycopg.connect(dsn) as conn:
            assert checkpoint(dsn) < head(conn).position  # it had not caught up
    finally:
        writing.clear()
        writer.join(timeout=30)
        runner.stop()
        follower.join(timeout=30)


def test_a_spare_runner_says_it_stands_by_once(storage: Storage, dsn: str) -> None:
    """Found in review: a hot spare logged ``projection.runner_standby`` at every try of
    the lock (about 15 lines a second); it says so once, until it has been active."""
    projection = Slow()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in projection.ddl():
            conn.execute(statement)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (advisory_key(Slow.name),))
        spare = Runner(dsn, [projection], storage.reader, batch_size=50, poll_seconds=0.01)
        with capture_logs() as logs:
            follower = threading.Thread(target=spare.run, daemon=True)
            follower.start()
            time.sleep(0.5)  # some 50 tries of the lock
            spare.stop()
            follower.join(timeout=5)
    assert [e["event"] for e in logs if e["event"].startswith("projection.runner")] == [
        "projection.runner_standby"]


def test_a_runner_follows_on_after_its_connections_are_killed(storage: Storage,
                                                               dsn: str) -> None:
    """Found in review: ``projections run`` exited 1 when its connections were terminated
    (a failover, an operator's ``pg_terminate_backend``). It reconnects and reads on from
    its checkpoint: every event applied once."""
    projection = Slow()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in projection.ddl():
            conn.execute(statement)
    runner = Runner(dsn, [projection], storage.reader, batch_size=50, poll_seconds=0.01)
    follower = threading.Thread(target=runner.run, daemon=True)

    def applied_all() -> bool:
        with psycopg.connect(dsn) as conn:
            return checkpoint(dsn) == head(conn).position

    def wait_for(condition: Any) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, "the runner did not catch up"
            time.sleep(0.05)

    storage.create_user({"username": "before", "email": "before@example.com",
                         "password": "long-enough-1"})
    with capture_logs() as logs:
        follower.start()
        try:
            wait_for(applied_all)
            with psycopg.connect(dsn, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
                    " datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query NOT LIKE '%%pg_stat_activity%%'"
                    " AND application_name = ''").fetchone()
            assert killed is not None
            storage.create_user({"username": "after", "email": "after@example.com",
                                 "password": "long-enough-1"})
            wait_for(applied_all)
            assert follower.is_alive()
        finally:
            runner.stop()
            follower.join(timeout=10)
    assert "projection.runner_reconnecting" in [e["event"] for e in logs]
    with psycopg.connect(dsn) as conn:
        positions = [r[0] for r in conn.execute("SELECT position FROM test_slow").fetchall()]
    assert len(positions) == len(set(positions))
