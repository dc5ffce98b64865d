"""Bounded input on PostgreSQL: refused values write nothing, the largest accepted usage
still invoices, and no gateway secret reaches the event log."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from akashone_es import Storage
from akashone_es.errors import ValidationError
from akashone_es.money import round_half_up
from akashone_es.storage import limits as lim
from akashone_es.storage import usage as usage_storage
from projections import billing_models as bm
from projections import models as m
from tests.conftest import log_size

START, END = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
#: the largest usage record: 10^9 units at 10^6 paise = LINE_AMOUNT_MAX
LARGEST = {"quantity": lim.QUANTITY_MAX, "unit_price": lim.LINE_AMOUNT_MAX // lim.QUANTITY_MAX}


def event_states(dsn: str, topic: str) -> list[str]:
    """The events' state as an auditor (and ``history --json``) reads it."""
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "SELECT convert_from(state, 'UTF8') FROM akashone_events WHERE topic LIKE %s"
            " ORDER BY notification_id", (f"%{topic}%",))]


def refused(dsn: str, call: Any, *args: Any, **kwargs: Any) -> list[dict[str, str]]:
    """Call, expect a ValidationError, check nothing was written; the errors."""
    before = log_size(dsn)
    with pytest.raises(ValidationError) as info:
        call(*args, **kwargs)
    assert before == log_size(dsn)
    return info.value.errors


def customer(s: Storage) -> m.User:
    user = s.create_user({"username": "asha", "email": "asha@example.com",
                          "password": "long-enough-1"})
    s.create_billing_address({"user_id": user.id, "address_line1": "12 MG Road",
                              "city": "Bengaluru", "postal_code": "560001",
                              "state_code": "29"})
    return user


def usage(s: Storage, user: m.User, **values: Any) -> bm.UsageRecord:
    return s.create_usage_record({
        "user_id": user.id, "resource_type": "compute", "resource_id": "vm-1",
        "resource_name": "vm-1", "metric_type": "runtime", "period_start": START,
        "period_end": END, **values})


def line(n: int) -> dict[str, Any]:
    return {"resource_type": "compute", "resource_name": f"vm-{n}", "description": "hours",
            "quantity": 1, "unit": "hours", "unit_price": 100}


def issued_invoice(s: Storage) -> bm.Invoice:
    """A new customer's issued invoice of one line."""
    user = customer(s)
    address = s.get_default_billing_address(user.id)
    assert address is not None
    draft = s.create_invoice({"user_id": user.id, "billing_address_id": address.id,
                              "billing_period_start": START, "billing_period_end": END,
                              "lines": [line(0)]})
    return s.issue_invoice(draft.id)


class TestFreeFormJson:
    def test_nul_nested_in_activity_metadata_is_refused_unwritten(self, storage: Storage,
                                                                   dsn: str) -> None:
        """The poison event of the issue: refused at its path, the log unchanged (the
        facade's argument check may name a list index as ``b[0]``, the model as ``b.0``)."""
        errors = refused(dsn, storage.create_user_activity,
                         {"action": "login", "metadata": {"a": {"b": ["\x00"]}}})
        assert [("metadata.a.b.0", "must not contain NUL characters")] == [
            (e["field"].replace("[", ".").rstrip("]"), e["rule"]) for e in errors]

    def test_nan_in_usage_metadata_is_refused_unwritten(self, storage: Storage,
                                                        dsn: str) -> None:
        """jsonb refuses NaN (orjson would write null): refused at its path."""
        user = customer(storage)
        errors = refused(dsn, usage, storage, user, quantity=1,
                         metadata={"probe": {"cpu": [0.5, float("nan")]}})
        assert [{"field": "metadata.probe.cpu.1", "rule": "must be a finite number"}] == errors

    def test_accepted_metadata_is_projected_as_given(self, storage: Storage) -> None:
        """Metadata within the bounds reaches the jsonb read table unchanged (as details)."""
        metadata = {"browser": {"name": "firefox", "v": 128.5}, "tags": ["a", None, True]}
        activity = storage.create_user_activity({"action": "login", "metadata": metadata})
        assert activity.metadata is not None
        assert metadata == activity.metadata["details"]


