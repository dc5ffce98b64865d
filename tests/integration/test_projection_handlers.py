"""Projection handlers: given events, when projected, then rows; each event twice, same rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from akashone_es.domain.identity import (
    Activity,
    Organization,
    Permission,
    Role,
    TeamMember,
    User,
    permission_id_for,
)
from projections.activity import ActivityProjection
from projections.identity import IdentityProjection, link_id
from tests.integration.projection_helpers import (
    collect,
    project,
    project_all,
    project_all_twice,
    project_twice,
    stamped,
)

HASH = "$2b$04$abcdefghijklmnopqrstuuJ0.jFcSO5a2bEfJbGRZp6B1xW3J9Lwe"
TOKEN_HASH = "sha256:" + "ab" * 32


def new_user(username: str = "asha", email: str = "asha@example.com", **fields: Any) -> User:
    values: dict[str, Any] = {"gst_number": None, "account_type": "customer",
                              "organization_id": None, "status": "active"}
    values.update(fields)
    return User(username=username, email=email, password_hash=HASH, **values)


def by_id(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {row["id"]: row for row in rows}


class TestOrganizationRows:
    def test_created_organizations_are_rows_with_kind_and_parent(self, dsn: str) -> None:
        """Organization.Created inserts one row with its kind, parent and timestamps."""
        reseller = Organization(name="Akash Reseller", kind="reseller")
        customer = Organization(name="Kumar Traders", kind="customer",
                                parent_id=str(reseller.id))
        events = collect(reseller, customer)

        rows = by_id(project(dsn, IdentityProjection, events, "organizations"))

        assert rows == {
            reseller.id: {"id": reseller.id, "name": "Akash Reseller", "kind": "reseller",
                          "parent_id": None, "created_at": events[0].timestamp,
                          "updated_at": events[0].timestamp},
            customer.id: {"id": customer.id, "name": "Kumar Traders", "kind": "customer",
                          "parent_id": reseller.id, "created_at": events[1].timestamp,
                          "updated_at": events[1].timestamp},
        }
        assert by_id(project_twice(dsn, IdentityProjection, events, "organizations")) == rows

    def test_rename_changes_name_and_updated_at_only(self, dsn: str) -> None:
        """Organization.Renamed sets the name and updated_at; created_at stays."""
        org = Organization(name="Kumar Traders", kind="customer")
        org.rename("Kumar Traders Pvt Ltd")
        created, renamed = collect(org)

        [row] = project(dsn, IdentityProjection, [created, renamed], "organizations")

        assert (row["name"], row["created_at"], row["updated_at"]) == (
            "Kumar Traders Pvt Ltd", created.timestamp, renamed.timestamp)
        assert project_twice(dsn, IdentityProjection, [created, renamed],
                             "organizations") == [row]


class TestUserRows:
    def test_registered_user_row_holds_event_values_and_column_defaults(self,
                                                                       dsn: str) -> None:
        """User.Registered fills the user's columns; the others take the table defaults."""
        org = Organization(name="Kumar Traders", kind="customer")
        user = new_user("ravi", "Ravi@Example.com", gst_number="29ABCDE1234F1Z5",
                        account_type="team_member", organization_id=str(org.id),
                        status="invited")
        [registered] = collect(user)

        [row] = project(dsn, IdentityProjection, [registered], "users")

        assert row == {
            "id": user.id, "username": "ravi", "username_key": "ravi",
            "email": "Ravi@Example.com", "email_key": "ravi@example.com", "password": HASH,
            "gst_number": "29ABCDE1234F1Z5", "email_verified": False,
            "email_verification_code": None, "email_verification_expiry": None,
            "two_factor_secret": None, "two_factor_enabled": False,
            "account_type": "team_member", "organization_id": org.id,
            "default_discount_percentage": 0, "status": "invited",
            "created_at": registered.timestamp, "last_login": None,
            "updated_at": registered.timestamp,
        }
        assert project_twice(dsn, IdentityProjection, [registered], "users") == [row]

    def test_update_sets_each_changed_column_and_updated_at(self, dsn: str) -> None:
        """User.Updated writes every changed column and updated_at, and nothing else."""
        user = new_user()
        login = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        user.update({"username": "asha.k", "status": "suspended", "email_verified": True,
                     "default_discount_percentage": 15, "last_login": login.isoformat()})
        events = collect(user)

        [row] = project(dsn, IdentityProjection, events, "users")

        assert {k: row[k] for k in ("username", "email", "status", "email_verified",
                                    "default_discount_percentage", "last_login",
                                    "created_at", "updated_at")} == {
            "username": "asha.k", "email": "asha@example.com", "status": "suspended",
            "email_verified": True, "default_discount_percentage": 15, "last_login": login,
            "created_at": events[0].timestamp, "updated_at": events[1].timestamp,
        }
        assert project_twice(dsn, IdentityProjection, events, "users") == [row]


