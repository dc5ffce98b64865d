"""Cross-cutting rules on PostgreSQL: tenant scope, event metadata, bad input, the log's guards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.utils import get_topic

from akashone_es import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    Storage,
    ValidationError,
)
from akashone_es.domain.identity import User, system_role_id_for
from projections import models as m
from tests.conftest import log_size

VIEWER = system_role_id_for("Viewer")
ROOT = Path(__file__).resolve().parents[2]


def make_user(storage: Storage, name: str, **extra: Any) -> m.User:
    return storage.create_user({"username": name, "email": f"{name}@example.com",
                                "password": "long-enough-1", **extra})


@dataclass
class Tenant:
    org: m.Organization
    user: m.User
    role: m.Role
    member: m.TeamMember
    activity: m.UserActivity


def tenant(storage: Storage, name: str) -> Tenant:
    """An organization with a user, a custom role, an invitation and an activity of its own."""
    org = storage.create_organization({"name": name})
    user = make_user(storage, f"{name}-user", organization_id=org.id)
    with storage.acting_as(actor_id=user.id, organization_id=org.id, ip="10.0.0.1",
                           user_agent="agent"):
        role = storage.create_role({"name": f"{name}-role"})
        storage.assign_permission_to_role(role.id, storage.get_permission_by_key("vm.view").id)  # type: ignore[union-attr]
        storage.assign_role_to_user(user.id, role.id)
        member = storage.create_team_member({"email": f"team@{name}.example",
                                             "organization_id": org.id, "invited_by": user.id})
        activity = storage.create_user_activity({"user_id": user.id, "action": "auth.login"})
    return Tenant(org, user, role, member, activity)


class TestTenantScope:
    def test_other_tenants_records_read_as_missing(self, storage: Storage) -> None:
        """Acting for org A, org B's users, roles, members and activities read as None/empty."""
        a, b = tenant(storage, "a"), tenant(storage, "b")
        with storage.acting_as(actor_id=a.user.id, organization_id=a.org.id):
            assert storage.get_organization(b.org.id) is None
            assert storage.get_user(b.user.id) is None
            assert storage.get_user_by_username(b.user.username) is None
            assert storage.get_user_by_email(b.user.email) is None
            assert [u.id for u in storage.get_users()] == [a.user.id]
            assert storage.get_role(b.role.id) is None
            assert b.role.id not in {r.id for r in storage.get_roles(b.org.id)}
            assert len(storage.get_roles()) == 4
            assert storage.get_role_permissions(b.role.id) == []
            assert storage.get_user_roles(b.user.id) == []
            assert storage.user_has_permission(b.user.id, "vm.view") is False
            assert storage.get_team_member(b.member.id) is None
            assert storage.get_team_members(b.org.id) == []
            assert storage.get_team_member_by_email(b.member.email, b.org.id) is None
            assert storage.get_user_activity(b.activity.id) is None
            assert storage.get_user_activities(b.user.id) == []
            assert storage.get_user_activities_by_action(b.user.id, "auth.login") == []
            assert {r.organization_id for r in storage.get_recent_activities()} == {a.org.id}
            assert storage.get_user(a.user.id) == a.user
            assert storage.user_has_permission(a.user.id, "vm.view") is True
        assert [p.key for p in storage.get_role_permissions(b.role.id)] == ["vm.view"]

    def test_writes_to_other_tenant_change_nothing(self, storage: Storage, dsn: str) -> None:
        """Acting for org A, updates and deletes of org B's records find nothing to change."""
        a, b = tenant(storage, "a"), tenant(storage, "b")
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id, organization_id=a.org.id):
            assert storage.update_user(b.user.id, {"status": "suspended"}) is None
            assert storage.update_role(b.role.id, {"name": "taken"}) is None
            assert storage.delete_role(b.role.id) is False
            assert storage.update_team_member(b.member.id, {"status": "suspended"}) is None
            assert storage.delete_team_member(b.member.id) is False
            with pytest.raises(NotFoundError) as info:
                storage.assign_role_to_user(b.user.id, VIEWER)
            assert info.value.field == "user_id"
            with pytest.raises(NotFoundError) as info:
                make_user(storage, "intruder", organization_id=b.org.id)
            assert info.value.field == "organization_id"
            with pytest.raises(PermissionDeniedError, match="only the platform moves"):
                storage.update_user(a.user.id, {"organization_id": b.org.id})
        assert log_size(dsn) == before
        assert storage.get_user(b.user.id) == b.user
        assert storage.get_role(b.role.id) == b.role