class TestBoundedText:
    def test_a_megabyte_of_notes_is_refused_unwritten(self, issuer: Storage,
                                                      dsn: str) -> None:
        """Notes of 1 MB are refused on notes."""
        user = customer(issuer)
        errors = refused(dsn, issuer.generate_invoice, {
            "user_id": user.id, "period_start": START, "period_end": END,
            "notes": "x" * 1_000_000})
        assert ["notes"] == [e["field"] for e in errors]

    def test_user_agent_of_an_activity_is_bounded(self, storage: Storage, dsn: str) -> None:
        """A 1 MB user agent is refused on user_agent."""
        errors = refused(dsn, storage.create_user_activity,
                         {"action": "login", "user_agent": "M" * 1_000_000})
        assert ["user_agent"] == [e["field"] for e in errors]


    def test_a_note_or_cancellation_reason_is_bounded(self, issuer: Storage,
                                                      dsn: str) -> None:
        """A reason over 2,000 characters is refused on reason, for notes and cancels."""
        invoice = issued_invoice(issuer)
        reason = "r" * (lim.DESCRIPTION_MAX + 1)
        assert ["reason"] == [e["field"] for e in refused(
            dsn, issuer.issue_credit_note, invoice.id, 100, reason)]
        assert ["reason"] == [e["field"] for e in refused(
            dsn, issuer.cancel_invoice, invoice.id, reason)]

    def test_a_debit_note_cannot_overflow_its_totals(self, issuer: Storage, dsn: str) -> None:
        """A debit note above the largest invoice is refused on amount."""
        invoice = issued_invoice(issuer)
        assert ["amount"] == [e["field"] for e in refused(
            dsn, issuer.issue_credit_note, invoice.id, 2**63, "late fee", kind="debit_note")]


