"""Billing storage on PostgreSQL: addresses, invoices, GST, usage, payments, notes, catalogue."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from akashone_es import ConflictError, DuplicateError, PermissionDeniedError, Storage, context
from akashone_es.errors import ValidationError
from akashone_es.gst import financial_year
from akashone_es.storage import billing_inputs as bi
from projections import billing_models as bm
from projections import models as m
from projections.billing import BillingProjection
from projections.rebuild import verify
from tests.conftest import log_size

SUPPLIER = "27AAPFU0939F1ZV"  # registered in Maharashtra
START, END = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
FY = financial_year(datetime.now(UTC).date())
INV, CN = f"INV/{FY[2:4]}{FY[5:7]}/", f"CN/{FY[2:4]}{FY[5:7]}/"  # "INV/2627/" in 2026-27


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def customer(s: Storage, name: str = "asha", **extra: Any) -> m.User:
    return s.create_user({"username": name, "email": f"{name}@example.com",
                          "password": "long-enough-1", **extra})


def address(s: Storage, user: m.User, state_code: str = "29", **extra: Any
            ) -> bm.BillingAddress:
    return s.create_billing_address({"user_id": user.id, "address_line1": "12 MG Road",
                                     "city": "Bengaluru", "postal_code": "560001",
                                     "state_code": state_code, **extra})


def line(price: int | Decimal, quantity: int | Decimal = 1, name: str = "vm-0"
         ) -> dict[str, Any]:
    return {"resource_type": "compute", "resource_name": name, "description": f"{name} hours",
            "quantity": quantity, "unit": "hours", "unit_price": price}


def draft(s: Storage, user: m.User, addr: bm.BillingAddress, *prices: int) -> bm.Invoice:
    return s.create_invoice({"user_id": user.id, "billing_address_id": addr.id,
                             "billing_period_start": START, "billing_period_end": END,
                             "lines": [line(p, name=f"vm-{n}") for n, p in enumerate(prices)]})


def issued(s: Storage, *prices: int, state_code: str = "29") -> tuple[m.User, bm.Invoice]:
    """A new customer in ``state_code`` and an issued invoice with one line per price."""
    user = customer(s)
    return user, s.issue_invoice(draft(s, user, address(s, user, state_code), *prices).id)


def usage(s: Storage, user: m.User, kind: str = "compute", quantity: str = "10",
          start: datetime = START, end: datetime = END, **extra: Any) -> bm.UsageRecord:
    return s.create_usage_record({"user_id": user.id, "resource_type": kind,
                                  "resource_id": f"{kind}-1", "resource_name": kind,
                                  "metric_type": "runtime", "quantity": Decimal(quantity),
                                  "period_start": start, "period_end": end, **extra})


def defaults(dsn: str, table: str, user: m.User) -> list[Any]:
    return [r[0] for r in sql(dsn, f"SELECT id FROM {table} WHERE user_id = %s AND is_default",
                              user.id)]


class TestBillingAddresses:
    def test_first_address_is_default_and_state_name_follows_the_code(
            self, storage: Storage) -> None:
        """The first address becomes the default; a later one does not unless asked."""
        user = customer(storage)
        first, second = address(storage, user), address(storage, user, "27")
        assert (first.is_default, first.state, second.is_default, second.state) == (
            True, "Karnataka", False, "Maharashtra")
        assert storage.get_billing_addresses(user.id) == [first, second]
        assert storage.get_default_billing_address(user.id) == first

    def test_set_default_leaves_exactly_one_default(self, storage: Storage, dsn: str) -> None:
        """set_default, and a new address made default, each leave one is_default row."""
        user = customer(storage)
        a, b = address(storage, user), address(storage, user, "27")
        storage.set_default_billing_address(user.id, b.id)
        assert defaults(dsn, "billing_addresses", user) == [b.id]
        c = address(storage, user, "07", is_default=True)
        assert defaults(dsn, "billing_addresses", user) == [c.id]
        assert storage.get_default_billing_address(user.id).id == c.id
        assert storage.get_billing_address(a.id).is_default is False

    def test_update_and_delete_address(self, storage: Storage) -> None:
        """Update changes the given columns (the state name follows); delete removes it."""
        user = customer(storage)
        addr = address(storage, user)
        updated = storage.update_billing_address(addr.id, {"city": "Pune", "state_code": "27"})
        assert (updated.city, updated.state, updated.state_code) == ("Pune", "Maharashtra", "27")
        assert storage.delete_billing_address(addr.id) is True
        assert (storage.get_billing_address(addr.id), storage.get_billing_addresses(user.id)) == (
            None, [])
        assert storage.delete_billing_address(addr.id) is False
        assert storage.update_billing_address(addr.id, {"city": "Nagpur"}) is None


class TestDraftInvoices:
    def test_draft_has_no_number_and_lines_priced_half_up(self, issuer: Storage) -> None:
        """A new invoice is a draft without a number, due in 30 days; 2.5 h x 333 = 833."""
        user = customer(issuer)
        inv = issuer.create_invoice({
            "user_id": user.id, "billing_address_id": address(issuer, user).id,
            "billing_period_start": START, "billing_period_end": END,
            "lines": [line(Decimal(333), Decimal("2.5"))]})
        assert (inv.status, inv.invoice_number, inv.total_amount) == ("draft", None, 0)
        assert abs(inv.due_date - inv.created_at - timedelta(days=30)) < timedelta(seconds=5)
        [item] = issuer.get_invoice_line_items(inv.id)
        assert (item.quantity, item.unit_price, item.amount, item.sac_code) == (
            Decimal("2.5"), Decimal(333), 833, "998315")
        assert issuer.get_invoice_line_item(item.id) == item

    def test_drafts_can_be_edited_and_discarded(self, issuer: Storage, dsn: str) -> None:
        """update_invoice and line changes work on a draft; delete_invoice discards it."""
        user = customer(issuer)
        inv = draft(issuer, user, address(issuer, user), 1000)
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=45)
        updated = issuer.update_invoice(inv.id, {"notes": "PO 77", "due_date": due})
        assert (updated.notes, updated.due_date) == ("PO 77", due)
        added = issuer.create_invoice_line_item({"invoice_id": inv.id, **line(250, 4, "disk")})
        assert [(x.description, x.amount) for x in issuer.get_invoice_line_items(inv.id)] == [
            ("vm-0 hours", 1000), ("disk hours", 1000)]
        assert issuer.delete_invoice_line_item(added.id) is True
        assert [x.description for x in issuer.get_invoice_line_items(inv.id)] == ["vm-0 hours"]
        assert issuer.delete_invoice(inv.id) is True
        assert issuer.get_invoice(inv.id) is None
        assert sql(dsn, "SELECT count(*) FROM invoice_line_items") == [(0,)]


class TestIssueInvoice:
    def test_numbers_are_consecutive_in_the_financial_year(self, issuer: Storage) -> None:
        """INV/<fy>/000001 then 000002; get_next_invoice_number predicts each; lookups
        ignore case."""
        user = customer(issuer)
        addr = address(issuer, user)
        first, second = draft(issuer, user, addr, 100), draft(issuer, user, addr, 200)
        assert issuer.get_next_invoice_number() == f"{INV}000001"
        assert issuer.issue_invoice(first.id).invoice_number == f"{INV}000001"
        assert issuer.get_next_invoice_number() == f"{INV}000002"
        inv = issuer.issue_invoice(second.id)
        assert (inv.invoice_number, inv.fy, inv.status) == (f"{INV}000002", FY, "issued")
        assert issuer.get_invoice_by_number(f"{INV.lower()}000002") == inv

    def test_karnataka_customer_of_a_maharashtra_supplier_pays_igst_only(
            self, issuer: Storage) -> None:
        """27 -> 29 is inter-state: 18 % IGST per line (3333 -> 600), header = sum of lines;
        the tax record holds the states, rates and amounts."""
        _, inv = issued(issuer, 10000, 3333)
        assert [(x.taxable_amount, x.igst_amount, x.cgst_amount, x.sgst_amount)
                for x in issuer.get_invoice_line_items(inv.id)] == [(10000, 1800, 0, 0),
                                                                    (3333, 600, 0, 0)]
        assert (inv.tax_type, inv.place_of_supply, inv.place_of_supply_code,
                inv.supplier_gstin, inv.subtotal_amount, inv.igst_amount, inv.cgst_amount,
                inv.sgst_amount, inv.total_amount) == (
            "inter_state", "Karnataka", "29", SUPPLIER, 13333, 2400, 0, 0, 15733)
        [tax] = issuer.get_tax_calculations(inv.id)
        assert (tax.supplier_state, tax.supplier_state_code, tax.customer_state,
                tax.customer_state_code, tax.tax_type, tax.taxable_amount, tax.igst_rate,
                tax.cgst_rate, tax.igst_amount, tax.total_tax_amount, tax.hsn_sac_code) == (
            "Maharashtra", "27", "Karnataka", "29", "inter_state", 13333, Decimal(18),
            Decimal(0), 2400, 2400, "998315")

    def test_maharashtra_customer_pays_equal_cgst_and_sgst_per_line(
            self, issuer: Storage) -> None:
        """27 -> 27: 9 % + 9 % rounded per line (10001 -> 900, 5 -> 0), not on the subtotal."""
        _, inv = issued(issuer, 10001, 5, state_code="27")
        assert [(x.cgst_amount, x.sgst_amount, x.igst_amount)
                for x in issuer.get_invoice_line_items(inv.id)] == [(900, 900, 0), (0, 0, 0)]
        assert (inv.tax_type, inv.cgst_amount, inv.sgst_amount, inv.igst_amount,
                inv.total_amount) == ("intra_state", 900, 900, 0, 11806)
        [tax] = issuer.get_tax_calculations(inv.id)
        assert (tax.cgst_rate, tax.sgst_rate, tax.igst_rate, tax.cgst_amount, tax.sgst_amount,
                tax.total_tax_amount) == (Decimal(9), Decimal(9), Decimal(0), 900, 900, 1800)

    def test_issued_invoice_never_changes(self, issuer: Storage, dsn: str) -> None:
        """Updating, deleting or changing lines of an issued invoice is denied, unwritten."""
        _, inv = issued(issuer, 1000)
        [item] = issuer.get_invoice_line_items(inv.id)
        before = log_size(dsn)
        for attempt in (lambda: issuer.update_invoice(inv.id, {"notes": "changed"}),
                        lambda: issuer.delete_invoice(inv.id),
                        lambda: issuer.create_invoice_line_item({"invoice_id": inv.id,
                                                                 **line(5)}),
                        lambda: issuer.delete_invoice_line_item(item.id)):
            with pytest.raises(PermissionDeniedError):
                attempt()
        assert log_size(dsn) == before
        assert issuer.get_invoice(inv.id) == inv

    def test_invoices_list_newest_first_with_filters(self, issuer: Storage) -> None:
        """get_invoices: newest first; status, start_date and end_date filter created_at."""
        user = customer(issuer)
        addr = address(issuer, user)
        one, two, three = (draft(issuer, user, addr, p) for p in (100, 200, 300))
        issuer.issue_invoice(two.id)

        def ids(**filters: Any) -> list[Any]:
            return [i.id for i in issuer.get_invoices(user.id, filters or None)]

        assert ids() == [three.id, two.id, one.id]
        assert (ids(status="issued"), ids(status="draft")) == ([two.id], [three.id, one.id])
        assert ids(start_date=two.created_at) == [three.id, two.id]
        assert ids(end_date=two.created_at) == [two.id, one.id]


class TestUsageRecords:
    def test_fractional_paise_are_kept_exactly(self, storage: Storage, dsn: str) -> None:
        """0.333333 x 1.5 paise = 0.4999995 paise in NUMERIC; the default rate is 500/hour."""
        user = customer(storage)
        record = usage(storage, user, quantity="0.333333", unit_price=Decimal("1.5"))
        assert record.total_cost == Decimal("0.4999995")
        assert sql(dsn, "SELECT quantity::text, unit_price::text, total_cost::text"
                        " FROM usage_records WHERE id = %s", record.id) == [
            ("0.333333", "1.5", "0.4999995")]
        vm = usage(storage, user, quantity="2.25")
        assert (vm.unit, vm.unit_price, vm.total_cost) == ("hours", 500, Decimal("1125.00"))

    def test_filters_and_unbilled(self, storage: Storage) -> None:
        """Newest recorded first; start/end filter the period; billed and unbilled split."""
        user = customer(storage)
        days = [datetime(2025, 4, d, tzinfo=UTC) for d in (1, 10, 20)]
        r1, r2, r3 = (usage(storage, user, start=d, end=d + timedelta(days=1),
                            recorded_at=d + timedelta(days=1)) for d in days)
        inv = draft(storage, user, address(storage, user), 100)
        storage.mark_usage_records_as_billed([r1.id], inv.id)

        def ids(**filters: Any) -> list[Any]:
            return [r.id for r in storage.get_usage_records(user.id, filters or None)]

        assert ids() == [r3.id, r2.id, r1.id]
        assert ids(start_date=days[1]) == [r3.id, r2.id]
        assert ids(end_date=days[1] + timedelta(days=1)) == [r2.id, r1.id]
        assert ids(billed=True) == [r1.id]
        assert [r.id for r in storage.get_unbilled_usage_records(user.id)] == [r3.id, r2.id]
        billed = storage.get_usage_record(r1.id)
        assert (billed.invoice_id, billed.billed) == (inv.id, True)

    def test_billing_a_record_twice_conflicts_and_changes_nothing(
            self, storage: Storage, dsn: str) -> None:
        """A batch holding an already billed record raises ConflictError; none is marked."""
        user = customer(storage)
        r1, r2 = usage(storage, user), usage(storage, user)
        addr = address(storage, user)
        first, second = draft(storage, user, addr, 100), draft(storage, user, addr, 100)
        storage.mark_usage_records_as_billed([r1.id], first.id)
        before = log_size(dsn)
        with pytest.raises(ConflictError):
            storage.mark_usage_records_as_billed([r2.id, r1.id], second.id)
        assert log_size(dsn) == before
        assert storage.get_usage_record(r1.id).invoice_id == first.id
        assert storage.get_usage_record(r2.id).billed is False


class TestGenerateInvoice:
    def test_usage_grouped_discounted_before_tax_and_billed(self, issuer: Storage) -> None:
        """Lines per resource type; 20 % coupon then 10 % customer discount, then IGST."""
        user = customer(issuer)
        issuer.update_user(user.id, {"default_discount_percentage": 10})
        address(issuer, user)
        issuer.create_discount_coupon({"code": "welcome20", "name": "Welcome",
                                       "discount_type": "percentage", "discount_value": 20})
        billed = [usage(issuer, user, quantity="10"), usage(issuer, user, quantity="20"),
                  usage(issuer, user, "block_storage", "1000.5")]
        later = usage(issuer, user, start=END, end=END + timedelta(days=1))
        inv = issuer.generate_invoice({"user_id": user.id, "period_start": START,
                                       "period_end": END, "coupon_code": "Welcome20"})
        # subtotal 1001 + 15000 = 16001; coupon 3200, then 10 % of 12801 = 1280: 4480 off,
        # spread 280 / 4200 over the lines; IGST 18 % of 721 -> 130, of 10800 -> 1944
        assert [(x.description, x.quantity, x.unit, x.amount, x.discount_amount,
                 x.taxable_amount, x.igst_amount)
                for x in issuer.get_invoice_line_items(inv.id)] == [
            ("Block Storage (1 record)", Decimal("1000.5"), "GB-hours", 1001, 280, 721, 130),
            ("Virtual Machine Usage (2 records)", 30, "hours", 15000, 4200, 10800, 1944)]
        assert (inv.status, inv.invoice_number, inv.subtotal_amount, inv.discount_amount,
                inv.taxable_amount, inv.igst_amount, inv.total_amount, inv.coupon_code,
                inv.discount_percentage) == ("issued", f"{INV}000001", 16001, 4480, 11521,
                                             2074, 13595, "WELCOME20", 10)
        assert {issuer.get_usage_record(r.id).invoice_id for r in billed} == {inv.id}
        assert issuer.get_unbilled_usage_records(user.id) == [later]
        assert issuer.get_discount_coupon_by_code("WELCOME20").times_used == 1

    def test_nothing_to_bill_or_no_default_address_is_a_validation_error(
            self, issuer: Storage, dsn: str) -> None:
        """No default address, or no unbilled usage in the period: ValidationError, unwritten."""
        user = customer(issuer)
        usage(issuer, user, start=END, end=END + timedelta(days=1))
        request = {"user_id": user.id, "period_start": START, "period_end": END}
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            issuer.generate_invoice(request)
        assert info.value.fields == ["billing_address"]
        assert log_size(dsn) == before
        address(issuer, user)
        with pytest.raises(ValidationError) as info:
            issuer.generate_invoice(request)
        assert info.value.fields == ["period"]
        assert issuer.get_invoices(user.id) == []


    def test_lines_of_a_draft_issued_in_one_save_are_the_issued_ones_as_a_replay_has_them(
            self, issuer: Storage, dsn: str) -> None:
        """An invoice drafted and at once issued in one save gets its row inserted issued and
        its lines written once; with a line added between, the two handlers run as ever:
        either way the rows are those a replay of the log writes."""
        user = customer(issuer)
        addr = address(issuer, user)
        store: Any = issuer
        with issuer.acting_as(system="tests"):
            for extra in (False, True):
                with context.command():
                    invoice = store._draft(store._user_of(user.id), addr, START, END, None,
                                           None, [store._line(bi.InsertInvoiceLine(**line(
                                               1000, name="vm-a")))])
                    if extra:
                        invoice.add_line(store._line(bi.InsertInvoiceLine(
                            **line(500, name="vm-b"))))
                    aggregates = store._issue(invoice, addr.id, None)
                    store._save(*aggregates)
                assert [(x.resource_name, x.taxable_amount, x.igst_amount)
                        for x in issuer.get_invoice_line_items(invoice.id)] == (
                    [("vm-a", 1000, 180), ("vm-b", 500, 90)] if extra
                    else [("vm-a", 1000, 180)])
        assert verify(dsn, BillingProjection, issuer.reader).ok

class TestPayments:
    def test_one_default_method_and_delete_marks_it_removed(self, storage: Storage,
                                                            dsn: str) -> None:
        """A new default or set_default leaves one default; delete marks the method removed."""
        user = customer(storage)
        card = storage.create_payment_method({"user_id": user.id, "gateway": "razorpay",
                                              "type": "card", "card_last4": "4242"})
        upi = storage.create_payment_method({"user_id": user.id, "gateway": "razorpay",
                                             "type": "upi", "upi_id": "asha@okhdfc",
                                             "is_default": True})
        assert (card.is_default, defaults(dsn, "payment_methods", user)) == (True, [upi.id])
        storage.set_default_payment_method(user.id, card.id)
        assert defaults(dsn, "payment_methods", user) == [card.id]
        assert storage.update_payment_method(card.id, {"card_exp_year": 2030}).card_exp_year == 2030
        assert storage.delete_payment_method(card.id) is True
        assert sql(dsn, "SELECT status, is_default FROM payment_methods WHERE id = %s",
                   card.id) == [("removed", False)]
        assert storage.get_payment_methods(user.id) == [storage.get_payment_method(upi.id)]
        assert storage.get_default_payment_method(user.id) is None
        assert storage.delete_payment_method(card.id) is False

    def test_same_gateway_transaction_twice_applies_once(self, issuer: Storage) -> None:
        """A repeated gateway callback returns the first record; the invoice is paid once."""
        user, inv = issued(issuer, 10000)
        pay = {"invoice_id": inv.id, "gateway": "razorpay", "amount": 11800,
               "gateway_transaction_id": "pay_Q1", "status": "success"}
        first = issuer.create_payment_transaction(pay)
        assert issuer.create_payment_transaction(pay) == first
        assert first.status == "success"
        paid = issuer.get_invoice(inv.id)
        assert (paid.status, paid.amount_paid) == ("paid", 11800)
        assert issuer.get_payment_transactions(user.id) == [first]
        assert issuer.get_payment_transaction_by_gateway_id("pay_Q1") == first

    def test_partial_payments_accumulate_and_a_refund_reverses_one(self,
                                                                   issuer: Storage) -> None:
        """5000 then 6800 pays 11800; refunding the 5000 (twice) leaves 6800, not paid."""
        _, inv = issued(issuer, 10000)
        pay = {"invoice_id": inv.id, "gateway": "razorpay"}
        part = issuer.create_payment_transaction({**pay, "amount": 5000, "status": "success"})
        rest = issuer.create_payment_transaction({**pay, "amount": 6800})
        after = issuer.get_invoice(inv.id)
        assert (after.status, after.amount_paid) == ("issued", 5000)
        for _ in range(2):
            issuer.update_payment_transaction(rest.id, {"status": "success"})
        paid = issuer.get_invoice(inv.id)
        assert (paid.status, paid.amount_paid, paid.paid_at is not None) == ("paid", 11800, True)
        for _ in range(2):
            refunded = issuer.update_payment_transaction(part.id, {"status": "refunded"})
        assert (refunded.status, refunded.refunded_at is not None) == ("refunded", True)
        after = issuer.get_invoice(inv.id)
        assert (after.status, after.amount_paid, after.paid_at) == ("issued", 6800, None)


class TestCreditNotesAndTaxRecords:
    def test_credit_note_has_its_own_series_and_tax_lines(self, issuer: Storage) -> None:
        """CN/<fy>/000001 credits 5000 spread 3750/1250 over the lines with IGST 675/225."""
        _, inv = issued(issuer, 10000, 3333)
        lines = issuer.get_invoice_line_items(inv.id)
        note = issuer.issue_credit_note(inv.id, 5000, "VM down for two days")
        assert (note.note_number, note.kind, note.invoice_id, note.invoice_number,
                note.tax_type, note.taxable_amount, note.igst_amount, note.cgst_amount,
                note.total_amount) == (f"{CN}000001", "credit_note", inv.id,
                                       inv.invoice_number, "inter_state", 5000, 900, 0, 5900)
        assert [(x["invoice_line_id"], x["taxable_amount"], x["igst_amount"])
                for x in note.lines] == [(str(lines[0].id), 3750, 675),
                                         (str(lines[1].id), 1250, 225)]
        assert issuer.get_invoice(inv.id) == inv
        assert issuer.get_adjustment_notes(inv.id) == [note]
        assert issuer.get_next_invoice_number() == f"{INV}000002"

    def test_credit_above_the_taxable_value_is_refused(self, issuer: Storage,
                                                      dsn: str) -> None:
        """Crediting 13334 paise of a 13333 taxable invoice is a ValidationError, unwritten."""
        _, inv = issued(issuer, 10000, 3333)
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            issuer.issue_credit_note(inv.id, 13334, "too much")
        assert info.value.fields == ["amount"]
        assert log_size(dsn) == before

    def test_recorded_tax_rows_are_listed_per_invoice_by_time(self, issuer: Storage) -> None:
        """create_tax_calculation adds a row next to the one written at issue."""
        user, inv = issued(issuer, 10000)
        at = datetime(2025, 4, 30, tzinfo=UTC)
        manual = issuer.create_tax_calculation({
            "invoice_id": inv.id, "user_id": user.id, "supplier_state": "Maharashtra",
            "supplier_state_code": "27", "customer_state": "Karnataka",
            "customer_state_code": "29", "tax_type": "inter_state", "taxable_amount": 10000,
            "igst_rate": Decimal(18), "igst_amount": 1800, "total_tax_amount": 1800,
            "calculated_at": at})
        assert (manual.calculated_at, manual.igst_rate, manual.gst_rate) == (
            at, Decimal(18), Decimal(18))
        assert issuer.get_tax_calculation(manual.id) == manual
        rows = issuer.get_tax_calculations(inv.id)
        assert (rows[0], [(r.taxable_amount, r.igst_amount) for r in rows]) == (
            manual, [(10000, 1800)] * 2)


class TestCatalogue:
    def test_hsn_codes_active_only_and_service_type_unique(self, storage: Storage,
                                                          dsn: str) -> None:
        """get_hsn_codes lists active codes; a second row for a service type is a duplicate."""
        hsn = {"hsn_code": "998315", "sac_code": "998315", "description": "Hosting"}
        compute = storage.create_hsn_code({"service_type": "compute", **hsn})
        old = storage.create_hsn_code({"service_type": "backup", **hsn, "is_active": False})
        assert (storage.get_hsn_codes(), storage.get_hsn_code(old.id)) == ([compute], old)
        assert storage.get_hsn_code_by_service_type("compute") == compute
        assert storage.get_hsn_code_by_service_type("backup") is None
        before = log_size(dsn)
        with pytest.raises(DuplicateError) as info:
            storage.create_hsn_code({"service_type": "compute", **hsn, "sac_code": "998316"})
        assert (info.value.kind, info.value.field, log_size(dsn)) == (
            "hsn_code", "service_type", before)

    def test_coupon_codes_are_upper_case_and_unique_in_any_case(self, storage: Storage
                                                               ) -> None:
        """'diwali10' is stored as DIWALI10, found as 'Diwali10'; 'DiWaLi10' is a duplicate."""
        coupon = storage.create_discount_coupon({"code": "diwali10", "name": "Diwali",
                                                 "discount_type": "percentage",
                                                 "discount_value": 10})
        assert coupon.code == "DIWALI10"
        assert storage.get_discount_coupon_by_code("Diwali10") == coupon
        assert storage.get_discount_coupons() == [storage.get_discount_coupon(coupon.id)]
        with pytest.raises(DuplicateError):
            storage.create_discount_coupon({"code": "DiWaLi10", "name": "again",
                                            "discount_type": "fixed", "discount_value": 5})

    def test_validate_coupon_reports_the_first_failure_in_akashone_order(
            self, storage: Storage) -> None:
        """Each coupon fails this check and every later one; the first is reported."""
        now, day = datetime.now(UTC), timedelta(days=1)
        soon_over = now + timedelta(seconds=1)
        for code, extra in (("OFF", {"is_active": False, "valid_from": now + day}),
                            ("SOON", {"valid_from": now + day, "valid_until": now - day}),
                            ("OLD", {"valid_until": soon_over, "max_uses": 1,
                                     "min_order_amount": 50000}),
                            ("USED", {"max_uses": 1, "min_order_amount": 50000}),
                            ("BIG", {"min_order_amount": 50000}), ("OK", {})):
            coupon = storage.create_discount_coupon({"code": f"{code}-X", "name": code,
                                                     "discount_type": "percentage",
                                                     "discount_value": 10, **extra})
            if code in ("OLD", "USED"):
                storage.increment_coupon_usage(coupon.id)
        time.sleep(max(0.0, (soon_over - datetime.now(UTC)).total_seconds()) + 0.05)
        assert [storage.validate_coupon(c, 100).error for c in (
            "nope", "off-x", "soon-x", "old-x", "used-x", "big-x")] == [
            "Invalid coupon code", "Coupon is not active", "Coupon is not yet valid",
            "Coupon has expired", "Coupon usage limit reached",
            "Minimum order amount is ₹500.00"]
        ok = storage.validate_coupon("ok-x", 100)
        assert (ok.valid, ok.error, ok.coupon.code) == (True, None, "OK-X")

    def test_coupon_usage_never_exceeds_max_uses(self, storage: Storage) -> None:
        """With max_uses 2 the third increment is refused; times_used stays 2."""
        coupon = storage.create_discount_coupon({"code": "TWICE", "name": "Twice",
                                                 "discount_type": "fixed",
                                                 "discount_value": 1000, "max_uses": 2})
        storage.increment_coupon_usage(coupon.id)
        storage.increment_coupon_usage(coupon.id)
        with pytest.raises(ValidationError) as info:
            storage.increment_coupon_usage(coupon.id)
        assert info.value.errors[0]["rule"] == "Coupon usage limit reached"
        assert storage.get_discount_coupon(coupon.id).times_used == 2
        assert storage.validate_coupon("twice").error == "Coupon usage limit reached"

    def test_default_plans_are_seeded_once_and_orgs_see_public_plus_their_own(
            self, storage: Storage) -> None:
        """Five AkashOne plans (rupees per month); an org's list adds only its own plans."""
        assert storage.initialize_default_service_plans() == 5
        assert storage.initialize_default_service_plans() == 0
        assert [(p.name, p.cpu, p.memory, p.price) for p in storage.get_service_plans()] == [
            ("Micro", 1, 1024, 500), ("Small", 2, 2048, 1000), ("Medium", 4, 4096, 2000),
            ("Large", 8, 8192, 4000), ("X-Large", 16, 16384, 8000)]
        a, b = (storage.create_organization({"name": n}) for n in ("Acme", "Bharat"))
        for org, name in ((a, "Acme GPU"), (b, "Bharat GPU")):
            storage.create_service_plan({"name": name, "cpu": 32, "memory": 65536,
                                         "storage": 1000, "is_public": False,
                                         "organization_id": org.id, "sort_order": 9})
        storage.create_service_plan({"name": "Retired", "cpu": 1, "memory": 512,
                                     "storage": 10, "is_active": False})
        seeded = ["Micro", "Small", "Medium", "Large", "X-Large"]
        assert [p.name for p in storage.get_service_plans(a.id)] == [*seeded, "Acme GPU"]
        assert [p.name for p in storage.get_service_plans()] == seeded
