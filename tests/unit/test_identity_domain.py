"""Identity aggregates used directly, without a database: their rules and their events."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from akashone_es.domain.base import Snapshot
from akashone_es.domain.identity import (
    Permission,
    Role,
    TeamMember,
    User,
    permission_id_for,
    system_role_id_for,
)
from akashone_es.errors import (
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)

JOINED_AT = datetime(2025, 4, 1, 10, 30, tzinfo=UTC)


def make_role(*, is_system: bool = False, name: str = "operators") -> Role:
    return Role(name=name, description="runs VMs", is_system=is_system, organization_id=None)


def make_user() -> User:
    return User(username="alice", email="alice@example.com", password_hash="$2b$04$hash",
                gst_number="27AAPFU0939F1ZV", account_type="customer", organization_id=None,
                status="active")


def make_member() -> TeamMember:
    return TeamMember(email="bob@example.com", organization_id=str(uuid4()),
                      invited_by=str(uuid4()), token_hash="abc123")


class TestSystemRole:
    def test_refuses_update(self) -> None:
        """A system role cannot be renamed."""
        role = make_role(is_system=True)
        with pytest.raises(PermissionDeniedError):
            role.update("renamed", None)
        assert "operators" == role.name

    def test_refuses_delete(self) -> None:
        """A system role cannot be deleted."""
        role = make_role(is_system=True)
        with pytest.raises(PermissionDeniedError):
            role.delete()
        assert not role.deleted

    def test_refuses_assign(self) -> None:
        """Permissions cannot be assigned to a system role by a user."""
        role = make_role(is_system=True)
        with pytest.raises(PermissionDeniedError):
            role.assign(permission_id_for("vm.create"))
        assert [] == role.permission_ids

    def test_allows_assign_when_seeding(self) -> None:
        """Seeding may assign permissions to a system role."""
        role = make_role(is_system=True)
        role.assign(permission_id_for("vm.create"), seeding=True)
        assert [str(permission_id_for("vm.create"))] == role.permission_ids


class TestRolePermissions:
    def test_rejects_assigning_same_permission_twice(self) -> None:
        """A permission is assigned to a role at most once."""
        role = make_role()
        role.assign(permission_id_for("vm.create"))
        with pytest.raises(DuplicateError) as info:
            role.assign(permission_id_for("vm.create"))
        assert ("role_permission", "permission_id") == (info.value.kind, info.value.field)

    def test_rejects_removing_unassigned_permission(self) -> None:
        """Removing a permission the role does not have is NotFound."""
        role = make_role()
        with pytest.raises(NotFoundError) as info:
            role.remove(permission_id_for("vm.create"))
        assert str(permission_id_for("vm.create")) == info.value.key

    def test_removes_assigned_permission(self) -> None:
        """An assigned permission can be removed again."""
        role = make_role()
        role.assign(permission_id_for("vm.create"))
        role.remove(permission_id_for("vm.create"))
        assert [] == role.permission_ids

    def test_deleted_role_is_not_found(self) -> None:
        """A deleted role cannot be changed any more."""
        role = make_role()
        role.delete()
        with pytest.raises(NotFoundError):
            role.update("again", None)


class TestUserRoles:
    def test_rejects_granting_same_role_twice(self) -> None:
        """A user holds a role at most once."""
        user, role_id = make_user(), uuid4()
        user.grant_role(role_id, granted_by=None)
        with pytest.raises(DuplicateError):
            user.grant_role(role_id, granted_by=None)
        assert [str(role_id)] == user.role_ids

    def test_rejects_revoking_role_not_held(self) -> None:
        """Revoking a role the user does not hold is NotFound."""
        user = make_user()
        with pytest.raises(NotFoundError) as info:
            user.revoke_role(uuid4())
        assert "role_id" == info.value.field


class TestPlatformHold:
    def test_a_suspension_by_the_platform_holds_until_a_status_change_lifts_it(self) -> None:
        """Only a status change moves the hold; a user never held has the state (and the
        snapshot) it had before suspensions were told apart."""
        user = make_user()
        user.update({"status": "suspended"})  # its tenant's
        assert not user.suspended_by_platform
        assert "platform_hold" not in vars(user)
        user.update({"status": "suspended"}, by_platform=True)
        user.update({"username": "alice2"})
        assert user.suspended_by_platform
        restored = Snapshot.take(user).mutate(None)
        assert restored.suspended_by_platform
        user.update({"status": "active"}, by_platform=True)
        assert not user.suspended_by_platform
        assert "platform_hold" not in vars(user)

    def test_registered_suspended_by_the_platform_is_held(self) -> None:
        held = User(username="bob", email="bob@example.com", password_hash="$2b$04$hash",
                    gst_number=None, account_type="customer", organization_id=None,
                    status="suspended", by_platform=True)
        assert held.suspended_by_platform
        events = held.collect_events()
        assert events[0].by_platform  # type: ignore[attr-defined]


class TestTeamMember:
    def test_rejects_accepting_twice(self) -> None:
        """An invitation is accepted once; the second time names the status."""
        member = make_member()
        member.accept(uuid4(), JOINED_AT)
        with pytest.raises(ValidationError) as info:
            member.accept(uuid4(), JOINED_AT)
        assert ["status"] == info.value.fields

    def test_removed_member_is_not_found_on_update(self) -> None:
        """A removed team member cannot be updated."""
        member = make_member()
        member.remove()
        with pytest.raises(NotFoundError):
            member.update({"status": "suspended"})


class TestDeterministicIds:
    def test_permission_id_depends_only_on_key(self) -> None:
        """The same key gives the same id; another key gives another."""
        assert permission_id_for("vm.create") == permission_id_for("vm.create")
        assert permission_id_for("vm.create") != permission_id_for("vm.delete")

    def test_permission_aggregate_uses_key_id(self) -> None:
        """A Permission's id is derived from its key."""
        permission = Permission(key="vm.create", name="Create VMs", description=None, category="vm")
        assert permission_id_for("vm.create") == permission.id

    def test_system_role_id_depends_only_on_name(self) -> None:
        """System role ids differ by name and from permission ids of the same text."""
        assert system_role_id_for("admin") == system_role_id_for("admin")
        assert system_role_id_for("admin") != system_role_id_for("viewer")
        assert system_role_id_for("admin") != permission_id_for("admin")

    def test_system_role_gets_name_id(self) -> None:
        """A system Role's id is system_role_id_for(name)."""
        assert system_role_id_for("admin") == make_role(is_system=True, name="admin").id

    def test_custom_role_gets_random_id(self) -> None:
        """Two custom roles of the same name get different ids."""
        first, second = make_role(name="admin"), make_role(name="admin")
        assert system_role_id_for("admin") != first.id
        assert first.id != second.id