class TestRoleAndPermissionRows:
    def test_permission_is_a_row_with_its_key_derived_id(self, dsn: str) -> None:
        """Permission.Created inserts the permission under the id derived from its key."""
        permission = Permission(key="vm.view", name="View virtual machines",
                                description="List and inspect VMs", category="Compute")
        [created] = collect(permission)

        rows = project(dsn, IdentityProjection, [created], "permissions")

        assert rows == [{"id": permission_id_for("vm.view"), "key": "vm.view",
                         "name": "View virtual machines", "description": "List and inspect VMs",
                         "category": "Compute", "created_at": created.timestamp}]
        assert project_twice(dsn, IdentityProjection, [created], "permissions") == rows

    def test_assigned_permissions_are_links_and_removal_deletes_one(self, dsn: str) -> None:
        """PermissionAssigned inserts a link with a stable id; PermissionRemoved deletes it."""
        org = Organization(name="Kumar Traders", kind="customer")
        role = Role(name="Operators", description="run VMs", is_system=False,
                    organization_id=str(org.id))
        view, create = permission_id_for("vm.view"), permission_id_for("vm.create")
        role.assign(view)
        role.assign(create)
        role.remove(view)
        role.update("VM operators", "start and stop VMs")
        events = collect(role)

        once = project_all(dsn, IdentityProjection, events)

        assert once["role_permissions"] == [{"id": link_id(role.id, create), "role_id": role.id,
                                             "permission_id": create,
                                             "created_at": events[2].timestamp}]
        assert once["roles"] == [{"id": role.id, "name": "VM operators",
                                  "description": "start and stop VMs", "is_system": False,
                                  "organization_id": org.id,
                                  "created_at": events[0].timestamp,
                                  "updated_at": events[4].timestamp}]
        assert project_all_twice(dsn, IdentityProjection, events) == once

    def test_deleted_role_takes_its_permission_links_and_leaves_others(self, dsn: str) -> None:
        """Role.Deleted removes the role and its links; another role's links stay."""
        view = permission_id_for("vm.view")
        kept = Role(name="Viewers", description=None, is_system=False, organization_id=None)
        gone = Role(name="Temporary", description=None, is_system=False, organization_id=None)
        kept.assign(view)
        gone.assign(view)
        gone.delete()
        events = collect(kept, gone)

        once = project_all(dsn, IdentityProjection, events)

        assert [r["id"] for r in once["roles"]] == [kept.id]
        assert [(r["role_id"], r["permission_id"]) for r in once["role_permissions"]] == [
            (kept.id, view)]
        assert project_all_twice(dsn, IdentityProjection, events) == once


class TestUserRoleRows:
    def test_granted_role_is_a_link_with_its_grantor(self, dsn: str) -> None:
        """RoleGranted inserts (user, role, granted_by) under the link's stable id."""
        admin, user = new_user("admin", "admin@example.com"), new_user()
        role = Role(name="Operators", description=None, is_system=False, organization_id=None)
        user.grant_role(role.id, admin.id)
        events = collect(admin, role, user)

        rows = project(dsn, IdentityProjection, events, "user_roles")

        assert rows == [{"id": link_id(user.id, role.id), "user_id": user.id,
                         "role_id": role.id, "granted_by": admin.id,
                         "created_at": events[-1].timestamp}]
        assert project_twice(dsn, IdentityProjection, events, "user_roles") == rows

    def test_revoked_role_is_unlinked_and_a_regrant_links_it_again(self, dsn: str) -> None:
        """RoleRevoked deletes the link; a later grant inserts it anew with its own time."""
        user = new_user()
        kept = Role(name="Viewers", description=None, is_system=False, organization_id=None)
        flip = Role(name="Operators", description=None, is_system=False, organization_id=None)
        user.grant_role(kept.id, None)
        user.grant_role(flip.id, None)
        user.revoke_role(flip.id)
        user.grant_role(flip.id, None)
        user.revoke_role(kept.id)
        events = collect(kept, flip, user)

        rows = project(dsn, IdentityProjection, events, "user_roles")

        assert [(r["role_id"], r["granted_by"], r["created_at"]) for r in rows] == [
            (flip.id, None, events[-2].timestamp)]
        assert project_twice(dsn, IdentityProjection, events, "user_roles") == rows


