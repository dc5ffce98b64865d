"""Identity storage on PostgreSQL: users, roles, permissions, team members and the activity log."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import bcrypt
import psycopg
import pytest

from akashone_es import DuplicateError, NotFoundError, PermissionDeniedError, Storage
from akashone_es.domain.identity import system_role_id_for
from projections import models as m
from tests.conftest import log_size

ADMIN, EDITOR, VIEWER = (system_role_id_for(n) for n in ("Admin", "Editor", "Viewer"))


def make_user(storage: Storage, name: str, **extra: Any) -> m.User:
    return storage.create_user({"username": name, "email": f"{name}@example.com",
                                "password": "long-enough-1", **extra})


class TestUsers:
    def test_account_type_is_kept_as_given(self, storage: Storage) -> None:
        """A reseller is stored as a reseller, not forced to customer."""
        user = make_user(storage, "resella", account_type="reseller")
        assert user.account_type == "reseller"
        assert storage.get_user(user.id).account_type == "reseller"  # type: ignore[union-attr]

    def test_password_is_stored_as_bcrypt_hash(self, storage: Storage) -> None:
        """The clear password never reaches the row; its bcrypt hash does."""
        user = make_user(storage, "asha")
        assert "long-enough-1" not in user.password
        assert user.password.startswith("$2b$")
        assert bcrypt.checkpw(b"long-enough-1", user.password.encode())
        assert storage.verify_password(user.id, "long-enough-1")
        assert not storage.verify_password(user.id, "wrong-password")

    def test_imported_bcrypt_hash_is_kept_exactly(self, storage: Storage) -> None:
        """A legacy bcrypt hash is imported as it is, not hashed again."""
        legacy = bcrypt.hashpw(b"legacy-secret", bcrypt.gensalt(rounds=4)).decode()
        user = make_user(storage, "legacy", password=legacy)
        assert user.password == legacy
        assert storage.verify_password(user.id, "legacy-secret")

    def test_reads_by_id_username_and_email(self, storage: Storage) -> None:
        """A user reads back by id, username and email (any case); all users list it."""
        user = storage.create_user({"username": "ravi", "email": "Ravi@Example.com",
                                    "password": "long-enough-1",
                                    "gst_number": "27aapfu0939f1zv"})
        assert storage.get_user(user.id) == user
        assert storage.get_user_by_username("ravi") == user
        assert storage.get_user_by_email("RAVI@example.COM") == user
        assert user.gst_number == "27AAPFU0939F1ZV"
        assert [u.id for u in storage.get_users()] == [user.id]
        assert storage.get_user_by_username("nobody") is None

    def test_email_is_unique_case_insensitively(self, storage: Storage, dsn: str) -> None:
        """A second user with the same email in another case is a duplicate; nothing is written."""
        make_user(storage, "first", email="Same@Example.com")
        before = log_size(dsn)
        with pytest.raises(DuplicateError) as info:
            make_user(storage, "second", email="same@example.COM")
        assert info.value.field == "email"
        assert log_size(dsn) == before
        assert storage.get_user_by_username("second") is None

    def test_username_is_unique(self, storage: Storage) -> None:
        """A second user with a taken username is a duplicate."""
        make_user(storage, "taken")
        with pytest.raises(DuplicateError) as info:
            make_user(storage, "taken", email="other@example.com")
        assert info.value.field == "username"

    def test_update_changes_given_columns_only(self, storage: Storage) -> None:
        """update_user changes the given columns, rehashes a new password, keeps the rest."""
        user = make_user(storage, "meera")
        updated = storage.update_user(user.id, {"email": "meera@new.example.com",
                                                "status": "suspended", "password": "new-pass-99",
                                                "default_discount_percentage": 15})
        assert updated is not None
        assert (updated.email, updated.status) == ("meera@new.example.com", "suspended")
        assert updated.default_discount_percentage == 15
        assert updated.username == "meera"
        assert storage.verify_password(user.id, "new-pass-99")
        assert storage.get_user_by_email("meera@example.com") is None

    def test_update_of_unknown_user_returns_none(self, storage: Storage) -> None:
        """Updating a user that does not exist returns None."""
        assert storage.update_user(UUID(int=7), {"status": "suspended"}) is None

    def test_has_super_admin_once_one_exists(self, storage: Storage) -> None:
        """has_super_admin is false until a super_admin account is created."""
        make_user(storage, "cust")
        assert storage.has_super_admin() is False
        make_user(storage, "root", account_type="super_admin")
        assert storage.has_super_admin() is True


class TestRolesAndPermissions:
    def test_seeding_twice_adds_nothing(self, storage: Storage, dsn: str) -> None:
        """The fixture seeded already: a second seeding adds no rows and no events."""
        before = log_size(dsn)
        assert storage.initialize_default_permissions() == 0
        assert storage.initialize_default_roles() == 0
        assert log_size(dsn) == before
        assert len(storage.get_permissions()) == 22
        counts = {r: len(storage.get_role_permissions(r)) for r in (ADMIN, EDITOR, VIEWER)}
        assert counts == {ADMIN: 22, EDITOR: 18, VIEWER: 8}
        assert "billing.manage" not in {p.key for p in storage.get_role_permissions(EDITOR)}

    def test_get_roles_of_org_adds_system_roles(self, storage: Storage) -> None:
        """get_roles(org) is that org's roles plus the 3 system roles; get_roles() is all."""
        org_a = storage.create_organization({"name": "A"})
        org_b = storage.create_organization({"name": "B"})
        role_a = storage.create_role({"name": "Ops", "organization_id": org_a.id})
        role_b = storage.create_role({"name": "Dev", "organization_id": org_b.id})
        assert [r.id for r in storage.get_roles(org_a.id)] == [ADMIN, EDITOR, VIEWER, role_a.id]
        assert {r.id for r in storage.get_roles()} == {ADMIN, EDITOR, VIEWER, role_a.id,
                                                      role_b.id}

    def test_system_roles_cannot_be_changed(self, storage: Storage) -> None:
        """Updating or deleting a system role is denied and leaves it as it was."""
        with pytest.raises(PermissionDeniedError):
            storage.update_role(ADMIN, {"name": "Boss"})
        with pytest.raises(PermissionDeniedError):
            storage.delete_role(VIEWER)
        assert storage.get_role(ADMIN).name == "Admin"  # type: ignore[union-attr]
        assert storage.get_role(VIEWER) is not None

    def test_custom_role_can_be_updated(self, storage: Storage) -> None:
        """A custom role's name and description change."""
        role = storage.create_role({"name": "Ops"})
        updated = storage.update_role(role.id, {"description": "runs things"})
        assert updated is not None
        assert (updated.name, updated.description, updated.is_system) == ("Ops", "runs things",
                                                                          False)

    def test_permission_assignment_is_unique_per_pair(self, storage: Storage) -> None:
        """A permission is assigned to a role once; a second assignment is a duplicate."""
        role = storage.create_role({"name": "Ops"})
        perm = storage.get_permission_by_key("vm.create")
        assert perm is not None
        link = storage.assign_permission_to_role(role.id, perm.id)
        assert (link.role_id, link.permission_id) == (role.id, perm.id)
        with pytest.raises(DuplicateError):
            storage.assign_permission_to_role(role.id, perm.id)
        assert [p.key for p in storage.get_role_permissions(role.id)] == ["vm.create"]
        assert storage.remove_permission_from_role(role.id, perm.id) is True
        assert storage.remove_permission_from_role(role.id, perm.id) is False
        assert storage.get_role_permissions(role.id) == []

    def test_created_permission_reads_by_key(self, storage: Storage) -> None:
        """A new permission reads back by id and key; its key is unique."""
        perm = storage.create_permission({"key": "cdn.purge", "name": "Purge CDN",
                                          "category": "Networking"})
        assert storage.get_permission(perm.id) == storage.get_permission_by_key("cdn.purge")
        with pytest.raises(DuplicateError):
            storage.create_permission({"key": "cdn.purge", "name": "x", "category": "y"})