class TestEventMetadata:
    def test_events_carry_the_acting_context(self, storage: Storage) -> None:
        """Every event of a command names actor, tenant, one correlation id, ip and agent."""
        a = tenant(storage, "a")
        holder = make_user(storage, "holder", organization_id=a.org.id)
        storage.assign_role_to_user(holder.id, a.role.id)
        with storage.acting_as(actor_id=a.user.id, organization_id=a.org.id, ip="192.0.2.7",
                               user_agent="console/2.1"):
            assert storage.delete_role(a.role.id) is True
        events = [storage.app.mapper.to_domain_event(s) for oid in (a.role.id, holder.id)
                  for s in storage.app.recorder.select_events(oid)]
        last = [e for e in events if type(e).__name__ in ("Deleted", "RoleRevoked")]
        assert len(last) == 2
        metas = [e.metadata for e in last]  # type: ignore[attr-defined]
        assert {(md["actor_id"], md["organization_id"], md["ip"], md["user_agent"])
                for md in metas} == {(str(a.user.id), str(a.org.id), "192.0.2.7", "console/2.1")}
        assert metas[0]["correlation_id"] == metas[1]["correlation_id"]
        assert uuid.UUID(metas[0]["correlation_id"])
        every = {frozenset(e.metadata) for e in events}  # type: ignore[attr-defined]
        base = frozenset({"actor_id", "actor_kind", "organization_id", "correlation_id", "ip",
                          "user_agent"})
        assert every == {base, base | {"reason"}}  # the fixture's system context names its reason

    def test_event_state_is_readable_json(self, storage: Storage, dsn: str) -> None:
        """An auditor reads an event's fields and metadata as JSON in SQL; no password, and no
        password hash to guess from."""
        with storage.acting_as(system="audit test", ip="198.51.100.1", user_agent="cli"):
            user = make_user(storage, "audit")
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT convert_from(state, 'UTF8')::jsonb FROM akashone_events"
                                " WHERE originator_id = %s", (user.id,)).fetchall()
        assert len(rows) == 1
        state = rows[0][0]
        # personal data is encrypted under the user's own key (crypto-shredding)
        subject = f"pii:v1:person:{user.id}:"
        assert state["username"].startswith(subject)
        assert state["email"].startswith(subject)
        assert "audit@example.com" not in json.dumps(state)
        assert state["class_version"] == 2
        # a system context (a sign-up) is no person, but its request is the new user's:
        # its IP and agent are sealed under that user's key too
        assert state["metadata"]["ip"].startswith(subject)
        assert state["metadata"]["user_agent"].startswith(subject)
        assert state["password_hash"].startswith("enc:v1:")  # the bcrypt hash, sealed
        assert "long-enough-1" not in json.dumps(state)
        assert "$2b$" not in json.dumps(state)


