"""Identity read tables: organizations, users, roles, permissions and their links, team members."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_OID, UUID, uuid5

from akashone_es.domain.confusables import identity_key
from akashone_es.domain.identity import Organization, Permission, Role, TeamMember, User
from akashone_es.domain.operations import Erasure
from akashone_es.personal import MARKER, erased_people, redacted_key
from projections.engine import Batch, Projection, Table, handles

ORGANIZATIONS = Table("organizations", """
    id uuid PRIMARY KEY, name text NOT NULL, kind text NOT NULL, parent_id uuid,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""")

#: usernames and emails are kept as given; uniqueness and lookups use their identity keys
#: (NFKC + case-fold, ``domain.confusables.identity_key``), computed here so a rebuild of
#: old events gives the same keys
USERS = Table("users", """
    id uuid PRIMARY KEY,
    username text NOT NULL, username_key text NOT NULL,
    email text NOT NULL, email_key text NOT NULL, password text NOT NULL, gst_number text,
    email_verified boolean NOT NULL DEFAULT false,
    email_verification_code text, email_verification_expiry timestamptz,
    two_factor_secret text, two_factor_enabled boolean NOT NULL DEFAULT false,
    account_type text NOT NULL DEFAULT 'customer', organization_id uuid,
    default_discount_percentage integer NOT NULL DEFAULT 0
        CHECK (default_discount_percentage BETWEEN 0 AND 100),
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL, last_login timestamptz, updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS users_username_norm_key ON {table} (username_key)",
     "CREATE UNIQUE INDEX IF NOT EXISTS users_email_norm_key ON {table} (email_key)",
     "CREATE INDEX IF NOT EXISTS users_organization_id_idx ON {table} (organization_id)"],
    added={"username_key": "text", "email_key": "text"})

ROLES = Table("roles", """
    id uuid PRIMARY KEY, name varchar(100) NOT NULL, description text,
    is_system boolean NOT NULL DEFAULT false, organization_id uuid,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS roles_organization_id_idx ON {table} (organization_id)"])

PERMISSIONS = Table("permissions", """
    id uuid PRIMARY KEY, key varchar(100) NOT NULL CONSTRAINT permissions_key_key UNIQUE,
    name varchar(255) NOT NULL, description text, category varchar(50) NOT NULL,
    created_at timestamptz NOT NULL""")

ROLE_PERMISSIONS = Table("role_permissions", """
    id uuid PRIMARY KEY, role_id uuid NOT NULL, permission_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT role_permissions_pair_key UNIQUE (role_id, permission_id)""",
    ["CREATE INDEX IF NOT EXISTS role_permissions_permission_idx ON {table} (permission_id)"])

USER_ROLES = Table("user_roles", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, role_id uuid NOT NULL, granted_by uuid,
    created_at timestamptz NOT NULL,
    CONSTRAINT user_roles_pair_key UNIQUE (user_id, role_id)""",
    ["CREATE INDEX IF NOT EXISTS user_roles_role_idx ON {table} (role_id)"])

