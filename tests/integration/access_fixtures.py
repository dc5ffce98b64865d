"""The access-matrix world: the platform catalogue, tenants with one record of every kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import BaseModel

from akashone_es import Storage
from akashone_es.domain.identity import permission_id_for
from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import SUPPLIER
from tests.integration.resource_samples import KINDS
from tests.integration.resource_samples import create as resource_input
from tests.integration.test_billing_storage import address, customer, draft, usage

PASSWORD = "long-enough-1"
#: the columns that tie a read row to a tenant's records
OWNER_COLUMNS = ("id", "user_id", "organization_id", "invoice_id", "role_id")


@dataclass(frozen=True)
class Catalogue:
    """Platform catalogue entries (shared by every tenant, changed by the platform only)."""

    perm: UUID
    perm_key: str
    hsn: UUID
    hsn_type: str
    coupon: UUID
    coupon_code: str
    plan: UUID
    plan_name: str
    #: a seeded permission no tenant role holds yet
    spare_perm: UUID = field(default_factory=lambda: permission_id_for("vm.create"))


@dataclass(frozen=True)
class Side:
    """One tenant's records, and the catalogue entries calls aimed at it name."""

    name: str
    org: UUID
    org_name: str
    admin: Any  # m.User: the tenant admin (a customer of the organization)
    user2: Any
    role: UUID
    role_name: str
    member: UUID
    member_email: str
    token: str
    address: UUID
    method: UUID
    draft: UUID
    line: UUID
    invoice: UUID
    invoice_number: str
    txn_paid: UUID
    gw_paid: str
    txn_pending: UUID
    gw_pending: str
    note: UUID
    note_number: str
    usage: tuple[UUID, ...]
    tax: UUID
    activity: UUID
    action: str
    plan: UUID
    plan_name: str
    cat: Catalogue
    #: one resource of every kind (kind name -> id), owned by the admin
    resources: dict[str, UUID] = field(default_factory=dict)
    #: their CloudStack ids (kinds that have one)
    cloudstack_ids: dict[str, str] = field(default_factory=dict)

    @property
    def aggregates(self) -> frozenset[UUID]:
        """The ids of this tenant's aggregates (an event of any of them is a change)."""
        return frozenset({self.org, self.admin.id, self.user2.id, self.role, self.member,
                          self.address, self.method, self.draft, self.invoice, self.txn_paid,
                          self.txn_pending, self.note, *self.usage, self.tax, self.activity,
                          self.plan, *self.resources.values()})

    @property
    def ids(self) -> frozenset[UUID]:
        return self.aggregates | {self.line}

    @property
    def tokens(self) -> frozenset[str]:
        """What must never show in another tenant's results: ids, names, numbers."""
        names = {self.org_name, self.admin.username, self.admin.email, self.user2.username,
                 self.user2.email, self.role_name, self.member_email, self.token,
                 self.invoice_number, self.note_number, self.gw_paid, self.gw_pending,
                 self.plan_name}
        names |= set(self.cloudstack_ids.values())
        return frozenset({str(i) for i in self.ids} | {n.lower() for n in names})


@dataclass(frozen=True)
class World:
    storage: Storage
    conn: psycopg.Connection[Any]
    root: UUID  # the platform super admin
    a: Side
    b: Side
    catalogue: Catalogue
    checksum_query: sql.Composed
    checksum_tables: int

    def position(self) -> int:
        row = self.conn.execute("SELECT coalesce(max(notification_id), 0)"
                                " FROM akashone_events").fetchone()
        return int(row[0]) if row else 0

    def originators_since(self, position: int) -> set[UUID]:
        rows = self.conn.execute("SELECT DISTINCT originator_id FROM akashone_events"
                                 " WHERE notification_id > %s", (position,)).fetchall()
        return {r[0] for r in rows}

    def checksum(self, side: Side) -> list[tuple[str, str]]:
        """A digest per read table of the rows tied to ``side`` (by id, user, org, ...)."""
        params = [list(side.ids)] * (self.checksum_tables * len(OWNER_COLUMNS))
        return [(r[0], r[1]) for r in self.conn.execute(self.checksum_query, params)]


