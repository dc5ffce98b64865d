"""Hostile values, one field at a time, into every public write method of ``Storage``.

Every command (``create_*``, ``update_*``, ``delete_*``, ``observe_*`` and the others: the
public methods that are neither reads nor session helpers, enumerated from ``POLICY`` as the
access matrix does) has a recipe: a valid call as tenant A (or as the platform, on A's behalf
where the method is the platform's). The sweep replaces one argument, or one field of an
input, or adds one unknown field, with a hostile value (None, wrong types, empty and blank
text, 10^6 characters, NUL, lone surrogates, RTL and zero-width characters, huge and negative
numbers, NaN and infinities, JSON nested 10,000 levels, objects with non-string keys, tenant
B's ids, malformed UUIDs, far-away dates) and checks, for every call:

- it succeeds, or raises one of the project's errors (``akashone_es.errors``), never a
  library's, nor ``InternalError``; a ``ValidationError`` names the field;
- when it raises, the event log has no new event;
- when it succeeds with tenant B's id, nothing of B changed (no event of B's aggregates);
- when it succeeds with a value no field may hold (10^6 characters, NaN, 10^30, a nested
  10,000 levels deep, a malformed UUID, ...), that is a finding too.

The first tests each reproduce one defect the sweep found (each failed on the code it was
written against, and passes since its fix). ``TestSweep`` then runs a seeded sample of the cases
(``AKASHONE_FUZZ_SEED`` picks another sample, ``AKASHONE_FUZZ_SIZE`` the cases per method;
``AKASHONE_FUZZ_SIZE=0`` runs every case). The known defects are left out of the sweep's
verdict (``KNOWN``), so a new one fails it.
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from akashone_es.errors import AkashOneError, InternalError, ValidationError
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind
from akashone_es.storage import Storage
from akashone_es.storage.policy import POLICY, READ_PREFIXES, Access
from tests.integration.access_fixtures import (
    PASSWORD,
    Side,
    World,
    build_world,
    module_storage,
)
from tests.integration.resource_samples import OBSERVATIONS, UPDATES
from tests.integration.resource_samples import create as resource_input
from tests.integration.test_billing_storage import END, START, draft, line, usage

SEED = int(os.environ.get("AKASHONE_FUZZ_SEED", "20261207"))
#: cases per method (0: every case)
SIZE = int(os.environ.get("AKASHONE_FUZZ_SIZE", "150"))
#: a file every outcome is appended to (for triage), when set
LOG = os.environ.get("AKASHONE_FUZZ_LOG")

#: what is not a write: reads, session helpers, and the read-only view of the past
WRITES = sorted(name for name, access in POLICY.items()
                if access is not Access.SESSION and not name.startswith(READ_PREFIXES)
                and name != "as_of")
#: run last: a success of these changes what every later call stands on
LAST = ("erase_personal_data", "meter", "retention_sweep")
WRITES = [m for m in WRITES if m not in LAST] + list(LAST)


def fresh(prefix: str = "fz") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _deep_dict(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


def _deep_list(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


OTHER = object()  # tenant B's record of the kind the slot names
MISSING_ID = uuid.UUID("00000000-0000-4000-8000-00000000f00d")

#: hostile values by label; ``OTHER`` is resolved per slot
HOSTILE: dict[str, Any] = {
    "none": None, "int": 7, "float": 1.5, "true": True, "list": ["x"], "dict": {"a": "b"},
    "bytes": b"xyz", "empty": "", "blank": " \t\n ", "1M-chars": "x" * 10**6,
    "nul": "a\x00b", "surrogate": "a\ud800b", "rtl": "\u202eexe.txt",
    "zero-width": "a\u200bb\ufeff",
    "10**30": 10**30, "-1": -1, "-10**30": -10**30, "nan": float("nan"), "inf": float("inf"),
    "-inf": float("-inf"), "decimal-nan": Decimal("NaN"), "decimal-inf": Decimal("Infinity"),
    "deep-dict": _deep_dict(10_000), "deep-list": _deep_list(10_000),
    "int-keys": {1: "a", 2: "b"}, "tuple-key": {(1, 2): "x"}, "other-tenant": OTHER,
    "bad-uuid": "not-a-uuid", "short-uuid": "1234",
    "uuid-g": "00000000-0000-0000-0000-00000000000g",
    "missing-uuid": MISSING_ID, "nil-uuid": uuid.UUID(int=0),
    "year-1": datetime(1, 1, 1, tzinfo=UTC),
    "year-9999": datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
    "naive": datetime(2025, 6, 1), "date-year-1": date(1, 1, 1),
    "text-year-1": "0001-01-01T00:00:00+00:00", "text-year-9999": "9999-12-31T23:59:59-14:00",
    "numeric-text": "1700000000",
}
#: a success with one of these is a finding: no field of any input may hold them
NEVER = {"1M-chars", "nul", "surrogate", "10**30", "-10**30", "nan", "inf", "-inf",
         "decimal-nan", "decimal-inf", "deep-dict", "deep-list", "int-keys", "tuple-key",
         "bad-uuid", "short-uuid", "uuid-g", "year-1", "year-9999", "naive", "date-year-1",
         "text-year-1", "text-year-9999"}
EXTRA = "zz_unknown_field"


# -- the world --------------------------------------------------------------------------------
@dataclass
class Fuzz:
    world: World
    flag: uuid.UUID  # a feature flag of the sweep's own (others gate creates)
    other_ids: dict[uuid.UUID, uuid.UUID]  # A's record -> B's record of the same kind
    by_field: dict[str, uuid.UUID]  # a field's name -> B's record it could name

    @property
    def s(self) -> Storage:
        return self.world.storage

    @property
    def a(self) -> Side:
        return self.world.a

    @property
    def b(self) -> Side:
        return self.world.b

    def events(self) -> int:
        row = self.world.conn.execute("SELECT count(*) FROM akashone_events").fetchone()
        assert row is not None
        return int(row[0])

    def acting(self, method: str) -> Any:
        access = POLICY[method]
        if access is Access.PLATFORM_WIDE:
            return self.s.acting_as(system="api fuzz")
        if access is Access.PLATFORM:
            return self.s.acting_as(system="api fuzz", organization_id=self.a.org)
        return self.s.acting_as(actor_id=self.a.admin.id)


def _pairs(a: Side, b: Side) -> dict[uuid.UUID, uuid.UUID]:
    pairs = {a.org: b.org, a.admin.id: b.admin.id, a.user2.id: b.user2.id, a.role: b.role,
             a.member: b.member, a.address: b.address, a.method: b.method, a.draft: b.draft,
             a.line: b.line, a.invoice: b.invoice, a.txn_paid: b.txn_paid,
             a.txn_pending: b.txn_pending, a.note: b.note, a.tax: b.tax,
             a.activity: b.activity, a.plan: b.plan}
    pairs.update(zip(a.usage, b.usage, strict=True))
    pairs.update({a.resources[k]: b.resources[k] for k in a.resources})
    return pairs


def _by_field(b: Side) -> dict[str, uuid.UUID]:
    found = {"user_id": b.admin.id, "organization_id": b.org, "invited_by": b.admin.id,
             "granted_by": b.admin.id, "role_id": b.role, "invoice_id": b.invoice,
             "billing_address_id": b.address, "address_id": b.address,
             "payment_method_id": b.method, "method_id": b.method, "member_id": b.member,
             "line_id": b.line, "transaction_id": b.txn_pending, "plan_id": b.plan,
             "parent_id": b.org, "vm_id": b.resources["virtual_machine"],
             "volume_id": b.resources["volume"], "snapshot_id": b.resources["vm_snapshot"]}
    for kind in KINDS.values():
        for field, target in kind.refs.items():
            found.setdefault(field, b.resources[target])
        if kind.parent is not None:
            found.setdefault(kind.parent.field, b.resources[kind.parent.kind])
    return found


@pytest.fixture(scope="module")
def fz(server_dsn: str) -> Iterator[Fuzz]:
    with module_storage(server_dsn) as (store, dsn), psycopg.connect(
            dsn, autocommit=True) as conn:
        world = build_world(store, conn)
        with store.acting_as(system="api fuzz setup"):
            flag = store.create_feature_flag({"key": "fuzz_flag", "name": "Fuzz",
                                              "category": "Test"})
        yield Fuzz(world, flag.id, _pairs(world.a, world.b), _by_field(world.b))


# -- the recipes: a valid call of every write method ------------------------------------------
Recipe = Callable[[Fuzz], dict[str, Any]]


def _address(user: Any) -> dict[str, Any]:
    return {"user_id": user, "address_line1": "1 Fuzz Lane", "city": "Pune",
            "postal_code": "411001", "state_code": "27"}


def _invitation(f: Fuzz) -> str:
    member = f.s.create_team_member({"email": f"{fresh()}@fuzz.example",
                                     "organization_id": f.a.org, "invited_by": f.a.admin.id})
    return str(member.invitation_token)


def _issued(f: Fuzz) -> uuid.UUID:
    admin = f.a.admin
    addr = f.s.get_billing_address(f.a.address)
    return f.s.issue_invoice(draft(f.s, admin, addr, 1000).id).id


def _unbilled(f: Fuzz) -> uuid.UUID:
    """A's admin, with a usage record of the period not billed yet."""
    usage(f.s, f.a.admin)
    return f.a.admin.id


