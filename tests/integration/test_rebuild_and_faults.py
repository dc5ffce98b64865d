"""Rebuild, crash and concurrency behaviour of the projections, on a real server and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import psycopg
import pytest
from psycopg import sql

from akashone_es import context
from akashone_es.domain.identity import User, permission_id_for, system_role_id_for
from akashone_es.settings import Settings
from akashone_es.storage import PROJECTIONS, Storage, open_storage
from projections.activity import ActivityProjection
from projections.engine import Projection
from projections.identity import IdentityProjection
from projections.overview import status
from projections.positions import START, head, read_checkpoints
from projections.rebuild import checksums, rebuild, verify
from projections.runner import Runner, advisory_key, catch_up
from tests.conftest import TEST_SETTINGS

PASSWORD = "long-enough-1"
#: a valid bcrypt hash: create_user keeps it as it is, so bulk registration skips hashing
PASSWORD_HASH = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()
CLI = [sys.executable, "-c", "from akashone_es.cli import main; main()"]
REGISTERED_TOPIC = "akashone_es.domain.identity:User.Registered"


# -- helpers -------------------------------------------------------------------------------
def connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def scalar(dsn: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def all_checksums(dsn: str, projections: list[Projection]) -> dict[str, Any]:
    with connect(dsn) as conn:
        return {p.name: checksums(conn, p) for p in projections}


def checkpoint(dsn: str, name: str) -> int:
    """The position of the last event ``name`` applied (0 before any)."""
    with connect(dsn) as conn:
        return read_checkpoints(conn).get(name, START).position


def log_head(dsn: str) -> int:
    """The position of the last event a reader may read (the tests write one at a time)."""
    with connect(dsn) as conn:
        return head(conn).position


def wait_until(condition: Callable[[], bool], timeout: float = 20.0,
               interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        time.sleep(interval)


def register_bulk(storage: Storage, count: int, prefix: str, chunk: int = 250) -> None:
    """Append ``count`` User.Registered events, ``chunk`` users per transaction."""
    for start in range(0, count, chunk):
        users = [User(username=f"{prefix}{n}", email=f"{prefix}{n}@example.com",
                      password_hash=PASSWORD_HASH, gst_number=None, account_type="customer",
                      organization_id=None, status="active")
                 for n in range(start, min(start + chunk, count))]
        with context.command():
            storage._save(*users)


def realistic_data_set(storage: Storage) -> dict[str, Any]:
    """Users, an organization, roles, grants and revokes, an invitation accepted, a role
    deleted, a rename and a recorded login: every kind of identity event."""
    admin = storage.create_user({"username": "admin", "email": "admin@akashone.com",
                                 "password": PASSWORD, "account_type": "super_admin"})
    storage.assign_role_to_user(admin.id, system_role_id_for("Admin"))
    org = storage.create_organization({"name": "Kumar Traders", "kind": "customer"})
    with storage.acting_as(actor_id=admin.id, ip="203.0.113.7", user_agent="portal/2.1"):
        owner = storage.create_user({"username": "kumar", "email": "kumar@kt.example",
                                     "password": PASSWORD, "organization_id": org.id})
        operators = storage.create_role({"name": "Operators", "organization_id": org.id})
        temporary = storage.create_role({"name": "Temporary", "organization_id": org.id})
        storage.assign_permission_to_role(operators.id, permission_id_for("vm.view"))
        storage.assign_permission_to_role(operators.id, permission_id_for("vm.create"))
        storage.assign_permission_to_role(temporary.id, permission_id_for("dns.manage"))
        storage.remove_permission_from_role(operators.id, permission_id_for("vm.create"))
        storage.assign_role_to_user(owner.id, operators.id, admin.id)
        storage.assign_role_to_user(owner.id, temporary.id, admin.id)
        storage.remove_role_from_user(owner.id, operators.id)
        storage.update_role(operators.id, {"description": "run the VMs"})
    with storage.acting_as(actor_id=owner.id, organization_id=org.id):
        invite = storage.create_team_member({"email": "ravi@kt.example",
                                             "organization_id": org.id,
                                             "invited_by": owner.id})
    ravi = storage.accept_invitation({"token": invite.invitation_token, "username": "ravi",
                                      "password": PASSWORD})
    storage.assign_role_to_user(ravi.id, system_role_id_for("Viewer"), owner.id)
    storage.delete_role(temporary.id)
    storage.update_user(owner.id, {"username": "kumar.k", "email_verified": True,
                                   "last_login": datetime(2025, 5, 1, tzinfo=UTC)})
    storage.create_user_activity({"user_id": ravi.id, "action": "auth.login",
                                  "ip_address": "198.51.100.4"})
    return {"admin": admin, "org": org, "owner": owner, "ravi": ravi,
            "operators": operators, "temporary": temporary}


def drop_tables(dsn: str, projections: list[Projection]) -> None:
    with connect(dsn) as conn:
        for projection in projections:
            for table in projection.tables:
                conn.execute(sql.SQL("DROP TABLE {}").format(projection.t(table.name)))


def catch_up_command(dsn: str, batch_size: int) -> list[str]:
    return [*CLI, "projections", "catch-up", ActivityProjection.name, "--batch-size",
            str(batch_size)]


def child_env(dsn: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": dsn, "AKASHONE_BCRYPT_ROUNDS": "4",
            "AKASHONE_LOG_LEVEL": "warning",
            "AKASHONE_SECRET_KEY": str(TEST_SETTINGS["secret_key"])}


# -- rebuild -------------------------------------------------------------------------------
class TestRebuild:
    def test_rebuild_after_dropping_every_table_restores_the_same_content(
            self, storage: Storage, dsn: str) -> None:
        """Dropped read tables rebuilt from the log have the checksums they had before."""
        realistic_data_set(storage)
        storage._catch_up(ActivityProjection.name)
        before = all_checksums(dsn, storage.projections)
        last = log_head(dsn)
        rows = {t.table: t.rows for p in before.values() for t in p}
        assert {k: rows[k] for k in ("users", "organizations", "user_roles", "team_members",
                                     "activity_actors")} == {
            "users": 3, "organizations": 1, "user_roles": 2, "team_members": 1,
            "activity_actors": 3}
        assert rows["user_activities"] == last

        drop_tables(dsn, storage.projections)
        positions = [rebuild(dsn, cls, storage.reader).position for cls in PROJECTIONS]

        assert positions == [last] * len(PROJECTIONS)
        assert all_checksums(dsn, storage.projections) == before
        assert all(verify(dsn, cls, storage.reader).ok for cls in PROJECTIONS)
        with connect(dsn) as conn:
            assert [(s.name, s.position, s.lag) for s in status(conn, storage.projections)] == [
                ("identity", last, 0), ("billing", last, 0), ("resources", last, 0),
                ("user_activities", last, 0)]

    def test_rebuilt_tables_serve_the_same_storage_reads(self, storage: Storage,
                                                         dsn: str) -> None:
        """After a live rebuild the open storage reads the same users, roles and links."""
        made = realistic_data_set(storage)
        owner, ravi, org = made["owner"].id, made["ravi"].id, made["org"].id

        def reads() -> tuple[Any, ...]:
            return (storage.get_users(), storage.get_roles(), storage.get_permissions(),
                    storage.get_team_members(org), storage.get_user_roles(owner),
                    storage.get_user_roles(ravi),
                    storage.get_role_permissions(made["operators"].id))

        before = reads()
        rebuild(dsn, IdentityProjection, storage.reader)

        assert reads() == before
        assert [u.username for u in before[0]] == ["admin", "kumar.k", "ravi"]
        assert [r.name for r in storage.get_user_roles(ravi)] == ["Viewer"]
        assert [p.key for p in before[6]] == ["vm.view"]

    def test_inline_projection_behind_the_log_is_rebuilt_when_storage_opens(
            self, storage: Storage, dsn: str, settings: Settings) -> None:
        """open_storage rebuilds an inline projection whose tables and checkpoint are gone."""
        realistic_data_set(storage)
        identity = [storage.projection(IdentityProjection.name)]
        before = all_checksums(dsn, identity)
        drop_tables(dsn, identity)
        with connect(dsn) as conn:
            conn.execute("DELETE FROM akashone_checkpoints WHERE name = %s",
                         (IdentityProjection.name,))

        reopened = open_storage(settings, dsn=dsn)
        try:
            assert all_checksums(dsn, identity) == before
            assert checkpoint(dsn, IdentityProjection.name) == log_head(dsn)
            assert reopened.get_user_by_username("ravi") is not None
        finally:
            reopened.close()


# -- crash ---------------------------------------------------------------------------------
class TestCrashedCatchUp:
    @pytest.mark.slow
    def test_catch_up_killed_mid_run_keeps_rows_and_checkpoint_consistent(
            self, storage: Storage, dsn: str) -> None:
        """SIGKILL leaves exactly the rows up to the checkpoint; a restart ends as a replay."""
        register_bulk(storage, 3000, "bulk")
        last = log_head(dsn)
        assert last > 3000

        process = subprocess.Popen(catch_up_command(dsn, 50), env=child_env(dsn),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with connect(dsn) as conn:
                deadline = time.monotonic() + 60
                position = 0
                while process.poll() is None and time.monotonic() < deadline:
                    position = read_checkpoints(conn).get(ActivityProjection.name,
                                                          START).position
                    if 0 < position < last // 2:
                        break
                    time.sleep(0.001)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        assert process.stderr is not None
        assert process.returncode == -signal.SIGKILL, process.stderr.read()

        killed_at = checkpoint(dsn, ActivityProjection.name)
        assert 0 < killed_at < last
        rows = scalar(dsn, "SELECT count(*) FROM user_activities")
        assert rows == scalar(dsn, "SELECT count(*) FROM akashone_events"
                                   " WHERE notification_id <= %s", (killed_at,))
        assert scalar(dsn, "SELECT max(position) FROM user_activities") == killed_at

        restarted = subprocess.run(catch_up_command(dsn, 500), env=child_env(dsn),
                                   capture_output=True, text=True, timeout=120, check=False)

        assert restarted.returncode == 0, restarted.stderr
        assert checkpoint(dsn, ActivityProjection.name) == last
        assert scalar(dsn, "SELECT count(*) FROM user_activities") == scalar(
            dsn, "SELECT count(*) FROM akashone_events")
        result = verify(dsn, ActivityProjection, storage.reader)
        assert result.ok, (result.live, result.replayed)
        assert result.position == last


# -- concurrency ---------------------------------------------------------------------------
RACER = """
import os, sys, time
from akashone_es import DuplicateError, Settings, open_storage
dsn, go, email = sys.argv[1:4]
storage = open_storage(Settings(bcrypt_rounds=4, pool_size=1, pool_max_overflow=1), dsn=dsn)
acting = storage.acting_as(system="racing registration")
acting.__enter__()
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.0005)
try:
    user = storage.create_user({"username": "meera", "email": email,
                                "password": "long-enough-1"})
    print("created", user.email, flush=True)
