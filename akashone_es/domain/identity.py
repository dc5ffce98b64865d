"""Identity & access: organizations, users, roles, permissions, team members, activities."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate, legacy_event
from akashone_es.errors import DuplicateError, NotFoundError, PermissionDeniedError, ValidationError

_NS = uuid5(NAMESPACE_URL, "https://akashone.com/akashone-es")


def permission_id_for(key: str) -> UUID:
    """Permissions have ids derived from their key, so seeding is idempotent everywhere."""
    return uuid5(_NS, f"permission:{key}")


def system_role_id_for(name: str) -> UUID:
    """System roles have ids derived from their name."""
    return uuid5(_NS, f"system-role:{name}")


class Organization(Aggregate):
    """A tenant: the platform itself, a reseller, or a direct customer's company."""

    class Created(Aggregate.Created):
        name: str
        kind: str
        parent_id: str | None = None

    class Renamed(Aggregate.Event):
        name: str

    @event(Created)
    def __init__(self, name: str, kind: str, parent_id: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.parent_id = parent_id

    @event(Renamed)
    def rename(self, name: str) -> None:
        self.name = name

    class Imported(Created):
        """Brought in from AkashOne's store (``legacy``): one event per source record."""

        legacy: ClassVar[bool] = True
        source: str


class User(Aggregate):
    """An account. Passwords are bcrypt hashes; uniqueness is decided in the append transaction."""

    class Registered(Aggregate.Created):
        """v2 added ``status`` and ``organization_id`` (v1 users were active and untenanted)."""

        class_version: ClassVar[int] = 2
        username: str
        email: str
        password_hash: str
        gst_number: str | None
        account_type: str
        organization_id: str | None
        status: str
        #: True once look-alike names were refused (identity keys); absent, so False, on
        #: events recorded before, whose rows a rebuild must keep even if they share a key
        identity_unique: bool = False
        #: the platform (not the user's tenant) registered it suspended: only it lifts that
        by_platform: bool = False

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["status"] = "active"
            state["organization_id"] = None

    class Updated(Aggregate.Event):
        changes: dict[str, Any]
        identity_unique: bool = False  # as in Registered
        by_platform: bool = False  # as in Registered (it matters when status changes)

    class RoleGranted(Aggregate.Event):
        role_id: str
        granted_by: str | None

    class RoleRevoked(Aggregate.Event):
        role_id: str

    class Imported(Registered):
        """An AkashOne user (``legacy``): its other columns in ``extra`` (verification,
        two-factor state sealed, discount, last login)."""

        legacy: ClassVar[bool] = True
        source: str
        extra: dict[str, Any] = {}

    class RoleImported(RoleGranted):
        """An AkashOne ``user_roles`` row."""

        legacy: ClassVar[bool] = True
        source: str

        def apply(self, aggregate: Any) -> None:
            aggregate.role_ids.append(self.role_id)

    @event(Registered)
    def __init__(self, username: str, email: str, password_hash: str, gst_number: str | None,
                 account_type: str, organization_id: str | None, status: str,
                 identity_unique: bool = True, by_platform: bool = False) -> None:
        self.username = username
        self.email = email
        self.account_type = account_type
        self.organization_id = organization_id
        self.status = status
        self.role_ids: list[str] = []
        self._hold(status, by_platform)

    @event(Updated)
    def update(self, changes: dict[str, Any], identity_unique: bool = True,
               by_platform: bool = False) -> None:
        for field in ("username", "email", "account_type", "organization_id", "status"):
            if field in changes:
                setattr(self, field, changes[field])
        if "status" in changes:
            self._hold(changes["status"], by_platform)

    def _hold(self, status: str, by_platform: bool) -> None:
        # Kept only while it holds, so a user never suspended by the platform has the state
        # (and snapshots) it had before suspensions were told apart.
        if status == "suspended" and by_platform:
            self.platform_hold = True
        else:
            self.__dict__.pop("platform_hold", None)

    @property
    def suspended_by_platform(self) -> bool:
        """Suspended by the platform: its tenant may not change the user's status."""
        return bool(self.__dict__.get("platform_hold"))

    def grant_role(self, role_id: UUID, granted_by: UUID | None) -> None:
        if str(role_id) in self.role_ids:
            raise DuplicateError("user_role", "role_id", str(role_id))
        self._grant_role(str(role_id), str(granted_by) if granted_by else None)

    @event(RoleGranted)
    def _grant_role(self, role_id: str, granted_by: str | None) -> None:
        self.role_ids.append(role_id)

    def revoke_role(self, role_id: UUID) -> None:
        if str(role_id) not in self.role_ids:
            raise NotFoundError("user_role", str(role_id), "role_id")
        self._revoke_role(str(role_id))

    @event(RoleRevoked)
    def _revoke_role(self, role_id: str) -> None:
        self.role_ids.remove(role_id)


class Permission(Aggregate):
    """A permission key such as ``vm.create``; global, never edited or deleted."""

    class Created(Aggregate.Created):
        key: str
        name: str
        description: str | None
        category: str

    @staticmethod
    def create_id(key: str, **_: Any) -> UUID:
        return permission_id_for(key)

    @event(Created)
    def __init__(self, key: str, name: str, description: str | None, category: str) -> None:
        self.key = key

    class Imported(Created):
        legacy: ClassVar[bool] = True
        source: str


class Role(Aggregate):
    """A named set of permissions, system-wide (not editable) or owned by an organization."""

    class Created(Aggregate.Created):
        name: str
        description: str | None
        is_system: bool
        organization_id: str | None

    class Updated(Aggregate.Event):
        name: str
        description: str | None

    class Deleted(Aggregate.Event):
        pass

    class PermissionAssigned(Aggregate.Event):
        permission_id: str

    class PermissionRemoved(Aggregate.Event):
        permission_id: str

    class Imported(Created):
        legacy: ClassVar[bool] = True
        source: str

    class PermissionImported(PermissionAssigned):
        """An AkashOne ``role_permissions`` row."""

        legacy: ClassVar[bool] = True
        source: str

        def apply(self, aggregate: Any) -> None:
            aggregate.permission_ids.append(self.permission_id)

    @staticmethod
    def create_id(name: str, is_system: bool, **_: Any) -> UUID:
        return system_role_id_for(name) if is_system else uuid4()

    @event(Created)
    def __init__(self, name: str, description: str | None, is_system: bool,
                 organization_id: str | None) -> None:
        self.name = name
        self.description = description
        self.is_system = is_system
        self.organization_id = organization_id
        self.permission_ids: list[str] = []
        self.deleted = False

    def check_editable(self) -> None:
        if self.deleted:
            raise NotFoundError("role", str(self.id))
        if self.is_system:
            raise PermissionDeniedError(f"system role {self.name!r} cannot be changed")

    def update(self, name: str, description: str | None) -> None:
        self.check_editable()
        self._update(name, description)

    @event(Updated)
    def _update(self, name: str, description: str | None) -> None:
        self.name = name
        self.description = description

    def delete(self) -> None:
        self.check_editable()
        self._delete()

    @event(Deleted)
    def _delete(self) -> None:
        self.deleted = True

    def assign(self, permission_id: UUID, *, seeding: bool = False) -> None:
        if not seeding:
            self.check_editable()
        if str(permission_id) in self.permission_ids:
            raise DuplicateError("role_permission", "permission_id", str(permission_id))
        self._assign(str(permission_id))

    @event(PermissionAssigned)
    def _assign(self, permission_id: str) -> None:
        self.permission_ids.append(permission_id)

    def remove(self, permission_id: UUID) -> None:
        self.check_editable()
        if str(permission_id) not in self.permission_ids:
            raise NotFoundError("role_permission", str(permission_id), "permission_id")
        self._remove(str(permission_id))

    @event(PermissionRemoved)
    def _remove(self, permission_id: str) -> None:
        self.permission_ids.remove(permission_id)


class TeamMember(Aggregate):
    """An invitation into an organization, accepted by a user (or suspended, or removed)."""

    class Invited(Aggregate.Created):
        email: str
        organization_id: str
        invited_by: str
        token_hash: str
        status: str = "invited"
        identity_unique: bool = False  # as in User.Registered: False on older invitations

    class Accepted(Aggregate.Event):
        user_id: str
        joined_at: datetime

    class Updated(Aggregate.Event):
        changes: dict[str, Any]
        identity_unique: bool = False  # as in User.Registered

    class Removed(Aggregate.Event):
        pass

    class Imported(Invited):
        """An AkashOne ``team_members`` row (``legacy``); an accepted one names its user."""

        legacy: ClassVar[bool] = True
        source: str
        user_id: str | None = None
        joined_at: datetime | None = None
        #: a pending invitation's token, sealed: only its hash is looked up, and the way
        #: back gives AkashOne the token its invitee holds
        token: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.user_id = self.user_id

    @event(Invited)
    def __init__(self, email: str, organization_id: str, invited_by: str, token_hash: str,
                 status: str = "invited", identity_unique: bool = True) -> None:
        self.email = email
        self.organization_id = organization_id
        self.token_hash = token_hash
        self.status = status
        self.user_id: str | None = None
        self.removed = False

    def check_present(self) -> None:
        if self.removed:
            raise NotFoundError("team_member", str(self.id))

    def accept(self, user_id: UUID, joined_at: datetime) -> None:
        self.check_present()
        if self.status != "invited":
            raise ValidationError.single("status", f"invitation is {self.status}, not invited")
        self._accept(str(user_id), joined_at)

    @event(Accepted)
    def _accept(self, user_id: str, joined_at: datetime) -> None:
        self.user_id = user_id
        self.status = "active"

    def update(self, changes: dict[str, Any]) -> None:
        self.check_present()
        self._update(changes)

    @event(Updated)
    def _update(self, changes: dict[str, Any], identity_unique: bool = True) -> None:
        self.status = changes.get("status", self.status)
        self.email = changes.get("email", self.email)

    def remove(self) -> None:
        self.check_present()
        self._remove()

    @event(Removed)
    def _remove(self) -> None:
        self.removed = True


class Activity(Aggregate):
    """An activity the application reports (a login, a console action) for the audit log."""

    class Recorded(Aggregate.Created):
        user_id: str | None
        username: str | None
        action: str
        resource_type: str | None = None
        resource_id: str | None = None
        resource_name: str | None = None
        ip_address: str | None = None
        user_agent: str | None = None
        details: dict[str, Any] | None = None

    @event(Recorded)
    def __init__(self, user_id: str | None, username: str | None, action: str,
                 resource_type: str | None = None, resource_id: str | None = None,
                 resource_name: str | None = None, ip_address: str | None = None,
                 user_agent: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.action = action


legacy_event(Activity, Activity.Recorded)