def _throwaway_user(f: Fuzz) -> uuid.UUID:
    name = fresh("erasable")
    return f.s.create_user({"username": name, "email": f"{name}@fuzz.example",
                            "password": PASSWORD, "organization_id": f.a.org}).id


RECIPES: dict[str, Recipe] = {
    "accept_invitation": lambda f: {"data": {"token": _invitation(f), "username": fresh(),
                                             "password": PASSWORD}},
    "assign_permission_to_role": lambda f: {"role_id": f.a.role,
                                            "permission_id": f.a.cat.spare_perm},
    "assign_role_to_user": lambda f: {"user_id": f.a.user2.id, "role_id": f.a.role,
                                      "granted_by": f.a.admin.id},
    "attach_volume": lambda f: {"volume_id": f.a.resources["volume"],
                                "vm_id": f.a.resources["virtual_machine"], "vm_name": "web-1"},
    "cancel_invoice": lambda f: {"invoice_id": _issued(f), "reason": "fuzz"},
    "create_billing_address": lambda f: {"data": _address(f.a.admin.id)},
    "create_discount_coupon": lambda f: {"data": {
        "code": fresh("FZ").upper(), "name": "Fuzz", "discount_type": "percentage",
        "discount_value": 10}},
    "create_feature_flag": lambda f: {"data": {"key": fresh("fz_"), "name": "Fuzz",
                                               "category": "Test"}},
    "create_hsn_code": lambda f: {"data": {"service_type": fresh(), "hsn_code": "9983",
                                           "sac_code": "998315", "description": "Fuzz"}},
    "create_invoice": lambda f: {"data": {
        "user_id": f.a.admin.id, "billing_address_id": f.a.address,
        "billing_period_start": START, "billing_period_end": END, "lines": [line(100)]}},
    "create_invoice_line_item": lambda f: {"data": {"invoice_id": f.a.draft, **line(100)}},
    "create_organization": lambda f: {"data": {"name": fresh("org")}},
    "create_payment_method": lambda f: {"data": {"user_id": f.a.admin.id, "gateway": "razorpay",
                                                 "type": "upi", "upi_id": "fuzz@okbank"}},
    "create_payment_transaction": lambda f: {"data": {
        "invoice_id": f.a.invoice, "gateway": "razorpay", "gateway_transaction_id": fresh("pay"),
        "amount": 100}},
    "create_permission": lambda f: {"data": {"key": f"fuzz.{fresh('k')}", "name": "Fuzz",
                                             "category": "fuzz"}},
    "create_role": lambda f: {"data": {"name": fresh("role"), "organization_id": f.a.org}},
    "create_service_plan": lambda f: {"data": {"name": fresh("plan"), "cpu": 1, "memory": 512,
                                               "storage": 10, "organization_id": f.a.org}},
    "create_tax_calculation": lambda f: {"data": {
        "invoice_id": f.a.draft, "user_id": f.a.admin.id, "supplier_state": "Maharashtra",
        "supplier_state_code": "27", "customer_state": "Karnataka", "customer_state_code": "29",
        "tax_type": "IGST", "taxable_amount": 100, "igst_rate": Decimal(18), "igst_amount": 18,
        "total_tax_amount": 18}},
    "create_team_member": lambda f: {"data": {"email": f"{fresh()}@fuzz.example",
                                              "organization_id": f.a.org,
                                              "invited_by": f.a.admin.id}},
    "create_usage_record": lambda f: {"data": {
        "user_id": f.a.admin.id, "resource_type": "compute", "resource_id": "vm-fuzz",
        "resource_name": "vm-fuzz", "metric_type": "runtime", "quantity": Decimal(1),
        "period_start": START, "period_end": END}},
    "create_user": lambda f: {"data": {"username": (n := fresh("user")),
                                       "email": f"{n}@fuzz.example", "password": PASSWORD,
                                       "organization_id": f.a.org}},
    "create_user_activity": lambda f: {"data": {"user_id": f.a.admin.id,
                                                "action": "fuzz.probe"}},
    "delete_billing_address": lambda f: {"address_id": f.a.address},
    "delete_discount_coupon": lambda f: {"coupon_id": f.a.cat.coupon},
    "delete_feature_flag": lambda f: {"flag_id": f.flag},
    "delete_hsn_code": lambda f: {"code_id": f.a.cat.hsn},
    "delete_invoice": lambda f: {"invoice_id": f.a.draft},
    "delete_invoice_line_item": lambda f: {"line_id": f.a.line},
    "delete_payment_method": lambda f: {"method_id": f.a.method},
    "delete_role": lambda f: {"role_id": f.a.role},
    "delete_service_plan": lambda f: {"plan_id": f.a.plan},
    "delete_team_member": lambda f: {"member_id": f.a.member},
    "detach_volume": lambda f: {"volume_id": f.a.resources["volume"]},
    "erase_personal_data": lambda f: {"user_id": _throwaway_user(f),
                                      "reason": "data principal request"},
    "generate_invoice": lambda f: {"data": {"user_id": _unbilled(f), "period_start": START,
                                            "period_end": END}},
    "increment_coupon_usage": lambda f: {"coupon_id": f.a.cat.coupon},
    "initialize_default_feature_flags": lambda f: {},
    "initialize_default_permissions": lambda f: {},
    "initialize_default_roles": lambda f: {},
    "initialize_default_service_plans": lambda f: {},
    "issue_credit_note": lambda f: {"invoice_id": f.a.invoice, "amount": 100,
                                    "reason": "fuzz", "kind": "credit_note"},
    "issue_invoice": lambda f: {"invoice_id": draft(f.s, f.a.admin, f.s.get_billing_address(
        f.a.address), 1000).id, "coupon_code": None},
    "mark_overdue_invoices": lambda f: {"at": datetime(2025, 1, 1, tzinfo=UTC)},
    "mark_usage_records_as_billed": lambda f: {"record_ids": [f.a.usage[0]],
                                               "invoice_id": f.a.draft},
    "meter": lambda f: {"until": datetime(2020, 1, 1, tzinfo=UTC)},
    "remove_permission_from_role": lambda f: {"role_id": f.a.role,
                                              "permission_id": f.a.cat.perm},
    "remove_role_from_user": lambda f: {"user_id": f.a.admin.id, "role_id": f.a.role},
    "restore_vm_snapshot": lambda f: {"snapshot_id": f.a.resources["vm_snapshot"]},
    "retention_sweep": lambda f: {"today": date(2026, 1, 1), "holds": ["2025-26"]},
    "set_default_billing_address": lambda f: {"user_id": f.a.admin.id,
                                              "address_id": f.a.address},
    "set_default_payment_method": lambda f: {"user_id": f.a.admin.id, "method_id": f.a.method},
    "update_billing_address": lambda f: {"address_id": f.a.address,
                                         "changes": {"city": "Nagpur"}},
    "update_discount_coupon": lambda f: {"coupon_id": f.a.cat.coupon,
                                         "changes": {"name": "Fuzz"}},
    "update_feature_flag": lambda f: {"flag_id": f.flag, "changes": {"name": "Fuzz"}},
    "update_hsn_code": lambda f: {"code_id": f.a.cat.hsn, "changes": {"description": "Fuzz"}},
    "update_invoice": lambda f: {"invoice_id": f.a.draft, "changes": {"notes": "fuzz"}},
    "update_payment_method": lambda f: {"method_id": f.a.method,
                                        "changes": {"card_brand": "visa"}},
    "update_payment_transaction": lambda f: {"transaction_id": f.a.txn_pending,
                                             "changes": {"gateway_order_id": "order_fuzz"}},
    "update_role": lambda f: {"role_id": f.a.role, "changes": {"name": fresh("role")}},
    "update_service_plan": lambda f: {"plan_id": f.a.plan, "changes": {"price": 1}},
    "update_team_member": lambda f: {"member_id": f.a.member,
                                     "changes": {"email": f"{fresh()}@fuzz.example"}},
    "update_user": lambda f: {"user_id": f.a.user2.id, "changes": {"username": fresh("user")}},
}


