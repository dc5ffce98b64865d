"""Time travel: ``storage.as_of(moment)`` gives every read method over the past.

The view replays the log up to a time or a position through the live projections into
temporary tables; these tests check the issue's two examples, resources, positions, backdated
events, tenant scoping, that writes are refused and that nothing live changes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from akashone_es import context
from akashone_es.errors import PermissionDeniedError, ValidationError
from akashone_es.storage import Storage
from projections.rebuild import checksums
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import KINDS, make
from tests.integration.test_billing_storage import address, customer, draft


def moment() -> datetime:
    """Now, with the clock moved on so the next event is strictly later."""
    now = datetime.now(UTC)
    time.sleep(0.005)
    return now


def position(storage: Storage) -> int:
    with psycopg.connect(storage.dsn) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0)"
                           " FROM akashone_events").fetchone()
    return int(row[0]) if row else 0


class TestTheIssueExamples:
    def test_a_user_before_a_role_grant_has_no_role(self, storage: Storage) -> None:
        storage.initialize_default_permissions()
        storage.initialize_default_roles()
        user = customer(storage)
        before = moment()
        admin = next(r for r in storage.get_roles() if r.name == "Admin")
        storage.assign_role_to_user(user.id, admin.id)
        with storage.as_of(before) as past:
            assert past.get_user_roles(user.id) == []
            assert not past.user_has_permission(user.id, "vm.view")
            assert past.get_user(user.id) == storage.get_user(user.id)
        with storage.as_of(moment()) as now:
            assert [r.name for r in now.get_user_roles(user.id)] == ["Admin"]

    def test_an_invoice_between_issue_and_its_credit_note_shows_no_credit(
            self, issuer: Storage) -> None:
        user = customer(issuer)
        invoice = issuer.issue_invoice(draft(issuer, user, address(issuer, user), 50_000).id)
        between = moment()
        note = issuer.issue_credit_note(invoice.id, 5_000, "goodwill")
        with issuer.as_of(between) as past:
            assert past.get_adjustment_notes(invoice.id) == []
            assert past.get_adjustment_notes_by_number(note.note_number) == []
            assert past.get_invoice(invoice.id) == issuer.get_invoice(invoice.id)
        assert [n.id for n in issuer.get_adjustment_notes(invoice.id)] == [note.id]


class TestEveryKind:
    def test_a_resource_before_its_transition_and_before_it_existed(
            self, storage: Storage) -> None:
        enable_all_features(storage)
        owner = customer(storage)
        before_vm = moment()
        vm = make(storage, KINDS["virtual_machine"], "vm-a", owner.id)
        created = moment()
        storage.update_virtual_machine(vm.id, {"state": "Running"})
        with storage.as_of(before_vm) as past:
            assert past.get_virtual_machine(vm.id) is None
            assert past.get_virtual_machines(owner.id) == []
        with storage.as_of(created) as past:
            assert past.get_virtual_machine(vm.id).state == vm.state != "Running"
        assert storage.get_virtual_machine(vm.id).state == "Running"

    def test_at_the_head_every_table_equals_the_live_one(self, issuer: Storage) -> None:
        """One mechanism for every kind: replayed to the head, each projection's temporary
        tables have the live tables' content, table by table."""
        enable_all_features(issuer)
        user = customer(issuer)
        issuer.issue_invoice(draft(issuer, user, address(issuer, user), 1_000).id)
        make(issuer, KINDS["volume"], "vol-a", user.id)
        issuer.get_recent_activities()  # the async projection caught up
        with issuer.as_of(position(issuer)) as past, psycopg.connect(issuer.dsn) as conn, \
                past._datastore.get_connection() as temp:
            for replayed in past.projections:
                live = next(p for p in issuer.projections if p.name == replayed.name)
                assert checksums(temp, replayed) == checksums(conn, live), replayed.name

    def test_a_log_position(self, storage: Storage) -> None:
        first = customer(storage, "first")
        at = position(storage)
        customer(storage, "second")
        with storage.as_of(at) as past:
            assert [u.id for u in past.get_users()] == [first.id]
        with storage.as_of(0) as past:
            assert past.get_users() == []

    def test_a_backdated_event_counts_from_the_moment_it_names(self, storage: Storage) -> None:
        """A platform job that records yesterday's change today: as of an hour ago, it is
        there (the event's own time is what ``history`` shows, and what the view uses)."""
        user = customer(storage)
        yesterday = datetime.now(UTC) - timedelta(days=1)
        with storage.acting_as(system="replay a day"), context.events_at(yesterday):
            late = customer(storage, "late")
        with storage.as_of(datetime.now(UTC) - timedelta(hours=1)) as past:
            assert {u.id for u in past.get_users()} == {late.id}
        assert {u.id for u in storage.get_users()} == {user.id, late.id}