TEAM_MEMBERS = Table("team_members", """
    id uuid PRIMARY KEY, email text NOT NULL, email_key text NOT NULL, user_id uuid,
    organization_id uuid NOT NULL,
    status text NOT NULL DEFAULT 'invited', invited_by uuid NOT NULL,
    invitation_token varchar(255), invited_at timestamptz NOT NULL, joined_at timestamptz""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS team_members_org_email_norm_key"
     " ON {table} (organization_id, email_key)",
     "CREATE INDEX IF NOT EXISTS team_members_token_idx ON {table} (invitation_token)"],
    added={"email_key": "text"})

#: update_user may change these columns (validated by the storage layer first)
USER_COLUMNS = (
    "username", "email", "password", "gst_number", "email_verified", "email_verification_code",
    "email_verification_expiry", "two_factor_secret", "two_factor_enabled", "account_type",
    "organization_id", "default_discount_percentage", "status", "last_login",
)
TEAM_MEMBER_COLUMNS = ("email", "status")
#: the columns of an AkashOne user beyond its registration
IMPORTED_USER_COLUMNS = ("email_verified", "email_verification_code",
                         "email_verification_expiry", "two_factor_secret",
                         "two_factor_enabled", "default_discount_percentage", "last_login")
#: the defaults of those columns that are NOT NULL (``USERS``)
IMPORTED_USER_DEFAULTS: dict[str, Any] = {"email_verified": False, "two_factor_enabled": False,
                                          "default_discount_percentage": 0}
#: columns whose identity key column changes with them
KEYED_COLUMNS = {"username": "username_key", "email": "email_key"}


def lookalike_key(column: str, scope: str = "") -> str:
    """SQL for the key of a row recorded before look-alikes were refused: its plain key,
    unless another row (in ``scope``) holds it; then the key and the row's id, which is
    unique and never a plain key (names and addresses hold no spaces). Applied in log order,
    so a rebuild gives every row the key it had."""
    return ("(CASE WHEN EXISTS (SELECT 1 FROM {t} o WHERE o." + column + " = %s"
            " AND o.id <> %s" + scope + ") THEN %s ELSE %s END)")


def key_of(value: str, row_id: UUID) -> str:
    """The identity key of a name or email; an erased one's is unique to its row."""
    return redacted_key(row_id) if value == MARKER else identity_key(value)


def lookalike_params(key: str, row_id: UUID, *scope: Any) -> tuple[Any, ...]:
    """The parameters of ``lookalike_key``."""
    return (key, row_id, *scope, f"{key} {row_id}", key)


def link_id(left: str | UUID, right: str | UUID) -> UUID:
    """A stable id for a link row, so a rebuild gives the same content."""
    return uuid5(NAMESPACE_OID, f"{left}:{right}")


class IdentityProjection(Projection):
    """Inline: the storage contract reads these, and their unique indexes reject duplicates."""

    name = "identity"
    mode = "inline"
    tables = (ORGANIZATIONS, USERS, ROLES, PERMISSIONS, ROLE_PERMISSIONS, USER_ROLES,
              TEAM_MEMBERS)
    unique_constraints = {
        "users_username_norm_key": ("user", "username"),
        "users_email_norm_key": ("user", "email"),
        "permissions_key_key": ("permission", "key"),
        "role_permissions_pair_key": ("role_permission", "permission_id"),
        "user_roles_pair_key": ("user_role", "role_id"),
        "team_members_org_email_norm_key": ("team_member", "email"),
    }

    def prepare(self) -> None:
        self.insert_org = self.q(
            "INSERT INTO {t} (id, name, kind, parent_id, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING *", t="organizations")
        self.rename_org = self.q("UPDATE {t} SET name = %s, updated_at = %s WHERE id = %s"
                                 " RETURNING *", t="organizations")
        self.insert_user = self.q(
            "INSERT INTO {t} (id, username, username_key, email, email_key, password,"
            " gst_number, account_type, organization_id, status, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING *", t="users")
        self.update_user = {
            col: self.q("UPDATE {t} SET " + col + " = %s, updated_at = %s WHERE id = %s"
                        " RETURNING *", t="users")
            for col in USER_COLUMNS
        }
        self.import_user = self.q(
            "UPDATE {t} SET " + ", ".join(f"{c} = COALESCE(%s, {c})" for c in
                                          IMPORTED_USER_COLUMNS) + " WHERE id = %s RETURNING *",
            t="users")
        #: an AkashOne user whole, in one plain insert (a bulk save sends a run as a COPY)
        self.insert_imported_user = self.q(
            "INSERT INTO {t} (id, username, username_key, email, email_key, password,"
            " gst_number, account_type, organization_id, status, created_at, updated_at, "
            + ", ".join(IMPORTED_USER_COLUMNS) + ") VALUES ("
            + ", ".join(["%s"] * (12 + len(IMPORTED_USER_COLUMNS)))
            + ") ON CONFLICT (id) DO NOTHING RETURNING *", t="users")
        self.insert_lookalike_user = self.q(
            "INSERT INTO {t} (id, username, username_key, email, email_key, password,"
            " gst_number, account_type, organization_id, status, created_at, updated_at)"
            " VALUES (%s, %s, " + lookalike_key("username_key") + ", %s, "
            + lookalike_key("email_key") + ", %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="users")
        self.update_user_keyed = {
            col: self.q("UPDATE {t} SET " + col + " = %s, " + key + " = %s, updated_at = %s"
                        " WHERE id = %s RETURNING *", t="users")
            for col, key in KEYED_COLUMNS.items()
        }
        self.update_lookalike_user = {
            col: self.q("UPDATE {t} SET " + col + " = %s, " + key + " = " + lookalike_key(key)
                        + ", updated_at = %s WHERE id = %s RETURNING *", t="users")
            for col, key in KEYED_COLUMNS.items()
        }
        self.insert_role = self.q(
            "INSERT INTO {t} (id, name, description, is_system, organization_id, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING *", t="roles")
        self.update_role = self.q(
            "UPDATE {t} SET name = %s, description = %s, updated_at = %s WHERE id = %s"
            " RETURNING *", t="roles")
        self.delete_role = self.q("DELETE FROM {t} WHERE id = %s", t="roles")
        self.delete_role_links = self.q("DELETE FROM {t} WHERE role_id = %s",
                                        t="role_permissions")
        self.insert_permission = self.q(
            "INSERT INTO {t} (id, key, name, description, category, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING *", t="permissions")
        self.insert_role_permission = self.q(
            "INSERT INTO {t} (id, role_id, permission_id, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="role_permissions")
        self.delete_role_permission = self.q(
            "DELETE FROM {t} WHERE role_id = %s AND permission_id = %s", t="role_permissions")
        self.insert_user_role = self.q(
            "INSERT INTO {t} (id, user_id, role_id, granted_by, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
            " RETURNING *", t="user_roles")
        self.delete_user_role = self.q("DELETE FROM {t} WHERE user_id = %s AND role_id = %s",
                                       t="user_roles")
        self.insert_member = self.q(
            "INSERT INTO {t} (id, email, email_key, organization_id, status, invited_by,"
            " invitation_token, invited_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="team_members")
        self.accept_member = self.q(
            "UPDATE {t} SET user_id = %s, status = 'active', joined_at = %s,"
            " invitation_token = NULL WHERE id = %s RETURNING *", t="team_members")
        self.update_member = {
            col: self.q("UPDATE {t} SET " + col + " = %s WHERE id = %s RETURNING *",
                        t="team_members")
            for col in TEAM_MEMBER_COLUMNS
        }
        #: an AkashOne invitation whole, accepted or not, in one plain insert
        self.insert_imported_member = self.q(
            "INSERT INTO {t} (id, email, email_key, organization_id, status, invited_by,"
            " invitation_token, invited_at, user_id, joined_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="team_members")
        self.insert_lookalike_member = self.q(
            "INSERT INTO {t} (id, email, email_key, organization_id, status, invited_by,"
            " invitation_token, invited_at) VALUES (%s, %s, "
            + lookalike_key("email_key", " AND o.organization_id = %s")
            + ", %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING *", t="team_members")
        self.update_member_email = self.q(
            "UPDATE {t} SET email = %s, email_key = %s WHERE id = %s RETURNING *",
            t="team_members")
        self.update_lookalike_member_email = self.q(
            "UPDATE {t} SET email = %s, email_key = " + lookalike_key(
                "email_key",
                " AND o.organization_id = (SELECT organization_id FROM {t} WHERE id = %s)")
            + " WHERE id = %s RETURNING *", t="team_members")
        self.delete_member = self.q("DELETE FROM {t} WHERE id = %s", t="team_members")
        self.erase_users = self.q(
            "UPDATE {t} SET username = %s, username_key = %s || ' ' || id::text, email = %s,"
            " email_key = %s || ' ' || id::text,"
            " gst_number = CASE WHEN gst_number IS NULL THEN NULL ELSE %s END"
            " WHERE id = ANY(%s::uuid[])", t="users")
        self.erase_members = self.q(
            "UPDATE {t} SET email = %s, email_key = %s || ' ' || id::text"
            " WHERE id = ANY(%s::uuid[])", t="team_members")

    @handles(Organization.Created)
    def _org_created(self, e: Organization.Created, _: int, b: Batch) -> None:
        b.add(self.insert_org, (e.originator_id, e.name, e.kind, e.parent_id, e.timestamp,
                                e.timestamp), returns=("organizations", e.originator_id))

    @handles(Organization.Renamed)
    def _org_renamed(self, e: Organization.Renamed, _: int, b: Batch) -> None:
        b.add(self.rename_org, (e.name, e.timestamp, e.originator_id),
              returns=("organizations", e.originator_id))

    @handles(User.Registered)
    def _user_registered(self, e: User.Registered, _: int, b: Batch) -> None:
        uid, rest = e.originator_id, (e.password_hash, e.gst_number, e.account_type,
                                      e.organization_id, e.status, e.timestamp, e.timestamp)
        if e.identity_unique:  # the unique indexes refuse a look-alike
            b.add(self.insert_user, (uid, e.username, key_of(e.username, uid), e.email,
                                     key_of(e.email, uid), *rest), returns=("users", uid))
        else:
            b.add(self.insert_lookalike_user,
                  (uid, e.username, *lookalike_params(key_of(e.username, uid), uid),
                   e.email, *lookalike_params(key_of(e.email, uid), uid), *rest),
                  returns=("users", uid))

    @handles(User.Imported)
    def _user_imported(self, e: User.Imported, position: int, b: Batch) -> None:
        """An AkashOne user: registered as it was, with its other columns as they were
        (a column AkashOne left empty keeps the table's default)."""
        uid = e.originator_id
        if e.identity_unique:
            b.add(self.insert_imported_user, (
                uid, e.username, key_of(e.username, uid), e.email, key_of(e.email, uid),
                e.password_hash, e.gst_number, e.account_type, e.organization_id, e.status,
                e.timestamp, e.timestamp,
                *(IMPORTED_USER_DEFAULTS.get(c) if e.extra.get(c) is None else e.extra[c]
                  for c in IMPORTED_USER_COLUMNS)), returns=("users", uid))
            return
        self._user_registered(e, position, b)
        if e.extra:
            b.add(self.import_user, (*(e.extra.get(c) for c in IMPORTED_USER_COLUMNS),
                                     e.originator_id), returns=("users", e.originator_id))

    @handles(User.Updated)
    def _user_updated(self, e: User.Updated, _: int, b: Batch) -> None:
        for column, value in e.changes.items():
            if column in KEYED_COLUMNS and isinstance(value, str) and e.identity_unique:
                b.add(self.update_user_keyed[column],
                      (value, key_of(value, e.originator_id), e.timestamp, e.originator_id),
                      returns=("users", e.originator_id))
            elif column in KEYED_COLUMNS and isinstance(value, str):
                b.add(self.update_lookalike_user[column],
                      (value, *lookalike_params(key_of(value, e.originator_id), e.originator_id),
                       e.timestamp, e.originator_id), returns=("users", e.originator_id))
            else:
                b.add(self.update_user[column], (value, e.timestamp, e.originator_id),
                      returns=("users", e.originator_id))

    @handles(User.RoleGranted)
    def _role_granted(self, e: User.RoleGranted, _: int, b: Batch) -> None:
        key = link_id(e.originator_id, e.role_id)
        b.add(self.insert_user_role, (key, e.originator_id, e.role_id, e.granted_by,
                                      e.timestamp), returns=("user_roles", key))

    @handles(User.RoleRevoked)
    def _role_revoked(self, e: User.RoleRevoked, _: int, b: Batch) -> None:
        b.add(self.delete_user_role, (e.originator_id, e.role_id))

    @handles(Permission.Created)
    def _permission_created(self, e: Permission.Created, _: int, b: Batch) -> None:
        b.add(self.insert_permission, (e.originator_id, e.key, e.name, e.description,
                                       e.category, e.timestamp),
              returns=("permissions", e.originator_id))

    @handles(Role.Created)
    def _role_created(self, e: Role.Created, _: int, b: Batch) -> None:
        b.add(self.insert_role, (e.originator_id, e.name, e.description, e.is_system,
                                 e.organization_id, e.timestamp, e.timestamp),
              returns=("roles", e.originator_id))

    @handles(Role.Updated)
    def _role_updated(self, e: Role.Updated, _: int, b: Batch) -> None:
        b.add(self.update_role, (e.name, e.description, e.timestamp, e.originator_id),
              returns=("roles", e.originator_id))

    @handles(Role.Deleted)
    def _role_deleted(self, e: Role.Deleted, _: int, b: Batch) -> None:
        b.add(self.delete_role_links, (e.originator_id,))
        b.add(self.delete_role, (e.originator_id,))

    @handles(Role.PermissionAssigned)
    def _permission_assigned(self, e: Role.PermissionAssigned, _: int, b: Batch) -> None:
        key = link_id(e.originator_id, e.permission_id)
        b.add(self.insert_role_permission,
              (key, e.originator_id, e.permission_id, e.timestamp),
              returns=("role_permissions", key))

    @handles(Role.PermissionRemoved)
    def _permission_removed(self, e: Role.PermissionRemoved, _: int, b: Batch) -> None:
        b.add(self.delete_role_permission, (e.originator_id, e.permission_id))

    @handles(TeamMember.Invited)
    def _member_invited(self, e: TeamMember.Invited, _: int, b: Batch) -> None:
        mid, rest = e.originator_id, (e.organization_id, e.status, e.invited_by, e.token_hash,
                                      e.timestamp)
        if e.identity_unique:  # the unique index refuses a look-alike
            b.add(self.insert_member, (mid, e.email, key_of(e.email, mid), *rest),
                  returns=("team_members", mid))
        else:
            b.add(self.insert_lookalike_member,
                  (mid, e.email, *lookalike_params(key_of(e.email, mid), mid,
                                                   e.organization_id), *rest),
                  returns=("team_members", mid))

    @handles(TeamMember.Imported)
    def _member_imported(self, e: TeamMember.Imported, position: int, b: Batch) -> None:
        """An AkashOne invitation: invited as it was, and accepted if it was (an accepted
        invitation keeps no token; its status is AkashOne's, suspended say)."""
        mid = e.originator_id
        if e.identity_unique:
            accepted = e.user_id is not None
            b.add(self.insert_imported_member, (
                mid, e.email, key_of(e.email, mid), e.organization_id, e.status,
                e.invited_by, None if accepted else e.token_hash, e.timestamp, e.user_id,
                e.joined_at if accepted else None), returns=("team_members", mid))
            return
        self._member_invited(e, position, b)
        if e.user_id is not None:
            b.add(self.accept_member, (e.user_id, e.joined_at, e.originator_id),
                  returns=("team_members", e.originator_id))
            if e.status != "active":  # accepted, then suspended
                b.add(self.update_member["status"], (e.status, e.originator_id),
                      returns=("team_members", e.originator_id))

    @handles(TeamMember.Accepted)
    def _member_accepted(self, e: TeamMember.Accepted, _: int, b: Batch) -> None:
        b.add(self.accept_member, (e.user_id, e.joined_at, e.originator_id),
              returns=("team_members", e.originator_id))

    @handles(TeamMember.Updated)
    def _member_updated(self, e: TeamMember.Updated, _: int, b: Batch) -> None:
        for column, value in e.changes.items():
            if column == "email" and isinstance(value, str) and e.identity_unique:
                b.add(self.update_member_email,
                      (value, key_of(value, e.originator_id), e.originator_id),
                      returns=("team_members", e.originator_id))
            elif column == "email" and isinstance(value, str):
                b.add(self.update_lookalike_member_email,
                      (value, *lookalike_params(key_of(value, e.originator_id), e.originator_id,
                                                e.originator_id), e.originator_id),
                      returns=("team_members", e.originator_id))
            else:
                b.add(self.update_member[column], (value, e.originator_id),
                      returns=("team_members", e.originator_id))

    @handles(TeamMember.Removed)
    def _member_removed(self, e: TeamMember.Removed, _: int, b: Batch) -> None:
        b.add(self.delete_member, (e.originator_id,))

    @handles(Erasure.Recorded)
    def _erased(self, e: Erasure.Recorded, _: int, b: Batch) -> None:
        """The erased people's names and emails read as the marker (their events now decrypt to it,
        so a rebuild writes the same), each keyed uniquely to its row."""
        people = erased_people(e.subjects)
        if people:
            b.add(self.erase_users, (MARKER, MARKER, MARKER, MARKER, MARKER, people))
            b.add(self.erase_members, (MARKER, MARKER, people))