except DuplicateError as exc:
    print("DuplicateError", exc, flush=True)
finally:
    storage.close()
"""


class TestConcurrentRegistration:
    @pytest.mark.slow
    def test_two_processes_registering_one_username_leave_one_user(
            self, storage: Storage, dsn: str, tmp_path: Path) -> None:
        """Of two processes racing for a username, one registers it, the other gets
        DuplicateError, and the log holds one registration."""
        go = tmp_path / "go"
        emails = ("meera@one.example", "meera@two.example")
        racers = [subprocess.Popen([sys.executable, "-c", RACER, dsn, str(go), email],
                                   env=child_env(dsn), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
                  for email in emails]
        try:
            for racer in racers:
                assert racer.stdout is not None
                assert racer.stdout.readline().strip() == "ready"
            go.touch()
            outputs = [racer.communicate(timeout=60) for racer in racers]
        finally:
            for racer in racers:
                if racer.poll() is None:
                    racer.kill()
                    racer.wait()

        results = sorted(out.strip().split(" ")[0] for out, _ in outputs)
        assert results == ["DuplicateError", "created"], outputs
        winner = next(e for (out, _), e in zip(outputs, emails, strict=True)
                      if out.startswith("created"))
        assert [u.email for u in storage.get_users() if u.username == "meera"] == [winner]
        # the usernames in the log are encrypted: the registrations are counted (no other
        # user is registered in this test)
        assert scalar(dsn, "SELECT count(*) FROM akashone_events WHERE topic = %s",
                      (REGISTERED_TOPIC,)) == 1
        assert checkpoint(dsn, IdentityProjection.name) == log_head(dsn)


class TestConcurrentWriters:
    def test_writer_threads_and_a_live_catch_up_miss_no_event(self, storage: Storage,
                                                              dsn: str) -> None:
        """4 threads x 50 users with catch-up running meanwhile: identity checkpoint at the
        head, one activity row per event, every user readable."""
        threads_count, per_thread = 4, 50
        errors: list[BaseException] = []
        writing = threading.Event()
        writing.set()
        heads_seen: set[int] = set()

        def write(thread: int) -> None:
            try:
                with storage.acting_as(system="writer thread"):
                    write_users(thread)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        def write_users(thread: int) -> None:
            for n in range(per_thread):
                storage.create_user({"username": f"t{thread}u{n}",
                                     "email": f"t{thread}u{n}@example.com",
                                     "password": PASSWORD_HASH})

        def follow() -> None:
            with connect(dsn) as conn:
                while writing.is_set():
                    catch_up(conn, ActivityProjection(), storage.reader, batch_size=7,
                             progress=lambda _, __, last: heads_seen.add(last))

        follower = threading.Thread(target=follow)
        writers = [threading.Thread(target=write, args=(t,)) for t in range(threads_count)]
        follower.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
        writing.clear()
        follower.join(timeout=60)
        storage._catch_up(ActivityProjection.name)

        assert errors == []
        assert len(heads_seen) > 10  # the follower saw the log grow while it applied it
        last = log_head(dsn)
        assert checkpoint(dsn, IdentityProjection.name) == last
        assert checkpoint(dsn, ActivityProjection.name) == last
        assert scalar(dsn, "SELECT count(*) FROM users WHERE username ~ '^t[0-9]+u[0-9]+$'") \
            == threads_count * per_thread
        assert scalar(dsn, "SELECT count(*) FROM akashone_events e WHERE NOT EXISTS"
                           " (SELECT 1 FROM user_activities a"
                           "  WHERE a.position = e.notification_id)") == 0
        assert scalar(dsn, "SELECT count(*) FROM user_activities") == scalar(
            dsn, "SELECT count(*) FROM akashone_events")


def advisory_holders(dsn: str, name: str) -> list[int]:
    """Backend pids holding the runner's advisory lock of projection ``name``."""
    with connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND objsubid = 1 AND objid::bigint = (hashtext(%s)::bigint & 4294967295)",
            (advisory_key(name),)).fetchall()
    return [row[0] for row in rows]


