"""Moments within bounds: every date-time an input or an argument carries is refused, by
name, when PostgreSQL would store it but Python could not read it back (or PostgreSQL would
refuse it), and nothing is written.

Found by fuzzing: ``update_user(own_id, {"last_login": "0001-01-01T00:00:00+14:00"})`` (1 BC in
UTC) raised an error naming ``input`` after its event and row were committed, and from then
on every read of that user (and ``get_users``) failed, for everyone, with no way back through
the API."""

from __future__ import annotations

import inspect
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any

import pydantic
import pytest

from akashone_es import Storage
from akashone_es.errors import ValidationError
from akashone_es.storage import limits as lim
from tests.conftest import log_size
from tests.integration.test_bounded_input import END, START, customer, issued_invoice, usage

#: 1 BC and the year 10000 in UTC, an offset PostgreSQL refuses, a time before 1970
OUT_OF_RANGE = {
    "before year 1 in UTC": "0001-01-01T00:00:00+14:00",
    "after year 9999 in UTC": "9999-12-31T23:00:00-14:00",
    "offset beyond 14 hours": "2025-01-01T00:00:00+23:59",
    "before 1970": "1969-12-31T23:59:59+00:00",
    "the year 3000": "3000-01-01T00:00:00+00:00",
}
INPUT_MODULES = ("akashone_es.storage.inputs", "akashone_es.storage.billing_inputs")
#: a read's bounds store nothing: they refuse only what cannot be read (an open bound such as
#: 9999-12-31 is fine)
FILTERS = {"InvoiceFilters", "UsageFilters"}
UNREADABLE = ("before year 1 in UTC", "after year 9999 in UTC", "offset beyond 14 hours")


def moment_fields() -> list[tuple[str, str, pydantic.TypeAdapter[Any]]]:
    """(model, field, validator) of every input model field that holds a date-time."""
    import akashone_es.storage.billing_inputs  # noqa: F401 - loaded for the walk
    from akashone_es.resources import KINDS

    models: set[type[pydantic.BaseModel]] = set()
    for module in INPUT_MODULES:
        models |= {value for _, value in inspect.getmembers(sys.modules[module], inspect.isclass)
                   if issubclass(value, pydantic.BaseModel) and value.__module__ == module}
    for kind in KINDS.values():
        models.add(kind.create_input())  # updates take the same fields, each optional
    found = []
    for model in models:
        for name, info in model.model_fields.items():
            if "datetime" in str(info.annotation).lower():
                annotation = (Annotated[(info.annotation, *info.metadata)]  # type: ignore[valid-type]
                              if info.metadata else info.annotation)
                found.append((model.__name__, name, pydantic.TypeAdapter(annotation)))
    return found


class TestInputModels:
    def test_every_moment_field_refuses_what_cannot_be_read_back(self) -> None:
        """Each date-time field of each input model (users, billing, coupons, tax, usage,
        every resource kind) refuses each out-of-range moment, and takes an ordinary one."""
        fields = moment_fields()
        assert len(fields) >= 20, [f"{m}.{f}" for m, f, _ in fields]  # the walk found them
        for model, field, adapter in fields:
            assert adapter.validate_python("2026-04-01T09:30:00+05:30")
            taken = []
            for why, value in OUT_OF_RANGE.items():
                if model in FILTERS and why not in UNREADABLE:
                    assert adapter.validate_python(value), f"{model}.{field}: {why}"
                    continue
                try:
                    adapter.validate_python(value)
                    taken.append(why)
                except pydantic.ValidationError:
                    pass
            assert taken == [], f"{model}.{field} took a moment {', '.join(taken)}"

    def test_the_rule_is_named(self) -> None:
        assert lim.moment_problem(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))) \
            == lim.MOMENT_RULE
        assert "offset" in str(lim.moment_problem(
            datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=15)))))
        assert lim.moment_problem(datetime(2026, 4, 1, tzinfo=UTC)) is None
        assert lim.day_problem(date(2026, 4, 1)) is None
        assert lim.day_problem(datetime(2026, 4, 1, tzinfo=UTC)) is not None


