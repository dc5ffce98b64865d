"""The way back: the current state in AkashOne's shape, so AkashOne can fall back to its
in-memory store (the migration guide's rollback)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.errors import PermissionDeniedError
from akashone_es.legacy.base import legacy_id
from akashone_es.legacy.records import COMPUTED_REFS, RESOURCE_TABLES, camel
from akashone_es.resources import KINDS
from projections.activity import ActivityProjection


@dataclass(frozen=True)
class Back:
    """How one of our tables goes back: its AkashOne name, the columns naming records of
    other tables (column -> AkashOne table), our own columns AkashOne does not have, and
    sealed ones (opened: AkashOne keeps them in clear)."""

    table: str
    order: str = "created_at"
    refs: dict[str, str] = field(default_factory=dict)
    ours: tuple[str, ...] = ()
    sealed: tuple[str, ...] = ()
    #: only the rows of these event topics' aggregates (the activity table also shows
    #: what other events did: AkashOne's activities are the ``Activity`` records)
    topics: str | None = None
    #: JSON columns that wrap AkashOne's value (column -> its key): the activity table's
    #: metadata holds the event's name and correlation id beside AkashOne's details
    inner: dict[str, str] = field(default_factory=dict)


def _resource_back(kind: Any) -> Back:
    refs = {"user_id": "users"}
    for column, target in kind.refs.items():
        refs[column] = camel(KINDS[target].plural)
    if kind.parent is not None:
        refs[kind.parent.field] = camel(KINDS[kind.parent.kind].plural)
    for (owner, column), target in COMPUTED_REFS.items():
        if owner == kind.name:
            refs[column] = camel(KINDS[target].plural)
    return Back(kind.table, kind.created_column, refs, ("organization_id",), kind.secrets)


#: AkashOne's table -> how ours goes back (users and RBAC: ``export_dump`` itself)
WAY_BACK: dict[str, Back] = {
    "teamMembers": Back("team_members", "invited_at", {
        "user_id": "users", "organization_id": "organizations", "invited_by": "users"},
        ("email_key", "invitation_token")),
    "userActivities": Back("user_activities", "position", {"user_id": "users"},
                           ("position", "organization_id"),
                           topics="akashone_es.domain.identity:Activity.%",
                           inner={"metadata": "details"}),
    "hsnCodes": Back("hsn_codes"),
    "servicePlans": Back("service_plans", refs={"organization_id": "organizations"}),
    "discountCoupons": Back("discount_coupons", refs={"created_by": "users"}),
    "featureFlags": Back("feature_flags"),
    "billingAddresses": Back("billing_addresses", refs={"user_id": "users"}),
    "paymentMethods": Back("payment_methods", refs={"user_id": "users"}),
    **{table: _resource_back(kind) for table, kind in RESOURCE_TABLES.items()},
    "invoices": Back("invoices", refs={"user_id": "users",
                                       "billing_address_id": "billingAddresses"},
                     ours=("organization_id", "fy", "taxable_amount", "utgst_amount",
                           "round_off_amount", "amount_paid", "place_of_supply_code",
                           "supplier_gstin", "supplier_state_code", "buyer_gstin",
                           "zero_rated", "coupon_code", "discount_percentage", "issued_at")),
    "invoiceLineItems": Back("invoice_line_items", "line_number", {"invoice_id": "invoices"},
                             ("line_number", "discount_amount", "taxable_amount",
                              "cgst_amount", "sgst_amount", "utgst_amount", "igst_amount")),
    "paymentTransactions": Back("payment_transactions", refs={
        "invoice_id": "invoices", "user_id": "users", "payment_method_id": "paymentMethods"},
        ours=("refunded_at",)),
    "taxCalculations": Back("tax_calculations", refs={"invoice_id": "invoices",
                                                      "user_id": "users"}),
    "usageRecords": Back("usage_records", refs={"user_id": "users", "invoice_id": "invoices"},
                         ours=("organization_id",)),
}


def _value(value: Any) -> Any:
    """A column's value as AkashOne's JSON holds it."""
    if isinstance(value, datetime):
        return _stamp(value)
    if isinstance(value, Decimal):  # a fraction as text: the input models take no floats
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def _table(storage: Any, name: str, back: Back, sid: Any) -> list[dict[str, Any]]:
    where = sql.SQL(" WHERE id IN (SELECT originator_id FROM public.akashone_events"
                    " WHERE topic LIKE %s)") if back.topics else sql.SQL("")
    query = sql.SQL("SELECT * FROM {}{} ORDER BY {}, id").format(
        sql.Identifier(back.table), where, sql.Identifier(back.order))
    records = []
    for row in storage._rows(query, (back.topics,) if back.topics else ()):
        record: dict[str, Any] = {"id": sid(name, row["id"])}
        for column, value in row.items():
            if column == "id" or column in back.ours:
                continue
            if column in back.refs:
                record[camel(column)] = sid(back.refs[column], value)
            elif column in back.sealed:
                record[camel(column)] = storage.secrets.open(value)
            elif column in back.inner:
                record[camel(column)] = (value or {}).get(back.inner[column])
            else:
                record[camel(column)] = _value(value)
        records.append(record)
    return records



# -- users and RBAC ------------------------------------------------------------------------
SOURCES = sql.SQL(
    "SELECT originator_id, topic, convert_from(state, 'UTF8')::jsonb ->> 'source' AS source,"
    " convert_from(state, 'UTF8')::jsonb ->> 'permission_id' AS permission_id,"
    " convert_from(state, 'UTF8')::jsonb ->> 'role_id' AS role_id,"
    " convert_from(state, 'UTF8')::jsonb ->> 'token' AS token,"
    " convert_from(state, 'UTF8')::jsonb -> 'line' ->> 'id' AS line_id"
    " FROM public.akashone_events WHERE topic LIKE '%%Imported'")


def _stamp(value: datetime | None) -> str | None:
    """A time as AkashOne's JSON holds it (``2025-04-01T10:00:00.123456Z``: JavaScript's
    ``Date`` reads the microseconds as milliseconds; a re-import keeps them all)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _held(organization: str | None, user: str | None) -> str | None:
    """A user's ``organizationId`` as AkashOne keeps it: none for an owner, whose
    organization is named by its own id (the import made it a member)."""
    return None if organization == user else organization


