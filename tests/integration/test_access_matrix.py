"""The access matrix: every public Storage method, called as two tenants, the platform, no one.

Each method of ``POLICY`` has a recipe: calls aimed at the *other* tenant's records (tenant A
names tenant B's ids, numbers and gateway ids, and B names A's). As a tenant, such a call is
refused (NotFoundError / PermissionDeniedError) or answers without a trace of the other
tenant, appends no event to the other's aggregates and leaves the other's rows unchanged. A
method added to ``Storage`` without a classification, or without a recipe here, fails.

The world is built once per module and tests run in file order: no actor, then the tenants
(whose calls change nothing of the other tenant), then the platform, whose reads find B's
records and whose writes each aim at a throwaway tenant of their own, then the contexts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from akashone_es import context
from akashone_es.errors import (
    AkashOneError,
    ContextError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.storage import Storage
from akashone_es.storage.policy import POLICY, READ_PREFIXES, Access, guard, public_methods
from tests.integration.access_fixtures import (
    PASSWORD,
    Side,
    World,
    build_world,
    call,
    module_storage,
    text_of,
    throwaway_side,
)
from tests.integration.resource_samples import KINDS, OBSERVATIONS, SAMPLES, UPDATES, needs
from tests.integration.resource_samples import create as resource_input
from tests.integration.test_billing_storage import END, START, line

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
GUARDED = [name for name, access in POLICY.items() if access is not Access.SESSION]
CATALOGUE = [name for name, access in POLICY.items() if access is Access.CATALOGUE]


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Probe:
    """One call of a method: ``call(storage, other, own)`` aims at ``other``'s records."""

    call: Callable[[Storage, Side, Any], Any]
    #: attributes of ``other`` the caller supplies as its own data (they may be echoed back)
    echoes: tuple[str, ...] = ()
    #: it names only the caller's own records (plus echoed values): a tenant must succeed
    succeeds: bool = False
    #: a ValidationError about the caller's own input is a proper refusal
    invalid: bool = False
    #: the error (part of its message) the platform's call meets: it mixes in ``own``
    platform_rule: str = ""


P = Probe


def address_of(user: uuid.UUID) -> dict[str, Any]:
    return {"user_id": user, "address_line1": "1 Intruder Lane", "city": "Pune",
            "postal_code": "411001", "state_code": "27"}


def payment(invoice: uuid.UUID, gateway_id: str) -> dict[str, Any]:
    return {"invoice_id": invoice, "gateway": "razorpay", "gateway_transaction_id": gateway_id,
            "amount": 100}


def tax_of(invoice: uuid.UUID, user: uuid.UUID) -> dict[str, Any]:
    return {"invoice_id": invoice, "user_id": user, "supplier_state": "Maharashtra",
            "supplier_state_code": "27", "customer_state": "Karnataka",
            "customer_state_code": "29", "tax_type": "IGST", "taxable_amount": 100,
            "igst_rate": Decimal(18), "igst_amount": 18, "total_tax_amount": 18}