def refused_field(dsn: str, call: Any, *args: Any, **kwargs: Any) -> list[str]:
    """Call, expect a ValidationError, check the log is unchanged; the fields it names."""
    before = log_size(dsn)
    with pytest.raises(ValidationError) as info:
        call(*args, **kwargs)
    assert log_size(dsn) == before
    return info.value.fields


class TestNothingWritten:
    def test_a_tenant_cannot_poison_its_own_row(self, storage: Storage, dsn: str) -> None:
        """The fuzzer's case: refused by name, nothing written, the user still readable."""
        user = customer(storage)
        with storage.acting_as(actor_id=user.id):
            for value in OUT_OF_RANGE.values():
                for field in ("last_login", "email_verification_expiry"):
                    assert refused_field(dsn, storage.update_user, user.id,
                                         {field: value}) == [field]
            assert storage.get_user(user.id) is not None
        assert storage.get_users()

    def test_billing_moments_are_refused_by_name(self, issuer: Storage, dsn: str) -> None:
        user = customer(issuer)
        address = issuer.get_default_billing_address(user.id)
        assert address is not None
        bad = OUT_OF_RANGE["before year 1 in UTC"]
        assert refused_field(dsn, usage, issuer, user, quantity=1, unit_price=1,
                             period_end=bad) == ["period_end"]
        assert refused_field(dsn, usage, issuer, user, quantity=1, unit_price=1,
                             recorded_at=bad) == ["recorded_at"]
        draft = {"user_id": user.id, "billing_address_id": address.id,
                 "billing_period_start": START, "billing_period_end": END,
                 "lines": [{"resource_type": "compute", "resource_name": "vm-1",
                            "description": "hours", "quantity": 1, "unit": "hours",
                            "unit_price": 100, "usage_start": bad}]}
        assert refused_field(dsn, issuer.create_invoice, draft) == ["lines.0.usage_start"]
        assert refused_field(dsn, issuer.create_discount_coupon, {
            "code": "FAR", "name": "Far", "discount_type": "percentage", "discount_value": 10,
            "valid_until": OUT_OF_RANGE["after year 9999 in UTC"]}) == ["valid_until"]
        assert issuer.get_invoices(user.id) == []
        assert issuer.get_usage_records(user.id) == []


class TestArguments:
    """Arguments the facade checks before the method runs: named, never a library error."""

    @pytest.mark.parametrize(("call", "field"), [
        (lambda s: s.meter(datetime(1, 1, 1, tzinfo=UTC)), "until"),
        (lambda s: s.meter("2025-01-01T00:00:00+00:00"), "until"),
        (lambda s: s.mark_overdue_invoices(datetime(2030, 1, 1)), "at"),
        (lambda s: s.mark_overdue_invoices("2999-01-01"), "at"),
        (lambda s: s.mark_overdue_invoices(5), "at"),
        (lambda s: s.retention_sweep(datetime(2040, 1, 1, tzinfo=UTC)), "today"),
        (lambda s: s.retention_sweep(date(1, 1, 1)), "today"),
        (lambda s: s.retention_sweep(None, 5), "holds"),
        (lambda s: s.retention_sweep(None, [["2026-27"]]), "holds.0"),
        (lambda s: s.mark_usage_records_as_billed(5, "inv"), "record_ids"),
        (lambda s: s.mark_usage_records_as_billed([5], "inv"), "record_ids.0"),
        (lambda s: s.get_recent_activities(-1), "limit"),
        (lambda s: s.get_recent_activities(2**63), "limit"),
        (lambda s: s.get_user_activities(None, 0), "limit"),
        (lambda s: s.get_invoices("3f2b8c1e-0000-4000-8000-000000000000", 5), "filters"),
        (lambda s: s.as_of(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))), "moment"),
    ])
    def test_refused_by_name(self, issuer: Storage, dsn: str, call: Any,
                             field: str) -> None:
        issued_invoice(issuer)  # mark_overdue_invoices compares against an issued invoice
        assert refused_field(dsn, call, issuer) == [field]