class RunnerThread:
    """A follow-mode Runner in a thread, recording the progress it reports."""

    def __init__(self, storage: Storage, dsn: str) -> None:
        self.runner = Runner(dsn, [ActivityProjection()], storage.reader, batch_size=25,
                             poll_seconds=0.05)
        self.progress: list[tuple[str, int, int]] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.runner.run(progress=lambda *p: self.progress.append(p))
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.errors.append(exc)

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def runners(storage: Storage, dsn: str) -> Iterator[list[RunnerThread]]:
    started: list[RunnerThread] = []
    yield started
    for runner in started:
        runner.stop()


class TestOneActiveRunner:
    def test_second_runner_stands_by_until_the_first_stops(
            self, storage: Storage, dsn: str, runners: list[RunnerThread]) -> None:
        """Only one runner holds the projection's lock and applies events; when it stops,
        the standby takes over and catches up what was appended since."""
        name = ActivityProjection.name
        first = RunnerThread(storage, dsn).start()
        runners.append(first)
        wait_until(lambda: len(advisory_holders(dsn, name)) == 1 and bool(first.progress))
        [first_pid] = advisory_holders(dsn, name)
        second = RunnerThread(storage, dsn).start()
        runners.append(second)
        register_bulk(storage, 120, "early")
        wait_until(lambda: checkpoint(dsn, name) == log_head(dsn))
        time.sleep(0.3)  # several poll rounds in which the standby tries the lock

        assert advisory_holders(dsn, name) == [first_pid]
        assert second.progress == []
        runners.remove(first)
        first.stop()
        register_bulk(storage, 80, "late")
        wait_until(lambda: checkpoint(dsn, name) == log_head(dsn))

        holders = advisory_holders(dsn, name)
        assert len(holders) == 1
        assert holders[0] != first_pid
        # it read all it found pending (the late users); its last report may be an empty
        # catch-up: the head it polled can lag the one the catch-up before it read
        assert second.progress[-1][0] == name
        assert any(done == total > 0 for _, done, total in second.progress)
        assert first.errors == second.errors == []
        assert scalar(dsn, "SELECT count(*) FROM user_activities") == log_head(dsn)
        assert verify(dsn, ActivityProjection, storage.reader).ok