RECIPES: dict[str, tuple[Probe, ...]] = {
    # users and organizations
    "create_organization": (P(lambda s, o, me: s.create_organization({"name": fresh("org")})),),
    "get_organization": (P(lambda s, o, me: s.get_organization(o.org)),),
    "get_organizations": (P(lambda s, o, me: s.get_organizations()),),
    "create_user": (P(lambda s, o, me: s.create_user({
        "username": fresh("intruder"), "email": f"{fresh('intruder')}@example.com",
        "password": PASSWORD, "organization_id": o.org})),),
    "get_user": (P(lambda s, o, me: s.get_user(o.admin.id)),),
    "get_user_by_email": (P(lambda s, o, me: s.get_user_by_email(o.admin.email.upper())),),
    "get_user_by_username": (P(lambda s, o, me: s.get_user_by_username(o.admin.username)),),
    "get_users": (P(lambda s, o, me: s.get_users()),),
    "update_user": (P(lambda s, o, me: s.update_user(o.user2.id, {"email_verified": True})),),
    "verify_password": (P(lambda s, o, me: s.verify_password(o.admin.id, PASSWORD)),),
    "has_super_admin": (P(lambda s, o, me: s.has_super_admin()),),
    # permissions and roles
    "create_permission": (P(lambda s, o, me: s.create_permission({
        "key": f"matrix.k{uuid.uuid4().hex[:8]}", "name": "Probe", "category": "matrix"})),),
    "get_permission": (P(lambda s, o, me: s.get_permission(o.cat.perm)),),
    "get_permission_by_key": (P(lambda s, o, me: s.get_permission_by_key(o.cat.perm_key)),),
    "get_permissions": (P(lambda s, o, me: s.get_permissions()),),
    "initialize_default_permissions": (P(lambda s, o, me: s.initialize_default_permissions()),),
    "initialize_default_roles": (P(lambda s, o, me: s.initialize_default_roles()),),
    "create_role": (P(lambda s, o, me: s.create_role({"name": fresh("role"),
                                                      "organization_id": o.org})),),
    "get_role": (P(lambda s, o, me: s.get_role(o.role)),),
    "get_roles": (P(lambda s, o, me: s.get_roles(o.org)), P(lambda s, o, me: s.get_roles())),
    "update_role": (P(lambda s, o, me: s.update_role(o.role, {"name": fresh("renamed")})),),
    "delete_role": (P(lambda s, o, me: s.delete_role(o.role)),),
    "assign_permission_to_role": (
        P(lambda s, o, me: s.assign_permission_to_role(o.role, o.cat.spare_perm)),),
    "remove_permission_from_role": (
        P(lambda s, o, me: s.remove_permission_from_role(o.role, o.cat.perm)),),
    "get_role_permissions": (P(lambda s, o, me: s.get_role_permissions(o.role)),),
    "assign_role_to_user": (
        P(lambda s, o, me: s.assign_role_to_user(o.user2.id, o.role)),
        P(lambda s, o, me: s.assign_role_to_user(me.user2.id, o.role),
          platform_rule="role belongs to another organization"),
        P(lambda s, o, me: s.assign_role_to_user(me.user2.id, me.role, o.admin.id))),
    "remove_role_from_user": (P(lambda s, o, me: s.remove_role_from_user(o.admin.id, o.role)),),
    "get_user_roles": (P(lambda s, o, me: s.get_user_roles(o.admin.id)),),
    "user_has_permission": (
        P(lambda s, o, me: s.user_has_permission(o.admin.id, o.cat.perm_key)),),
    # teams and activity
    "create_team_member": (
        P(lambda s, o, me: s.create_team_member({"email": f"{fresh('x')}@intruder.example",
                                                 "organization_id": o.org,
                                                 "invited_by": me.admin.id}),
          platform_rule="must be a user of the invitation's organization"),
        P(lambda s, o, me: s.create_team_member({"email": f"{fresh('x')}@intruder.example",
                                                 "organization_id": me.org,
                                                 "invited_by": o.admin.id}),
          platform_rule="must be a user of the invitation's organization"),
        P(lambda s, o, me: s.create_team_member({"email": f"{fresh('x')}@intruder.example",
                                                 "organization_id": o.org,
                                                 "invited_by": o.admin.id}))),
    "get_team_member": (P(lambda s, o, me: s.get_team_member(o.member)),),
    "get_team_member_by_email": (
        P(lambda s, o, me: s.get_team_member_by_email(o.member_email, o.org)),),
    "get_team_members": (P(lambda s, o, me: s.get_team_members(o.org)),),
    "update_team_member": (
        P(lambda s, o, me: s.update_team_member(o.member, {"status": "suspended"})),),
    "delete_team_member": (P(lambda s, o, me: s.delete_team_member(o.member)),),
    "accept_invitation": (P(lambda s, o, me: s.accept_invitation({
        "token": o.token, "username": fresh("joiner"), "password": PASSWORD})),),
    "create_user_activity": (P(lambda s, o, me: s.create_user_activity({
        "user_id": o.admin.id, "action": "matrix.probe"})),),
    "get_user_activity": (P(lambda s, o, me: s.get_user_activity(o.activity)),),
    "get_user_activities": (P(lambda s, o, me: s.get_user_activities(o.admin.id)),
                            P(lambda s, o, me: s.get_user_activities())),
    "get_user_activities_by_action": (
        P(lambda s, o, me: s.get_user_activities_by_action(o.admin.id, o.action)),),
    "get_recent_activities": (P(lambda s, o, me: s.get_recent_activities()),),
    # billing addresses and payment methods
    "create_billing_address": (
        P(lambda s, o, me: s.create_billing_address(address_of(o.admin.id))),),
    "get_billing_address": (P(lambda s, o, me: s.get_billing_address(o.address)),),
    "get_billing_addresses": (P(lambda s, o, me: s.get_billing_addresses(o.admin.id)),),
    "get_default_billing_address": (
        P(lambda s, o, me: s.get_default_billing_address(o.admin.id)),),
    "update_billing_address": (
        P(lambda s, o, me: s.update_billing_address(o.address, {"city": "Nagpur"})),),
    "delete_billing_address": (P(lambda s, o, me: s.delete_billing_address(o.address)),),
    "set_default_billing_address": (
        P(lambda s, o, me: s.set_default_billing_address(o.admin.id, o.address)),
        P(lambda s, o, me: s.set_default_billing_address(me.admin.id, o.address),
          platform_rule="billing_address not found")),
    "create_payment_method": (P(lambda s, o, me: s.create_payment_method({
        "user_id": o.admin.id, "gateway": "razorpay", "type": "upi",
        "upi_id": "intruder@okbank"})),),
    "get_payment_method": (P(lambda s, o, me: s.get_payment_method(o.method)),),
    "get_payment_methods": (P(lambda s, o, me: s.get_payment_methods(o.admin.id)),),
    "get_default_payment_method": (
        P(lambda s, o, me: s.get_default_payment_method(o.admin.id)),),
    "update_payment_method": (
        P(lambda s, o, me: s.update_payment_method(o.method, {"card_brand": "visa"})),),
    "delete_payment_method": (P(lambda s, o, me: s.delete_payment_method(o.method)),),
    "set_default_payment_method": (
        P(lambda s, o, me: s.set_default_payment_method(o.admin.id, o.method)),
        P(lambda s, o, me: s.set_default_payment_method(me.admin.id, o.method),
          platform_rule="payment_method not found")),
    # invoices
    "create_invoice": (
        P(lambda s, o, me: s.create_invoice({
            "user_id": o.admin.id, "billing_address_id": o.address,
            "billing_period_start": START, "billing_period_end": END, "lines": [line(100)]})),
        P(lambda s, o, me: s.create_invoice({
            "user_id": me.admin.id, "billing_address_id": o.address,
            "billing_period_start": START, "billing_period_end": END, "lines": [line(100)]}),
          platform_rule="billing_address not found")),
    "get_invoice": (P(lambda s, o, me: s.get_invoice(o.invoice)),),
    "get_invoice_buyer": (P(lambda s, o, me: s.get_invoice_buyer(o.invoice)),),
    "get_invoice_by_number": (
        P(lambda s, o, me: s.get_invoice_by_number(o.invoice_number.lower())),),
    "get_invoices": (P(lambda s, o, me: s.get_invoices(o.admin.id)),),
    "update_invoice": (P(lambda s, o, me: s.update_invoice(o.draft, {"notes": "probe"})),),
    "delete_invoice": (P(lambda s, o, me: s.delete_invoice(o.draft)),),
    "issue_invoice": (P(lambda s, o, me: s.issue_invoice(o.draft)),),
    "cancel_invoice": (P(lambda s, o, me: s.cancel_invoice(o.invoice, "probe"),
                         platform_rule="has credit or debit notes"),),
    # a tenant's overdue run marks its own invoices only
    "mark_overdue_invoices": (P(lambda s, o, me: s.mark_overdue_invoices(at=FAR_FUTURE)),),
    "generate_invoice": (P(lambda s, o, me: s.generate_invoice({
        "user_id": o.admin.id, "period_start": START, "period_end": END})),),
    "get_next_invoice_number": (P(lambda s, o, me: s.get_next_invoice_number()),),
    "create_invoice_line_item": (
        P(lambda s, o, me: s.create_invoice_line_item({"invoice_id": o.draft, **line(100)})),),
    "get_invoice_line_item": (P(lambda s, o, me: s.get_invoice_line_item(o.line)),),
    "get_invoice_line_items": (P(lambda s, o, me: s.get_invoice_line_items(o.draft)),),
    "delete_invoice_line_item": (P(lambda s, o, me: s.delete_invoice_line_item(o.line)),),
    "issue_credit_note": (P(lambda s, o, me: s.issue_credit_note(o.invoice, 100, "probe")),),
    "get_adjustment_notes": (P(lambda s, o, me: s.get_adjustment_notes(o.invoice)),),
    "get_adjustment_notes_by_number": (
        P(lambda s, o, me: s.get_adjustment_notes_by_number(o.note_number)),),
    "create_tax_calculation": (
        P(lambda s, o, me: s.create_tax_calculation(tax_of(me.draft, o.admin.id)),
          invalid=True, platform_rule="must be the invoice's user"),
        P(lambda s, o, me: s.create_tax_calculation(tax_of(o.draft, o.admin.id)))),
    "get_tax_calculation": (P(lambda s, o, me: s.get_tax_calculation(o.tax)),),
    "get_tax_calculations": (P(lambda s, o, me: s.get_tax_calculations(o.invoice)),),
    # usage and payments
    "create_usage_record": (P(lambda s, o, me: s.create_usage_record({
        "user_id": o.admin.id, "resource_type": "compute", "resource_id": "vm-x",
        "resource_name": "vm-x", "metric_type": "runtime", "quantity": Decimal(1),
        "period_start": START, "period_end": END})),),
    "get_usage_record": (P(lambda s, o, me: s.get_usage_record(o.usage[0])),),
    "get_usage_records": (P(lambda s, o, me: s.get_usage_records(o.admin.id)),),
    "get_unbilled_usage_records": (
        P(lambda s, o, me: s.get_unbilled_usage_records(o.admin.id)),),
    "mark_usage_records_as_billed": (
        P(lambda s, o, me: s.mark_usage_records_as_billed([o.usage[0]], o.draft)),
        P(lambda s, o, me: s.mark_usage_records_as_billed([o.usage[1]], me.draft),
          platform_rule="usage_record not found")),
    "create_payment_transaction": (
        # the other's gateway id on the caller's own invoice: its own record, nothing learnt
        P(lambda s, o, me: s.create_payment_transaction(payment(me.invoice, o.gw_pending)),
          echoes=("gw_pending",), succeeds=True),
        P(lambda s, o, me: s.create_payment_transaction(payment(o.invoice, fresh("pay"))))),
    "get_payment_transaction": (P(lambda s, o, me: s.get_payment_transaction(o.txn_paid)),),
    "get_payment_transaction_by_gateway_id": (
        P(lambda s, o, me: s.get_payment_transaction_by_gateway_id(o.gw_paid)),
        P(lambda s, o, me: s.get_payment_transaction_by_gateway_id(o.gw_paid, "razorpay"))),
    "get_payment_transactions": (P(lambda s, o, me: s.get_payment_transactions(o.admin.id)),),
    "update_payment_transaction": (
        P(lambda s, o, me: s.update_payment_transaction(o.txn_pending, {"status": "failed"})),),
    # the catalogue
    "create_hsn_code": (P(lambda s, o, me: s.create_hsn_code({
        "service_type": fresh("probe"), "hsn_code": "9983", "sac_code": "998315",
        "description": "probe"})),),
    "get_hsn_code": (P(lambda s, o, me: s.get_hsn_code(o.cat.hsn)),),
    "get_hsn_code_by_service_type": (
        P(lambda s, o, me: s.get_hsn_code_by_service_type(o.cat.hsn_type)),),
    "get_hsn_codes": (P(lambda s, o, me: s.get_hsn_codes()),),
    "update_hsn_code": (
        P(lambda s, o, me: s.update_hsn_code(o.cat.hsn, {"description": "probe"})),),
    "delete_hsn_code": (P(lambda s, o, me: s.delete_hsn_code(o.cat.hsn)),),
    "create_discount_coupon": (P(lambda s, o, me: s.create_discount_coupon({
        "code": fresh("PROBE"), "name": "probe", "discount_type": "fixed",
        "discount_value": 100})),),
    "get_discount_coupon": (P(lambda s, o, me: s.get_discount_coupon(o.cat.coupon)),),
    "get_discount_coupons": (P(lambda s, o, me: s.get_discount_coupons()),),
    "get_discount_coupon_by_code": (
        P(lambda s, o, me: s.get_discount_coupon_by_code(o.cat.coupon_code)),),
    "validate_coupon": (P(lambda s, o, me: s.validate_coupon(o.cat.coupon_code, 100_000)),),
    "update_discount_coupon": (
        P(lambda s, o, me: s.update_discount_coupon(o.cat.coupon, {"name": "probe"})),),
    "delete_discount_coupon": (P(lambda s, o, me: s.delete_discount_coupon(o.cat.coupon)),),
    "increment_coupon_usage": (P(lambda s, o, me: s.increment_coupon_usage(o.cat.coupon)),),
    "create_service_plan": (P(lambda s, o, me: s.create_service_plan({
        "name": fresh("Intruder plan"), "cpu": 1, "memory": 512, "storage": 10,
        "organization_id": o.org})),),
    "get_service_plan": (P(lambda s, o, me: s.get_service_plan(o.plan)),),
    "get_service_plans": (P(lambda s, o, me: s.get_service_plans()),
                          P(lambda s, o, me: s.get_service_plans(o.org))),
    "update_service_plan": (P(lambda s, o, me: s.update_service_plan(o.plan, {"price": 1})),),
    "delete_service_plan": (P(lambda s, o, me: s.delete_service_plan(o.plan)),),
    "initialize_default_service_plans": (
        P(lambda s, o, me: s.initialize_default_service_plans()),),
}

