"""Events a projection cannot apply, written behind the API's back: projections never wedge.

A poison event stops only the projection that reads it, just before it, with an error naming
position, aggregate, event type and handler; status and verify show it; a quarantine (an event
in the log) lets catch-up and rebuild go past it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from akashone_es.domain.identity import Activity
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionError,
    ValidationError,
)
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from akashone_es.storage.quarantine import quarantine_position
from projections.activity import ActivityProjection
from projections.apply import transient
from projections.engine import Batch, Projection, Table, handles
from projections.failures import read_failures
from projections.identity import IdentityProjection
from projections.overview import status
from projections.positions import head
from projections.quarantine import QUARANTINE_TOPIC
from projections.rebuild import checksums, rebuild, verify
from projections.runner import Runner, catch_up
from tests.integration.test_rebuild_and_faults import checkpoint, connect

ACTIVITIES = ActivityProjection.name
RECORDED_TOPIC = "akashone_es.domain.identity:Activity.Recorded"
REGISTERED_TOPIC = "akashone_es.domain.identity:User.Registered"


# -- helpers -------------------------------------------------------------------------------
def record_activity(storage: Storage, action: str) -> None:
    storage.create_user_activity({"username": "ops", "action": action})


def record_activity_past_a_stop(storage: Storage, action: str) -> None:
    """Record an activity once a poison event is in the log: the event is committed, and the
    read-back of its row reports the stop."""
    with pytest.raises(ProjectionError, match="stopped at position"):
        record_activity(storage, action)


def insert_behind_the_api(dsn: str, topic: str, state: bytes) -> int:
    """Append a stored event as the database owner would, bypassing every check; its position."""
    with connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO akashone_events (originator_id, originator_version, topic, state)"
            " VALUES (%s, 1, %s, %s) RETURNING notification_id",
            (uuid.uuid4(), topic, state)).fetchone()
    assert row is not None
    return int(row[0])


def copy_of_last(dsn: str, topic: str, **changes: Any) -> bytes:
    """The state of the last stored ``topic`` event with some fields changed."""
    with connect(dsn) as conn:
        row = conn.execute("SELECT state FROM akashone_events WHERE topic = %s"
                           " ORDER BY notification_id DESC LIMIT 1", (topic,)).fetchone()
    assert row is not None
    state = json.loads(bytes(row[0]))
    state.update(changes)
    return json.dumps(state).encode()  # json escapes NUL as \u0000, as orjson does


def poison_activity(storage: Storage, dsn: str) -> int:
    """An Activity.Recorded whose details hold a NUL: it decodes, the database refuses it."""
    record_activity(storage, "template")
    return insert_behind_the_api(dsn, RECORDED_TOPIC, copy_of_last(
        dsn, RECORDED_TOPIC, details={"note": "a\x00b"}))


def positions(dsn: str) -> list[int]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT position FROM user_activities"
                                           " ORDER BY position")]


def log_positions(dsn: str, below: int | None = None) -> list[int]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT notification_id FROM akashone_events WHERE notification_id < %s"
            " ORDER BY notification_id", (below if below is not None else 2**62,))]


def catch_up_activities(storage: Storage) -> int:
    """The position of the checkpoint the activity log catches up to."""
    with connect(storage.dsn) as conn:
        return catch_up(conn, ActivityProjection(), storage.reader).position


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.02)


class PositionsProjection(Projection):
    """A second async projection reading every event: it must keep going beside a stopped one."""

    name = "test_positions"
    mode = "async"
    tables = (Table("test_positions", "position bigint PRIMARY KEY", order_by="position"),)
    handles_all = True

    def prepare(self) -> None:
        self.insert = self.q("INSERT INTO {t} VALUES (%s) ON CONFLICT DO NOTHING",
                             t="test_positions")

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        batch.add(self.insert, (position,))


@pytest.fixture
def positions_projection(dsn: str, storage: Storage) -> PositionsProjection:
    projection = PositionsProjection()
    with connect(dsn) as conn:
        for statement in projection.ddl():
            conn.execute(statement)
    return projection


# -- catch-up ------------------------------------------------------------------------------
class TestCatchUpStopsAtAPoisonEvent:
    def test_stops_just_before_it_with_an_error_naming_it(self, storage: Storage,
                                                          dsn: str) -> None:
        """Everything before the poison is applied once; the error names position, aggregate,
        event type and handler; the checkpoint is the position before it."""
        record_activity(storage, "first")
        poison = poison_activity(storage, dsn)
        record_activity_past_a_stop(storage, "after")

        with pytest.raises(ProjectionError) as raised:
            catch_up_activities(storage)

        message = str(raised.value)
        with connect(dsn) as conn:
            row = conn.execute("SELECT originator_id FROM akashone_events"
                               " WHERE notification_id = %s", (poison,)).fetchone()
        assert row is not None
        assert f"stopped at position {poison}:" in message
        assert str(row[0]) in message
        assert RECORDED_TOPIC in message
        assert "ActivityProjection._recorded" in message
        assert "\n" not in message
        assert poison - 1 == checkpoint(dsn, ACTIVITIES)
        assert log_positions(dsn, below=poison) == positions(dsn)

    def test_stays_stopped_and_recorded_until_resolved(self, storage: Storage,
                                                       dsn: str) -> None:
        """Another catch-up stops at the same place; status shows the stop."""
        poison = poison_activity(storage, dsn)
        record_activity_past_a_stop(storage, "after")
        for _ in range(2):
            with pytest.raises(ProjectionError, match=f"position {poison}:"):
                catch_up_activities(storage)

        with connect(dsn) as conn:
            rows = {s.name: s for s in status(conn, storage.projections)}
        stopped = rows[ACTIVITIES].failure
        assert stopped is not None
        assert (poison, "ActivityProjection._recorded") == (stopped.position, stopped.handler)
        assert "DataError" in stopped.error or "UntranslatableCharacter" in stopped.error
        assert rows[ACTIVITIES].position == poison - 1
        assert rows["identity"].failure is None

    def test_a_nul_in_a_text_column_stops_it_the_same_way(self, storage: Storage,
                                                          dsn: str) -> None:
        """A NUL psycopg refuses before sending (user_agent, a text column) is poison too."""
        record_activity(storage, "template")
        poison = insert_behind_the_api(dsn, RECORDED_TOPIC, copy_of_last(
            dsn, RECORDED_TOPIC, user_agent="curl\x00"))
        with pytest.raises(ProjectionError, match=f"position {poison}:"):
            catch_up_activities(storage)
        assert poison - 1 == checkpoint(dsn, ACTIVITIES)

    def test_an_unknown_topic_stops_it_at_decoding(self, storage: Storage, dsn: str) -> None:
        """Decoding is part of applying: a topic that does not resolve is poison too."""
        record_activity(storage, "first")
        poison = insert_behind_the_api(dsn, "akashone_es.domain.nowhere:Gone.Happened", b"{}")
        with pytest.raises(ProjectionError, match=f"position {poison}: mapper.decode cannot"):
            catch_up_activities(storage)
        assert log_positions(dsn, below=poison) == positions(dsn)

    def test_reads_raise_the_projection_error_not_a_library_error(self, storage: Storage,
                                                                   dsn: str) -> None:
        """Activity reads of a stopped projection say where it stopped (no raw DataError)."""
        record_activity(storage, "first")
        poison = poison_activity(storage, dsn)
        with pytest.raises(ProjectionError, match=f"position {poison}:"):
            storage.get_recent_activities(100)
        with pytest.raises(ProjectionError, match=f"position {poison}:"):
            storage.get_user_activities()


class TestRunner:
    def test_once_catches_up_the_others_then_raises(
            self, storage: Storage, dsn: str, positions_projection: PositionsProjection) -> None:
        """A stopped projection does not keep the others from catching up."""
        poison = poison_activity(storage, dsn)
        record_activity_past_a_stop(storage, "after")
        runner = Runner(dsn, [ActivityProjection(), positions_projection], storage.reader)
        with pytest.raises(ProjectionError, match=f"position {poison}:"):
            runner.run(once=True)
        assert log_positions(dsn) == _positions_of(dsn)
        assert poison - 1 == checkpoint(dsn, ACTIVITIES)

    def test_following_survives_a_stop_and_resumes_after_a_quarantine(
            self, storage: Storage, dsn: str, positions_projection: PositionsProjection) -> None:
        """The follower keeps running; a quarantine (an event, so a NOTIFY) resumes it."""
        poison = poison_activity(storage, dsn)
        runner = Runner(dsn, [ActivityProjection(), positions_projection], storage.reader,
                        poll_seconds=0.05)
        follower = threading.Thread(target=runner.run)
        follower.start()
        try:
            record_activity_past_a_stop(storage, "after")
            wait_until(lambda: checkpoint(dsn, positions_projection.name) == _head(dsn))
            assert follower.is_alive()
            assert poison - 1 == checkpoint(dsn, ACTIVITIES)
            quarantine_position(storage, projection=ACTIVITIES, position=poison,
                                reason="NUL in details, issue 6")
            wait_until(lambda: checkpoint(dsn, ACTIVITIES) == _head(dsn))
        finally:
            runner.stop()
            follower.join(timeout=30)
        assert not follower.is_alive()
        assert poison not in positions(dsn)


def _positions_of(dsn: str) -> list[int]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT position FROM test_positions ORDER BY 1")]


def _head(dsn: str) -> int:
    with connect(dsn) as conn:
        return head(conn).position


# -- verify --------------------------------------------------------------------------------
class TestVerify:
    def test_reports_a_projection_stuck_below_the_head(self, storage: Storage,
                                                       dsn: str) -> None:
        """The rows agree with the log up to the stuck checkpoint, and still it is not ok."""
        poison = poison_activity(storage, dsn)
        with pytest.raises(ProjectionError):
            catch_up_activities(storage)
        result = verify(dsn, ActivityProjection, storage.reader)
        assert result.live == result.replayed
        assert not result.ok
        assert result.problem is not None
        assert f"position {poison}:" in result.problem

    def test_reports_a_poison_event_the_live_projection_has_not_met(
            self, storage: Storage, dsn: str) -> None:
        """Before any catch-up the checkpoint is below the poison: verify still finds it."""
        poison = poison_activity(storage, dsn)
        result = verify(dsn, ActivityProjection, storage.reader)
        assert not result.ok
        assert result.problem is not None
        assert f"position {poison}:" in result.problem


# -- quarantine ----------------------------------------------------------------------------
class TestQuarantine:
    def test_lets_catch_up_go_past_and_is_an_event_in_the_log(self, storage: Storage,
                                                              dsn: str) -> None:
        """After the quarantine, events after the poison are applied and the stop is gone;
        the decision is a Quarantine.Recorded event with its reason and acting context."""
        record_activity(storage, "first")
        poison = poison_activity(storage, dsn)
        record_activity_past_a_stop(storage, "after")
        with pytest.raises(ProjectionError):
            catch_up_activities(storage)

        at = quarantine_position(storage, projection=ACTIVITIES, position=poison,
                                 reason="NUL in details, issue 6", operator="asha")
        assert catch_up_activities(storage) == _head(dsn)

        assert [p for p in log_positions(dsn) if p != poison] == positions(dsn)
        with connect(dsn) as conn:
            topic, state = conn.execute("SELECT topic, convert_from(state, 'UTF8')::jsonb"
                                        " FROM akashone_events WHERE notification_id = %s",
                                        (at,)).fetchone() or (None, None)
            assert [s.failure for s in status(conn, storage.projections)] == [None] * len(
                storage.projections)
        assert QUARANTINE_TOPIC == topic
        assert {"projection": ACTIVITIES, "position": poison, "operator": "asha",
                "reason": "NUL in details, issue 6"}.items() <= state.items()
        assert state["metadata"]["actor_kind"] == "system"

    def test_rebuild_skips_it_and_equals_the_live_projection(self, storage: Storage,
                                                             dsn: str) -> None:
        """Rebuild and verify honour the quarantine: same rows as the live projection."""
        poison = poison_activity(storage, dsn)
        record_activity_past_a_stop(storage, "after")
        with pytest.raises(ProjectionError, match=f"rebuild of projection {ACTIVITIES} stopped"):
            rebuild(dsn, ActivityProjection, storage.reader)
        quarantine_position(storage, projection=ACTIVITIES, position=poison, reason="bad row")
        catch_up_activities(storage)
        live = _checksums(dsn, ActivityProjection())

        assert rebuild(dsn, ActivityProjection, storage.reader).position == _head(dsn)
        assert live == _checksums(dsn, ActivityProjection())
        assert verify(dsn, ActivityProjection, storage.reader).ok

    def test_refuses_a_second_quarantine_of_the_same_position(self, storage: Storage,
                                                              dsn: str) -> None:
        """One decision per projection and position."""
        poison = poison_activity(storage, dsn)
        with pytest.raises(ProjectionError):
            catch_up_activities(storage)
        quarantine_position(storage, projection=ACTIVITIES, position=poison, reason="bad row")
        with pytest.raises(ConflictError, match=f"position {poison} is quarantined for "
                                                f"{ACTIVITIES} already"):
            quarantine_position(storage, projection=ACTIVITIES, position=poison, reason="again")

    @pytest.mark.parametrize(("changes", "field"), [
        ({"projection": "nope"}, "projection"),
        ({"reason": ""}, "reason"),
        ({"reason": "nul \x00 here"}, "reason"),
        ({"position": 0}, "position"),
    ])
    def test_refuses_bad_input_and_writes_nothing(self, storage: Storage, dsn: str,
                                                  changes: dict[str, Any], field: str) -> None:
        """Unknown projection, empty or unstorable reason, position below 1: nothing written."""
        before = _head(dsn)
        arguments: dict[str, Any] = {"projection": ACTIVITIES, "position": 1,
                                     "reason": "bad row", **changes}
        with pytest.raises(ValidationError) as raised:
            quarantine_position(storage, **arguments)
        assert field in raised.value.fields
        assert before == _head(dsn)

    def test_refuses_a_position_with_no_event(self, storage: Storage, dsn: str) -> None:
        """A position past the head names nothing to skip."""
        with pytest.raises(NotFoundError):
            quarantine_position(storage, projection=ACTIVITIES, position=_head(dsn) + 10,
                                reason="bad row")


def _checksums(dsn: str, projection: Projection) -> Any:
    with connect(dsn) as conn:
        return checksums(conn, projection)


# -- inline projections --------------------------------------------------------------------
@pytest.fixture
def second_storage(dsn: str, settings: Settings) -> Iterator[Callable[[], Storage]]:
    opened: list[Storage] = []

    def open_one() -> Storage:
        opened.append(open_storage(settings, dsn=dsn))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


class TestInlinePoison:
    def test_rebuild_stops_clearly_and_a_quarantine_resolves_it(
            self, storage: Storage, dsn: str, second_storage: Callable[[], Storage]) -> None:
        """An undecodable registration fails the identity rebuild with the same clear error,
        leaves the live tables as they were, does not keep storage from opening, and a
        quarantine lets the rebuild through."""
        before = _checksums(dsn, IdentityProjection())
        poison = insert_behind_the_api(dsn, REGISTERED_TOPIC, b'{"username": 1}')

        with pytest.raises(ProjectionError) as raised:
            rebuild(dsn, IdentityProjection, storage.reader)
        assert f"rebuild of projection identity stopped at position {poison}: mapper.decode" \
            in str(raised.value)
        assert before == _checksums(dsn, IdentityProjection())

        reopened = second_storage()  # its startup rebuild of identity stops the same way
        with connect(dsn) as conn:
            stopped = {s.name: s.failure for s in status(conn, reopened.projections)}
        assert stopped["identity"] is not None
        assert stopped["identity"].position == poison
        assert not verify(dsn, IdentityProjection, storage.reader).ok

        quarantine_position(storage, projection="identity", position=poison,
                            reason="forged registration")
        rebuild(dsn, IdentityProjection, storage.reader)
        assert before == _checksums(dsn, IdentityProjection())
        assert verify(dsn, IdentityProjection, storage.reader).ok
        with connect(dsn) as conn:
            assert {s.name: s.failure for s in status(conn, storage.projections)}[
                "identity"] is None

    def test_a_quarantine_does_not_hide_the_event_from_other_projections(
            self, storage: Storage, dsn: str) -> None:
        """Quarantining a position for one projection leaves it poison for another."""
        poison = insert_behind_the_api(dsn, REGISTERED_TOPIC, b'{"username": 1}')
        with pytest.raises(ProjectionError):  # records identity's stop at the poison
            rebuild(dsn, IdentityProjection, storage.reader)
        quarantine_position(storage, projection="identity", position=poison, reason="n/a")
        with pytest.raises(ProjectionError, match=f"position {poison}:"):
            catch_up_activities(storage)


# -- what the database says: the event's fault, or transient ------------------------------
class IndexedActionProjection(Projection):
    """An async projection indexing an event's text as is (as user_activities once did)."""

    name = "test_indexed_actions"
    mode = "async"
    tables = (Table("test_indexed_actions", "position bigint PRIMARY KEY, action text",
                    ["CREATE INDEX IF NOT EXISTS test_indexed_actions_idx ON {table} (action)"],
                    order_by="position"),)

    def prepare(self) -> None:
        self.insert = self.q("INSERT INTO {t} VALUES (%s, %s) ON CONFLICT DO NOTHING",
                             t="test_indexed_actions")

    @handles(Activity.Recorded)
    def _recorded(self, e: Activity.Recorded, position: int, b: Batch) -> None:
        b.add(self.insert, (position, e.action))


