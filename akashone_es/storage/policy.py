"""Who may call each public ``Storage`` method, enforced at one door for every method.

Every public method is classified here; ``guard(Storage)`` refuses to build the facade when one
is not, so a method added later cannot slip past the access-matrix test. Each call then:

- refuses to run without an acting context (``ContextError``), except session helpers;
- refuses platform-only methods to a tenant context, and platform-wide ones also to the
  platform acting on one tenant's behalf (``PermissionDeniedError``);
- checks primitive arguments (type, NUL characters, lone surrogates, size) and names the
  parameter in a ``ValidationError`` rather than letting the driver fail on them;
- retries a read once after a dropped connection, then raises ``UnavailableError``;
- sends a read's queries to the hot standby when one is set (``persistence.replica``);
- translates any library exception that escaped into the project's own error tree.

Tenant scoping itself (which rows a tenant sees) lives in each method, and the access-matrix
test (``tests/integration/test_access_matrix.py``) calls every method as two tenants, the
platform and no one to prove that nothing crosses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

import psycopg
import pydantic
from eventsourcing.persistence import InterfaceError as LibraryInterfaceError
from eventsourcing.persistence import OperationalError as LibraryOperationalError

from akashone_es import context
from akashone_es.errors import (
    AkashOneError,
    InternalError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
    first_line,
)
from akashone_es.logging import get_logger
from akashone_es.persistence import replica
from akashone_es.resources import resource_methods
from akashone_es.storage.limits import IDS_MAX, day_problem, moment_problem, text_problem

log = get_logger(__name__)
Result = TypeVar("Result")
#: the longest text a lookup argument may carry (the longest column is 2,000 characters)
MAX_ARGUMENT_TEXT = 10_000
READ_PREFIXES = ("get_", "has_", "user_has_", "verify_", "validate_")
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, LibraryOperationalError,
               LibraryInterfaceError)


class Access(StrEnum):
    """How a method is scoped."""

    #: a tenant reads and changes only its own organization's records; the platform all
    TENANT = "tenant"
    #: platform actors only (a super admin, or a system context); refused to tenants
    PLATFORM = "platform"
    #: platform actors acting platform-wide: work over every tenant at once (metering, the
    #: retention sweep) and writes of what every tenant shares (the catalogue, feature
    #: flags, seeding); refused to tenants and to the platform acting on one tenant's
    #: behalf, whose scope it would reach beyond
    PLATFORM_WIDE = "platform-wide"
    #: the shared catalogue (permissions, HSN/SAC codes, plans, coupon codes): any context
    #: may read what is published to it; writes are PLATFORM_WIDE or TENANT methods
    CATALOGUE = "catalogue"
    #: no records: opening a context, closing the storage, looking up a projection
    SESSION = "session"


#: refused to tenants (PLATFORM_WIDE, also to the platform acting for one tenant)
PLATFORM_ONLY = (Access.PLATFORM, Access.PLATFORM_WIDE)
T, P, W, C, S = (Access.TENANT, Access.PLATFORM, Access.PLATFORM_WIDE, Access.CATALOGUE,
                 Access.SESSION)

POLICY: dict[str, Access] = {
    # session
    "acting_as": S, "close": S, "projection": S,
    # time travel: replays the log (as a rebuild does) for auditors; its reads are guarded
    "as_of": P,
    # erasure by key: the platform carries out a data principal's request, and the sweep
    "erase_personal_data": P, "retention_sweep": W,
    # users and organizations
    "create_organization": P, "get_organization": T, "get_organizations": T,
    "create_user": T, "get_user": T, "get_user_by_email": T, "get_user_by_username": T,
    "get_users": T, "update_user": T, "verify_password": T, "has_super_admin": P,
    # permissions and roles
    "create_permission": W, "get_permission": C, "get_permission_by_key": C,
    "get_permissions": C, "initialize_default_permissions": W,
    "initialize_default_roles": W, "create_role": T, "get_role": T, "get_roles": T,
    "update_role": T, "delete_role": T, "assign_permission_to_role": T,
    "remove_permission_from_role": T, "get_role_permissions": T, "assign_role_to_user": T,
    "remove_role_from_user": T, "get_user_roles": T, "user_has_permission": T,
    # teams and activity
    "create_team_member": T, "get_team_member": T, "get_team_member_by_email": T,
    "get_team_members": T, "update_team_member": T, "delete_team_member": T,
    "accept_invitation": T, "create_user_activity": T, "get_user_activity": T,
    "get_user_activities": T, "get_user_activities_by_action": T,
    "get_recent_activities": T,
    # customers
    "create_billing_address": T, "get_billing_address": T, "get_billing_addresses": T,
    "get_default_billing_address": T, "update_billing_address": T,
    "delete_billing_address": T, "set_default_billing_address": T,
    "create_payment_method": T, "get_payment_method": T, "get_payment_methods": T,
    "get_default_payment_method": T, "update_payment_method": T,
    "delete_payment_method": T, "set_default_payment_method": T,
    # invoices: the platform is the supplier; a customer tenant reads its own documents
    "create_invoice": P, "get_invoice": T, "get_invoice_by_number": T, "get_invoices": T,
    "get_invoice_buyer": T,
    "update_invoice": P, "delete_invoice": P, "issue_invoice": P, "cancel_invoice": P,
    "mark_overdue_invoices": P, "generate_invoice": P, "get_next_invoice_number": P,
    "create_invoice_line_item": P, "get_invoice_line_item": T, "get_invoice_line_items": T,
    "delete_invoice_line_item": P, "issue_credit_note": P, "get_adjustment_notes": T,
    "get_adjustment_notes_by_number": T,
    "create_tax_calculation": P, "get_tax_calculation": T, "get_tax_calculations": T,
    # usage is metered by the platform; a tenant starts payments, the gateway's callbacks
    # (the platform) settle them
    "create_usage_record": P, "get_usage_record": T, "get_usage_records": T,
    "get_unbilled_usage_records": T, "mark_usage_records_as_billed": P,
    "create_payment_transaction": T, "get_payment_transaction": T,
    "get_payment_transaction_by_gateway_id": T, "get_payment_transactions": T,
    "update_payment_transaction": P,
    # catalogue
    "create_hsn_code": W, "get_hsn_code": C, "get_hsn_code_by_service_type": C,
    "get_hsn_codes": C, "update_hsn_code": W, "delete_hsn_code": W,
    "create_discount_coupon": W, "get_discount_coupon": P, "get_discount_coupons": P,
    "get_discount_coupon_by_code": C, "validate_coupon": C, "update_discount_coupon": W,
    "delete_discount_coupon": W, "increment_coupon_usage": P,
    "create_service_plan": T, "get_service_plan": C, "get_service_plans": C,
    "update_service_plan": T, "delete_service_plan": T,
    "initialize_default_service_plans": W,
    # feature flags: global, read by anyone, set by the platform (AkashOne let anyone)
    "get_feature_flags": C, "get_feature_flag": C, "get_feature_flag_by_key": C,
    "create_feature_flag": W, "update_feature_flag": W, "delete_feature_flag": W,
    "initialize_default_feature_flags": W,
}
#: cloud resources: every kind's methods, and their behaviour (attach, detach, restore, the
#: lookups by name and address), are tenant-scoped as billing's are
POLICY.update(dict.fromkeys(resource_methods(), T))
POLICY.update(dict.fromkeys(("get_ssh_key_by_name", "get_reserved_ip_by_address",
                             "attach_volume", "detach_volume"), T))
#: a revert sets the VM Running or Stopped, which metering bills: recorded by the platform
#: after CloudStack's revert job, as a billed field's update is (``update_<kind>``)
POLICY["restore_vm_snapshot"] = P
#: metering records the supplier's usage, as create_usage_record does; observations are the
#: CloudStack sync's
POLICY["meter"] = W
POLICY.update(dict.fromkeys(resource_methods("observe"), P))


def public_methods(cls: type) -> list[str]:
    """The public methods of ``cls`` (what the access matrix must cover)."""
    return sorted(name for name, value in inspect.getmembers(cls, inspect.isfunction)
                  if not name.startswith("_"))


def guard(cls: type) -> type:
    """Wrap every public method of ``cls`` in its policy; unclassified methods are an error."""
    missing = [name for name in public_methods(cls) if name not in POLICY]
    if missing:
        msg = (f"Storage methods without an access classification: {', '.join(missing)} "
               "(classify each in POLICY, akashone_es/storage/policy.py)")
        raise TypeError(msg)
    for name in public_methods(cls):
        if POLICY[name] is not Access.SESSION:
            setattr(cls, name, _guarded(name, getattr(cls, name), POLICY[name]))
    return cls


def _guarded(name: str, fn: Callable[..., Any], access: Access) -> Callable[..., Any]:
    signature = inspect.signature(fn)
    checks = {p: check for p, param in signature.parameters.items()
              if (check := _check_for(str(param.annotation), p)) is not None}
    read = name.startswith(READ_PREFIXES)
    attempts = 2 if read else 1
    # positional arguments named without ``Signature.bind`` (a tenth of its cost) when they
    # fill every parameter without a default and no more: any other call is bound in full
    names, required = positional_names(signature)

    @functools.wraps(fn)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        ctx = context.current()
        if access in PLATFORM_ONLY and not ctx.is_platform_actor:
            raise PermissionDeniedError(f"{name} is for the platform only (a super admin or "
                                        "a system context), not for a tenant")
        if access is Access.PLATFORM_WIDE and not ctx.is_platform:
            raise PermissionDeniedError(f"{name} works across every organization: the platform "
                                        "runs it platform-wide (act without organization_id)")
        if not kwargs and required <= len(args) <= len(names):
            arguments: Iterable[tuple[str, Any]] = zip(names, args, strict=False)
        else:
            arguments = list(signature.bind(self, *args, **kwargs).arguments.items())[1:]
        for parameter, value in arguments:
            check = checks.get(parameter)
            if check is not None:
                check(parameter, value)
            _check_text(parameter, value, 0)
        try:
            with replica.call(read, self._after_write):
                return reconnecting(self, name, attempts, lambda: fn(self, *args, **kwargs))
        except AkashOneError:
            raise
        except pydantic.ValidationError as exc:
            raise _validation_error(exc) from None
        except Exception as exc:
            log.exception("storage.internal_error", method=name)
            raise InternalError(f"{name} failed unexpectedly: {type(exc).__name__}: "
                                f"{first_line(exc)}") from exc

    call.access = access  # type: ignore[attr-defined]
    return call


def positional_names(signature: inspect.Signature) -> tuple[list[str], int]:
    """The names of a method's parameters after ``self`` when all are plain (positional or
    keyword, no ``*args``/``**kwargs``), and how many have no default; ``([], 1)`` when any
    is not (so no call takes the positional shortcut)."""
    parameters = list(signature.parameters.values())[1:]
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in parameters):
        return [], 1
    return [p.name for p in parameters], sum(p.default is p.empty for p in parameters)


def reconnecting(storage: Any, name: str, attempts: int, work: Callable[[], Result]) -> Result:
    """``work``, tried again after a dropped connection (``attempts`` in all: 2 for reads,
    1 for writes, which are never repeated blind); then ``UnavailableError``."""
    for attempt in range(attempts):
        try:
            return work()
        except UNAVAILABLE as exc:
            if attempt + 1 < attempts:
                log.warning("storage.read_retried", method=name, error=str(exc)[:200])
                check_pool(storage)
                continue
            raise UnavailableError(f"the database is unavailable: {first_line(exc)}"
                                   ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _check_for(annotation: str, parameter: str = "") -> Callable[[str, Any], None] | None:
    """The argument check for a parameter's annotation (``X | dict[str, Any]``: an input),
    or for its name where the name says more (a ``limit``)."""
    if parameter in _NAMED_CHECKS:
        return _NAMED_CHECKS[parameter]
    if annotation.endswith("| dict[str, Any]"):
        return _input_check
    return _TYPE_CHECKS.get(annotation)


def check_pool(storage: Any) -> None:
    """After a dropped connection, let the pool test and replace its idle connections."""
    pool = getattr(storage._datastore, "pool", None)
    check = getattr(pool, "check", None)
    if check is not None:
        try:
            check()
        except Exception:  # noqa: BLE001 - the retry reports the real failure
            log.debug("storage.pool_check_failed")


def _validation_error(exc: pydantic.ValidationError) -> ValidationError:
    return ValidationError([
        {"field": ".".join(str(p) for p in e["loc"]) or "input",
         "rule": e["msg"].removeprefix("Value error, ")} for e in exc.errors()])


def _check_text(field: str, value: Any, depth: int) -> None:
    """Text the database could not store (NUL, lone surrogates) or too long to be a value."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValidationError.single(field, problem)
    elif depth < 8 and isinstance(value, dict):
        # an input dict's keys are the model's fields: name them as the model would
        prefix = f"{field}." if depth else ""
        for key, item in value.items():
            _check_text(f"{prefix}{key}" if isinstance(key, str) else field, key, depth + 1)
            _check_text(f"{prefix}{key}", item, depth + 1)
    elif depth < 8 and isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            _check_text(f"{field}.{index}", item, depth + 1)