#: catalogue reads as a tenant: each must find the platform's published entry
def flag_id(s: Storage, key: str = "vpc") -> uuid.UUID:
    flag = s.get_feature_flag_by_key(key)
    assert flag is not None
    return flag.id


def new_flag() -> dict[str, Any]:
    return {"key": f"matrix_{uuid.uuid4().hex[:8]}", "name": "Matrix", "category": "Test"}


def past_admin(s: Storage, o: Side) -> Any:
    """``o``'s admin read through a view of the log as it stands now."""
    with s.as_of(datetime.now(UTC)) as past:
        return past.get_user(o.admin.id)


RECIPES.update({
    "as_of": (P(lambda s, o, me: past_admin(s, o)),),
    "erase_personal_data": (P(lambda s, o, me: s.erase_personal_data(o.user2.id)),),
    "retention_sweep": (P(lambda s, o, me: s.retention_sweep(date(2026, 1, 1))),),
    "meter": (P(lambda s, o, me: s.meter(datetime(2026, 1, 1, tzinfo=UTC))),),
    "get_feature_flags": (P(lambda s, o, me: s.get_feature_flags()),),
    "get_feature_flag": (P(lambda s, o, me: s.get_feature_flag(flag_id(s))),),
    "get_feature_flag_by_key": (P(lambda s, o, me: s.get_feature_flag_by_key("vpc")),),
    "create_feature_flag": (P(lambda s, o, me: s.create_feature_flag(new_flag())),),
    "update_feature_flag": (P(lambda s, o, me: s.update_feature_flag(
        flag_id(s, "bare_metal"), {"enabled": True})),),
    "delete_feature_flag": (P(lambda s, o, me: s.delete_feature_flag(
        s.create_feature_flag(new_flag()).id)),),
    "initialize_default_feature_flags": (
        P(lambda s, o, me: s.initialize_default_feature_flags()),),
})

