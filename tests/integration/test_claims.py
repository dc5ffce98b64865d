"""Claims of docs/architecture.md that only a targeted test defends (scripts/mutations)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from akashone_es.domain.identity import User
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.activity import ActivityProjection
from projections.engine import Batch
from projections.identity import IdentityProjection
from projections.rebuild import rebuild, verify
from projections.runner import Runner, catch_up, catch_up_step
from tests.conftest import TEST_SETTINGS
from tests.integration.test_billing_concurrency import customer, meter
from tests.integration.test_rebuild_and_faults import (
    all_checksums,
    checkpoint,
    connect,
    log_head,
    register_bulk,
    scalar,
    wait_until,
)

ACTIVITY = ActivityProjection.name


# -- the event log ------------------------------------------------------------------------
class TestEventLogIsAppendOnly:
    @pytest.mark.parametrize("statement", [
        "UPDATE akashone_events SET topic = topic",
        "DELETE FROM akashone_events",
        "TRUNCATE akashone_events",
    ])
    def test_changing_the_log_is_refused_even_for_the_owner(self, storage: Storage, dsn: str,
                                                            statement: str) -> None:
        """The database's triggers refuse UPDATE, DELETE and TRUNCATE of events."""
        storage.create_user({"username": "kept", "email": "kept@example.com",
                             "password": "long-enough-1"})
        before = log_head(dsn)

        with connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege,
                                                 match="append-only"):
            conn.execute(statement)

        assert scalar(dsn, "SELECT count(*) FROM akashone_events") == before


# -- rebuild and replay --------------------------------------------------------------------
class TestRebuildWhileWriting:
    def test_events_appended_during_the_replay_are_in_the_swapped_in_tables(
            self, storage: Storage, dsn: str) -> None:
        """Users registered between two replay batches are applied by the rebuild's locked
        tail: the rebuilt users table holds all 45, and it verifies."""
        register_bulk(storage, 40, "early", chunk=10)
        appended: list[int] = []

        def append_between_batches(name: str, position: int, stop: int) -> None:
            if not appended:  # once, after the first batch: the replay is still running
                register_bulk(storage, 5, "late")
                appended.append(log_head(dsn))

        final = rebuild(dsn, IdentityProjection, storage.reader, batch_size=10,
                        progress=append_between_batches)

        assert len(appended) == 1
        assert final.position == appended[0] == log_head(dsn)
        assert scalar(dsn, "SELECT count(*) FROM users WHERE username LIKE 'late%%'") == 5
        assert scalar(dsn, "SELECT count(*) FROM users") == 45
        assert checkpoint(dsn, IdentityProjection.name) == final.position
        assert verify(dsn, IdentityProjection, storage.reader).ok


class TestVerify:
    def test_a_row_changed_behind_the_logs_back_fails_verification(self, storage: Storage,
                                                                   dsn: str) -> None:
        """Same row counts, one e-mail edited in the read table: verify is not ok, and the
        users table is the one whose checksum differs."""
        storage.create_user({"username": "honest", "email": "honest@example.com",
                             "password": "long-enough-1"})
        assert verify(dsn, IdentityProjection, storage.reader).ok
        with connect(dsn) as conn:
            conn.execute("UPDATE users SET email = 'forged@example.com'"
                         " WHERE username = 'honest'")

        result = verify(dsn, IdentityProjection, storage.reader)

        assert not result.ok
        assert [live.table for live, replayed in zip(result.live, result.replayed, strict=True)
                if live != replayed] == ["users"]


class TestBatchBoundaries:
    def test_rebuild_in_small_batches_reproduces_every_row(self, storage: Storage,
                                                           dsn: str) -> None:
        """A log of 23 users replayed 4 events per batch gives the same tables as before."""
        for n in range(23):
            storage.create_user({"username": f"batch{n}", "email": f"batch{n}@example.com",
                                 "password": "long-enough-1"})
        before = all_checksums(dsn, [IdentityProjection()])

        rebuild(dsn, IdentityProjection, storage.reader, batch_size=4)

        assert all_checksums(dsn, [IdentityProjection()]) == before
        assert scalar(dsn, "SELECT count(*) FROM users") == 23

    def test_catch_up_in_small_batches_applies_every_event(self, storage: Storage,
                                                           dsn: str) -> None:
        """Catch-up 3 events per batch over 30 events: one activity row per event."""
        register_bulk(storage, 30, "step", chunk=1)
        with connect(dsn) as conn:
            position = catch_up(conn, ActivityProjection(), storage.reader, batch_size=3)

        assert position.position == log_head(dsn)
        assert scalar(dsn, "SELECT count(*) FROM user_activities") == log_head(dsn)