def _kind_recipes() -> dict[str, Recipe]:
    found: dict[str, Recipe] = {}
    for kind in KINDS.values():
        names = kind.method_names()
        if "create" in names:
            found[names["create"]] = lambda f, k=kind: {"data": resource_input(
                k, fresh(), f.a.admin.id, named=f.a.resources)}
        if "update" in names:
            found[names["update"]] = lambda f, k=kind: {"id": f.a.resources[k.name],
                                                        "changes": dict(UPDATES[k.name])}
        if "delete" in names:
            found[names["delete"]] = lambda f, k=kind: {"id": f.a.resources[k.name]}
        if "observe" in names:
            found[names["observe"]] = lambda f, k=kind: {
                "cloudstack_id": f.a.cloudstack_ids[k.name],
                "observed": dict(OBSERVATIONS[k.name])}
    return found


RECIPES.update(_kind_recipes())


def _kind_of(method: str) -> tuple[str, Kind] | None:
    for kind in KINDS.values():
        for action, name in kind.method_names().items():
            if name == method:
                return action, kind
    return None


@functools.cache
def model_fields(method: str, param: str) -> dict[str, str]:
    """The fields the input model of ``method``'s ``param`` declares, with their annotations
    as text (none when unknown)."""
    found = _kind_of(method)
    if found is not None:
        return _kind_fields(*found)
    fn = inspect.unwrap(getattr(Storage, method))
    annotation = str(inspect.signature(fn).parameters[param].annotation)
    head = annotation.split("|", 1)[0].strip()
    try:
        model = eval(head, fn.__globals__)  # noqa: S307 - the project's own annotation
    except Exception:  # noqa: BLE001 - an annotation that names no model
        return {}
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {n: str(i.annotation) for n, i in model.model_fields.items()}
    return {}