CATALOGUE_FINDS: dict[str, Callable[[Storage, World, Side], bool]] = {
    "get_feature_flags": lambda s, w, me: "vpc" in {f.key for f in s.get_feature_flags()},
    "get_feature_flag": lambda s, w, me: s.get_feature_flag(flag_id(s)) is not None,
    "get_feature_flag_by_key": lambda s, w, me: s.get_feature_flag_by_key("vpc") is not None,
    "get_permission": lambda s, w, me: s.get_permission(w.catalogue.perm) is not None,
    "get_permission_by_key": lambda s, w, me: s.get_permission_by_key(
        w.catalogue.perm_key) is not None,
    "get_permissions": lambda s, w, me: w.catalogue.perm in {p.id for p in s.get_permissions()},
    "get_hsn_code": lambda s, w, me: s.get_hsn_code(w.catalogue.hsn) is not None,
    "get_hsn_code_by_service_type": lambda s, w, me: s.get_hsn_code_by_service_type(
        w.catalogue.hsn_type) is not None,
    "get_hsn_codes": lambda s, w, me: w.catalogue.hsn in {h.id for h in s.get_hsn_codes()},
    "get_discount_coupon_by_code": lambda s, w, me: s.get_discount_coupon_by_code(
        w.catalogue.coupon_code.lower()) is not None,
    "validate_coupon": lambda s, w, me: s.validate_coupon(w.catalogue.coupon_code, 100_000
                                                          ).valid,
    "get_service_plan": lambda s, w, me: None not in (s.get_service_plan(w.catalogue.plan),
                                                      s.get_service_plan(me.plan)),
    "get_service_plans": lambda s, w, me: {w.catalogue.plan, me.plan} <= {
        p.id for p in s.get_service_plans()},
}