# -- catch-up: the checkpoint row lock, and rows committed with the checkpoint -------------
class _RendezvousProjection(ActivityProjection):
    """The activity projection, recording the positions it handles; its first event waits up
    to the barrier's timeout for a second runner to handle the same batch (which the
    checkpoint row lock must prevent)."""

    def __init__(self, handled: list[int], rendezvous: threading.Barrier) -> None:
        super().__init__()
        self.handled = handled
        self.rendezvous = rendezvous
        self.waited = False

    def handle(self, event: Any, position: int, batch: Batch) -> None:
        self.handled.append(position)
        if not self.waited:
            self.waited = True
            # times out (BrokenBarrierError) when no second runner comes: the expected case
            with contextlib.suppress(threading.BrokenBarrierError):
                self.rendezvous.wait()
        super().handle(event, position, batch)


class TestCatchUpLocksTheCheckpoint:
    def test_two_runners_at_once_apply_each_event_once(self, storage: Storage,
                                                       dsn: str) -> None:
        """Two catch-ups start together; the first holds the checkpoint row while it applies
        (and waits 2 s for the other inside the batch): the second waits, then finds nothing
        left. Every event is applied exactly once."""
        register_bulk(storage, 12, "lock", chunk=3)
        applied: list[int] = []
        rendezvous = threading.Barrier(2, timeout=2.0)
        start = threading.Barrier(2, timeout=10.0)
        results: list[tuple[int, int]] = []
        errors: list[BaseException] = []

        def runner() -> None:
            try:
                with connect(dsn) as conn:
                    projection = _RendezvousProjection(applied, rendezvous)
                    start.wait()
                    reached, last, _ = catch_up_step(conn, projection, storage.reader, 10_000)
                    results.append((reached.position, last.position))
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=runner) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        head = log_head(dsn)
        assert sorted(applied) == sorted(set(applied)), "an event was applied twice"
        assert len(applied) == head
        assert results == [(head, head), (head, head)]
        assert checkpoint(dsn, ACTIVITY) == head


CHECKPOINT_TRIGGER = """
CREATE FUNCTION refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'checkpoint refused by the test'; END $$;
CREATE TRIGGER refuse_activity_checkpoint BEFORE UPDATE ON akashone_checkpoints
FOR EACH ROW WHEN (NEW.name = 'user_activities') EXECUTE FUNCTION refuse_checkpoint();
"""


class TestCatchUpIsAtomic:
    def test_a_failing_checkpoint_update_rolls_back_the_batch_rows(
            self, storage: Storage, dsn: str) -> None:
        """If moving the checkpoint fails (a crash between rows and checkpoint), the batch's
        rows are rolled back too: rows and checkpoint never disagree."""
        register_bulk(storage, 10, "atomic", chunk=5)
        with connect(dsn) as conn:
            catch_up(conn, ActivityProjection(), storage.reader)
        rows_before = scalar(dsn, "SELECT count(*) FROM user_activities")
        position_before = checkpoint(dsn, ACTIVITY)
        register_bulk(storage, 10, "refused", chunk=5)
        with connect(dsn) as conn:
            conn.execute(CHECKPOINT_TRIGGER)

        with connect(dsn) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                 match="checkpoint refused"):
            catch_up(conn, ActivityProjection(), storage.reader, batch_size=4)

        assert checkpoint(dsn, ACTIVITY) == position_before
        assert scalar(dsn, "SELECT count(*) FROM user_activities") == rows_before
        assert position_before < log_head(dsn)


# -- the follower ---------------------------------------------------------------------------
@pytest.fixture
def idle_runner(storage: Storage, dsn: str) -> Iterator[Runner]:
    """A follow-mode runner with its default poll."""
    runner = Runner(dsn, [ActivityProjection()], storage.reader)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    yield runner
    runner.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


class TestFollowerPolls:
    def test_an_event_appended_while_the_runner_idles_is_projected_within_a_poll(
            self, storage: Storage, dsn: str, idle_runner: Runner) -> None:
        """The idle runner polls the head (writers send no NOTIFY: it would serialize their
        commits): a new event is projected within a second."""
        storage.create_user({"username": "first", "email": "first@example.com",
                             "password": "long-enough-1"})
        wait_until(lambda: checkpoint(dsn, ACTIVITY) == log_head(dsn))
        time.sleep(0.5)  # the runner is idle now

        user = storage.create_user({"username": "woken", "email": "woken@example.com",
                                    "password": "long-enough-1"})
        started = time.monotonic()
        wait_until(lambda: checkpoint(dsn, ACTIVITY) == log_head(dsn), timeout=5.0,
                   interval=0.005)

        assert time.monotonic() - started < 1.0
        assert scalar(dsn, "SELECT count(*) FROM user_activities WHERE resource_id = %s",
                      (str(user.id),)) == 1


