"""Billing and catalogue aggregates used directly, without a database: their rules and events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from akashone_es.domain.billing import DocumentSeries, Invoice, price_lines
from akashone_es.domain.catalog import DiscountCoupon
from akashone_es.domain.payments import PaymentTransaction
from akashone_es.domain.usage import METERING_RATES, UsageRecord
from akashone_es.errors import ConflictError, PermissionDeniedError, ValidationError
from akashone_es.gst import tax_treatment

NOW = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)
LINE = {"id": "line-1", "amount": 10_000, "description": "Virtual Machine Usage"}
INTRA = tax_treatment(supplier_state="27", place_of_supply_code="27", rate_bp=1800)


def event_names(aggregate: Any) -> list[str]:
    """Names of the events an aggregate has collected since it was made."""
    return [type(e).__name__ for e in aggregate.collect_events()]


def draft(lines: list[dict[str, Any]] | None = None) -> Invoice:
    """A draft invoice for May 2026, due on 15 June."""
    return Invoice(user_id=str(uuid4()), organization_id=None, billing_address_id=str(uuid4()),
                   buyer={"state_code": "27"}, billing_period_start=NOW - timedelta(days=14),
                   billing_period_end=NOW, due_date=NOW + timedelta(days=31), currency="INR",
                   notes=None, lines=[LINE] if lines is None else lines)


def issue(invoice: Invoice) -> None:
    """Issue ``invoice`` intra-state in Maharashtra at 18 %."""
    lines, totals = price_lines(invoice.lines, 0, INTRA)
    invoice.issue(invoice_number="INV/2627/000001", fy="2026-27", issued_at=NOW,
                  supplier_gstin="27AAPFU0939F1ZV", supplier_state_code="27",
                  place_of_supply="27", tax_type=INTRA.kind, zero_rated=False, rate_bp=1800,
                  heads_bp={"cgst": 900, "sgst": 900, "utgst": 0, "igst": 0},
                  sac_code="998315", lines=lines, totals=totals, coupon_code=None,
                  discount_percentage=0)


def issued() -> Invoice:
    """An issued invoice of ₹100 + 18 % GST = 11,800 paise."""
    invoice = draft()
    issue(invoice)
    return invoice


def coupon(**fields: Any) -> DiscountCoupon:
    """A 10 % coupon, overridden by ``fields``."""
    return DiscountCoupon(fields={"code": "WELCOME10", "discount_type": "percentage",
                                  "discount_value": 10, "is_active": True, **fields})


class TestIssueInvoice:
    def test_refuses_issue_without_lines(self) -> None:
        """An invoice needs at least one line."""
        invoice = draft(lines=[])
        with pytest.raises(ValidationError) as info:
            issue(invoice)
        assert ("draft", ["lines"]) == (invoice.status, info.value.fields)

    def test_issue_freezes_number_and_total(self) -> None:
        """Issuing records the number and the total from the priced lines."""
        invoice = issued()
        assert ("issued", "INV/2627/000001", 11_800) == (
            invoice.status, invoice.invoice_number, invoice.total)

    def test_refuses_issuing_twice(self) -> None:
        """An issued invoice cannot be issued again."""
        invoice = issued()
        with pytest.raises(PermissionDeniedError):
            issue(invoice)


class TestIssuedInvoiceNeverChanges:
    @pytest.mark.parametrize("change", [
        lambda invoice: invoice.update_draft({"due_date": NOW}),
        lambda invoice: invoice.add_line({"id": "line-2", "amount": 500}),
        lambda invoice: invoice.remove_line("line-1"),
        lambda invoice: invoice.discard()], ids=["update", "add_line", "remove_line", "discard"])
    def test_refuses_change_after_issue(self, change: Callable[[Invoice], None]) -> None:
        """An issued invoice refuses every draft change and records no event for it."""
        invoice = issued()
        with pytest.raises(PermissionDeniedError):
            change(invoice)
        assert ["Drafted", "Issued"] == event_names(invoice)
        assert (["line-1"], False) == ([line["id"] for line in invoice.lines], invoice.deleted)

    def test_draft_accepts_changes(self) -> None:
        """A draft takes new lines and a new due date."""
        invoice = draft()
        invoice.add_line({"id": "line-2", "amount": 500})
        invoice.update_draft({"due_date": NOW})
        assert (["line-1", "line-2"], NOW) == ([line["id"] for line in invoice.lines],
                                               invoice.due_date)


class TestApplyPayment:
    def test_partial_payments_accumulate_until_paid(self) -> None:
        """Two partial payments add up; the one that completes the total emits Paid."""
        invoice = issued()
        invoice.apply_payment(uuid4(), 5_000, NOW)
        assert ("issued", 5_000) == (invoice.status, invoice.amount_paid)
        invoice.apply_payment(uuid4(), 6_800, NOW)
        assert ("paid", 11_800) == (invoice.status, invoice.amount_paid)
        assert ["Drafted", "Issued", "PaymentApplied", "PaymentApplied", "Paid"] == (
            event_names(invoice))

    def test_same_transaction_twice_has_one_effect(self) -> None:
        """A repeated gateway callback for a partial payment records nothing more."""
        invoice = issued()
        transaction_id = uuid4()
        invoice.apply_payment(transaction_id, 5_000, NOW)
        invoice.apply_payment(transaction_id, 5_000, NOW)
        assert (5_000, [str(transaction_id)]) == (invoice.amount_paid, invoice.payments)
        assert 1 == event_names(invoice).count("PaymentApplied")

    def test_refuses_payment_on_draft(self) -> None:
        """Only issued or overdue invoices take payments."""
        with pytest.raises(ValidationError) as info:
            draft().apply_payment(uuid4(), 11_800, NOW)
        assert ["invoice_id"] == info.value.fields

    @pytest.mark.parametrize("amount", [0, -1])
    def test_refuses_payment_that_is_not_positive(self, amount: int) -> None:
        """A payment must move money."""
        with pytest.raises(ValidationError) as info:
            issued().apply_payment(uuid4(), amount, NOW)
        assert ["amount"] == info.value.fields


class TestCancelInvoice:
    def test_refuses_cancel_when_paid(self) -> None:
        """A paid invoice cannot be cancelled."""
        invoice = issued()
        invoice.apply_payment(uuid4(), 11_800, NOW)
        with pytest.raises(PermissionDeniedError):
            invoice.cancel("duplicate")
        assert "paid" == invoice.status

    def test_refuses_cancel_with_partial_payment(self) -> None:
        """Payments must be refunded before an invoice is cancelled."""
        invoice = issued()
        invoice.apply_payment(uuid4(), 1_000, NOW)
        with pytest.raises(PermissionDeniedError):
            invoice.cancel("duplicate")
        assert "issued" == invoice.status

    def test_cancels_unpaid_issued_invoice(self) -> None:
        """An issued invoice without payments can be cancelled."""
        invoice = issued()
        invoice.cancel("duplicate")
        assert "cancelled" == invoice.status


class TestUsageAndSeries:
    def test_usage_record_is_billed_once(self) -> None:
        """Billing a usage record twice is a conflict; the first invoice stays."""
        record = UsageRecord(
            user_id=str(uuid4()), organization_id=None, resource_type="vm", resource_id="vm-1",
            resource_name="web-1", metric_type="compute", quantity=Decimal("2.5"), unit="hours",
            unit_price=METERING_RATES["compute"][1], total_cost=Decimal(1250), recorded_at=NOW,
            period_start=NOW - timedelta(hours=2.5), period_end=NOW, metadata_json=None)
        first = uuid4()
        record.bill(first)
        with pytest.raises(ConflictError):
            record.bill(uuid4())
        assert str(first) == record.invoice_id

    def test_series_allocates_consecutive_numbers(self) -> None:
        """Numbers start at 1 and have no gap."""
        series = DocumentSeries(supplier_gstin="27AAPFU0939F1ZV", fy="2026-27", kind="invoice")
        assert [1, 2, 3] == [series.allocate(uuid4()) for _ in range(3)]


class TestPaymentTransaction:
    def pending(self) -> PaymentTransaction:
        return PaymentTransaction(invoice_id=str(uuid4()), user_id=str(uuid4()),
                                  fields={"amount": 11_800, "status": "pending"})

    def test_success_is_idempotent_then_refundable(self) -> None:
        """pending -> success (a repeat is a no-op) -> refunded."""
        transaction = self.pending()
        assert [True, False] == [transaction.succeed(NOW, None), transaction.succeed(NOW, None)]
        transaction.refund(NOW)
        assert "refunded" == transaction.status

    def test_refuses_fail_after_success(self) -> None:
        """A successful payment cannot fail later."""
        transaction = self.pending()
        transaction.succeed(NOW, None)
        with pytest.raises(ValidationError):
            transaction.fail("BAD", "late failure", None)
        assert "success" == transaction.status

    def test_refuses_success_after_failure(self) -> None:
        """A failed payment stays failed; a repeated failure is a no-op."""
        transaction = self.pending()
        assert [True, False] == [transaction.fail("X", "declined", None),
                                 transaction.fail("X", "declined", None)]
        with pytest.raises(ValidationError):
            transaction.succeed(NOW, None)

    def test_refuses_refund_of_pending(self) -> None:
        """Only a successful payment can be refunded."""
        with pytest.raises(ValidationError):
            self.pending().refund(NOW)


class TestDiscountCoupon:
    @pytest.mark.parametrize(("fields", "amount", "expected"), [
        ({"is_active": False, "valid_until": "2026-01-01T00:00:00+00:00", "max_uses": 1,
          "times_used": 1, "min_order_amount": 50_000}, 100, "Coupon is not active"),
        ({"valid_from": "2026-06-01T00:00:00+00:00", "max_uses": 1, "times_used": 1}, 100,
         "Coupon is not yet valid"),
        ({"valid_until": "2026-01-01T00:00:00+00:00", "max_uses": 1, "times_used": 1,
          "min_order_amount": 50_000}, 100, "Coupon has expired"),
        ({"max_uses": 1, "times_used": 1, "min_order_amount": 50_000}, 100,
         "Coupon usage limit reached"),
        ({"min_order_amount": 50_000}, 49_999, "Minimum order amount is ₹500.00"),
        ({"max_uses": 2, "times_used": 1, "min_order_amount": 50_000}, 50_000, None)])
    def test_reports_the_first_failing_check_in_akashone_order(
            self, fields: dict[str, Any], amount: int, expected: str | None) -> None:
        """Inactive, not yet valid, expired, usage limit, then minimum amount."""
        assert expected == coupon(**fields).validation_error(amount, NOW)

    def test_deleted_coupon_is_invalid(self) -> None:
        """A deleted coupon reads as an unknown code."""
        deleted = coupon()
        deleted.delete()
        assert "Invalid coupon code" == deleted.validation_error(100, NOW)

    def test_refuses_redeem_beyond_max_uses(self) -> None:
        """The second redemption of a single-use coupon is refused."""
        single = coupon(max_uses=1)
        single.redeem(uuid4(), 10_000, NOW)
        with pytest.raises(ValidationError) as info:
            single.redeem(uuid4(), 10_000, NOW)
        assert (["coupon_code"], 1) == (info.value.fields, single.fields["times_used"])

    @pytest.mark.parametrize(("fields", "amount", "expected"), [
        ({"discount_value": 10}, 12_345, 1_235), ({"discount_value": 100}, 9_999, 9_999),
        ({"discount_type": "fixed", "discount_value": 5_000}, 12_000, 5_000),
        ({"discount_type": "fixed", "discount_value": 5_000}, 3_000, 3_000)])
    def test_discount_is_percentage_half_up_or_capped_fixed(
            self, fields: dict[str, Any], amount: int, expected: int) -> None:
        """Percentages round half-up to the paisa; a fixed amount never exceeds the order."""
        assert expected == coupon(**fields).discount_for(amount)
