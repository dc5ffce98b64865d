"""Regressions found in review: catalogue updates, replay-safe payments, credit limits, scope."""

from __future__ import annotations

import pytest

from akashone_es import NotFoundError, Storage, ValidationError
from projections.billing import BillingProjection
from tests.integration.projection_helpers import project_all, project_all_twice
from tests.integration.test_billing_storage import address, customer, line, sql


def issued_invoice(s: Storage, name: str = "asha", price: int = 10_000) -> object:
    user = customer(s, name)
    where = address(s, user)
    draft = s.create_invoice({"user_id": user.id, "billing_address_id": where.id,
                              "billing_period_start": "2026-10-01T00:00:00Z",
                              "billing_period_end": "2026-11-01T00:00:00Z",
                              "lines": [line(price)]})
    return s.issue_invoice(draft.id)


class TestCatalogueChanges:
    def test_updates_and_deletes_reach_the_read_tables(self, storage: Storage) -> None:
        """Update and delete of HSN codes, coupons and plans change the rows."""
        hsn = storage.create_hsn_code({"service_type": "compute", "hsn_code": "998315",
                                       "sac_code": "998315", "description": "VMs"})
        coupon = storage.create_discount_coupon({"code": "SAVE5", "name": "Save",
                                                 "discount_type": "percentage",
                                                 "discount_value": 5})
        plan = storage.create_service_plan({"name": "Nano", "cpu": 1, "memory": 512,
                                            "storage": 10})
        assert "Virtual machines" == storage.update_hsn_code(
            hsn.id, {"description": "Virtual machines"}).description  # type: ignore[union-attr]
        assert 9 == storage.update_service_plan(plan.id, {"price": 9}).price  # type: ignore[union-attr]
        assert storage.delete_discount_coupon(coupon.id)
        assert (None, False) == (storage.get_discount_coupon(coupon.id),
                                 storage.delete_discount_coupon(coupon.id))
        assert "Invalid coupon code" == storage.validate_coupon("SAVE5").error


class TestReplaySafePayments:
    def test_payment_rows_are_the_same_when_every_event_is_delivered_twice(
            self, issuer: Storage, dsn: str) -> None:
        """amount_paid is recorded absolutely, so a replayed payment is not counted twice."""
        invoice = issued_invoice(issuer)
        issuer.create_payment_transaction({"invoice_id": invoice.id, "gateway": "razorpay",  # type: ignore[attr-defined]
                                           "gateway_transaction_id": "pay_A", "amount": 5000,
                                           "status": "success"})
        events = [issuer.app.mapper.to_domain_event(e)
                  for e in issuer.app.recorder.select_notifications(1, 10_000)]
        positioned = [(e, n) for n, e in enumerate(events, start=1)]
        once = project_all(dsn, BillingProjection, positioned)
        assert once == project_all_twice(dsn, BillingProjection, positioned)
        assert [5000] == [row["amount_paid"] for row in once["invoices"]]


class TestCreditNoteLimit:
    def test_credit_notes_together_cannot_exceed_the_taxable_value(self,
                                                                   issuer: Storage) -> None:
        """A second note that would take the total credited past the invoice is refused."""
        invoice = issued_invoice(issuer)
        issuer.issue_credit_note(invoice.id, 8000, "first")  # type: ignore[attr-defined]
        with pytest.raises(ValidationError) as caught:
            issuer.issue_credit_note(invoice.id, 8000, "second")  # type: ignore[attr-defined]
        assert ["amount"] == caught.value.fields


class TestScope:
    def test_usage_of_another_customer_cannot_be_billed_on_an_invoice(
            self, issuer: Storage) -> None:
        """mark_usage_records_as_billed only takes the invoice customer's own records."""
        invoice = issued_invoice(issuer, "asha")
        other = customer(issuer, "ravi")
        usage = issuer.create_usage_record({
            "user_id": other.id, "resource_type": "compute", "resource_id": "vm-9",
            "resource_name": "vm", "metric_type": "runtime", "quantity": "2",
            "period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z"})
        with pytest.raises(NotFoundError) as caught:
            issuer.mark_usage_records_as_billed([usage.id], invoice.id)  # type: ignore[attr-defined]
        assert "record_ids" == caught.value.field
        assert issuer.get_usage_record(usage.id).billed is False  # type: ignore[union-attr]

    def test_tenant_never_sees_another_organizations_private_plans(
            self, storage: Storage) -> None:
        """get_service_plans(other org) acting as a tenant gives public plus its own plans."""
        org_a = storage.create_organization({"name": "A"})
        org_b = storage.create_organization({"name": "B"})
        user_a = storage.create_user({"username": "ua", "email": "ua@a.example.com",
                                      "password": "password-a1", "organization_id": org_a.id})
        storage.create_service_plan({"name": "B only", "cpu": 1, "memory": 512, "storage": 5,
                                     "is_public": False, "organization_id": org_b.id})
        storage.create_service_plan({"name": "Public", "cpu": 1, "memory": 512, "storage": 5})
        with storage.acting_as(actor_id=user_a.id, organization_id=org_a.id):
            assert ["Public"] == [p.name for p in storage.get_service_plans(org_b.id)]


class TestAddressRules:
    def test_clearing_a_required_field_names_it(self, storage: Storage, dsn: str) -> None:
        """Setting city to None is a ValidationError on city, and nothing is written."""
        where = address(storage, customer(storage))
        before = sql(dsn, "SELECT count(*) FROM akashone_events")
        with pytest.raises(ValidationError) as caught:
            storage.update_billing_address(where.id, {"city": None})
        assert (["city"], before) == (caught.value.fields,
                                      sql(dsn, "SELECT count(*) FROM akashone_events"))


class TestGatewayIds:
    def test_the_same_id_from_two_gateways_is_two_payments(self, issuer: Storage) -> None:
        """Idempotency is per (gateway, transaction id): another gateway's X1 is a payment."""
        invoice = issued_invoice(issuer)
        first = issuer.create_payment_transaction({
            "invoice_id": invoice.id, "gateway": "razorpay",  # type: ignore[attr-defined]
            "gateway_transaction_id": "X1", "amount": 5000, "status": "success"})
        second = issuer.create_payment_transaction({
            "invoice_id": invoice.id, "gateway": "cashfree",  # type: ignore[attr-defined]
            "gateway_transaction_id": "X1", "amount": 6800, "status": "success"})
        assert first.id != second.id
        assert 11_800 == issuer.get_invoice(invoice.id).amount_paid  # type: ignore[attr-defined,union-attr]