# -- secrets --------------------------------------------------------------------------------
class TestEmailVerificationCodeIsSealed:
    def test_the_code_never_enters_the_log_or_the_table_in_clear(self, storage: Storage,
                                                                 dsn: str) -> None:
        """A verification code is sealed before it enters an event, and opened when read."""
        user = storage.create_user({"username": "verify", "email": "verify@example.com",
                                    "password": "long-enough-1"})

        updated = storage.update_user(user.id, {"email_verification_code": "739164"})

        assert updated is not None
        assert updated.email_verification_code == "739164"
        assert storage.get_user(user.id).email_verification_code == "739164"  # type: ignore[union-attr]
        assert scalar(dsn, "SELECT count(*) FROM akashone_events"
                           " WHERE position('739164' in convert_from(state, 'UTF8')) > 0") == 0
        stored = scalar(dsn, "SELECT email_verification_code FROM users WHERE id = %s",
                        (user.id,))
        assert stored
        assert "739164" not in stored


# -- billing windows ------------------------------------------------------------------------
WINDOW_START = datetime(2026, 5, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 6, 1, tzinfo=UTC)


class TestBillingWindow:
    def test_usage_is_billed_in_the_window_its_period_ends_in(self, issuer: Storage) -> None:
        """May's invoice bills a record of 30 Apr-2 May (ends in May) and one ending exactly
        on 1 Jun; a record ending exactly on 1 May belongs to April and stays unbilled."""
        user_id = customer(issuer, "windowed")
        periods = {"straddles": (datetime(2026, 4, 30, tzinfo=UTC),
                                 datetime(2026, 5, 2, tzinfo=UTC)),
                   "ends-at-start": (datetime(2026, 4, 1, tzinfo=UTC), WINDOW_START),
                   "ends-at-end": (datetime(2026, 5, 31, tzinfo=UTC), WINDOW_END)}
        for name, (start, end) in periods.items():
            issuer.create_usage_record({
                "user_id": user_id, "resource_type": "compute", "resource_id": name,
                "resource_name": name, "metric_type": "usage", "quantity": "1",
                "period_start": start, "period_end": end})

        invoice = issuer.generate_invoice({"user_id": user_id, "period_start": WINDOW_START,
                                           "period_end": WINDOW_END})

        billed = {r.resource_id for r in issuer.get_usage_records(user_id)
                  if r.invoice_id == invoice.id}
        assert billed == {"straddles", "ends-at-end"}
        assert [r.resource_id for r in issuer.get_unbilled_usage_records(user_id)] == [
            "ends-at-start"]

    def test_a_straddling_record_is_billed_once_across_two_windows(self,
                                                                   issuer: Storage) -> None:
        """Generating April then May bills the straddling record once, in May."""
        user_id = customer(issuer, "twice")
        meter(issuer, user_id, "compute", "1", 1)  # April: a record in the window
        issuer.create_usage_record({
            "user_id": user_id, "resource_type": "compute", "resource_id": "straddles",
            "resource_name": "straddles", "metric_type": "usage", "quantity": "1",
            "period_start": datetime(2026, 4, 30, tzinfo=UTC),
            "period_end": datetime(2026, 5, 2, tzinfo=UTC)})

        april = issuer.generate_invoice({"user_id": user_id,
                                         "period_start": datetime(2026, 4, 1, tzinfo=UTC),
                                         "period_end": WINDOW_START})
        may = issuer.generate_invoice({"user_id": user_id, "period_start": WINDOW_START,
                                       "period_end": WINDOW_END})

        by_invoice = {r.resource_id: r.invoice_id for r in issuer.get_usage_records(user_id)}
        assert by_invoice == {"compute-0": april.id, "straddles": may.id}


# -- snapshots ------------------------------------------------------------------------------
class TestLoadsUseSnapshots:
    def test_a_load_reads_only_the_events_after_the_latest_snapshot(
            self, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A user at version 7 with snapshots at 3 and 6: updating it loads the snapshot at 6
        and asks the log only for events after version 6."""
        settings = Settings(**{**TEST_SETTINGS, "snapshot_interval": 3})  # type: ignore[arg-type]
        storage = open_storage(settings, dsn=dsn)
        try:
            with storage.acting_as(system="tests"):
                user = storage.create_user({"username": "snapped",
                                            "email": "snapped@example.com",
                                            "password": "long-enough-1"})
                for status in ("suspended", "active", "suspended", "active", "suspended",
                               "active"):
                    storage.update_user(user.id, {"status": status})
                event_store = storage.app.repository.event_store
                asked: list[Any] = []
                read = event_store.get

                def recording_get(originator_id: Any, **kwargs: Any) -> Any:
                    if originator_id == user.id:
                        asked.append(kwargs.get("gt"))
                    return read(originator_id, **kwargs)

                monkeypatch.setattr(event_store, "get", recording_get)
                loaded = storage._load(User, user.id, "user")
        finally:
            storage.close()

        assert asked == [6]
        assert (loaded.version, loaded.status) == (7, "active")