class TestTeamMemberRows:
    def test_invitation_is_a_row_with_the_token_hash(self, dsn: str) -> None:
        """TeamMember.Invited inserts an invited member holding only the token's hash."""
        org, admin = Organization(name="Kumar Traders", kind="customer"), new_user()
        member = TeamMember(email="ravi@example.com", organization_id=str(org.id),
                            invited_by=str(admin.id), token_hash=TOKEN_HASH)
        [invited] = collect(member)

        rows = project(dsn, IdentityProjection, [invited], "team_members")

        assert rows == [{"id": member.id, "email": "ravi@example.com",
                         "email_key": "ravi@example.com", "user_id": None,
                         "organization_id": org.id, "status": "invited",
                         "invited_by": admin.id, "invitation_token": TOKEN_HASH,
                         "invited_at": invited.timestamp, "joined_at": None}]
        assert project_twice(dsn, IdentityProjection, [invited], "team_members") == rows

    def test_acceptance_activates_the_member_and_clears_the_token(self, dsn: str) -> None:
        """Accepted links the user, sets active and joined_at, and clears the token."""
        org, admin = Organization(name="Kumar Traders", kind="customer"), new_user()
        member = TeamMember(email="ravi@example.com", organization_id=str(org.id),
                            invited_by=str(admin.id), token_hash=TOKEN_HASH)
        ravi = new_user("ravi", "ravi@example.com", organization_id=str(org.id))
        joined = datetime(2025, 4, 2, 10, 0, tzinfo=UTC)
        member.accept(ravi.id, joined)
        member.update({"email": "ravi.k@example.com"})
        events = collect(member)

        [row] = project(dsn, IdentityProjection, events, "team_members")

        assert (row["user_id"], row["status"], row["joined_at"], row["invitation_token"],
                row["email"], row["invited_at"]) == (
            ravi.id, "active", joined, None, "ravi.k@example.com", events[0].timestamp)
        assert project_twice(dsn, IdentityProjection, events, "team_members") == [row]

    def test_removed_member_has_no_row(self, dsn: str) -> None:
        """TeamMember.Removed deletes the member's row; other members stay."""
        org, admin = Organization(name="Kumar Traders", kind="customer"), new_user()
        stays = TeamMember(email="ravi@example.com", organization_id=str(org.id),
                           invited_by=str(admin.id), token_hash=TOKEN_HASH)
        leaves = TeamMember(email="meera@example.com", organization_id=str(org.id),
                            invited_by=str(admin.id), token_hash="sha256:" + "cd" * 32)
        leaves.update({"status": "suspended"})
        leaves.remove()
        events = collect(stays, leaves)

        rows = project(dsn, IdentityProjection, events, "team_members")

        assert [(r["id"], r["email"]) for r in rows] == [(stays.id, "ravi@example.com")]
        assert project_twice(dsn, IdentityProjection, events, "team_members") == rows


