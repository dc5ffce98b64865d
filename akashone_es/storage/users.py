"""Users and organizations on the storage facade (IStorage group Users, 7 methods)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

import bcrypt
from psycopg import sql

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.confusables import identity_key
from akashone_es.errors import NotFoundError, PermissionDeniedError, ValidationError
from akashone_es.storage import inputs as i
from akashone_es.storage.base import StorageBase
from projections import models as m

T = TypeVar("T")


def Q(text: str) -> sql.SQL:  # noqa: N802 - reads like a literal
    return sql.SQL(text)


USER_BY_ID = Q("SELECT * FROM users WHERE id = %s")
USERS_BY_ID = Q("SELECT id, organization_id, account_type FROM users WHERE id = ANY(%s)")
USER_BY_USERNAME = Q("SELECT * FROM users WHERE username_key = %s")
USER_BY_EMAIL = Q("SELECT * FROM users WHERE email_key = %s")
USERS_ALL = Q("SELECT * FROM users ORDER BY created_at, id")
USERS_OF_ORG = Q("SELECT * FROM users WHERE organization_id = %s ORDER BY created_at, id")
HAS_SUPER_ADMIN = Q("SELECT EXISTS (SELECT 1 FROM users WHERE account_type = 'super_admin')")
ORG_BY_ID = Q("SELECT * FROM organizations WHERE id = %s")
ORGS_ALL = Q("SELECT * FROM organizations ORDER BY created_at, id")


#: what the platform decides about an account, never the account's tenant: its kind, the
#: discount its invoices get, and whether its email was verified (the verification flow's)
PLATFORM_USER_FIELDS = frozenset({"account_type", "default_discount_percentage",
                                  "email_verified"})
#: the accounts a tenant may open inside its organization
TENANT_ACCOUNT_TYPES = ("customer", "team_member")

#: user columns kept encrypted in the log and the table, decrypted when read (the password's
#: bcrypt hash too: an export of the log must not hand out hashes to guess offline; users
#: recorded before it was sealed keep a clear hash, which ``SecretBox.open`` passes through)
TOTP_FIELDS = ("two_factor_secret", "email_verification_code")
SEALED_USER_FIELDS = ("password", *TOTP_FIELDS)
#: what a tenant reads of another user of its organization in place of its credentials: a
#: colleague (or a reseller's other customer) never gets a hash to guess or a TOTP secret
HIDDEN_CREDENTIALS = {"password": "[hidden]", "two_factor_secret": None,
                      "email_verification_code": None}


class UsersStorage(StorageBase):
    """Users, organizations and passwords: what the other contexts build on."""

    # -- passwords ------------------------------------------------------------------------
    def _password_hash(self, password: str) -> str:
        """The bcrypt hash of ``password`` (an imported hash kept as it is), sealed."""
        if i.is_bcrypt_hash(password):
            return self.secrets.seal(password) or ""
        salt = bcrypt.gensalt(rounds=self.settings.bcrypt_rounds)
        return self.secrets.seal(bcrypt.hashpw(password.encode(), salt).decode()) or ""

    def verify_password(self, user_id: UUID | str, password: str) -> bool:
        """Whether ``password`` matches the user's stored bcrypt hash (a tenant checks its
        own: a colleague's credentials are hidden from it, and never match)."""
        user = self.get_user(user_id)
        clear = password.encode()
        if user is None or len(clear) > i.BCRYPT_MAX_BYTES:  # such a password was never set
            return False
        try:
            return bcrypt.checkpw(clear, user.password.encode())
        except ValueError:  # a stored hash bcrypt cannot read matches nothing
            return False

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
        if not self._visible(oid):
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
    def _user_visible(self, organization_id: UUID | None, user_id: UUID,
                      account_type: str) -> bool:
        """Whether the acting party may see a user's row: in scope, or itself. A super admin
        is the platform's account wherever its row sits: a tenant (even of the organization
        it belongs to) never sees it, its secrets or its roles, nor checks its password."""
        if account_type == "super_admin" and self._tenant_acting():
            actor = context.current().actor_id
            return actor is not None and str(actor) == str(user_id)
        return self._visible_row(organization_id, user_id)

    def _reveal(self, user: m.User | None) -> m.User | None:
        """The user as the caller may see it: None across tenants, secrets decrypted."""
        if user is None or not self._user_visible(user.organization_id, user.id,
                                                  user.account_type):
            return None  # another tenant's user, or the platform's; a user sees itself
        if self._tenant_acting() and str(user.id) != str(context.current().actor_id):
            return user.model_copy(update=HIDDEN_CREDENTIALS)
        sealed = {f: self.secrets.open(getattr(user, f)) for f in SEALED_USER_FIELDS
                  if getattr(user, f) is not None}
        return user.model_copy(update=sealed) if sealed else user

    def _visible_user(self, user_id: UUID) -> m.User | None:
        """The user's row when the acting party may see it (internal: no argument checks, no
        decryption; the rows of other tables are owned through it)."""
        user = self._one(m.User, USER_BY_ID, (user_id,))
        return user if user is not None and self._user_visible(
            user.organization_id, user.id, user.account_type) else None

    def _visible_users(self, user_ids: Iterable[UUID]) -> set[UUID]:
        """Which of ``user_ids`` the acting party may see: ``_visible_user`` for many, in
        one read (internal: an import's read-ahead)."""
        rows = self._rows(USERS_BY_ID, (list(dict.fromkeys(user_ids)),))
        return {row["id"] for row in rows
                if self._user_visible(row["organization_id"], row["id"], row["account_type"])}

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
        """By identity key: ``ALICE`` and fullwidth ``alice`` (U+FF41...) find ``alice``."""
        return self._reveal(self._one(m.User, USER_BY_USERNAME, (identity_key(username),)))

    def get_user_by_email(self, email: str) -> m.User | None:
        """By identity key (NFKC, case-folded), the form email addresses are unique in."""
        return self._reveal(self._one(m.User, USER_BY_EMAIL, (identity_key(email),)))

    def create_user(self, data: i.InsertUser | dict[str, Any]) -> m.User:
        """Register a user; the account type is kept as given (AkashOne forced 'customer')."""
        user = i.parse(i.InsertUser, data)
        self._no_escalation(user.account_type)
        if user.account_type not in TENANT_ACCOUNT_TYPES and self._tenant_acting():
            raise PermissionDeniedError(f"only the platform opens {user.account_type} accounts")
        organization_id = user.organization_id or (
            None if user.account_type == "super_admin" else self._own_organization())
        self._super_admin_unattached(user.account_type, organization_id)
        if organization_id is not None:
            self._require_organization(organization_id, "organization_id")
        with context.command():
            aggregate = domain.User(
                username=user.username, email=str(user.email),
                password_hash=self._password_hash(user.password), gst_number=user.gst_number,
                account_type=user.account_type,
                organization_id=str(organization_id) if organization_id else None,
                status=user.status, by_platform=not self._tenant_acting())
            row = self._save_returning(m.User, ("users", aggregate.id), aggregate)
        return self._must(self._reveal(row) or self.get_user(aggregate.id))

    def update_user(self, user_id: UUID | str,
                    changes: i.UpdateUser | dict[str, Any]) -> m.User | None:
        """Change some of a user's columns; None when no such (visible) user exists."""
        update = i.parse(i.UpdateUser, changes)
        self._no_escalation(update.account_type)
        uid = i.parse_id(user_id, "user_id")
        target = self.get_user(uid)
        if target is None:  # a super admin is the platform's: absent to tenants
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if values.keys() & {"account_type", "organization_id"}:  # older data may hold one
            self._super_admin_unattached(
                values.get("account_type", target.account_type),
                values.get("organization_id", target.organization_id))
        if "organization_id" in values and self._tenant_acting():
            # a tenant moving a user (itself included) out of its organization, or to none,
            # would widen what that user sees: only the platform moves users
            raise PermissionDeniedError("only the platform moves a user between organizations")
        terms = sorted(PLATFORM_USER_FIELDS & values.keys())
        if terms and self._tenant_acting():
            raise PermissionDeniedError(f"only the platform sets {', '.join(terms)}")
        if "email" in values:
            values["email"] = str(update.email)
        if values.get("password"):
            values["password"] = self._password_hash(values["password"])
        for field in TOTP_FIELDS:  # TOTP secrets never enter the log in clear
            if values.get(field):
                values[field] = self.secrets.seal(values[field])
        if values.get("organization_id"):
            self._require_organization(UUID(values["organization_id"]), "organization_id")
        if "organization_id" in values and values["organization_id"] != (
                str(target.organization_id) if target.organization_id else None):
            self._check_user_move(uid)
        if not values:
            return self.get_user(uid)
        with context.command():
            aggregate = self._load(domain.User, uid, "user")
            self._change_user(aggregate, values)
            row = self._save_returning(m.User, ("users", uid), aggregate)
        return self._reveal(row) or self.get_user(uid)

    def _change_user(self, aggregate: domain.User, values: dict[str, Any]) -> None:
        """A suspension the platform made is the platform's to lift (or change): a tenant
        that set it active again would undo it."""
        if "status" not in values:
            aggregate.update(values)
            return
        if aggregate.suspended_by_platform and self._tenant_acting():
            raise PermissionDeniedError("status: the platform suspended this user; only "
                                        "the platform lifts or changes that")
        aggregate.update(values, by_platform=not self._tenant_acting())

    def _check_user_move(self, user_id: UUID) -> None:
        """Refuse moving a user between organizations while that would strand records of
        the old one (the cloud resources say so: ``ResourceStorage``)."""

    def _no_escalation(self, account_type: str | None) -> None:
        """Only the platform, acting platform-wide, makes anyone a super admin: not a tenant
        (itself included), nor the platform acting for one tenant."""
        if account_type == "super_admin" and not context.current().is_platform:
            raise PermissionDeniedError("only the platform, acting platform-wide, can create "
                                        "or promote a super admin")

    @staticmethod
    def _super_admin_unattached(account_type: str | None, organization_id: Any) -> None:
        """A super admin is the platform's account: it belongs to no organization (in one,
        that organization's tenants would read its resources and activity as their own)."""
        if account_type == "super_admin" and organization_id is not None:
            raise ValidationError.single("organization_id", "a super admin belongs to no "
                                         "organization (it is the platform's account)")

    def has_super_admin(self) -> bool:
        return bool(self._scalar(HAS_SUPER_ADMIN, ()))

    def _require_user(self, user_id: UUID | str, field: str = "user_id") -> m.User:
        user = self.get_user(i.parse_id(user_id, field))
        if user is None:
            raise NotFoundError("user", user_id, field)
        return user

    @staticmethod
    def _must(value: T | None) -> T:
        if value is None:  # the inline projection wrote it in the same transaction
            raise NotFoundError("record", "(just written)")
        return value