class TestUsageCannotOverflowAnInvoice:
    def test_the_issues_usage_record_is_refused_naming_the_field(self, storage: Storage,
                                                                 dsn: str) -> None:
        """10^15 x 10^15 paise: refused on quantity and unit_price, nothing written."""
        user = customer(storage)
        errors = refused(dsn, usage, storage, user, quantity=10**15, unit_price=10**15)
        assert {"quantity", "unit_price"} == {e["field"] for e in errors}

    def test_one_paisa_per_unit_over_the_line_bound_is_refused(self, storage: Storage,
                                                               dsn: str) -> None:
        """Each within its own bound, but quantity x price over the line bound: refused."""
        user = customer(storage)
        errors = refused(dsn, usage, storage, user, quantity=lim.QUANTITY_MAX,
                         unit_price=LARGEST["unit_price"] + 1)
        assert ["quantity"] == [e["field"] for e in errors]

    def test_the_largest_accepted_usage_still_invoices(self, issuer: Storage) -> None:
        """Three records at the bound: each invoice bills what one line holds, the next
        call the rest, and every total fits bigint paise."""
        user = customer(issuer)
        records = [usage(issuer, user, **LARGEST) for _ in range(3)]
        request = {"user_id": user.id, "period_start": START, "period_end": END}
        invoices = [issuer.generate_invoice(request) for _ in records]
        assert [lim.LINE_AMOUNT_MAX] * 3 == [inv.subtotal_amount for inv in invoices]
        assert all(inv.total_amount <= lim.INVOICE_TOTAL_MAX for inv in invoices)
        billed = {issuer.get_usage_record(r.id).invoice_id for r in records}
        assert {inv.id for inv in invoices} == billed
        assert [] == issuer.get_unbilled_usage_records(user.id)

    def test_small_records_share_an_invoice_with_a_large_one(self, issuer: Storage) -> None:
        """What fits goes on the first invoice: the bound holds per line, not per record."""
        user = customer(issuer)
        usage(issuer, user, quantity=lim.QUANTITY_MAX // 2, unit_price=LARGEST["unit_price"])
        usage(issuer, user, quantity=lim.QUANTITY_MAX // 2, unit_price=LARGEST["unit_price"])
        usage(issuer, user, resource_type="block_storage", quantity=Decimal("10.5"))
        invoice = issuer.generate_invoice({"user_id": user.id, "period_start": START,
                                            "period_end": END})
        assert lim.LINE_AMOUNT_MAX + 11 == invoice.subtotal_amount
        assert [] == issuer.get_unbilled_usage_records(user.id)

    def test_the_databases_totals_are_the_records_summed_exactly(self, issuer: Storage
                                                                 ) -> None:
        """An invoice's lines come from the period's usage as the database sums it per
        resource type (when it fits one invoice); the same sums, units, periods and record
        ids as the records read one by one and summed exactly, which is how a period that
        does not fit is billed. A line of 27 significant digits, mixed scales, a type with
        one record, named to sort first by code point and last in a linguistic collation."""
        user = customer(issuer)
        usage(issuer, user, resource_id="vm-0", quantity=Decimal("99999999.999999"),
              unit_price=Decimal("999999.999999"))
        for n in range(1, 5):
            usage(issuer, user, resource_id=f"vm-{n}", quantity=Decimal("999999.999999"),
                  unit_price=Decimal("999.999999"))
        usage(issuer, user, resource_id="vm-9", quantity=Decimal("2.5"), unit_price=3)
        usage(issuer, user, resource_type="Zone", unit="GB", quantity=7, unit_price=2)
        for n in range(3):
            usage(issuer, user, resource_type="block_storage", resource_id=f"vol-{n}",
                  unit="GB-hours", quantity=Decimal(f"1.{n}0"), unit_price=Decimal("0.125"))
        window = (user.id, START, END)
        with issuer.acting_as(system="tests"):
            [rows] = issuer._read_together([(usage_storage.UNBILLED_TOTALS, window)],
                                           as_tuples=(0,))
            by_database = [usage_storage.UnbilledTotal(*row) for row in rows]
            records = issuer._unbilled(window)
        by_records = usage_storage.totals_of(records)
        assert by_database == by_records
        assert usage_storage.billable(by_database, lambda: pytest.fail("read")) == by_database
        compute = next(t for t in by_database if t.resource_type == "compute")
        assert len(compute.total_cost.as_tuple().digits) == 27
        invoice = issuer.generate_invoice({"user_id": user.id, "period_start": START,
                                            "period_end": END})
        lines = {x.resource_type: x for x in issuer.get_invoice_line_items(invoice.id)}
        assert lines["compute"].amount == round_half_up(compute.total_cost)
        assert lines["block_storage"].quantity == Decimal("3.30")
        assert lines["Zone"].description.endswith("(1 record)")


class TestInvoiceLines:
    def test_a_draft_takes_at_most_500_lines(self, issuer: Storage, dsn: str) -> None:
        """500 lines in the draft; the 501st, added alone, is refused on lines."""
        user = customer(issuer)
        address = issuer.get_default_billing_address(user.id)
        assert address is not None
        invoice = issuer.create_invoice({
            "user_id": user.id, "billing_address_id": address.id,
            "billing_period_start": START, "billing_period_end": END,
            "lines": [line(n) for n in range(lim.INVOICE_LINES_MAX)]})
        errors = refused(dsn, issuer.create_invoice_line_item,
                         {"invoice_id": invoice.id, **line(lim.INVOICE_LINES_MAX)})
        assert [{"field": "lines", "rule": "an invoice has at most 500 lines"}] == errors
        assert lim.INVOICE_LINES_MAX == len(issuer.get_invoice_line_items(invoice.id))

    def test_marking_more_ids_than_the_bound_is_refused(self, storage: Storage,
                                                        dsn: str) -> None:
        """More than 10,000 record ids in one call: refused on record_ids."""
        ids = ["00000000-0000-0000-0000-000000000001"] * (lim.IDS_MAX + 1)
        errors = refused(dsn, storage.mark_usage_records_as_billed, ids,
                         "00000000-0000-0000-0000-000000000002")
        assert ["record_ids"] == [e["field"] for e in errors]


class TestGatewaySecrets:
    RESPONSE: dict[str, Any] = {
        "razorpay_payment_id": "pay_Q1", "status": "captured", "amount": 11800,
        "currency": "INR", "method": "card",
        "card": {"number": "4111111111111111", "cvv": "737", "last4": "1111"},
        "cvv": "737", "api_key": "rzp_live_ILgsfZCZoFIKMb",
        "error_description": "retry of 4111 1111 1111 1111 with key sk_live_51HxyzSECRET",
    }
    #: the CVV is searched as a JSON string: three bare digits also occur in timestamps and ids
    SECRETS = ("4111111111111111", "4111 1111 1111 1111", '"737"', "rzp_live_ILgsfZCZoFIKMb",
               "sk_live_51HxyzSECRET", "api_key")

    def pay(self, s: Storage, **values: Any) -> bm.PaymentTransaction:
        invoice = issued_invoice(s)
        return s.create_payment_transaction({
            "invoice_id": invoice.id, "gateway": "razorpay", "amount": invoice.total_amount,
            "gateway_transaction_id": "pay_Q1", **values})

    def test_no_card_number_cvv_or_key_reaches_the_log(self, issuer: Storage,
                                                       dsn: str) -> None:
        """A successful payment's event keeps the payment's fields and none of the secrets,
        and the read table holds the same trimmed answer."""
        payment = self.pay(issuer, status="success", gateway_response=self.RESPONSE)
        states = "\n".join(event_states(dsn, "PaymentTransaction"))
        assert "pay_Q1" in states
        assert "captured" in states
        assert '"last4":"1111"' in states.replace(" ", "")
        assert [] == [secret for secret in self.SECRETS if secret in states]
        assert payment.status == "success"

    def test_a_failure_callback_is_trimmed_too(self, issuer: Storage, dsn: str) -> None:
        """update_payment_transaction(failed, gateway_response=...) keeps no secret."""
        payment = self.pay(issuer)
        issuer.update_payment_transaction(payment.id, {
            "status": "failed", "error_code": "BAD_REQUEST_ERROR",
            "gateway_response": self.RESPONSE})
        states = "\n".join(event_states(dsn, "PaymentTransaction"))
        assert "BAD_REQUEST_ERROR" in states
        assert [] == [secret for secret in self.SECRETS if secret in states]