class TestBadInput:
    @pytest.mark.parametrize(("changes", "field"), [
        ({"email": "not-an-email"}, "email"),
        ({"gst_number": "27AAPFU0939F1ZA"}, "gst_number"),
        ({"username": ""}, "username"),
    ])
    def test_invalid_user_is_rejected_unwritten(self, storage: Storage, dsn: str,
                                                changes: dict[str, Any], field: str) -> None:
        """A bad field raises ValidationError naming it, and the log is unchanged."""
        before = log_size(dsn)
        data = {"username": "ok", "email": "ok@example.com", "password": "long-enough-1"}
        with pytest.raises(ValidationError) as info:
            storage.create_user({**data, **changes})
        assert info.value.fields == [field]
        assert log_size(dsn) == before
        assert storage.get_users() == []

    def test_unknown_permission_key_reads_as_none(self, storage: Storage) -> None:
        """Looking up a permission key that does not exist returns None."""
        assert storage.get_permission_by_key("vm.teleport") is None

    def test_unknown_ids_raise_not_found_unwritten(self, storage: Storage, dsn: str) -> None:
        """Linking an unknown permission or role names the missing field; nothing is written."""
        role = storage.create_role({"name": "Ops"})
        perm = storage.get_permission_by_key("vm.view")
        assert perm is not None
        before = log_size(dsn)
        with pytest.raises(NotFoundError) as info:
            storage.assign_permission_to_role(role.id, uuid.uuid4())
        assert info.value.field == "permission_id"
        with pytest.raises(NotFoundError) as info:
            storage.assign_permission_to_role(uuid.uuid4(), perm.id)
        assert info.value.field == "role_id"
        assert log_size(dsn) == before
        assert storage.get_role_permissions(role.id) == []


class TestLogIsAppendOnly:
    @pytest.mark.parametrize("statement", [
        "UPDATE akashone_events SET topic = topic",
        "DELETE FROM akashone_events",
        "TRUNCATE akashone_events",
    ])
    def test_changing_the_log_fails_in_the_database(self, storage: Storage, dsn: str,
                                                    statement: str) -> None:
        """UPDATE, DELETE and TRUNCATE on the events table are rejected by PostgreSQL."""
        make_user(storage, "kept")
        before = log_size(dsn)
        with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        assert log_size(dsn) == before > 0