def _kind_fields(action: str, kind: Kind) -> dict[str, str]:
    every = {n: str(i.annotation) for n, i in kind.create_input().model_fields.items()}
    if action == "create":
        return every
    if action == "update":
        return {n: every[n] for n in kind.updatable}
    if action == "observe":
        state = [kind.lifecycle.field] if kind.lifecycle else []
        return {n: every.get(n, "str") for n in [*kind.observed, *state]}
    return {}


def is_moment(method: str, slot: Slot, base: Any) -> bool:
    """Whether the slot holds a date or a date-time."""
    if isinstance(base, date):
        return True
    if slot.field in (None, EXTRA):
        return False
    return "datetime" in model_fields(method, slot.param).get(slot.field, "").lower()


# -- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """Where a hostile value goes: an argument, a field of an input argument, or (field
    ``EXTRA``) a field the input does not have; ``item``: the first item of a list."""

    param: str
    field: str | None = None
    item: bool = False

    @property
    def name(self) -> str:
        if self.item:
            return f"{self.param}.0"
        return self.field or self.param


@dataclass(frozen=True)
class Case:
    method: str
    slot: Slot
    label: str

    @property
    def id(self) -> str:
        return f"{self.method}[{self.slot.name}={self.label}]"


def slots(base: dict[str, Any], method: str) -> list[Slot]:
    """Every slot of ``method``'s call, given a valid call's arguments ``base``."""
    params = [p for p in inspect.signature(getattr(Storage, method)).parameters if p != "self"]
    found = []
    for param in params:
        found.append(Slot(param))
        value = base.get(param)
        if isinstance(value, dict):
            fields = dict.fromkeys([*value, *model_fields(method, param)])
            found += [Slot(param, field) for field in fields]
            found.append(Slot(param, EXTRA))
        elif isinstance(value, list | tuple):
            found.append(Slot(param, item=True))
    return found


def cases(f: Fuzz, method: str) -> list[Case]:
    with f.acting(method):
        base = RECIPES[method](f)
    every = [Case(method, slot, label) for slot in slots(base, method) for label in HOSTILE]
    every = [c for c in every if not (c.label == "other-tenant" and not _id_like(c.slot))]
    if SIZE <= 0 or len(every) <= SIZE:
        return every
    rng = random.Random(f"{SEED}:{method}")
    # every slot meets B's id and 10^6 characters; the rest is sampled
    fixed = [c for c in every if c.label in ("other-tenant", "1M-chars")]
    rest = [c for c in every if c not in fixed]
    return fixed + rng.sample(rest, max(0, SIZE - len(fixed)))


def _id_like(slot: Slot) -> bool:
    name = slot.field if slot.field not in (None, EXTRA) else slot.param
    return bool(name) and (name == "id" or name.endswith(("_id", "_ids")) or name in (
        "invited_by", "granted_by", "record_ids"))


def build_call(f: Fuzz, case: Case) -> tuple[dict[str, Any], Any, Any]:
    """The recipe's arguments with the case's hostile value in its slot (and that value,
    and the valid value it replaced)."""
    kwargs = RECIPES[case.method](f)
    slot = case.slot
    value = HOSTILE[case.label]
    base = _base_value(kwargs, slot)
    if value is OTHER:
        value = _other(f, case.method, slot, kwargs)
    if slot.field is None and not slot.item:
        kwargs[slot.param] = value
    elif slot.item:
        kwargs[slot.param] = [value, *list(kwargs[slot.param])[1:]]
    else:
        data = dict(kwargs[slot.param])
        data[slot.field] = value
        kwargs[slot.param] = data
    return kwargs, value, base


def _base_value(kwargs: dict[str, Any], slot: Slot) -> Any:
    if slot.field is None and not slot.item:
        return kwargs.get(slot.param)
    if slot.item:
        return next(iter(kwargs[slot.param]))
    return kwargs[slot.param].get(slot.field)


def _other(f: Fuzz, method: str, slot: Slot, kwargs: dict[str, Any]) -> Any:
    """Tenant B's record that the slot's value of A's stands for."""
    base = _base_value(kwargs, slot)
    if isinstance(base, list):
        base = base[0] if base else None
    if base in f.other_ids:
        other = f.other_ids[base]
        return [other] if slot.param.endswith("_ids") and not slot.item else other
    name = slot.field if slot.field is not None else slot.param
    found = _kind_of(method)
    if found is not None and name == "id":
        return f.b.resources[found[1].name]
    if found is not None and name == "cloudstack_id" and found[0] == "observe":
        return f.b.cloudstack_ids[found[1].name]
    return f.by_field.get(name, f.b.admin.id)