class TestUserRoles:
    def test_role_grants_its_permissions(self, storage: Storage) -> None:
        """A user holding Viewer may view but not create; removing the role revokes both."""
        user, granter = make_user(storage, "neha"), make_user(storage, "boss")
        link = storage.assign_role_to_user(user.id, VIEWER, granted_by=granter.id)
        assert (link.user_id, link.role_id, link.granted_by) == (user.id, VIEWER, granter.id)
        assert [r.name for r in storage.get_user_roles(user.id)] == ["Viewer"]
        assert storage.user_has_permission(user.id, "vm.view") is True
        assert storage.user_has_permission(user.id, "vm.create") is False
        assert storage.remove_role_from_user(user.id, VIEWER) is True
        assert storage.remove_role_from_user(user.id, VIEWER) is False
        assert storage.get_user_roles(user.id) == []
        assert storage.user_has_permission(user.id, "vm.view") is False

    def test_role_is_assigned_once(self, storage: Storage) -> None:
        """Assigning the same role to a user twice is a duplicate."""
        user = make_user(storage, "neha")
        storage.assign_role_to_user(user.id, EDITOR)
        with pytest.raises(DuplicateError):
            storage.assign_role_to_user(user.id, EDITOR)

    def test_deleting_role_revokes_it_from_users(self, storage: Storage) -> None:
        """Deleting a custom role removes it, its permissions, and every user's grant."""
        role = storage.create_role({"name": "Ops"})
        storage.assign_permission_to_role(role.id, storage.get_permission_by_key("dns.manage").id)  # type: ignore[union-attr]
        users = [make_user(storage, "u1"), make_user(storage, "u2")]
        for user in users:
            storage.assign_role_to_user(user.id, role.id)
        assert storage.user_has_permission(users[0].id, "dns.manage") is True
        assert storage.delete_role(role.id) is True
        assert storage.get_role(role.id) is None
        assert storage.delete_role(role.id) is False
        for user in users:
            assert storage.get_user_roles(user.id) == []
            assert storage.user_has_permission(user.id, "dns.manage") is False