#: kinds the world's resources must name (a VM is not refused: its destroy releases them)
NAMED = {target for kind in KINDS.values() for target in needs(kind).values()
         if (target != "virtual_machine" and kind.parent is None) or target in kind.refs.values()}


def resource_recipes() -> dict[str, tuple[Probe, ...]]:
    """Each kind's methods, aimed at the other tenant's resource of that kind."""
    recipes: dict[str, tuple[Probe, ...]] = {}
    for kind in KINDS.values():
        names = kind.method_names()
        found: dict[str, Probe] = {
            "list": P(lambda s, o, me, k=kind: call(s, k, "list", o.admin.id)),
            "get": P(lambda s, o, me, k=kind: call(s, k, "get", o.resources[k.name])),
            "by_cloudstack_id": P(lambda s, o, me, k=kind: call(
                s, k, "by_cloudstack_id", o.cloudstack_ids[k.name])),
            "create": P(lambda s, o, me, k=kind: call(s, k, "create", resource_input(
                k, fresh("probe"), o.admin.id, named=o.resources))),
            "update": P(lambda s, o, me, k=kind: call(s, k, "update", o.resources[k.name],
                                                      UPDATES[k.name])),
            # the world's resources name one another: deleting a named one is refused
            "delete": P(lambda s, o, me, k=kind: call(s, k, "delete", o.resources[k.name]),
                        platform_rule="is in use" if kind.name in NAMED else ""),
            "observe": P(lambda s, o, me, k=kind: call(s, k, "observe", o.cloudstack_ids[k.name],
                                                       OBSERVATIONS[k.name])),
        }
        for method, name in names.items():
            recipes[name] = (found[method],)
    # child kinds are listed by parent; the behaviour beyond the declarations
    recipes.update({
        "get_vm_snapshots": (P(lambda s, o, me: s.get_vm_snapshots(
            o.resources["virtual_machine"], o.admin.id)),),
        "get_dns_records": (P(lambda s, o, me: s.get_dns_records(o.resources["dns_domain"])),),
        "create_vm_snapshot": (P(lambda s, o, me: s.create_vm_snapshot(resource_input(
            KINDS["vm_snapshot"], fresh("probe"), o.admin.id, named=o.resources))),
            P(lambda s, o, me: s.create_vm_snapshot(resource_input(
                KINDS["vm_snapshot"], fresh("probe"), me.admin.id, named=o.resources)),
              platform_rule="belongs to another user")),
        "create_dns_record": (P(lambda s, o, me: s.create_dns_record(resource_input(
            KINDS["dns_record"], fresh("probe"), o.admin.id, named=o.resources))),),
        "get_ssh_key_by_name": (P(lambda s, o, me: s.get_ssh_key_by_name(
            f"key-{o.name}", o.admin.id)),),
        "get_reserved_ip_by_address": (P(lambda s, o, me: s.get_reserved_ip_by_address(
            s_ip(o))),),
        "attach_volume": (P(lambda s, o, me: s.attach_volume(
            o.resources["volume"], o.resources["virtual_machine"])),
            P(lambda s, o, me: s.attach_volume(me.resources["volume"],
                                               o.resources["virtual_machine"]),
              platform_rule="belongs to another user")),
        "detach_volume": (P(lambda s, o, me: s.detach_volume(o.resources["volume"]),
                            platform_rule="cannot detach"),),
        "restore_vm_snapshot": (P(lambda s, o, me: s.restore_vm_snapshot(
            o.resources["vm_snapshot"])),),
    })
    return recipes