class TestSafety:
    def test_writes_through_the_past_are_refused_and_write_nothing(
            self, storage: Storage) -> None:
        customer(storage)
        at = position(storage)
        with storage.as_of(at) as past:
            with pytest.raises(PermissionDeniedError, match="read-only"):
                customer(past, "ghost")
            with pytest.raises(PermissionDeniedError, match="read-only"):
                past.create_role({"name": "ghost-role"})
        assert position(storage) == at
        assert storage.get_user_by_username("ghost") is None

    def test_the_live_tables_and_checkpoints_do_not_change(self, storage: Storage) -> None:
        customer(storage)
        with psycopg.connect(storage.dsn) as conn:
            before = conn.execute("SELECT name, position FROM akashone_checkpoints"
                                  " ORDER BY name").fetchall()
            with storage.as_of(0) as past:
                assert past.get_users() == []
                assert len(storage.get_users()) == 1  # the live storage reads the present
            after = conn.execute("SELECT name, position FROM akashone_checkpoints"
                                 " ORDER BY name").fetchall()
        assert before == after

    def test_the_temporary_tables_go_with_the_view(self, storage: Storage) -> None:
        customer(storage)
        with storage.as_of(position(storage)) as past, \
                past._datastore.get_connection() as conn:
            pid = conn.info.backend_pid
            assert conn.execute("SELECT count(*) FROM pg_temp.users").fetchone() == {
                "count": 1}
        assert conn.closed
        with psycopg.connect(storage.dsn, autocommit=True) as check:
            for _ in range(100):  # the server ends the backend a moment after the close
                alive = check.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                      (pid,)).fetchone()
                if alive == (0,):
                    break
                time.sleep(0.05)
        assert alive == (0,)

    @pytest.mark.parametrize("bad", [datetime(2026, 1, 1), -1, "yesterday", True, 1.5])
    def test_a_bad_moment_names_the_field(self, storage: Storage, bad: Any) -> None:
        with pytest.raises(ValidationError, match="moment"):
            storage.as_of(bad)


class TestTenancy:
    def test_a_tenant_may_not_replay_the_log(self, world: dict[str, Any],
                                             storage: Storage) -> None:
        with storage.acting_as(actor_id=world["alpha"].id), pytest.raises(
                PermissionDeniedError, match="as_of is for the platform only"):
            storage.as_of(0)

    def test_on_a_tenants_behalf_the_past_is_scoped_to_it(self, world: dict[str, Any],
                                                          storage: Storage) -> None:
        alpha, bravo = world["alpha"], world["bravo"]
        now = moment()
        with storage.acting_as(system="audit", organization_id=alpha.organization_id), \
                storage.as_of(now) as past:
            assert past.get_user(bravo.id) is None
            assert [u.id for u in past.get_users()] == [alpha.id]


class TestOutOfOrderTimes:
    def test_an_aggregate_is_seen_up_to_its_first_later_event(self, storage: Storage) -> None:
        """History is a prefix: once an event of an aggregate is after the moment, its later
        events are too, whatever time they name (imported rows carry their own times)."""
        from akashone_es.domain import identity as domain

        user = customer(storage)
        cut = moment()
        later = domain.User._create(
            domain.User.Registered, username="later", email="later@example.in",
            password_hash=storage._password_hash("long-enough-1"), gst_number=None,
            account_type="customer", organization_id=None, status="active")
        viewer = next(r for r in storage.get_roles() if r.name == "Viewer")
        later.trigger_event(domain.User.RoleGranted, role_id=str(viewer.id), granted_by=None,
                            timestamp=cut - timedelta(days=1))  # names a time before it was
        storage._save(later)
        with storage.as_of(cut) as past, past._datastore.get_connection() as conn:
            assert past.get_user(later.id) is None
            assert conn.execute("SELECT count(*) FROM pg_temp.user_roles WHERE user_id = %s",
                                (later.id,)).fetchone() == {"count": 0}
            assert past.get_user(user.id) is not None