class DisconnectingProjection(Projection):
    """A projection whose statements end the session: the connection is lost mid-batch."""

    name = "test_disconnecting"
    mode = "async"

    @handles(Activity.Recorded)
    def _recorded(self, e: Activity.Recorded, position: int, b: Batch) -> None:
        b.add(b"SELECT pg_terminate_backend(pg_backend_pid())", ())


def long_action(storage: Storage, dsn: str) -> int:
    """An Activity.Recorded with a 6 kB action (random: it does not compress), behind the API."""
    record_activity(storage, "template")
    return insert_behind_the_api(dsn, RECORDED_TOPIC, copy_of_last(
        dsn, RECORDED_TOPIC, action=secrets.token_hex(3000)))


class TestDatabaseRefusals:
    def test_an_index_row_too_large_stops_it_and_is_recorded(self, storage: Storage,
                                                             dsn: str) -> None:
        """ProgramLimitExceeded (psycopg: an OperationalError) is the event's fault: the
        projection stops just before it, recorded, with the usual error; it does not raise a
        raw psycopg error and retry forever."""
        projection = IndexedActionProjection()
        with connect(dsn) as conn:
            for statement in projection.ddl():
                conn.execute(statement)
        poison = long_action(storage, dsn)

        with connect(dsn) as conn, pytest.raises(ProjectionError,
                                                 match=f"position {poison}:"):
            catch_up(conn, projection, storage.reader)

        with connect(dsn) as conn:
            failure = read_failures(conn)[projection.name]
        assert (poison, "ProgramLimitExceeded") == (failure.position,
                                                    failure.error.split(":")[0])
        assert poison - 1 == checkpoint(dsn, projection.name)

    def test_the_activity_log_takes_a_6_kb_action(self, storage: Storage, dsn: str) -> None:
        """The activity log does not index unbounded text: a long action is applied."""
        position = long_action(storage, dsn)
        assert catch_up_activities(storage) == _head(dsn)
        assert position in positions(dsn)

    def test_a_lost_connection_propagates_and_records_nothing(self, storage: Storage,
                                                              dsn: str) -> None:
        """A lost connection is not the event's fault: it propagates (the batch is retried
        later) and no failure is recorded."""
        record_activity(storage, "first")
        with connect(dsn) as conn, pytest.raises(psycopg.OperationalError):
            catch_up(conn, DisconnectingProjection(), storage.reader)
        with connect(dsn) as conn:
            assert DisconnectingProjection.name not in read_failures(conn)

    @pytest.mark.parametrize(("error", "expected"), [
        (psycopg.errors.ProgramLimitExceeded, False),
        (psycopg.errors.StatementTooComplex, False),
        (psycopg.errors.QueryCanceled, False),
        (psycopg.errors.UntranslatableCharacter, False),
        (psycopg.errors.UniqueViolation, False),
        (psycopg.DataError, False),  # psycopg refused a value before sending it (a NUL)
        (psycopg.errors.AdminShutdown, True),
        (psycopg.errors.CannotConnectNow, True),
        (psycopg.errors.ConnectionFailure, True),
        (psycopg.errors.SerializationFailure, True),
        (psycopg.errors.DeadlockDetected, True),
        (psycopg.errors.LockNotAvailable, True),
        (psycopg.errors.DiskFull, True),
        (psycopg.OperationalError, True),  # no SQLSTATE: the connection is gone
    ])
    def test_only_what_is_transient_propagates(self, error: type[psycopg.Error],
                                               expected: bool) -> None:
        assert transient(error("x")) is expected


