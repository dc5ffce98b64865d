"""Roles, permissions and their links on the storage facade, with checks and seeding."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.base import Aggregate
from akashone_es.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.storage import inputs as i
from akashone_es.storage.seed import DEFAULT_PERMISSIONS, SYSTEM_ROLES
from akashone_es.storage.users import UsersStorage
from projections import models as m
from projections.identity import link_id


def Q(text: str) -> sql.SQL:  # noqa: N802 - reads like a literal
    return sql.SQL(text)


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
#: roles of an organization a user holds (a role of no organization is everyone's)
ORGANIZATION_ROLES_HELD = Q("SELECT count(*) FROM user_roles ur JOIN roles r"
                            " ON r.id = ur.role_id WHERE ur.user_id = %s"
                            " AND r.organization_id IS NOT NULL")
USERS_WITH_ROLE = Q("SELECT user_id FROM user_roles WHERE role_id = %s")
HAS_PERMISSION = Q("SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN role_permissions rp"
                   " ON rp.role_id = ur.role_id JOIN permissions p ON p.id = rp.permission_id"
                   " WHERE ur.user_id = %s AND p.key = %s)")


class AccessStorage(UsersStorage):
    """The IStorage groups IAM roles (5), permissions (4), role/permission (3),
    user/role (3), permission checks and seeding (3)."""

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
        return role if role and self._visible(role.organization_id, shared=True) else None

    def create_role(self, data: i.InsertRole | dict[str, Any]) -> m.Role:
        role = i.parse(i.InsertRole, data)
        organization_id = role.organization_id or self._own_organization()
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
        if "name" in update.model_fields_set and update.name is None:  # roles.name NOT NULL
            raise ValidationError.single(
                "name", "must not be null; omit the field to keep the current name")
        current = self.get_role(role_id)
        if current is None:
            return None
        self._check_writable(current)
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
        self._check_writable(current)
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
        role = self._check_writable(self._require_role(role_id))
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
        role = self._check_writable(self._require_role(role_id))
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

    def _check_writable(self, role: m.Role) -> m.Role:
        """``role`` if the acting party may change it: a role shared by every tenant (no
        organization) is the platform's, however visible it is to tenants."""
        if role.organization_id is None and not context.current().is_platform:
            # a platform context acting for one tenant would change every tenant's holders
            raise PermissionDeniedError("a platform role is changed by the platform only, "
                                        "acting platform-wide")
        return role

    def _require_permission(self, permission_id: UUID | str) -> m.Permission:
        permission = self.get_permission(permission_id)
        if permission is None:
            raise NotFoundError("permission", permission_id, "permission_id")
        return permission


    # -- user <-> role (3) ----------------------------------------------------------------
    def get_user_roles(self, user_id: UUID | str) -> list[m.Role]:
        user = self.get_user(user_id)
        if user is None:
            return []
        return [role for role in self._all(m.Role, USER_ROLES, (user.id,))
                if self._visible(role.organization_id, shared=True)]

    def _check_user_move(self, user_id: UUID) -> None:
        """A user holding its organization's roles stays: they grant nothing elsewhere, and
        the other organization would read roles it cannot see."""
        super()._check_user_move(user_id)
        held = int(self._scalar(ORGANIZATION_ROLES_HELD, (user_id,)) or 0)
        if held:
            raise ConflictError(f"the user holds {held} role{'' if held == 1 else 's'} of its "
                                "organization: remove them before moving it")

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
