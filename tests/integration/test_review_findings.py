"""Regressions from the code review: notes vs cancel, due dates, tenant writes, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from akashone_es import NotFoundError, PermissionDeniedError, Storage, ValidationError
from tests.integration.test_billing_storage import address, customer, line


def issued(s: Storage, name: str = "asha", due: datetime | None = None) -> Any:
    user = customer(s, name)
    where = address(s, user)
    draft = s.create_invoice({"user_id": user.id, "billing_address_id": where.id,
                              "billing_period_start": "2026-10-01T00:00:00Z",
                              "billing_period_end": "2026-11-01T00:00:00Z",
                              "lines": [line(10_000)]})
    if due is not None:
        s.update_invoice(draft.id, {"due_date": due})
    return s.issue_invoice(draft.id)


class TestNotesAndCancellation:
    def test_a_cancelled_invoice_takes_no_credit_note(self, issuer: Storage) -> None:
        """Cancelling already reverses the tax: a later credit note is refused."""
        invoice = issued(issuer)
        issuer.cancel_invoice(invoice.id)
        with pytest.raises(ValidationError) as caught:
            issuer.issue_credit_note(invoice.id, 1_000, "after cancel")
        assert ["invoice_id"] == caught.value.fields

    def test_a_credited_invoice_cannot_be_cancelled(self, issuer: Storage) -> None:
        """Once a note exists, corrections continue with notes, not cancellation."""
        invoice = issued(issuer)
        issuer.issue_credit_note(invoice.id, 1_000, "partial credit")
        with pytest.raises(PermissionDeniedError):
            issuer.cancel_invoice(invoice.id)


class TestDueDates:
    def test_a_changed_due_date_still_drives_overdue_marking(self, issuer: Storage) -> None:
        """A due date set on the draft is a real date: the invoice is marked overdue."""
        invoice = issued(issuer, due=datetime.now(UTC) + timedelta(hours=2))
        assert 0 == issuer.mark_overdue_invoices()
        assert 1 == issuer.mark_overdue_invoices(datetime.now(UTC) + timedelta(hours=3))
        assert "overdue" == issuer.get_invoice(invoice.id).status  # type: ignore[union-attr]


class TestTenantWrites:
    def test_tenant_cannot_touch_other_or_platform_plans_or_catalogue(
            self, storage: Storage) -> None:
        """A tenant changes only its own plans; HSN codes and coupons are platform-only."""
        org_a = storage.create_organization({"name": "A"})
        org_b = storage.create_organization({"name": "B"})
        user_a = storage.create_user({"username": "ua", "email": "ua@a.example.com",
                                      "password": "password-a1", "organization_id": org_a.id})
        theirs = storage.create_service_plan({"name": "B", "cpu": 1, "memory": 1, "storage": 1,
                                              "organization_id": org_b.id})
        platform = storage.create_service_plan({"name": "P", "cpu": 1, "memory": 1,
                                                "storage": 1, "price": 5})
        with storage.acting_as(actor_id=user_a.id, organization_id=org_a.id):
            assert storage.update_service_plan(theirs.id, {"price": 1}) is None
            assert storage.update_service_plan(platform.id, {"price": 1}) is None
            assert storage.delete_service_plan(theirs.id) is False
            with pytest.raises(NotFoundError):
                storage.create_service_plan({"name": "X", "cpu": 1, "memory": 1, "storage": 1,
                                             "organization_id": org_b.id})
            own = storage.create_service_plan({"name": "Mine", "cpu": 1, "memory": 1,
                                               "storage": 1})
            with pytest.raises(PermissionDeniedError):
                storage.create_discount_coupon({"code": "TENANT", "name": "t",
                                                "discount_type": "fixed", "discount_value": 1})
        assert (org_a.id, 5) == (own.organization_id, storage.get_service_plan(platform.id).price)  # type: ignore[union-attr]

    def test_tenant_cannot_write_another_tenants_activity_or_mint_super_admins(
            self, storage: Storage) -> None:
        """Activity for another tenant's user is not found; super_admin is platform-only."""
        org_a = storage.create_organization({"name": "A"})
        org_b = storage.create_organization({"name": "B"})
        user_a = storage.create_user({"username": "ua", "email": "ua@a.example.com",
                                      "password": "password-a1", "organization_id": org_a.id})
        user_b = storage.create_user({"username": "ub", "email": "ub@b.example.com",
                                      "password": "password-b1", "organization_id": org_b.id})
        with storage.acting_as(actor_id=user_a.id, organization_id=org_a.id):
            with pytest.raises(NotFoundError):
                storage.create_user_activity({"user_id": user_b.id, "action": "login"})
            with pytest.raises(PermissionDeniedError):
                storage.update_user(user_a.id, {"account_type": "super_admin"})
        assert [] == storage.get_user_activities_by_action(user_b.id, "login")


class TestBadInputIsAValidationError:
    @pytest.mark.parametrize(("call", "field"), [
        (lambda s, u: s.get_invoices(u.id, {"start_date": "garbage"}), "start_date"),
        (lambda s, u: s.get_usage_records(u.id, {"billed": "maybe"}), "billed"),
        (lambda s, u: s.create_organization({"name": "a\x00b"}), "name"),
        (lambda s, u: s.get_user_by_username("a\x00"), "username"),
        (lambda s, u: s.create_service_plan({"name": "p", "cpu": 1, "memory": 1, "storage": 1,
                                             "price": 10**12}), "price"),
    ])
    def test_names_the_field_and_writes_nothing(self, storage: Storage, call: Any,
                                                field: str) -> None:
        """Out-of-range, NUL or malformed values are refused before the database."""
        user = customer(storage)
        with pytest.raises(ValidationError) as caught:
            call(storage, user)
        assert [field] == caught.value.fields

    def test_a_secret_that_looks_sealed_is_sealed_anyway(self, storage: Storage) -> None:
        """A user-supplied 'enc:v1:...' secret is encrypted like any other and reads back."""
        user = customer(storage)
        storage.update_user(user.id, {"two_factor_secret": "enc:v1:abc"})
        assert "enc:v1:abc" == storage.get_user(user.id).two_factor_secret  # type: ignore[union-attr]
        assert 1 == len(storage.get_users())


class TestFirstDefaultRace:
    def test_two_first_addresses_at_once_both_save_and_one_is_default(
            self, storage: Storage) -> None:
        """Racing 'first' addresses: both are saved, exactly one is the default."""
        import threading

        for attempt in range(5):
            user = customer(storage, f"racer{attempt}")
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def add(n: int, owner: Any = user, barrier: Any = barrier,
                    errors: list[BaseException] = errors) -> None:
                barrier.wait()
                try:
                    with storage.acting_as(system="racing addresses"):
                        address(storage, owner, city=f"City {n}")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=add, args=(n,)) for n in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [] == errors
            saved = storage.get_billing_addresses(user.id)
            assert (2, 1) == (len(saved), sum(a.is_default for a in saved))