@contextmanager
def module_storage(server_dsn: str) -> Iterator[tuple[Storage, str]]:
    """A fresh database for one test module, with a supplier-GSTIN storage on it."""
    dsn = with_database(server_dsn, f"akashone_matrix_{uuid.uuid4().hex[:12]}")
    ensure_database(dsn)
    try:
        store = open_storage(Settings(**{**TEST_SETTINGS, "supplier_gstin": SUPPLIER}),
                             dsn=dsn)
        try:
            yield store, dsn
        finally:
            store.close()
    finally:
        drop_database(dsn)


def call(s: Storage, kind: Any, method: str, *args: Any) -> Any:
    """Call a kind's generated method (``method`` is "create", "get", ...)."""
    return getattr(s, kind.method_names()[method])(*args)


def enable_all_features(s: Storage) -> None:
    """Seed the feature flags and switch every one on (most are off by default)."""
    s.initialize_default_feature_flags()
    for flag in s.get_feature_flags():
        if not flag.enabled:
            s.update_feature_flag(flag.id, {"enabled": True})


def build_catalogue(s: Storage, tag: str) -> Catalogue:
    """A permission, an HSN code, a coupon and a public platform plan (system context)."""
    perm = s.create_permission({"key": f"matrix.{tag}", "name": f"Matrix {tag}",
                                "category": "matrix"})
    hsn = s.create_hsn_code({"service_type": f"matrix-{tag}", "hsn_code": "9983",
                             "sac_code": "998315", "description": f"Matrix {tag} compute"})
    coupon = s.create_discount_coupon({"code": f"MATRIX-{tag.upper()}", "name": f"Matrix {tag}",
                                       "discount_type": "percentage", "discount_value": 10})
    plan = s.create_service_plan({"name": f"Platform {tag} plan", "cpu": 1, "memory": 1024,
                                  "storage": 20, "is_public": True})
    return Catalogue(perm=perm.id, perm_key=perm.key, hsn=hsn.id, hsn_type=hsn.service_type,
                     coupon=coupon.id, coupon_code=coupon.code, plan=plan.id,
                     plan_name=plan.name)


def build_side(s: Storage, name: str, cat: Catalogue) -> Side:
    """A tenant with one record of every kind, written by its own admin."""
    org = s.create_organization({"name": f"{name} org"})
    admin = customer(s, f"{name}-admin", organization_id=org.id)
    user2 = customer(s, f"{name}-user", organization_id=org.id)
    with s.acting_as(actor_id=admin.id):
        role = s.create_role({"name": f"{name}-role"})
        s.assign_permission_to_role(role.id, cat.perm)
        s.assign_role_to_user(admin.id, role.id)
        member = s.create_team_member({"email": f"invitee@{name}.example",
                                       "organization_id": org.id, "invited_by": admin.id})
        addr = address(s, admin)
        method = s.create_payment_method({"user_id": admin.id, "gateway": "razorpay",
                                          "type": "upi", "upi_id": f"{name}@okbank"})
    # the supplier's side (drafts, issue, metering, settled payments, notes) is the platform's
    with s.acting_as(system="billing run", organization_id=org.id):
        open_draft = draft(s, admin, addr, 1000)
        [line] = s.get_invoice_line_items(open_draft.id)
        invoice = s.issue_invoice(draft(s, admin, addr, 50_000).id)
        payment = {"invoice_id": invoice.id, "gateway": "razorpay", "amount": 1000}
        paid = s.create_payment_transaction({**payment, "status": "success",
                                             "gateway_transaction_id": f"pay_{name}_paid"})
        note = s.issue_credit_note(invoice.id, 500, "goodwill")
        records = (usage(s, admin), usage(s, admin, "database"))
        [tax] = s.get_tax_calculations(invoice.id)
    with s.acting_as(actor_id=admin.id):
        pending = s.create_payment_transaction({**payment,
                                                "gateway_transaction_id": f"pay_{name}_pending"})
        activity = s.create_user_activity({"user_id": admin.id, "action": "auth.login"})
        plan = s.create_service_plan({"name": f"{name} plan", "cpu": 2, "memory": 2048,
                                      "storage": 40, "is_public": True})
        resources: dict[str, Any] = {}
        for kind in KINDS.values():  # a kind comes after what it names
            named = {k: r.id for k, r in resources.items()}
            resources[kind.name] = call(s, kind, "create",
                                        resource_input(kind, name, admin.id, named=named))
            if kind.name == "virtual_machine":  # running (the platform's to record):
                with s.acting_as(system="provisioning", organization_id=org.id):
                    s.update_virtual_machine(resources[kind.name].id, {"state": "Running"})
        s.update_volume(resources["volume"].id, {"state": "Ready"})  # attachable
    assert invoice.invoice_number is not None
    return Side(name=name, org=org.id, org_name=org.name, admin=admin, user2=user2,
                role=role.id, role_name=role.name, member=member.id, member_email=member.email,
                token=str(member.invitation_token), address=addr.id, method=method.id,
                draft=open_draft.id, line=line.id, invoice=invoice.id,
                invoice_number=invoice.invoice_number, txn_paid=paid.id,
                gw_paid=str(paid.gateway_transaction_id), txn_pending=pending.id,
                gw_pending=str(pending.gateway_transaction_id), note=note.id,
                note_number=note.note_number, usage=tuple(r.id for r in records), tax=tax.id,
                activity=activity.id, action=activity.action, plan=plan.id,
                plan_name=plan.name, cat=cat,
                resources={k: r.id for k, r in resources.items()},
                cloudstack_ids={k: getattr(r, KINDS[k].cloudstack_column)
                                for k, r in resources.items() if KINDS[k].cloudstack != "none"})