# -- the verdict ------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: Case
    base: Any  # the valid value the hostile one replaced
    error: BaseException | None
    written: int  # events appended by the call
    b_touched: set[uuid.UUID]

    def describe(self) -> str:
        err = self.error
        what = "succeeded" if err is None else (
            f"{type(err).__module__}.{type(err).__name__}: {str(err)[:240]}")
        extra = f"; {self.written} event(s) written" if err is not None and self.written else ""
        if self.b_touched:
            extra += f"; B's aggregates touched: {len(self.b_touched)}"
        return f"{self.case.id}: {what}{extra}"


def run_case(f: Fuzz, case: Case) -> Outcome:
    with f.acting(case.method):
        kwargs, _, base = build_call(f, case)
        before_events = f.events()
        before = f.world.position()
        try:
            getattr(f.s, case.method)(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - what crossed the API is the finding
            error: BaseException | None = exc
        else:
            error = None
    written = f.events() - before_events
    touched = f.world.originators_since(before) & f.b.aggregates
    return Outcome(case, base, error, written, touched)


#: a rule about two fields may name the other one (a country that does not fit the code)
PARTNERS = {"country": "state_code", "billing_period_start": "billing_period_end",
            "period_start": "period_end", "resource_type": "unit_price"}


def names_field(exc: ValidationError, o: Outcome) -> bool:
    """Whether a refusal names the slot's field (or the argument holding it, or for a
    rule about two fields, its partner)."""
    slot = o.case.slot
    if slot.field is None and not slot.item and isinstance(o.base, dict):
        return True  # a whole input replaced: its own fields are named
    wanted = {slot.name, slot.param} if slot.item else {slot.name}
    if slot.field not in (None, EXTRA):
        wanted.add(PARTNERS.get(slot.field, slot.name))
    text = str(exc)
    return any(str(f) == w or str(f).startswith(f"{w}.") or f" {w}" in text
               for f in exc.fields for w in wanted)


def _uuid(value: Any) -> bool:
    return isinstance(value, uuid.UUID) or (isinstance(value, list) and bool(value)
                                             and isinstance(value[0], uuid.UUID))


#: labels a success with is a finding only where the valid value was of a kind they break
NOT_AN_ID = {"bad-uuid", "short-uuid", "uuid-g"}
NOT_A_MOMENT = {"year-1", "year-9999", "naive", "date-year-1", "text-year-1", "text-year-9999",
                "numeric-text"}


def accepted(o: Outcome) -> bool:
    """Whether a success took a value no field of its kind may hold."""
    label = o.case.label
    if label in NOT_AN_ID:
        return _uuid(o.base)
    if label in NOT_A_MOMENT:
        return is_moment(o.case.method, o.case.slot, o.base)
    return label in NEVER


def problems(o: Outcome) -> list[str]:
    """What is wrong with one call's outcome (nothing: it met the standards)."""
    found = []
    err = o.error
    if err is not None and o.written:
        found.append("written")
    if o.b_touched:
        found.append("cross-tenant")
    if err is None:
        if accepted(o):
            found.append("accepted")
        return found
    if not isinstance(err, AkashOneError):
        found.append("raw")
    elif isinstance(err, InternalError):
        found.append("internal")
    elif isinstance(err, ValidationError):
        if any(not isinstance(f, str) for f in err.fields):
            found.append("field-not-text")
        if not names_field(err, o):
            named_id = slot_is_id_argument(o) and err.fields == ["id"]
            found.append("misnamed-id" if named_id else "unnamed")
    return found


def slot_is_id_argument(o: Outcome) -> bool:
    slot = o.case.slot
    return slot.field is None and not slot.item and slot.param.endswith("_id")


#: the defects the focused tests below reproduce: (method prefix or name, slot name or "*",
#: labels or "*", problem) -> the test that stands for it
#: defects the sweep knows of and leaves out of its verdict (method, slot, case labels, kind
#: of problem; "*" for any): none now, each fixed with its test above
KNOWN: list[tuple[str, str, frozenset[str] | str, str]] = []


def known(o: Outcome, problem: str) -> bool:
    for method, slot, labels, kind in KNOWN:
        if kind != problem:
            continue
        if not (o.case.method == method or (method.endswith("*")
                                            and o.case.method.startswith(method[:-1]))):
            continue
        if slot not in ("*", o.case.slot.name):
            continue
        if labels == "*" or o.case.label in labels:
            return True
    return False


# -- the findings -----------------------------------------------------------------------------
def refusal(f: Fuzz, method: str, **kwargs: Any) -> tuple[BaseException | None, int]:
    """Call ``method`` in its context: what it raised (None: it succeeded) and how many
    events it appended."""
    before = f.events()
    with f.acting(method):
        try:
            getattr(f.s, method)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the outcome is the finding
            return exc, f.events() - before
    return None, f.events() - before


def assert_refused_naming(f: Fuzz, method: str, field: str, **kwargs: Any) -> None:
    error, written = refusal(f, method, **kwargs)
    assert isinstance(error, ValidationError), f"{method}: {error!r}"
    assert field in error.fields, error.fields
    assert written == 0


class TestInternalErrors:
    def test_a_null_due_date_is_refused_or_cleared(self, fz: Fuzz) -> None:
        """UpdateInvoice declares ``due_date: Moment | None``; null passed validation and the
        domain's ``_as_datetime`` parsed str(None): InternalError, naming no field (found on
        commit 1b3522c; the working tree's change to domain/billing.py, not this module's
        author's, makes it pass)."""
        error, written = refusal(fz, "update_invoice", invoice_id=fz.a.draft,
                                 changes={"due_date": None})
        assert error is None or (isinstance(error, ValidationError)
                                 and "due_date" in error.fields), repr(error)
        assert not (error and written)

    @pytest.mark.parametrize("label", ["deep-dict", "deep-list"])
    def test_a_deeply_nested_invoice_id_is_refused_naming_it(self, fz: Fuzz, label: str
                                                             ) -> None:
        """The line item's input is a plain dict: ``parse_id`` calls str() on the value
        before any type check, and str() of a value nested 10,000 levels recurses too deep."""
        assert_refused_naming(fz, "create_invoice_line_item", "invoice_id",
                              data={"invoice_id": HOSTILE[label], **line(100)})


#: a moment field of each kind of input, and a valid call to put numeric text into
NUMERIC_MOMENTS: dict[str, tuple[str, str, Recipe]] = {
    "usage.period_start": ("create_usage_record", "period_start",
                           RECIPES["create_usage_record"]),
    "usage.recorded_at": ("create_usage_record", "recorded_at",
                          RECIPES["create_usage_record"]),
    "invoice.billing_period_start": ("create_invoice", "billing_period_start",
                                     RECIPES["create_invoice"]),
    "coupon.valid_from": ("create_discount_coupon", "valid_from",
                          RECIPES["create_discount_coupon"]),
    "tax.calculated_at": ("create_tax_calculation", "calculated_at",
                          RECIPES["create_tax_calculation"]),
}


class TestMoments:
    @pytest.mark.parametrize("where", NUMERIC_MOMENTS)
    def test_numeric_text_is_not_a_moment(self, fz: Fuzz, where: str) -> None:
        """``Moment`` refuses a number ("must be an ISO 8601 date-time ..., not a number"),
        but pydantic reads the same number written as text as seconds since 1970: every
        moment field of the API takes "1700000000" and appends an event."""
        method, field, recipe = NUMERIC_MOMENTS[where]
        with fz.acting(method):
            kwargs = recipe(fz)
        param = "changes" if "changes" in kwargs else "data"
        kwargs[param] = {**kwargs[param], field: "1700000000"}
        assert_refused_naming(fz, method, field, **kwargs)

    def test_a_period_that_ends_before_it_starts_names_period_end(self, fz: Fuzz) -> None:
        """GenerateInvoice has no order check of its period (InsertInvoice and
        InsertUsageRecord have one): the query finds no usage and the refusal names a
        field 'period' the input does not have, with a rule about usage."""
        with fz.acting("generate_invoice"):
            user = _unbilled(fz)
        assert_refused_naming(fz, "generate_invoice", "period_end", data={
            "user_id": user, "period_start": END, "period_end": START})


#: id arguments a malformed value of is reported as "id" (other methods name the argument)
MISNAMED_IDS = [("delete_billing_address", "address_id"), ("delete_invoice", "invoice_id"),
                ("update_service_plan", "plan_id"), ("delete_team_member", "member_id"),
                ("detach_volume", "volume_id"), ("increment_coupon_usage", "coupon_id")]


class TestFieldNames:
    def test_a_malformed_role_id_names_role_id(self, fz: Fuzz) -> None:
        """The expected behaviour, as delete_role has it."""
        assert_refused_naming(fz, "delete_role", "role_id", role_id="not-a-uuid")

    @pytest.mark.parametrize(("method", "param"), MISNAMED_IDS)
    def test_a_malformed_id_argument_names_the_argument(self, fz: Fuzz, method: str,
                                                        param: str) -> None:
        """``parse_id(value, "id")`` in the method: "invalid input: id: must be a UUID",
        where delete_role, assign_role_to_user, ... name role_id, user_id."""
        with fz.acting(method):
            kwargs = RECIPES[method](fz)
        kwargs[param] = "not-a-uuid"
        assert_refused_naming(fz, method, param, **kwargs)

    def test_bytes_for_a_reference_names_the_reference(self, fz: Fuzz) -> None:
        """Text that is not a UUID is refused naming associated_vm_id; bytes reach another
        parse that names 'id'."""
        assert_refused_naming(fz, "update_reserved_ip", "associated_vm_id",
                              id=fz.a.resources["reserved_ip"],
                              changes={"associated_vm_id": b"xyz"})

    @pytest.mark.parametrize("method", ["update_vpc", "observe_vpc"])
    def test_every_field_a_refusal_names_is_text(self, fz: Fuzz, method: str) -> None:
        """``ValidationError.errors`` is ``list[dict[str, str]]``: {1: "x"} gives field 1
        (an int), so ``", ".join(exc.fields)`` raises TypeError in the caller."""
        with fz.acting(method):
            kwargs = RECIPES[method](fz)
        param = "changes" if method.startswith("update_") else "observed"
        kwargs[param] = {1: "x", (1, 2): "y"}
        error, written = refusal(fz, method, **kwargs)
        assert isinstance(error, ValidationError), repr(error)
        assert written == 0
        assert all(isinstance(field, str) for field in error.fields), error.fields



#: recipes whose valid call changes nothing the sweep stands on (creates, updates, reports)
HARMLESS = [m for m in WRITES if m.startswith(("create_", "update_", "observe_"))]


@pytest.mark.parametrize("method", HARMLESS)
def test_recipe_is_valid(fz: Fuzz, method: str) -> None:
    """Each recipe, unchanged, succeeds: a case's refusal is about its hostile value."""
    with fz.acting(method):
        getattr(fz.s, method)(**RECIPES[method](fz))


# -- the sweep --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", WRITES)
def test_sweep(fz: Fuzz, method: str) -> None:
    """Every sampled case of ``method``: the standards hold (known defects aside)."""
    found = []
    for case in cases(fz, method):
        outcome = run_case(fz, case)
        if LOG:
            with open(LOG, "a", encoding="utf-8", errors="backslashreplace") as out:
                out.write(f"{','.join(problems(outcome)) or 'ok'}\t{outcome.describe()}\n")
        for problem in problems(outcome):
            if not known(outcome, problem):
                found.append(f"[{problem}] {outcome.describe()}")
    assert found == [], f"seed {SEED}, size {SIZE}:\n" + "\n".join(found)


def test_every_write_has_a_recipe() -> None:
    assert set(WRITES) == set(RECIPES)