class TestEvents:
    def test_registered_carries_given_fields(self) -> None:
        """User registration records the given values in a Registered event."""
        (registered,) = make_user().collect_events()
        assert isinstance(registered, User.Registered)
        assert ("alice", "alice@example.com", "27AAPFU0939F1ZV", "customer", "active", 1) == (
            registered.username, registered.email, registered.gst_number,
            registered.account_type, registered.status, registered.originator_version)

    def test_role_events_are_past_tense_in_order(self) -> None:
        """Creating, assigning, removing and deleting record past-tense events in order."""
        role = make_role()
        role.assign(permission_id_for("vm.create"))
        role.remove(permission_id_for("vm.create"))
        role.delete()
        events = role.collect_events()
        assert ["Created", "PermissionAssigned", "PermissionRemoved", "Deleted"] == [
            type(e).__name__ for e in events]
        assert [1, 2, 3, 4] == [e.originator_version for e in events]
        assert str(permission_id_for("vm.create")) == events[1].permission_id  # type: ignore[attr-defined]

    def test_role_granted_carries_role_and_grantor(self) -> None:
        """RoleGranted stores the role id and who granted it, as text."""
        user, role_id, admin_id = make_user(), uuid4(), uuid4()
        user.grant_role(role_id, granted_by=admin_id)
        granted = user.collect_events()[-1]
        assert isinstance(granted, User.RoleGranted)
        assert (str(role_id), str(admin_id)) == (granted.role_id, granted.granted_by)

    def test_accepted_carries_user_and_join_time(self) -> None:
        """Accepting an invitation records the user and the time they joined."""
        member, user_id = make_member(), UUID("12345678-1234-5678-1234-567812345678")
        member.accept(user_id, JOINED_AT)
        accepted = member.collect_events()[-1]
        assert isinstance(accepted, TeamMember.Accepted)
        assert (str(user_id), JOINED_AT) == (accepted.user_id, accepted.joined_at)
        assert ("active", str(user_id)) == (member.status, member.user_id)