def s_ip(side: Side) -> str:
    """The address of ``side``'s reserved IP (the sample derives it from the side's name)."""
    return str(SAMPLES["reserved_ip"](side.name)["ip_address"])


RECIPES.update(resource_recipes())


@pytest.fixture(scope="module")
def world(server_dsn: str) -> Iterator[World]:
    """The world, built once: no acting context is left in force around the tests."""
    with module_storage(server_dsn) as (store, dsn), psycopg.connect(
            dsn, autocommit=True) as conn:
        yield build_world(store, conn)


def other_of(world: World, side: Side) -> Side:
    return world.b if side is world.a else world.a


class TestClassification:
    def test_every_public_method_is_classified(self) -> None:
        """POLICY names exactly the public methods of Storage, and each is guarded by it."""
        assert set(public_methods(Storage)) == set(POLICY)
        for name in GUARDED:
            assert getattr(Storage, name).access is POLICY[name], name
        assert not hasattr(Storage.acting_as, "access")

    def test_guard_refuses_an_unclassified_method(self) -> None:
        """A Storage subclass with a public method missing from POLICY cannot be built."""

        class Extended(Storage):
            def export_everything(self) -> None:
                """Unclassified on purpose."""

        with pytest.raises(TypeError, match="export_everything"):
            guard(Extended)

    def test_every_guarded_method_has_a_recipe(self) -> None:
        """A method added to POLICY without a recipe here fails the matrix."""
        assert set(RECIPES) == set(GUARDED)
        assert [] == [name for name, probes in RECIPES.items() if not probes]
        assert set(CATALOGUE_FINDS) == set(CATALOGUE)


class TestNoActor:
    @pytest.mark.parametrize("method", GUARDED)
    def test_refused_without_a_context(self, world: World, method: str) -> None:
        """With no acting context every guarded call raises ContextError, appending nothing."""
        assert context.current_or_none() is None
        before = world.position()
        for probe in RECIPES[method]:
            with pytest.raises(ContextError):
                probe.call(world.storage, world.b, world.a)
        assert world.position() == before


class TestCatalogue:
    @pytest.mark.parametrize("method", CATALOGUE)
    def test_tenant_reads_the_platform_catalogue(self, world: World, method: str) -> None:
        """Each tenant finds the platform's published catalogue entries (and its own plan)."""
        for me in (world.a, world.b):
            with world.storage.acting_as(actor_id=me.admin.id):
                assert CATALOGUE_FINDS[method](world.storage, world, me), me.name

    def test_tenant_plans_list_no_other_tenants_plan(self, world: World) -> None:
        """get_service_plans as A lists the platform's plan and A's, never B's."""
        with world.storage.acting_as(actor_id=world.a.admin.id):
            plans = {p.id for p in world.storage.get_service_plans(world.b.org)}
        assert world.b.plan not in plans
        assert {world.catalogue.plan, world.a.plan} <= plans