# -- who may quarantine what ---------------------------------------------------------------
class TestQuarantineIsOnlyForTheRecordedStop:
    def test_a_tenant_is_refused_and_nothing_is_written(self, storage: Storage,
                                                        dsn: str) -> None:
        """Only the platform decides what the read side skips."""
        organization = storage.create_organization({"name": "A"})
        user = storage.create_user({"username": "alice", "email": "alice@a.in",
                                    "password": "password-1",
                                    "organization_id": organization.id})
        poison = poison_activity(storage, dsn)
        with pytest.raises(ProjectionError):
            catch_up_activities(storage)
        before = _head(dsn)
        with storage.acting_as(actor_id=user.id), pytest.raises(PermissionDeniedError,
                                                                match="platform only"):
            quarantine_position(storage, projection=ACTIVITIES, position=poison,
                                reason="tenant says so")
        assert before == _head(dsn)

    def test_a_healthy_event_is_refused_naming_the_recorded_stop(self, storage: Storage,
                                                                 dsn: str) -> None:
        """A position other than the recorded failure is refused; rebuild and verify then
        keep that event (no quarantine hides it)."""
        record_activity(storage, "healthy")
        healthy = _head(dsn)
        poison = poison_activity(storage, dsn)
        with pytest.raises(ProjectionError):
            catch_up_activities(storage)
        with pytest.raises(ValidationError, match=f"stopped at position {poison}, not "
                                                  f"{healthy}") as raised:
            quarantine_position(storage, projection=ACTIVITIES, position=healthy,
                                reason="hide it")
        assert ["position"] == raised.value.fields
        quarantine_position(storage, projection=ACTIVITIES, position=poison, reason="bad row")
        rebuild(dsn, ActivityProjection, storage.reader)
        assert healthy in positions(dsn)
        assert verify(dsn, ActivityProjection, storage.reader).ok

    def test_a_projection_that_has_not_stopped_is_refused(self, storage: Storage,
                                                          dsn: str) -> None:
        """Nothing is recorded for billing: there is nothing to quarantine, and it says so."""
        before = _head(dsn)
        with pytest.raises(ValidationError, match="billing has no recorded failure"):
            quarantine_position(storage, projection="billing", position=before,
                                reason="hide it")
        assert before == _head(dsn)