def _expect(kinds: tuple[type, ...], rule: str, *, optional: bool) -> Callable[[str, Any], None]:
    def check(field: str, value: Any) -> None:
        if value is None and optional:
            return
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise ValidationError.single(field, rule)
        if isinstance(value, str) and len(value) > MAX_ARGUMENT_TEXT:
            raise ValidationError.single(field, f"at most {MAX_ARGUMENT_TEXT} characters")

    return check


def _id_check(optional: bool) -> Callable[[str, Any], None]:
    import uuid  # noqa: PLC0415 - local: only the check needs it

    return _expect((uuid.UUID, str), "must be a UUID", optional=optional)


def _input_check(field: str, value: Any) -> None:
    """An input argument: a mapping of fields, or the input model itself."""
    if not isinstance(value, dict | pydantic.BaseModel):
        raise ValidationError.single(field, "must be an object of fields")


def _filters_check(field: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise ValidationError.single(field, "must be an object of filters")


def _moment_check(optional: bool) -> Callable[[str, Any], None]:
    """A date-time argument: aware, in the range every input's moments keep to."""

    def check(field: str, value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, datetime):
            raise ValidationError.single(field, "must be a date-time with a time zone")
        problem = moment_problem(value)
        if problem is not None:
            raise ValidationError.single(field, problem)

    return check


def _day_check(field: str, value: Any) -> None:
    if value is None:
        return
    problem = day_problem(value) if isinstance(value, date) else "must be a date (YYYY-MM-DD)"
    if problem is not None:
        raise ValidationError.single(field, problem)


def _collection_check(item: Callable[[str, Any], None], most: int
                      ) -> Callable[[str, Any], None]:
    """A list (or tuple, set) argument: at most ``most`` items, each checked by ``item``."""

    def check(field: str, value: Any) -> None:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValidationError.single(field, "must be a list")
        if len(value) > most:
            raise ValidationError.single(field, f"at most {most} items")
        for index, each in enumerate(value):
            item(f"{field}.{index}", each)

    return check


def _limit_check(field: str, value: Any) -> None:
    """How many rows a read returns: a count the database takes (None: its default)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError.single(field, "must be an integer")
    if not 1 <= value <= LIMIT_MAX:
        raise ValidationError.single(field, f"must be between 1 and {LIMIT_MAX}")


_TYPE_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "str": _expect((str,), "must be a string", optional=False),
    "str | None": _expect((str,), "must be a string", optional=True),
    "int": _expect((int,), "must be an integer", optional=False),
    "int | None": _expect((int,), "must be an integer", optional=True),
    "bool": _expect((bool,), "must be true or false", optional=False),
    "UUID | str": _id_check(optional=False),
    "UUID | str | None": _id_check(optional=True),
    "dict[str, Any]": _input_check,
    "dict[str, Any] | None": _filters_check,
    "datetime": _moment_check(optional=False),
    "datetime | None": _moment_check(optional=True),
    "date | None": _day_check,
    "Iterable[str]": _collection_check(_expect((str,), "must be a string", optional=False),
                                       most=100),
    "Sequence[UUID | str]": _collection_check(_id_check(optional=False), most=IDS_MAX),
}
#: the most rows one read may be asked for (``limit``)
LIMIT_MAX = 10_000
_NAMED_CHECKS: dict[str, Callable[[str, Any], None]] = {"limit": _limit_check}