def outcome_of(call: Callable[[], Any]) -> Any:
    """What a call answered: its result, or the project error it raised."""
    try:
        return call()
    except AkashOneError as exc:
        return exc


def reach(world: World, method: str, me: Side, other: Side, probe: Probe, *,
          on_behalf: bool = False) -> None:
    """Call ``probe`` acting as ``me``'s admin (or as the platform on ``me``'s behalf);
    nothing of ``other`` may be seen or changed."""
    with world.storage.acting_as(system="matrix"):  # earlier calls' activity rows land now
        world.storage.get_recent_activities(1)
    before, rows = world.position(), world.checksum(other)
    acting = (world.storage.acting_as(actor_id=world.root, organization_id=me.org)
              if on_behalf else world.storage.acting_as(actor_id=me.admin.id))
    with acting:
        outcome = outcome_of(lambda: probe.call(world.storage, other, me))
    assert not isinstance(outcome, ContextError), f"{method}: context refused: {outcome!r}"
    refused_to = ((Access.PLATFORM_WIDE,) if on_behalf
                  else (Access.PLATFORM, Access.PLATFORM_WIDE))
    if POLICY[method] in refused_to:
        assert type(outcome) is PermissionDeniedError, f"{method} answered {outcome!r}"
        assert world.position() == before, f"{method} appended events"
        return
    refused = isinstance(outcome, PermissionDeniedError | NotFoundError)
    if isinstance(outcome, AkashOneError) and not refused:
        # e.g. a DuplicateError naming the other's value; a ValidationError only where the
        # probe breaks a rule about the caller's own input
        assert probe.invalid, f"{method} answered {outcome!r}"
        assert isinstance(outcome, ValidationError), f"{method} answered {outcome!r}"
    assert not (probe.succeeds and isinstance(outcome, Exception)), f"{method}: {outcome!r}"
    assert not (POLICY[method] is Access.CATALOGUE and isinstance(outcome, Exception)), (
        f"{method}: a catalogue read failed for a tenant: {outcome!r}")
    # a refusal's message echoes the caller's own arguments; answers are searched
    shown = "" if refused else text_of(outcome).lower()
    echoed = {str(getattr(other, name)).lower() for name in probe.echoes}
    leaked = sorted(t for t in other.tokens - echoed if t in shown)
    assert leaked == [], f"{method} showed {other.name}'s {leaked}: {shown[:300]}"
    touched = world.originators_since(before) & other.aggregates
    assert touched == set(), f"{method} appended events to {other.name}'s {touched}"
    assert world.checksum(other) == rows, f"{method} changed {other.name}'s rows"


class TestTenants:
    @pytest.mark.parametrize("method", GUARDED)
    def test_tenant_cannot_reach_the_other_tenant(self, world: World, method: str) -> None:
        """As A aimed at B's records, then as B aimed at A's: refused or nothing of the
        other shows, no event of the other's aggregates, the other's rows unchanged."""
        for me in (world.a, world.b):
            for probe in RECIPES[method]:
                reach(world, method, me, other_of(world, me), probe)


class TestOnBehalf:
    @pytest.mark.parametrize("method", GUARDED)
    def test_platform_acting_for_a_tenant_cannot_reach_the_other(self, world: World,
                                                                 method: str) -> None:
        """The platform acting on A's behalf (a super admin with ``organization_id=A``) is
        confined to A as A is: aimed at B's records, refused or nothing of B shows, no event
        of B's aggregates, B's rows unchanged; work over every organization at once
        (``PLATFORM_WIDE``: metering, the retention sweep) is refused, not run beyond A."""
        for me in (world.a, world.b):
            for probe in RECIPES[method]:
                reach(world, method, me, other_of(world, me), probe, on_behalf=True)


class TestPlatform:
    @pytest.mark.parametrize("method", GUARDED)
    def test_super_admin_is_not_refused(self, world: World, method: str) -> None:
        """The super admin may call every method: reads of B's records find them; writes,
        each aimed at a throwaway tenant of its own, succeed (or meet the one business rule
        their probe names)."""
        read = method.startswith(READ_PREFIXES)
        target = world.b if read else throwaway_side(world)
        with world.storage.acting_as(actor_id=world.root):
            for probe in RECIPES[method]:
                result = outcome_of(lambda p=probe: p.call(world.storage, target, world.a))
                if isinstance(result, AkashOneError):
                    assert not isinstance(result, ContextError), f"{method}: {result!r}"
                    assert probe.platform_rule, f"{method} failed for the platform: {result!r}"
                    assert probe.platform_rule in str(result), f"{method}: {result!r}"
                    continue
                assert not probe.platform_rule, f"{method} returned {result!r}"
                if read:
                    assert result, f"{method} found nothing of {target.name}: {result!r}"


