"""Invoice lifecycle transitions: overdue, cancelled, debit notes; each an event with its actor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from akashone_es import PermissionDeniedError, Storage
from akashone_es.domain.billing import Invoice
from tests.integration.test_billing_storage import address, customer, line


def draft(s: Storage, name: str, due: datetime | None = None) -> object:
    user = customer(s, name)
    where = address(s, user, state_code="27")
    return s.create_invoice({"user_id": user.id, "billing_address_id": where.id,
                             "billing_period_start": "2026-10-01T00:00:00Z",
                             "billing_period_end": "2026-11-01T00:00:00Z",
                             "due_date": due, "lines": [line(10_000)]})


class TestOverdue:
    def test_only_issued_invoices_past_due_become_overdue(self, issuer: Storage) -> None:
        """mark_overdue_invoices marks issued invoices past their due date, nothing else."""
        soon = datetime.now(UTC) + timedelta(hours=1)
        late = issuer.issue_invoice(draft(issuer, "late", soon).id)  # type: ignore[attr-defined]
        on_time = issuer.issue_invoice(draft(issuer, "ontime").id)  # type: ignore[attr-defined]
        still_draft = draft(issuer, "drafty", soon)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        assert 1 == issuer.mark_overdue_invoices(tomorrow)
        statuses = [issuer.get_invoice(i.id).status  # type: ignore[union-attr,attr-defined]
                    for i in (late, on_time, still_draft)]
        assert ["overdue", "issued", "draft"] == statuses
        assert 0 == issuer.mark_overdue_invoices(tomorrow)


class TestCancel:
    def test_cancelling_keeps_the_number_and_records_the_actor(self, issuer: Storage) -> None:
        """A cancelled invoice keeps its number (never reused); the event names who did it."""
        invoice = issuer.issue_invoice(draft(issuer, "asha").id)  # type: ignore[attr-defined]
        admin = issuer.create_user({"username": "admin", "email": "admin@example.com",
                                    "password": "long-enough-1", "account_type": "super_admin"})
        with issuer.acting_as(actor_id=admin.id):
            cancelled = issuer.cancel_invoice(invoice.id, "ordered by mistake")
        assert ("cancelled", invoice.invoice_number) == (cancelled.status,
                                                         cancelled.invoice_number)
        events = [issuer.app.mapper.to_domain_event(e)
                  for e in issuer.app.recorder.select_events(invoice.id)]
        last = events[-1]
        assert isinstance(last, Invoice.Cancelled)
        assert str(admin.id) == last.metadata["actor_id"]
        following = issuer.issue_invoice(draft(issuer, "ravi").id)  # type: ignore[attr-defined]
        assert following.invoice_number != invoice.invoice_number

    def test_a_paid_invoice_cannot_be_cancelled(self, issuer: Storage) -> None:
        """Paid invoices are corrected with credit notes, not cancelled."""
        invoice = issuer.issue_invoice(draft(issuer, "asha").id)  # type: ignore[attr-defined]
        issuer.create_payment_transaction({"invoice_id": invoice.id, "gateway": "razorpay",
                                           "gateway_transaction_id": "pay_1",
                                           "amount": invoice.total_amount, "status": "success"})
        with pytest.raises(PermissionDeniedError):
            issuer.cancel_invoice(invoice.id)


class TestDebitNote:
    def test_debit_note_has_its_own_series_and_intra_state_tax(self, issuer: Storage) -> None:
        """A debit note for an intra-state invoice carries CGST = SGST and its own number."""
        invoice = issuer.issue_invoice(draft(issuer, "asha").id)  # type: ignore[attr-defined]
        note = issuer.issue_credit_note(invoice.id, 2_000, "under-billed bandwidth",
                                        kind="debit_note")
        assert note.note_number.startswith("DN/")
        assert note.note_number.endswith("/000001")
        assert (2_000, 180, 180, 0, 2_360) == (note.taxable_amount, note.cgst_amount,
                                                note.sgst_amount, note.igst_amount,
                                                note.total_amount)
        assert invoice.total_amount == issuer.get_invoice(invoice.id).total_amount  # type: ignore[union-attr]


class TestRoundOff:
    def test_round_off_is_kept_apart_from_tax_and_taxable_value(self, dsn: str) -> None:
        """With round-off on, the total is whole rupees and only round_off_amount differs."""
        from akashone_es.settings import Settings
        from akashone_es.storage import open_storage
        from tests.conftest import TEST_SETTINGS
        from tests.integration.conftest import SUPPLIER

        store = open_storage(Settings(**{**TEST_SETTINGS, "supplier_gstin": SUPPLIER,
                                         "invoice_round_off": True}), dsn=dsn)
        try:
            with store.acting_as(system="tests"):
                user = customer(store, "asha")
                where = address(store, user, state_code="27")
                made = store.create_invoice({
                    "user_id": user.id, "billing_address_id": where.id,
                    "billing_period_start": "2026-10-01T00:00:00Z",
                    "billing_period_end": "2026-11-01T00:00:00Z", "lines": [line(10_001)]})
                invoice = store.issue_invoice(made.id)
        finally:
            store.close()
        taxes = invoice.cgst_amount + invoice.sgst_amount
        assert (10_001, 1_800, 11_801) == (invoice.taxable_amount, taxes,
                                           invoice.taxable_amount + taxes)
        assert (-1, 11_800) == (invoice.round_off_amount, invoice.total_amount)