class TestConcurrency:
    def test_stale_write_raises_conflict(self, storage: Storage) -> None:
        """Two copies of one aggregate: the second save is stale and is rejected."""
        user = make_user(storage, "race")
        first = storage.app.repository.get(user.id)
        second = storage.app.repository.get(user.id)
        first.update({"status": "suspended"})
        storage._save(first)
        second.update({"status": "invited"})
        with pytest.raises(ConflictError):
            storage._save(second)
        assert storage.get_user(user.id).status == "suspended"  # type: ignore[union-attr]
        assert len(storage.app.recorder.select_events(user.id)) == 2

    def test_racing_registrations_of_one_username(self, storage: Storage) -> None:
        """Two threads register one username at once: one wins, the other is a duplicate."""
        barrier, results = threading.Barrier(2), []

        def register(n: int) -> None:
            barrier.wait()
            try:
                with storage.acting_as(system="racing registration"):
                    results.append(make_user(storage, "same", email=f"n{n}@example.com").id)
            except DuplicateError as exc:
                results.append(exc.field)

        threads = [threading.Thread(target=register, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 2
        assert results.count("username") == 1
        assert [u.username for u in storage.get_users()] == ["same"]

    def test_failed_command_writes_none_of_its_aggregates(self, storage: Storage,
                                                          dsn: str) -> None:
        """Accepting with a taken username rolls back the invitation's change with the user."""
        a = tenant(storage, "a")
        before = log_size(dsn)
        with pytest.raises(DuplicateError):
            storage.accept_invitation({"token": a.member.invitation_token,
                                       "username": a.user.username, "password": "long-enough-1"})
        assert log_size(dsn) == before
        member = storage.get_team_member(a.member.id)
        assert member is not None
        assert (member.status, member.user_id) == ("invited", None)
        user = storage.accept_invitation({"token": a.member.invitation_token,
                                          "username": "fresh", "password": "long-enough-1"})
        assert storage.get_team_member(a.member.id).user_id == user.id  # type: ignore[union-attr]


class TestDurability:
    def test_fresh_process_reads_what_was_written(self, storage: Storage, dsn: str) -> None:
        """A user written here is found by username by another process on the same database."""
        user = make_user(storage, "durable")
        script = ("import akashone_es\n"
                  "s = akashone_es.open_storage()\n"
                  "with s.acting_as(system='durability check'):\n"
                  "    u = s.get_user_by_username('durable')\n"
                  "print('FOUND', u.id, u.email)\n"
                  "s.close()\n")
        env = {**os.environ, "DATABASE_URL": dsn, "AKASHONE_LOG_LEVEL": "warning",
               "AKASHONE_SECRET_KEY": storage.settings.secret_key or ""}
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"FOUND {user.id} durable@example.com"

    def test_v1_registration_is_upcast(self, storage: Storage, dsn: str) -> None:
        """A v1 User.Registered payload (no status, no organization) loads as an active user."""
        user_id = uuid.uuid4()
        v1 = {"timestamp": datetime.now(UTC).isoformat(), "metadata": {},
              "originator_topic": get_topic(User), "username": "old", "email": "old@example.com",
              "password_hash": "$2b$04$" + "a" * 53, "gst_number": None,
              "account_type": "reseller"}
        with psycopg.connect(dsn) as conn:
            conn.execute("INSERT INTO akashone_events (originator_id, originator_version, topic,"
                         " state) VALUES (%s, 1, %s, %s)",
                         (user_id, get_topic(User.Registered), json.dumps(v1).encode()))
        loaded = storage.app.repository.get(user_id)
        assert isinstance(loaded, User)
        assert (loaded.username, loaded.status, loaded.organization_id, loaded.account_type) == (
            "old", "active", None, "reseller")


class TestActivityTenancy:
    def test_activity_recorded_without_context_stays_in_the_subject_users_tenant(
            self, storage: Storage) -> None:
        """A login recorded with no acting context is the subject user's, not shared."""
        org_a = storage.create_organization({"name": "Tenant A"})
        org_b = storage.create_organization({"name": "Tenant B"})
        a = storage.create_user({"username": "ta", "email": "ta@a.example.com",
                                 "password": "password-a1", "organization_id": org_a.id})
        b = storage.create_user({"username": "tb", "email": "tb@b.example.com",
                                 "password": "password-b1", "organization_id": org_b.id})
        login = storage.create_user_activity({"user_id": b.id, "action": "auth.login",
                                              "ip_address": "198.51.100.9"})
        assert login.organization_id == org_b.id
        with storage.acting_as(actor_id=a.id, organization_id=org_a.id):
            assert storage.get_user_activities(b.id) == []
            assert storage.get_user_activities_by_action(b.id, "auth.login") == []
            assert storage.get_user_activity(login.id) is None
        with storage.acting_as(actor_id=b.id, organization_id=org_b.id):
            assert [r.id for r in storage.get_user_activities_by_action(b.id, "auth.login")
                    ] == [login.id]


class TestSecrets:
    def test_totp_secret_is_encrypted_in_the_log_and_the_table(self, storage: Storage,
                                                              dsn: str) -> None:
        """A TOTP secret reads back in clear but is stored only encrypted."""
        user = storage.create_user({"username": "totp", "email": "totp@example.com",
                                    "password": "password-t1"})
        updated = storage.update_user(user.id, {"two_factor_secret": "JBSWY3DPEHPK3PXP",
                                                "two_factor_enabled": True})
        assert updated is not None
        assert updated.two_factor_secret == "JBSWY3DPEHPK3PXP"
        assert storage.get_user(user.id).two_factor_secret == "JBSWY3DPEHPK3PXP"  # type: ignore[union-attr]
        with psycopg.connect(dsn) as conn:
            in_log = conn.execute(
                "SELECT count(*) FROM akashone_events WHERE"
                " position('JBSWY3DPEHPK3PXP' in convert_from(state, 'UTF8')) > 0").fetchone()
            column = conn.execute("SELECT two_factor_secret FROM users WHERE id = %s",
                                  (user.id,)).fetchone()
        assert in_log == (0,)
        assert column is not None
        assert column[0].startswith("enc:v1:")