def export_dump(storage: Any) -> dict[str, Any]:
    """Every table as AkashOne's store holds it: source ids kept, password hashes, TOTP
    secrets and resources' keys opened (AkashOne keeps them so). Platform only. A pending
    invitation made here goes back without its token (only its hash is kept): resend it."""
    if not context.current().is_platform_actor:
        raise PermissionDeniedError("the way back is for the platform only (a super admin "
                                    "or a system context)")
    source: dict[tuple[str, str], str] = {}
    tokens: dict[str, str] = {}  # pending invitations' tokens, by our id
    for row in storage._rows(SOURCES, ()):
        table, _, original = (row["source"] or "").partition(":")
        key = str(row["originator_id"])
        if table == "rolePermissions":
            key = f"{key}:{row['permission_id']}"
        elif table == "userRoles":
            key = f"{key}:{row['role_id']}"
        elif table == "invoiceLineItems":  # an event of its invoice, naming the line
            key = row["line_id"]
        elif table == "users" and row["topic"].endswith("Organization.Imported"):
            table = "organizations"
        source[(table, key)] = original
        if row["token"]:
            tokens[key] = storage.secrets.open(row["token"])

    def sid(table: str, key: Any) -> str | None:
        return None if key is None else source.get((table, str(key)), str(key))

    storage._catch_up(ActivityProjection.name)  # the one table kept behind the writers
    open_ = storage.secrets.open
    users = [{
        "id": sid("users", u["id"]), "username": u["username"], "email": u["email"],
        "password": open_(u["password"]), "gstNumber": u["gst_number"],
        "emailVerified": u["email_verified"],
        "emailVerificationCode": open_(u["email_verification_code"]),
        "emailVerificationExpiry": _stamp(u["email_verification_expiry"]),
        "twoFactorSecret": open_(u["two_factor_secret"]),
        "twoFactorEnabled": u["two_factor_enabled"], "accountType": u["account_type"],
        "organizationId": _held(sid("organizations", u["organization_id"]),
                                sid("users", u["id"])),
        "defaultDiscountPercentage": u["default_discount_percentage"], "status": u["status"],
        "createdAt": _stamp(u["created_at"]), "lastLogin": _stamp(u["last_login"])}
        for u in storage._rows(sql.SQL("SELECT * FROM users ORDER BY created_at, id"), ())]
    permissions = [{
        "id": sid("permissions", p["id"]), "key": p["key"], "name": p["name"],
        "description": p["description"], "category": p["category"],
        "createdAt": _stamp(p["created_at"])}
        for p in storage._rows(sql.SQL("SELECT * FROM permissions ORDER BY key"), ())]
    roles = [{
        "id": sid("roles", r["id"]), "name": r["name"], "description": r["description"],
        "isSystem": r["is_system"], "organizationId": sid("organizations", r["organization_id"]),
        "createdAt": _stamp(r["created_at"]), "updatedAt": _stamp(r["updated_at"])}
        for r in storage._rows(sql.SQL("SELECT * FROM roles ORDER BY created_at, id"), ())]
    role_permissions = [{
        "id": sid("rolePermissions", f"{x['role_id']}:{x['permission_id']}"),
        "roleId": sid("roles", x["role_id"]), "permissionId": sid("permissions",
                                                                  x["permission_id"]),
        "createdAt": _stamp(x["created_at"])}
        for x in storage._rows(sql.SQL("SELECT * FROM role_permissions"
                                       " ORDER BY created_at, id"), ())]
    user_roles = [{
        "id": sid("userRoles", f"{x['user_id']}:{x['role_id']}"),
        "userId": sid("users", x["user_id"]), "roleId": sid("roles", x["role_id"]),
        "grantedBy": sid("users", x["granted_by"]), "createdAt": _stamp(x["created_at"])}
        for x in storage._rows(sql.SQL("SELECT * FROM user_roles ORDER BY created_at, id"),
                               ())]
    tables = {name: _table(storage, name, back, sid) for name, back in WAY_BACK.items()}
    for member in tables["teamMembers"]:
        if member["status"] == "invited":
            member["invitationToken"] = tokens.get(str(legacy_id("teamMembers", member["id"])))
    return {"users": users, "permissions": permissions, "roles": roles,
            "rolePermissions": role_permissions, "userRoles": user_roles, **tables}