class TestTeamMembers:
    def _invite(self, storage: Storage) -> tuple[m.Organization, m.TeamMember]:
        org = storage.create_organization({"name": "Acme"})
        owner = make_user(storage, "owner", organization_id=org.id)
        member = storage.create_team_member({"email": "Dev@Acme.example",
                                             "organization_id": org.id,
                                             "invited_by": owner.id})
        return org, member

    def test_invitation_token_is_not_stored_in_clear(self, storage: Storage, dsn: str) -> None:
        """The returned token is clear; the column and the log hold only its hash."""
        _, member = self._invite(storage)
        token = member.invitation_token
        assert token is not None
        assert len(token) >= 16
        stored = storage.get_team_member(member.id)
        assert stored is not None
        assert stored.invitation_token is not None
        assert token not in stored.invitation_token
        with psycopg.connect(dsn) as conn:
            hits = conn.execute("SELECT count(*) FROM akashone_events WHERE"
                                " position(%s in convert_from(state, 'UTF8')) > 0",
                                (token,)).fetchone()
        assert hits == (0,)

    def test_invitation_is_accepted_once(self, storage: Storage) -> None:
        """Accepting creates an active team_member user in the org; the token then stops working."""
        org, member = self._invite(storage)
        accept = {"token": member.invitation_token, "username": "dev",
                  "password": "long-enough-1"}
        user = storage.accept_invitation(accept)
        assert (user.account_type, user.organization_id, user.email.lower()) == (
            "team_member", org.id, "dev@acme.example")
        joined = storage.get_team_member(member.id)
        assert joined is not None
        assert (joined.status, joined.user_id, joined.invitation_token) == ("active", user.id,
                                                                            None)
        with pytest.raises(NotFoundError) as info:
            storage.accept_invitation({**accept, "username": "dev2"})
        assert info.value.field == "token"

    def test_member_reads_updates_and_deletes(self, storage: Storage) -> None:
        """A member is found by email in any case, updated, listed and deleted."""
        org, member = self._invite(storage)
        found = storage.get_team_member_by_email("dev@acme.EXAMPLE", org.id)
        assert found is not None
        assert found.id == member.id
        updated = storage.update_team_member(member.id, {"status": "suspended"})
        assert updated is not None
        assert updated.status == "suspended"
        assert [t.id for t in storage.get_team_members(org.id)] == [member.id]
        assert storage.delete_team_member(member.id) is True
        assert storage.get_team_member(member.id) is None
        assert storage.get_team_members(org.id) == []
        assert storage.delete_team_member(member.id) is False


class TestActivityLog:
    def test_every_command_leaves_an_activity(self, storage: Storage) -> None:
        """Commands under acting_as are listed newest first with actor, ip and user agent."""
        org = storage.create_organization({"name": "Acme"})
        admin = make_user(storage, "admin", organization_id=org.id)
        with storage.acting_as(actor_id=admin.id, organization_id=org.id, ip="10.0.0.9",
                               user_agent="pytest/1"):
            user = make_user(storage, "neha")
            storage.update_user(user.id, {"status": "suspended"})
            storage.assign_role_to_user(user.id, VIEWER)
        rows = storage.get_user_activities(admin.id)
        assert [r.action for r in rows] == ["user.role_granted", "user.updated",
                                            "user.registered"]
        assert {(r.username, r.organization_id, r.ip_address, r.user_agent) for r in rows} == {
            ("admin", org.id, "10.0.0.9", "pytest/1")}
        assert {r.resource_id for r in rows} == {str(user.id)}
        by_action = storage.get_user_activities_by_action(admin.id, "user.updated")
        assert [r.id for r in by_action] == [rows[1].id]

    def test_recent_activities_are_newest_first(self, storage: Storage) -> None:
        """get_recent_activities lists the latest events first, limited."""
        for name in ("a1", "a2", "a3"):
            make_user(storage, name)
        recent = storage.get_recent_activities(limit=3)
        assert [r.resource_name for r in recent] == ["a3", "a2", "a1"]
        positions = [r.position for r in storage.get_user_activities()]
        assert positions == sorted(positions, reverse=True)

    def test_created_activity_reads_back(self, storage: Storage) -> None:
        """create_user_activity records an event whose row reads back by id."""
        user = make_user(storage, "login")
        with storage.acting_as(actor_id=user.id, ip="203.0.113.5", user_agent="Firefox"):
            row = storage.create_user_activity({"user_id": user.id, "username": "login",
                                                "action": "auth.login",
                                                "metadata": {"method": "password"}})
        assert storage.get_user_activity(row.id) == row
        assert (row.action, row.user_id, row.ip_address, row.user_agent) == (
            "auth.login", user.id, "203.0.113.5", "Firefox")
        assert row.metadata is not None
        assert row.metadata["details"] == {"method": "password"}
        assert [r.id for r in storage.get_user_activities_by_action(user.id, "auth.login")] == [
            row.id]