class TestActingContexts:
    def test_organization_without_an_actor_is_invalid(self, world: World) -> None:
        """acting_as(organization_id=B) alone names no actor: ValidationError on actor_id."""
        with pytest.raises(ValidationError) as info:
            world.storage.acting_as(organization_id=world.b.org)
        assert info.value.fields == ["actor_id"]
        assert context.current_or_none() is None

    def test_unknown_actor_kind_is_invalid(self, world: World) -> None:
        """actor_kind is 'user' or 'system', exactly: 'User' is refused."""
        with pytest.raises(ValidationError) as info:
            world.storage.acting_as(world.a.admin.id, actor_kind="User")
        assert info.value.fields == ["actor_kind"]

    def test_unknown_actor_is_refused(self, world: World) -> None:
        """An actor id with no users row raises ContextError."""
        with pytest.raises(ContextError, match="unknown actor"), \
                world.storage.acting_as(actor_id=uuid.uuid4()):
            pass  # the actor is resolved on entering

    def test_tenant_user_naming_another_organization_is_refused(self, world: World) -> None:
        """A's user naming organization B is refused, not widened or narrowed."""
        with pytest.raises(ContextError, match="does not belong"), \
                world.storage.acting_as(actor_id=world.a.admin.id, organization_id=world.b.org):
            pass  # the actor is resolved on entering

    @pytest.mark.parametrize("target", ["none", "other"])
    def test_tenant_user_cannot_move_itself_out(self, world: World, target: str) -> None:
        """A's user setting its own organization_id to None or to B is refused, unchanged."""
        s, me = world.storage, world.a.admin
        org = None if target == "none" else world.b.org
        before = world.position()
        with s.acting_as(actor_id=me.id):
            with pytest.raises(PermissionDeniedError) as info:
                s.update_user(me.id, {"organization_id": org})
            assert type(info.value) is PermissionDeniedError
            user = s.get_user(me.id)
        assert user is not None
        assert user.organization_id == world.a.org
        assert world.position() == before

    def test_tenant_user_cannot_make_itself_super_admin(self, world: World) -> None:
        """Promotion to super admin (platform-wide scope) is the platform's alone."""
        s, me = world.storage, world.a.user2
        with s.acting_as(actor_id=me.id):
            with pytest.raises(PermissionDeniedError) as info:
                s.update_user(me.id, {"account_type": "super_admin"})
            assert type(info.value) is PermissionDeniedError
            assert s.get_user(me.id) == me

    def test_system_context_records_its_reason(self, world: World) -> None:
        """Events written in a system context carry its reason in their metadata."""
        s = world.storage
        with s.acting_as(system="matrix nightly job"):
            org = s.create_organization({"name": fresh("reasoned")})
        [event] = [s.app.mapper.to_domain_event(e) for e in s.app.recorder.select_events(org.id)]
        meta = event.metadata  # type: ignore[attr-defined]
        assert (meta["actor_kind"], meta["reason"], meta["actor_id"]) == (
            "system", "matrix nightly job", None)

    def test_super_admin_on_behalf_of_a_tenant(self, world: World) -> None:
        """A super admin naming organization B sees only B, and its events name B."""
        s, b = world.storage, world.b
        with s.acting_as(actor_id=world.root, organization_id=b.org):
            assert {u.organization_id for u in s.get_users()} == {b.org}
            assert s.get_user(world.a.admin.id) is None
            assert s.get_invoice(world.a.invoice) is None
            assert s.get_invoice(b.invoice) is not None
            assert [o.id for o in s.get_organizations()] == [b.org]
            activity = s.create_user_activity({"user_id": b.user2.id, "action": "matrix.seen"})
        [event] = [s.app.mapper.to_domain_event(e)
                   for e in s.app.recorder.select_events(activity.id)]
        meta = event.metadata  # type: ignore[attr-defined]
        assert (meta["actor_id"], meta["organization_id"], meta["on_behalf_of"]) == (
            str(world.root), str(b.org), str(b.org))

    def test_user_without_organization_sees_only_itself(self, world: World) -> None:
        """A user of no organization reads itself, but no organization's records."""
        s, a = world.storage, world.a
        with s.acting_as(system="matrix loner"):
            loner = s.create_user({"username": fresh("loner"),
                                   "email": f"{fresh('loner')}@example.com",
                                   "password": PASSWORD})
        with s.acting_as(actor_id=loner.id):
            assert s.get_user(loner.id) == loner
            assert s.get_users() == []
            assert s.get_organizations() == []
            assert s.get_user(a.admin.id) is None
            assert s.get_invoices(a.admin.id) == []
            assert s.get_team_members(a.org) == []
            assert s.get_recent_activities() == []
            assert s.get_service_plan(a.plan) is None