class TestActivityRows:
    def test_every_event_is_one_row_named_after_its_class(self, dsn: str) -> None:
        """Each event becomes a row at its position: action, resource type, id and name."""
        org = Organization(name="Kumar Traders", kind="customer")
        user = new_user(organization_id=str(org.id))
        role = Role(name="Operators", description=None, is_system=False,
                    organization_id=str(org.id))
        user.grant_role(role.id, None)
        member = TeamMember(email="ravi@example.com", organization_id=str(org.id),
                            invited_by=str(user.id), token_hash=TOKEN_HASH)
        permission = Permission(key="vm.view", name="View virtual machines",
                                description=None, category="Compute")
        events = collect(org, user, role, member, permission)
        given = [(event, 10 * n) for n, event in enumerate(events, start=1)]

        rows = project(dsn, ActivityProjection, given, "user_activities")

        assert [(r["position"], r["action"], r["resource_type"], r["resource_id"],
                 r["resource_name"]) for r in rows] == [
            (10, "organization.created", "organization", str(org.id), "Kumar Traders"),
            (20, "user.registered", "user", str(user.id), "asha"),
            (30, "user.role_granted", "user", str(user.id), None),
            (40, "role.created", "role", str(role.id), "Operators"),
            (50, "team_member.invited", "team_member", str(member.id), "ravi@example.com"),
            (60, "permission.created", "permission", str(permission.id),
             "View virtual machines"),
        ]
        assert [r["created_at"] for r in rows] == [e.timestamp for e in events]
        assert project_twice(dsn, ActivityProjection, given, "user_activities") == rows

    def test_event_without_an_actor_is_done_by_system(self, dsn: str) -> None:
        """No actor in the metadata: user_id is null and the username is 'system'."""
        events = collect(Organization(name="Platform", kind="platform"))

        [row] = project(dsn, ActivityProjection, events, "user_activities")

        assert (row["user_id"], row["username"], row["organization_id"]) == (None, "system",
                                                                              None)
        assert project_twice(dsn, ActivityProjection, events, "user_activities") == [row]

    def test_request_context_is_taken_from_the_metadata(self, dsn: str) -> None:
        """Actor, tenant, ip, user agent and correlation id come from the event metadata."""
        admin, org = new_user("admin", "admin@example.com"), Organization(name="K", kind="customer")
        correlation = uuid.uuid4()
        registered = collect(admin)
        created = stamped(collect(org), actor_id=admin.id, organization_id=org.id,
                          ip="203.0.113.7", user_agent="portal/2.1",
                          correlation_id=correlation)
        events = registered + created

        rows = project(dsn, ActivityProjection, events, "user_activities")

        assert {k: rows[1][k] for k in ("user_id", "username", "organization_id", "ip_address",
                                        "user_agent", "metadata")} == {
            "user_id": admin.id, "username": "admin", "organization_id": org.id,
            "ip_address": "203.0.113.7", "user_agent": "portal/2.1",
            "metadata": {"correlation_id": str(correlation), "event": "Organization.Created",
                         "version": 1},
        }
        assert project_twice(dsn, ActivityProjection, events, "user_activities") == rows

    def test_actor_is_named_as_they_were_when_they_acted(self, dsn: str) -> None:
        """A rename changes the actor's name on later rows only; earlier rows keep the old one."""
        admin = new_user("asha", "asha@example.com")
        first, second = (Organization(name=n, kind="customer") for n in ("One", "Two"))
        admin.update({"username": "asha.k"})
        registered, renamed = collect(admin)
        acted_before = stamped(collect(first), actor_id=admin.id)
        acted_after = stamped(collect(second), actor_id=admin.id)
        events = [registered, *acted_before, renamed, *acted_after]

        once = project_all(dsn, ActivityProjection, events)

        assert [(r["action"], r["user_id"], r["username"])
                for r in once["user_activities"]] == [
            ("user.registered", None, "system"),
            ("organization.created", admin.id, "asha"),
            ("user.updated", None, "system"),
            ("organization.created", admin.id, "asha.k"),
        ]
        assert once["activity_actors"] == [
            {"user_id": admin.id, "username": "asha.k", "organization_id": None}]
        assert project_all_twice(dsn, ActivityProjection, events) == once

    def test_recorded_activity_keeps_its_own_fields(self, dsn: str) -> None:
        """Activity.Recorded is stored under its own id with its action, details and origin."""
        user = new_user("asha", "asha@example.com")
        login = Activity(user_id=str(user.id), username=None, action="auth.login",
                         resource_type="session", resource_id="sess-42",
                         ip_address="198.51.100.4", user_agent="Firefox/133",
                         details={"method": "password", "mfa": True})
        events = collect(user, login)

        rows = project(dsn, ActivityProjection, events, "user_activities")

        assert {k: rows[1][k] for k in rows[1] if k != "created_at"} == {
            "id": login.id, "position": 2, "user_id": user.id, "username": "asha",
            "organization_id": None, "action": "auth.login", "resource_type": "session",
            "resource_id": "sess-42", "resource_name": None, "ip_address": "198.51.100.4",
            "user_agent": "Firefox/133", "ip_subject": user.id,  # sealed under asha's key
            "metadata": {"correlation_id": None, "event": "Activity.Recorded", "version": 1,
                         "details": {"method": "password", "mfa": True}},
        }
        assert project_twice(dsn, ActivityProjection, events, "user_activities") == rows
