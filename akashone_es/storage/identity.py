"""Identity & access on the storage facade: users, organizations, roles, permissions, teams."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import bcrypt
from psycopg import sql

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.base import Aggregate
from akashone_es.errors import ConflictError, DuplicateError, NotFoundError, ValidationError
from akashone_es.storage import inputs as i
from akashone_es.storage.base import StorageBase
from akashone_es.storage.seed import DEFAULT_PERMISSIONS, SYSTEM_ROLES
from projections import models as m
from projections.identity import link_id

T = TypeVar("T")


def Q(text: str) -> sql.SQL:  # noqa: N802 - reads like a literal
    return sql.SQL(text)


USER_BY_ID = Q("SELECT * FROM users WHERE id = %s")
USER_BY_USERNAME = Q("SELECT * FROM users WHERE username = %s")
USER_BY_EMAIL = Q("SELECT * FROM users WHERE lower(email) = lower(%s)")
USERS_ALL = Q("SELECT * FROM users ORDER BY created_at, id")
USERS_OF_ORG = Q("SELECT * FROM users WHERE organization_id = %s ORDER BY created_at, id")
HAS_SUPER_ADMIN = Q("SELECT EXISTS (SELECT 1 FROM users WHERE account_type = 'super_admin')")
ORG_BY_ID = Q("SELECT * FROM organizations WHERE id = %s")
ORGS_ALL = Q("SELECT * FROM organizations ORDER BY created_at, id")
ROLE_BY_ID = Q("SELECT * FROM roles WHERE id = %s")
ROLES_ALL = Q("SELECT * FROM roles ORDER BY is_system DESC, created_at, id")
ROLES_OF_ORG = Q("SELECT * FROM roles WHERE organization_id = %s OR is_system"
                 " ORDER BY is_system DESC, created_at, id")
PERMISSIONS_ALL = Q("SELECT * FROM permissions ORDER BY category, key")
PERMISSION_BY_ID = Q("SELECT * FROM permissions WHERE id = %s")
PERMISSION_BY_KEY = Q("SELECT * FROM permissions WHERE key = %s")
ROLE_PERMISSIONS = Q("SELECT p.* FROM role_permissions rp JOIN permissions p"
                     " ON p.id = rp.permission_id WHERE rp.role_id = %s ORDER BY p.key")
ROLE_PERMISSION = Q("SELECT * FROM role_permissions WHERE role_id = %s AND permission_id = %s")
USER_ROLES = Q("SELECT r.* FROM user_roles ur JOIN roles r ON r.id = ur.role_id"
               " WHERE ur.user_id = %s ORDER BY r.name")
USER_ROLE = Q("SELECT * FROM user_roles WHERE user_id = %s AND role_id = %s")
USERS_WITH_ROLE = Q("SELECT user_id FROM user_roles WHERE role_id = %s")
HAS_PERMISSION = Q("SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN role_permissions rp"
                   " ON rp.role_id = ur.role_id JOIN permissions p ON p.id = rp.permission_id"
                   " WHERE ur.user_id = %s AND p.key = %s)")
MEMBERS_OF_ORG = Q("SELECT * FROM team_members WHERE organization_id = %s"
                   " ORDER BY invited_at, id")
MEMBER_BY_ID = Q("SELECT * FROM team_members WHERE id = %s")
MEMBER_BY_EMAIL = Q("SELECT * FROM team_members WHERE lower(email) = lower(%s)"
                    " AND organization_id = %s")
MEMBER_BY_TOKEN = Q("SELECT * FROM team_members WHERE invitation_token = %s")


#: user columns kept encrypted in the log and the table, decrypted when read
SEALED_USER_FIELDS = ("two_factor_secret", "email_verification_code")


def _token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class IdentityStorage(StorageBase):
    """The IStorage groups Users, IAM roles, permissions, role/user links, team, seeding."""

    # -- passwords ------------------------------------------------------------------------
    def _password_hash(self, password: str) -> str:
        if i.is_bcrypt_hash(password):  # an imported hash is kept as it is
            return password
        salt = bcrypt.gensalt(rounds=self.settings.bcrypt_rounds)
        return bcrypt.hashpw(password.encode(), salt).decode()

    def verify_password(self, user_id: UUID | str, password: str) -> bool:
        """Whether ``password`` matches the user's stored bcrypt hash."""
        user = self.get_user(user_id)
        return bool(user) and bcrypt.checkpw(password.encode(), user.password.encode())  # type: ignore[union-attr]

    # -- organizations --------------------------------------------------------------------
    def create_organization(self, data: i.InsertOrganization | dict[str, Any]) -> m.Organization:
        """Create a tenant (reseller or customer company); explicit, unlike AkashOne's ids."""
        org = i.parse(i.InsertOrganization, data)
        if org.parent_id is not None:
            self._require_organization(org.parent_id, "parent_id")
        with context.command():
            aggregate = domain.Organization(name=org.name, kind=org.kind,
                                            parent_id=str(org.parent_id) if org.parent_id else None)
            row = self._save_returning(m.Organization, ("organizations", aggregate.id), aggregate)
        return row or self._must(self.get_organization(aggregate.id))

    def get_organization(self, organization_id: UUID | str) -> m.Organization | None:
        oid = i.parse_id(organization_id, "organization_id")
        if not self.visible(oid):
            return None
        return self._one(m.Organization, ORG_BY_ID, (oid,))

    def get_organizations(self) -> list[m.Organization]:
        tenant = self.tenant_id
        if tenant is not None:
            return [o for o in [self.get_organization(tenant)] if o]
        return self._all(m.Organization, ORGS_ALL, ())

    def _require_organization(self, organization_id: UUID, field: str) -> m.Organization:
        org = self.get_organization(organization_id)
        if org is None:
            raise NotFoundError("organization", organization_id, field)
        return org

    # -- users (7) ------------------------------------------------------------------------
    def _reveal(self, user: m.User | None) -> m.User | None:
        """The user as the caller may see it: None across tenants, secrets decrypted."""
        if user is None or not self.visible(user.organization_id):
            return None
        sealed = {f: self.secrets.open(getattr(user, f)) for f in SEALED_USER_FIELDS
                  if getattr(user, f) is not None}
        return user.model_copy(update=sealed) if sealed else user

    def get_users(self) -> list[m.User]:
        """All users; a tenant user sees only its organization's users."""
        tenant = self.tenant_id
        if tenant is not None:
            users = self._all(m.User, USERS_OF_ORG, (tenant,))
        else:
            users = self._all(m.User, USERS_ALL, ())
        return [u for u in map(self._reveal, users) if u is not None]

    def get_user(self, user_id: UUID | str) -> m.User | None:
        return self._reveal(self._one(m.User, USER_BY_ID, (i.parse_id(user_id, "user_id"),)))

    def get_user_by_username(self, username: str) -> m.User | None:
        return self._reveal(self._one(m.User, USER_BY_USERNAME, (username,)))

    def get_user_by_email(self, email: str) -> m.User | None:
        """Case-insensitive, as email addresses are unique case-insensitively."""
        return self._reveal(self._one(m.User, USER_BY_EMAIL, (email,)))

    def create_user(self, data: i.InsertUser | dict[str, Any]) -> m.User:
        """Register a user; the account type is kept as given (AkashOne forced 'customer')."""
        user = i.parse(i.InsertUser, data)
        organization_id = user.organization_id or self.tenant_id
        if organization_id is not None:
            self._require_organization(organization_id, "organization_id")
        with context.command():
            aggregate = domain.User(
                username=user.username, email=str(user.email),
                password_hash=self._password_hash(user.password), gst_number=user.gst_number,
                account_type=user.account_type,
                organization_id=str(organization_id) if organization_id else None,
                status=user.status)
            row = self._save_returning(m.User, ("users", aggregate.id), aggregate)
        return self._must(self._reveal(row) or self.get_user(aggregate.id))

    def update_user(self, user_id: UUID | str,
                    changes: i.UpdateUser | dict[str, Any]) -> m.User | None:
        """Change some of a user's columns; None when no such (visible) user exists."""
        update = i.parse(i.UpdateUser, changes)
        uid = i.parse_id(user_id, "user_id")
        if self.get_user(uid) is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if "email" in values:
            values["email"] = str(update.email)
        if values.get("password"):
            values["password"] = self._password_hash(values["password"])
        for field in SEALED_USER_FIELDS:  # TOTP secrets never enter the log in clear
            if values.get(field):
                values[field] = self.secrets.seal(values[field])
        if values.get("organization_id"):
            self._require_organization(UUID(values["organization_id"]), "organization_id")
        if not values:
            return self.get_user(uid)
        with context.command():
            aggregate = self._load(domain.User, uid, "user")
            aggregate.update(values)
            row = self._save_returning(m.User, ("users", uid), aggregate)
        return self._reveal(row) or self.get_user(uid)

    def has_super_admin(self) -> bool:
        return bool(self._scalar(HAS_SUPER_ADMIN, ()))

    # -- IAM roles (5) --------------------------------------------------------------------
    def get_roles(self, organization_id: UUID | str | None = None) -> list[m.Role]:
        """With an organization: its roles plus the system roles; without: all roles."""
        org = i.parse_id(organization_id, "organization_id") if organization_id else None
        tenant = self.tenant_id
        if tenant is not None:
            org = tenant
        if org is None:
            return self._all(m.Role, ROLES_ALL, ())
        return self._all(m.Role, ROLES_OF_ORG, (org,))

    def get_role(self, role_id: UUID | str) -> m.Role | None:
        role = self._one(m.Role, ROLE_BY_ID, (i.parse_id(role_id, "role_id"),))
        return role if role and self.visible(role.organization_id, shared=True) else None

    def create_role(self, data: i.InsertRole | dict[str, Any]) -> m.Role:
        role = i.parse(i.InsertRole, data)
        organization_id = role.organization_id or self.tenant_id
        if organization_id is not None:
            self._require_organization(organization_id, "organization_id")
        with context.command():
            owner = str(organization_id) if organization_id else None
            aggregate = domain.Role(name=role.name, description=role.description,
                                    is_system=False, organization_id=owner)
            row = self._save_returning(m.Role, ("roles", aggregate.id), aggregate)
        return row or self._must(self.get_role(aggregate.id))

    def update_role(self, role_id: UUID | str,
                    changes: i.UpdateRole | dict[str, Any]) -> m.Role | None:
        """Rename or describe a custom role; system roles raise PermissionDeniedError."""
        update = i.parse(i.UpdateRole, changes)
        current = self.get_role(role_id)
        if current is None:
            return None
        with context.command():
            aggregate = self._load(domain.Role, current.id, "role")
            values = update.model_dump(exclude_unset=True)
            aggregate.update(values.get("name", aggregate.name),
                             values.get("description", aggregate.description))
            row = self._save_returning(m.Role, ("roles", current.id), aggregate)
        return row or self.get_role(current.id)

    def delete_role(self, role_id: UUID | str) -> bool:
        """Delete a custom role, revoking it from every user in the same transaction."""
        current = self.get_role(role_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load(domain.Role, current.id, "role")
            aggregate.delete()
            holders = []
            with self._cursor() as cur:
                cur.execute(USERS_WITH_ROLE, (current.id,))
                holder_ids = [row["user_id"] for row in cur.fetchall()]
            for uid in holder_ids:
                user = self._load(domain.User, uid, "user")
                user.revoke_role(current.id)
                holders.append(user)
            self._save(aggregate, *holders)
        return True

    # -- permissions (4) ------------------------------------------------------------------
    def get_permissions(self) -> list[m.Permission]:
        return self._all(m.Permission, PERMISSIONS_ALL, ())

    def get_permission(self, permission_id: UUID | str) -> m.Permission | None:
        return self._one(m.Permission, PERMISSION_BY_ID,
                         (i.parse_id(permission_id, "permission_id"),))

    def get_permission_by_key(self, key: str) -> m.Permission | None:
        return self._one(m.Permission, PERMISSION_BY_KEY, (key,))

    def create_permission(self, data: i.InsertPermission | dict[str, Any]) -> m.Permission:
        permission = i.parse(i.InsertPermission, data)
        if self.get_permission_by_key(permission.key):
            raise DuplicateError("permission", "key", permission.key)
        with context.command():
            aggregate = domain.Permission(key=permission.key, name=permission.name,
                                          description=permission.description,
                                          category=permission.category)
            row = self._save_returning(m.Permission, ("permissions", aggregate.id), aggregate)
        return row or self._must(self.get_permission(aggregate.id))

    # -- role <-> permission (3) ----------------------------------------------------------
    def get_role_permissions(self, role_id: UUID | str) -> list[m.Permission]:
        role = self.get_role(role_id)
        return self._all(m.Permission, ROLE_PERMISSIONS, (role.id,)) if role else []

    def assign_permission_to_role(self, role_id: UUID | str,
                                  permission_id: UUID | str) -> m.RolePermission:
        role = self._require_role(role_id)
        permission = self._require_permission(permission_id)
        with context.command():
            aggregate = self._load(domain.Role, role.id, "role")
            aggregate.assign(permission.id)
            row = self._save_returning(m.RolePermission,
                                       ("role_permissions", link_id(role.id, permission.id)),
                                       aggregate)
        return row or self._must(self._one(m.RolePermission, ROLE_PERMISSION,
                                           (role.id, permission.id)))

    def remove_permission_from_role(self, role_id: UUID | str,
                                    permission_id: UUID | str) -> bool:
        role = self._require_role(role_id)
        pid = i.parse_id(permission_id, "permission_id")
        if self._one(m.RolePermission, ROLE_PERMISSION, (role.id, pid)) is None:
            return False
        with context.command():
            aggregate = self._load(domain.Role, role.id, "role")
            aggregate.remove(pid)
            self._save(aggregate)
        return True

    def _require_role(self, role_id: UUID | str) -> m.Role:
        role = self.get_role(i.parse_id(role_id, "role_id"))
        if role is None:
            raise NotFoundError("role", role_id, "role_id")
        return role

    def _require_permission(self, permission_id: UUID | str) -> m.Permission:
        permission = self.get_permission(permission_id)
        if permission is None:
            raise NotFoundError("permission", permission_id, "permission_id")
        return permission

    def _require_user(self, user_id: UUID | str, field: str = "user_id") -> m.User:
        user = self.get_user(i.parse_id(user_id, field))
        if user is None:
            raise NotFoundError("user", user_id, field)
        return user

    # -- user <-> role (3) ----------------------------------------------------------------
    def get_user_roles(self, user_id: UUID | str) -> list[m.Role]:
        user = self.get_user(user_id)
        return self._all(m.Role, USER_ROLES, (user.id,)) if user else []

    def assign_role_to_user(self, user_id: UUID | str, role_id: UUID | str,
                            granted_by: UUID | str | None = None) -> m.UserRole:
        user = self._require_user(user_id)
        role = self._require_role(role_id)
        if role.organization_id is not None and role.organization_id != user.organization_id:
            raise ValidationError.single("role_id", "role belongs to another organization")
        grantor = self._require_user(granted_by, "granted_by").id if granted_by else None
        with context.command():
            aggregate = self._load(domain.User, user.id, "user")
            aggregate.grant_role(role.id, grantor)
            row = self._save_returning(m.UserRole, ("user_roles", link_id(user.id, role.id)),
                                       aggregate)
        return row or self._must(self._one(m.UserRole, USER_ROLE, (user.id, role.id)))

    def remove_role_from_user(self, user_id: UUID | str, role_id: UUID | str) -> bool:
        user = self._require_user(user_id)
        rid = i.parse_id(role_id, "role_id")
        if self._one(m.UserRole, USER_ROLE, (user.id, rid)) is None:
            return False
        with context.command():
            aggregate = self._load(domain.User, user.id, "user")
            aggregate.revoke_role(rid)
            self._save(aggregate)
        return True

    # -- team members (6) -----------------------------------------------------------------
    def get_team_members(self, organization_id: UUID | str) -> list[m.TeamMember]:
        org = i.parse_id(organization_id, "organization_id")
        if not self.visible(org):
            return []
        return self._all(m.TeamMember, MEMBERS_OF_ORG, (org,))

    def get_team_member(self, member_id: UUID | str) -> m.TeamMember | None:
        member = self._one(m.TeamMember, MEMBER_BY_ID, (i.parse_id(member_id, "id"),))
        return member if member and self.visible(member.organization_id) else None

    def get_team_member_by_email(self, email: str,
                                 organization_id: UUID | str) -> m.TeamMember | None:
        org = i.parse_id(organization_id, "organization_id")
        if not self.visible(org):
            return None
        return self._one(m.TeamMember, MEMBER_BY_EMAIL, (email, org))

    def create_team_member(self, data: i.InsertTeamMember | dict[str, Any]) -> m.TeamMember:
        """Invite an email into an organization.

        The returned model carries the clear invitation token, once; the table and the log
        keep only its SHA-256, so a leaked log grants no access.
        """
        invite = i.parse(i.InsertTeamMember, data)
        self._require_organization(invite.organization_id, "organization_id")
        self._require_user(invite.invited_by, "invited_by")
        token = secrets.token_urlsafe(24)
        with context.command():
            aggregate = domain.TeamMember(
                email=str(invite.email), organization_id=str(invite.organization_id),
                invited_by=str(invite.invited_by), token_hash=_token_hash(token),
                status=invite.status)
            row = self._save_returning(m.TeamMember, ("team_members", aggregate.id), aggregate)
        member = row or self._must(self.get_team_member(aggregate.id))
        return member.model_copy(update={"invitation_token": token})

    def update_team_member(self, member_id: UUID | str,
                           changes: i.UpdateTeamMember | dict[str, Any]) -> m.TeamMember | None:
        update = i.parse(i.UpdateTeamMember, changes)
        current = self.get_team_member(member_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if values:
            with context.command():
                aggregate = self._load(domain.TeamMember, current.id, "team_member")
                aggregate.update(values)
                row = self._save_returning(m.TeamMember, ("team_members", current.id),
                                           aggregate)
                return row or self.get_team_member(current.id)
        return current

    def delete_team_member(self, member_id: UUID | str) -> bool:
        current = self.get_team_member(member_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load(domain.TeamMember, current.id, "team_member")
            aggregate.remove()
            self._save(aggregate)
        return True

    def accept_invitation(self, data: i.AcceptInvitation | dict[str, Any]) -> m.User:
        """Turn an invitation into a team-member user, both in one transaction."""
        accept = i.parse(i.AcceptInvitation, data)
        member = self._one(m.TeamMember, MEMBER_BY_TOKEN, (_token_hash(accept.token),))
        if member is None:
            raise NotFoundError("invitation", "(token)", "token")
        with context.command():
            invitation = self._load(domain.TeamMember, member.id, "team_member")
            user = domain.User(
                username=accept.username, email=member.email,
                password_hash=self._password_hash(accept.password),
                gst_number=accept.gst_number, account_type="team_member",
                organization_id=str(member.organization_id), status="active")
            invitation.accept(user.id, datetime.now(UTC))
            row = self._save_returning(m.User, ("users", user.id), user, invitation)
        return row or self._must(self._one(m.User, USER_BY_ID, (user.id,)))

    # -- permission checks and seeding (3) ------------------------------------------------
    def user_has_permission(self, user_id: UUID | str, permission_key: str) -> bool:
        user = self.get_user(user_id)
        return bool(user) and bool(self._scalar(HAS_PERMISSION, (user.id, permission_key)))  # type: ignore[union-attr]

    def initialize_default_permissions(self) -> int:
        """Seed the 22 permission keys; idempotent (ids derive from keys). Returns how many
        were added."""
        added = []
        for key, name, category in DEFAULT_PERMISSIONS:
            if self.get_permission(domain.permission_id_for(key)) is None:
                added.append(domain.Permission(key=key, name=name, description=None,
                                               category=category))
        if added:
            with context.command():
                return len(added) if self._save_seed(*added) else 0
        return 0

    def initialize_default_roles(self) -> int:
        """Seed the Admin, Editor and Viewer system roles with their permissions."""
        self.initialize_default_permissions()
        added = []
        for name, description, keys in SYSTEM_ROLES:
            if self.get_role(domain.system_role_id_for(name)) is not None:
                continue
            role = domain.Role(name=name, description=description, is_system=True,
                               organization_id=None)
            for key in keys:
                role.assign(domain.permission_id_for(key), seeding=True)
            added.append(role)
        if added:
            with context.command():
                return len(added) if self._save_seed(*added) else 0
        return 0

    def _save_seed(self, *aggregates: Aggregate) -> bool:
        """Save seed aggregates; False when another process seeded them first."""
        try:
            self._save(*aggregates)
        except (DuplicateError, ConflictError):
            return False
        return True

    @staticmethod
    def _must(value: T | None) -> T:
        if value is None:  # the inline projection wrote it in the same transaction
            raise NotFoundError("record", "(just written)")
        return value