def test_an_unknown_projection_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFoundError, match="projection not found: name=nope"):
        storage.projection("nope")


# -- an inline projection stopped at start-up ----------------------------------------------
class TestAStoppedInlineProjectionRefusesWrites:
    def test_until_quarantined_and_rebuilt(self, storage: Storage, dsn: str,
                                           second_storage: Callable[[], Storage]) -> None:
        """Identity's tables are lost and a forged registration keeps its start-up rebuild
        from restoring them: writes are refused (nothing appended, the checkpoint held back)
        rather than moving the checkpoint past the rows the empty tables lack; reads of other
        projections work; quarantine and rebuild restore the rows and writes."""
        storage.create_role({"name": "auditor"})
        roles = _roles(dsn)
        poison = insert_behind_the_api(dsn, REGISTERED_TOPIC, b'{"username": 1}')
        with connect(dsn) as conn:
            conn.execute("DROP TABLE roles CASCADE")
        reopened = second_storage()  # start-up recreates roles empty; its rebuild stops
        with reopened.acting_as(system="tests"):
            before = _head(dsn)
            with pytest.raises(ProjectionError) as raised:
                reopened.create_role({"name": "writer"})
            message = str(raised.value)
            assert f"identity stopped at position {poison}" in message
            assert f"projections quarantine identity {poison}" in message
            assert "projections rebuild identity" in message
            assert before == _head(dsn)
            assert checkpoint(dsn, "identity") == 0
            assert [] == reopened.get_hsn_codes()  # billing still reads

            quarantine_position(reopened, projection="identity", position=poison,
                                reason="forged registration")
            assert checkpoint(dsn, "identity") == 0  # held back: the quarantine is no write
            with pytest.raises(ProjectionError):
                reopened.create_role({"name": "writer"})
            rebuild(dsn, IdentityProjection, reopened.reader)
            assert roles == _roles(dsn)
            reopened.create_role({"name": "writer"})
        assert {*roles, "writer"} == set(_roles(dsn))
        assert verify(dsn, IdentityProjection, storage.reader).ok


def _roles(dsn: str) -> list[str]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM roles ORDER BY name")]