def checksum_query(conn: psycopg.Connection[Any]) -> tuple[sql.Composed, int]:
    """One query digesting, per read table, the rows tied to a set of ids."""
    rows = conn.execute(
        "SELECT c.table_name, array_agg(c.column_name::text ORDER BY c.column_name)"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        " AND c.column_name = ANY(%s) AND c.table_name NOT LIKE 'akashone%%'"
        " GROUP BY c.table_name ORDER BY c.table_name", (list(OWNER_COLUMNS),)).fetchall()
    parts = []
    for table, columns in rows:
        # every owner column is matched (a NULL-safe placeholder where a table lacks it), so
        # the parameters are the same ids array repeated a fixed number of times
        tests = [sql.SQL("{} = ANY(%s::uuid[])").format(sql.Identifier(col))
                 if col in columns else sql.SQL("%s::uuid[] IS NULL")
                 for col in OWNER_COLUMNS]
        parts.append(sql.SQL(
            "SELECT {name}, coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
            " FROM {table} t WHERE {tests}").format(
                name=sql.Literal(table), table=sql.Identifier(table),
                tests=sql.SQL(" OR ").join(tests)))
    return sql.SQL(" UNION ALL ").join(parts), len(parts)


def build_world(s: Storage, conn: psycopg.Connection[Any]) -> World:
    """Everything the matrix calls aim at, written in a system context."""
    with s.acting_as(system="access matrix setup"):
        s.initialize_default_roles()
        enable_all_features(s)
        root = customer(s, "platform-root", account_type="super_admin")
        shared = build_catalogue(s, "main")
        a, b = build_side(s, "alpha", shared), build_side(s, "bravo", shared)
        s.get_recent_activities()  # the async activity projection is caught up before calls
    query, tables = checksum_query(conn)
    return World(storage=s, conn=conn, root=root.id, a=a, b=b, catalogue=shared,
                 checksum_query=query, checksum_tables=tables)


def text_of(result: Any) -> str:
    """A result as searchable text (models dumped whole, nested lists included)."""
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    if isinstance(result, list | tuple | set):
        return "[" + ", ".join(text_of(item) for item in result) + "]"
    return repr(result)


def throwaway_side(world: World) -> Side:
    """A new tenant with its own catalogue entries, for one destructive platform call."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    with world.storage.acting_as(system="access matrix throwaway"):
        return build_side(world.storage, f"delta-{tag}", build_catalogue(world.storage, tag))
