"""What a rule-by-rule review of billing against the GST rules found (each test fails on the
code before its fix): notes that reversed more tax than was charged, a cap that forgot debit
notes, a debit note refused on a discounted invoice, the 30 November limit on credit notes,
a registered customer taxed as an export, SEZ without a GSTIN, the rate's date in UTC, what
an invoice owes after its notes, and a due date counted from the draft."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from akashone_es import Storage, ValidationError
from akashone_es.domain.billing import HEADS, note_lines
from akashone_es.gst import RateTable, TaxTreatment, credit_note_deadline, financial_year, ist_date
from akashone_es.storage import invoices
from projections import billing_models as bm
from projections import models as m
from projections.billing import DRAFT_YEAR, BillingProjection
from projections.rebuild import verify
from tests.conftest import log_size
from tests.integration.test_billing_rules import END, START, address, customer, line, pay

MUMBAI_BUYER = "27AAACR5055K1Z7"  # registered in Maharashtra, the supplier's state


def issue(s: Storage, user: m.User, addr: bm.BillingAddress, *prices: int) -> bm.Invoice:
    draft = s.create_invoice({"user_id": user.id, "billing_address_id": addr.id,
                              "billing_period_start": START, "billing_period_end": END,
                              "lines": [line(p, f"vm-{k}") for k, p in enumerate(prices)]})
    return s.issue_invoice(draft.id)


def draft_of(s: Storage, user: m.User, where: bm.BillingAddress, *lines: dict[str, Any],
             **extra: Any) -> bm.Invoice:
    return s.create_invoice({"user_id": user.id, "billing_address_id": where.id,
                             "billing_period_start": START, "billing_period_end": END,
                             "lines": list(lines) or [line(10_000)], **extra})


def refused_draft(s: Storage, name: str, field: str, *lines: dict[str, Any], **extra: Any
                  ) -> tuple[m.User, bm.BillingAddress]:
    """A new customer whose draft with ``lines`` and ``extra`` is refused naming ``field``,
    nothing written; the customer and its address."""
    user = customer(s, name)
    where = address(s, user, "27")
    before = log_size(s.dsn)
    with pytest.raises(ValidationError) as caught:
        draft_of(s, user, where, *lines, **extra)
    assert [field] == caught.value.fields
    assert before == log_size(s.dsn)
    return user, where


def heads(x: Any) -> tuple[int, int, int, int]:
    return x.cgst_amount, x.sgst_amount, x.utgst_amount, x.igst_amount


def status(s: Storage, invoice: bm.Invoice) -> str:
    row = s.get_invoice(invoice.id)
    assert row is not None
    return row.status


class TestCreditNotesReverseNoMoreTaxThanCharged:
    def test_two_halves_reverse_the_tax_exactly(self, issuer: Storage) -> None:
        """100 paise at 9% + 9% is 9 + 9; two notes of 50 each rounded on their own would
        reverse 5 + 5 twice (20 paise of tax against 18)."""
        user = customer(issuer, "asha")
        invoice = issue(issuer, user, address(issuer, user, "27"), 100)
        assert (9, 9, 0, 0) == heads(invoice)
        first = issuer.issue_credit_note(invoice.id, 50, "half")
        second = issuer.issue_credit_note(invoice.id, 50, "the other half")
        assert (5, 5, 0, 0) == heads(first)
        assert (4, 4, 0, 0) == heads(second)
        assert invoice.total_amount == first.total_amount + second.total_amount

    def test_many_small_notes_reverse_the_igst_charged_and_no_more(self, issuer: Storage
                                                                   ) -> None:
        user = customer(issuer, "ravi")
        invoice = issue(issuer, user, address(issuer, user, "29"), 100)  # IGST 18
        notes = [issuer.issue_credit_note(invoice.id, 10, f"part {k}") for k in range(10)]
        reversed_ = [note.igst_amount for note in notes]
        assert min(reversed_) >= 0
        assert invoice.igst_amount == sum(reversed_) == 18
        with pytest.raises(ValidationError) as caught:
            issuer.issue_credit_note(invoice.id, 1, "one paisa more")
        assert ["amount"] == caught.value.fields

    def test_a_debit_note_raises_what_may_be_credited(self, issuer: Storage) -> None:
        """After a debit note, the invoice and its debit may be credited together."""
        user = customer(issuer, "meera")
        invoice = issue(issuer, user, address(issuer, user, "27"), 10_000)
        debit = issuer.issue_credit_note(invoice.id, 5_000, "under-billed", kind="debit_note")
        before = log_size(issuer.dsn)
        with pytest.raises(ValidationError) as caught:
            issuer.issue_credit_note(invoice.id, 15_001, "too much")
        assert ["amount"] == caught.value.fields
        assert before == log_size(issuer.dsn)
        credit = issuer.issue_credit_note(invoice.id, 15_000, "all of it")
        assert credit.total_amount == invoice.total_amount + debit.total_amount
        assert heads(credit) == tuple(a + b for a, b in zip(heads(invoice), heads(debit),
                                                            strict=True))

    def test_a_debit_note_on_a_wholly_discounted_invoice(self, issuer: Storage) -> None:
        """A 100% discount leaves every line's taxable value at 0; a debit note ("shall" be
        issued when too little was charged) is spread by what the lines cost."""
        user = customer(issuer, "free")
        issuer.update_user(user.id, {"default_discount_percentage": 100})
        invoice = issue(issuer, user, address(issuer, user, "27"), 3_000, 1_000)
        assert (0, 0) == (invoice.taxable_amount, invoice.total_amount)
        assert "paid" == invoice.status  # nothing to pay
        debit = issuer.issue_credit_note(invoice.id, 400, "discount given in error",
                                         kind="debit_note")
        assert [300, 100] == [line["taxable_amount"] for line in debit.lines]
        assert (36, 36, 0, 0) == heads(debit)  # 27 + 9 a head
        assert "issued" == status(issuer, invoice)  # it owes the debit now


HEAD_BP = {"cgst": 900, "sgst": 900, "utgst": 0, "igst": 0}


@settings(max_examples=200, deadline=None)
@given(prices=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=12),
       debit=st.integers(min_value=0, max_value=10**5))
def test_credit_notes_never_reverse_more_tax_than_charged(prices: list[int], cuts: list[int],
                                                          debit: int) -> None:
    """Any sequence of credit notes (after an optional debit note), each line and head: the
    tax credited never passes the tax charged, and crediting all of it reverses exactly it."""
    tax = TaxTreatment("intra_state", cgst_bp=900, sgst_bp=900)
    lines = [{"id": f"l{k}", "description": "d", "amount": p, "taxable_amount": p,
              **{f"{h}_amount": v for h, v in tax.tax(p).items()}}
             for k, p in enumerate(prices)]
    notes: list[tuple[str, list[dict[str, Any]]]] = []
    if debit:
        notes.append(("debit_note", note_lines("debit_note", debit, lines, notes, tax)[0]))
    room = sum(prices) + debit
    for cut in cuts:
        amount = min(room, max(1, room * cut // 100))
        if not room:
            break
        notes.append(("credit_note", note_lines("credit_note", amount, lines, notes, tax)[0]))
        room -= amount
    if room:
        notes.append(("credit_note", note_lines("credit_note", room, lines, notes, tax)[0]))
    for row in lines:
        for h in HEADS:
            key = f"{h}_amount"
            on_row = [(kind, n[key]) for kind, ns in notes for n in ns
                      if n["invoice_line_id"] == row["id"]]
            charged = row[key] + sum(v for kind, v in on_row if kind == "debit_note")
            credited = [v for kind, v in on_row if kind == "credit_note"]
            assert min(credited, default=0) >= 0
            assert sum(credited) == charged  # credited in full: exactly what was charged


def test_a_line_credited_beyond_its_value_by_an_older_note_takes_no_more() -> None:
    """Notes made before line-by-line crediting may have credited a line beyond its value:
    what is left goes to the other lines, never a negative share."""
    tax = TaxTreatment("intra_state", cgst_bp=900, sgst_bp=900)
    lines = [{"id": f"l{k}", "description": "d", "amount": 100, "taxable_amount": 100,
              **{f"{h}_amount": v for h, v in tax.tax(100).items()}} for k in range(2)]
    older = [{"invoice_line_id": "l1", "taxable_amount": 150, "cgst_amount": 14,
              "sgst_amount": 14, "utgst_amount": 0, "igst_amount": 0}]
    priced, totals = note_lines("credit_note", 50, lines, [("credit_note", older)], tax)
    assert [(p["invoice_line_id"], p["taxable_amount"]) for p in priced] == [("l0", 50)]
    assert (totals["cgst_amount"], totals["sgst_amount"]) == (5, 5)


class TestCreditNoteDeadline:
    def test_a_credit_note_after_30_november_of_the_next_year_is_refused(
            self, issuer: Storage) -> None:
        """R10: a credit note for a supply of FY 2024-25 is issued by 30 November 2025 (IST);
        a debit note has no limit."""
        user = customer(issuer, "late")
        where = address(issuer, user, "27")
        with time_machine.travel(datetime(2024, 6, 15, 6, tzinfo=UTC), tick=False):
            invoice = issue(issuer, user, where, 100_000)
        assert "2024-25" == invoice.fy
        assert date(2025, 11, 30) == credit_note_deadline("2024-25")
        # 23:59 IST on 30 November: still in time
        with time_machine.travel(datetime(2025, 11, 30, 18, 29, tzinfo=UTC), tick=False):
            issuer.issue_credit_note(invoice.id, 1_000, "in time")
        before = log_size(issuer.dsn)
        # 00:01 IST on 1 December (still 30 November in UTC): too late
        with time_machine.travel(datetime(2025, 11, 30, 18, 31, tzinfo=UTC), tick=False), \
                pytest.raises(ValidationError) as caught:
            issuer.issue_credit_note(invoice.id, 1_000, "too late")
        assert ["invoice_id"] == caught.value.fields
        assert "2025-11-30" in str(caught.value)
        assert before == log_size(issuer.dsn)
        issuer.issue_credit_note(invoice.id, 1_000, "under-billed", kind="debit_note")


class TestPlaceOfSupply:
    def test_a_registered_customer_with_an_address_abroad_is_not_an_export(
            self, issuer: Storage) -> None:
        """R4: a registered customer's place of supply is its GSTIN's state; a foreign
        address does not make its supply a zero-rated export."""
        user = customer(issuer, "abroad", gst_number=MUMBAI_BUYER)
        where = issuer.create_billing_address({
            "user_id": user.id, "address_line1": "1 Raffles Place", "city": "Singapore",
            "postal_code": "048616", "country": "Singapore"})
        invoice = issue(issuer, user, where, 100_000)
        assert ("27", "intra_state", False) == (invoice.place_of_supply_code,
                                                invoice.tax_type, invoice.zero_rated)
        assert (9_000, 9_000, 0, 0) == heads(invoice)

    def test_sez_needs_a_gstin(self, issuer: Storage) -> None:
        """An SEZ unit is registered: an address flagged SEZ with no GSTIN (its own or its
        customer's) is refused, created or changed, and nothing is written."""
        user = customer(issuer, "sez")
        before = log_size(issuer.dsn)
        with pytest.raises(ValidationError) as caught:
            address(issuer, user, "27", is_sez=True)
        assert ["is_sez"] == caught.value.fields
        assert before == log_size(issuer.dsn)
        plain = address(issuer, user, "27")
        with pytest.raises(ValidationError) as caught:
            issuer.update_billing_address(plain.id, {"is_sez": True})
        assert ["is_sez"] == caught.value.fields
        sez = issuer.update_billing_address(plain.id, {"is_sez": True,
                                                       "gst_number": MUMBAI_BUYER})
        assert sez is not None
        invoice = issue(issuer, user, sez, 100_000)
        assert ("sez", (0, 0, 0, 18_000)) == (invoice.tax_type, heads(invoice))


class TestRateDate:
    def test_the_rate_is_the_one_in_force_on_the_indian_date(
            self, issuer: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
        """Documents are dated in IST: 00:30 IST on the day a rate changes takes the new
        rate, though it is still the day before in UTC."""
        table = RateTable([("998315", date(2017, 7, 1), 1800),
                           ("998315", date(2025, 9, 22), 500)])
        monkeypatch.setattr(invoices, "DEFAULT_RATES", table)
        user = customer(issuer, "rate")
        where = address(issuer, user, "29")
        moments = (datetime(2025, 9, 21, 18, 0, tzinfo=UTC),  # 23:30 IST on the 21st
                   datetime(2025, 9, 21, 19, 0, tzinfo=UTC))  # 00:30 IST on the 22nd
        rates = []
        for at in moments:
            with time_machine.travel(at, tick=False):
                rates.append(issue(issuer, user, where, 10_000).igst_amount)
        assert [date(2025, 9, 21), date(2025, 9, 22)] == [ist_date(at) for at in moments]
        assert [1_800, 500] == rates


class TestWhatAnInvoiceOwes:
    def test_a_wholly_credited_invoice_is_settled_and_never_overdue(self, issuer: Storage
                                                                    ) -> None:
        user = customer(issuer, "credited")
        invoice = issue(issuer, user, address(issuer, user, "27"), 10_000)
        issuer.issue_credit_note(invoice.id, 10_000, "service never delivered")
        assert "paid" == status(issuer, invoice)
        assert 0 == issuer.mark_overdue_invoices(datetime.now(UTC) + timedelta(days=60))
        assert "paid" == status(issuer, invoice)

    def test_paying_the_balance_after_a_credit_settles_it(self, issuer: Storage) -> None:
        user = customer(issuer, "balance")
        invoice = issue(issuer, user, address(issuer, user, "27"), 10_000)
        credit = issuer.issue_credit_note(invoice.id, 5_000, "half the month down")
        balance = invoice.total_amount - credit.total_amount
        before = log_size(issuer.dsn)
        with pytest.raises(ValidationError) as caught:
            pay(issuer, invoice, balance + 1, status="success")
        assert ["amount"] == caught.value.fields
        assert before == log_size(issuer.dsn)
        pay(issuer, invoice, balance, status="success")
        assert "paid" == status(issuer, invoice)
        assert 0 == issuer.mark_overdue_invoices(datetime.now(UTC) + timedelta(days=60))

    def test_a_debit_note_reopens_a_paid_invoice_until_it_is_paid(self, issuer: Storage
                                                                  ) -> None:
        user = customer(issuer, "debited")
        invoice = issue(issuer, user, address(issuer, user, "27"), 10_000)
        pay(issuer, invoice, invoice.total_amount, status="success")
        debit = issuer.issue_credit_note(invoice.id, 1_000, "under-billed", kind="debit_note")
        assert "issued" == status(issuer, invoice)
        assert 1 == issuer.mark_overdue_invoices(datetime.now(UTC) + timedelta(days=60))
        pay(issuer, invoice, debit.total_amount, status="success")
        assert "paid" == status(issuer, invoice)

    def test_a_refund_reopens_what_the_notes_left_owing(self, issuer: Storage) -> None:
        """Paid in full, then credited in part (the excess is the customer's): a refund of
        less than the excess leaves it paid, one of more reopens it."""
        user = customer(issuer, "refund")
        invoice = issue(issuer, user, address(issuer, user, "27"), 10_000)
        small = pay(issuer, invoice, 1_000, status="success", gateway_transaction_id="p1")
        large = pay(issuer, invoice, invoice.total_amount - 1_000, status="success",
                    gateway_transaction_id="p2")
        issuer.issue_credit_note(invoice.id, 5_000, "credited after payment")
        issuer.update_payment_transaction(small.id, {"status": "refunded"})
        assert "paid" == status(issuer, invoice)  # 1,000 refunded of a 5,900 excess
        issuer.update_payment_transaction(large.id, {"status": "refunded"})
        assert "issued" == status(issuer, invoice)  # nothing paid of the 5,900 it owes
        issuer.update_payment_transaction(  # the balance is what the notes left
            pay(issuer, invoice, 5_900, status="pending", gateway_transaction_id="p3").id,
            {"status": "success"})
        assert "paid" == status(issuer, invoice)

    def test_the_tables_rebuild_to_the_same(self, issuer: Storage, dsn: str) -> None:
        """Settling by a note and reopening by a debit are events a replay applies."""
        self.test_a_wholly_credited_invoice_is_settled_and_never_overdue(issuer)
        self.test_a_debit_note_reopens_a_paid_invoice_until_it_is_paid(issuer)
        self.test_a_refund_reopens_what_the_notes_left_owing(issuer)
        assert verify(dsn, BillingProjection, issuer.reader).ok


class TestDueDateFromIssue:
    def test_the_term_runs_from_the_issue(self, issuer: Storage) -> None:
        """A draft made 40 days ago and issued today is due 30 days from today, not 10 days
        ago (the default term is ``invoice_due_days`` from the issue)."""
        user = customer(issuer, "slow")
        where = address(issuer, user, "27")
        with time_machine.travel(datetime.now(UTC) - timedelta(days=40)):
            draft = issuer.create_invoice({
                "user_id": user.id, "billing_address_id": where.id,
                "billing_period_start": START, "billing_period_end": END,
                "lines": [line(10_000)]})
        invoice = issuer.issue_invoice(draft.id)
        assert invoice.issued_at is not None
        assert invoice.due_date == invoice.issued_at + timedelta(days=30)
        assert 0 == issuer.mark_overdue_invoices()

    def test_a_due_date_in_the_past_or_none_is_refused(self, issuer: Storage) -> None:
        user, where = refused_draft(issuer, "past", "due_date",
                                    due_date=datetime(2020, 1, 1, tzinfo=UTC))
        before = log_size(issuer.dsn)
        draft = draft_of(issuer, user, where)
        for due in (None, datetime.now(UTC) - timedelta(minutes=1)):
            with pytest.raises(ValidationError) as caught:
                issuer.update_invoice(draft.id, {"due_date": due})
            assert ["due_date"] == caught.value.fields
        assert before + 1 == log_size(issuer.dsn)


class TestRecipient:
    def test_the_invoice_names_its_recipient_as_drafted(self, issuer: Storage) -> None:
        """Rule 46: the recipient's name and address are the invoice's, not the address
        book's later changes."""
        user = customer(issuer, "moved")
        where = address(issuer, user, "27")
        invoice = issue(issuer, user, where, 10_000)
        issuer.update_billing_address(where.id, {"address_line1": "99 New Street"})
        buyer = issuer.get_invoice_buyer(invoice.id)
        assert buyer is not None
        assert (buyer["name"], buyer["address_line1"], buyer["state_code"]) == (
            "moved", "12 MG Road", "27")


class TestCouponDuration:
    def coupon(self, s: Storage, code: str, **extra: Any) -> None:
        s.create_discount_coupon({"code": code, "name": code, "discount_type": "percentage",
                                  "discount_value": 10, **extra})

    def draft(self, s: Storage, user: m.User, where: bm.BillingAddress) -> bm.Invoice:
        return draft_of(s, user, where)

    def test_a_once_coupon_discounts_one_invoice_of_each_customer(self, issuer: Storage
                                                                  ) -> None:
        self.coupon(issuer, "ONCE10")
        asha, ravi = customer(issuer, "asha"), customer(issuer, "ravi")
        at_asha, at_ravi = address(issuer, asha, "27"), address(issuer, ravi, "27")
        first = issuer.issue_invoice(self.draft(issuer, asha, at_asha).id, "ONCE10")
        assert first.discount_amount == 1_000
        again = self.draft(issuer, asha, at_asha)
        before = log_size(issuer.dsn)
        with pytest.raises(ValidationError, match="one invoice per customer") as caught:
            issuer.issue_invoice(again.id, "ONCE10")
        assert ["coupon_code"] == caught.value.fields
        assert before == log_size(issuer.dsn)
        assert issuer.issue_invoice(self.draft(issuer, ravi, at_ravi).id,
                                    "ONCE10").discount_amount == 1_000

    def test_a_repeating_coupon_runs_its_months_from_the_first_use(self, issuer: Storage
                                                                   ) -> None:
        self.coupon(issuer, "TWOMONTHS", duration_type="repeating", duration_months=2)
        self.coupon(issuer, "ALWAYS", duration_type="forever")
        user = customer(issuer, "meera")
        where = address(issuer, user, "27")
        start = datetime.now(UTC)
        for days in (0, 40):
            with time_machine.travel(start + timedelta(days=days)):
                issuer.issue_invoice(self.draft(issuer, user, where).id, "TWOMONTHS")
        with time_machine.travel(start + timedelta(days=70)), \
                pytest.raises(ValidationError, match="2 months"):
            issuer.issue_invoice(self.draft(issuer, user, where).id, "TWOMONTHS")
        for days in (0, 400):
            with time_machine.travel(start + timedelta(days=days)):
                issuer.issue_invoice(self.draft(issuer, user, where).id, "ALWAYS")

    def test_a_repeating_coupon_needs_its_months(self, issuer: Storage) -> None:
        with pytest.raises(ValidationError) as caught:
            self.coupon(issuer, "FOREVERISH", duration_type="repeating")
        assert ["duration_months"] == caught.value.fields


class TestLineSac:
    def test_the_invoice_takes_its_lines_sac_and_refuses_an_unknown_one(
            self, issuer: Storage) -> None:
        """R1: the 6-digit SAC is stored as the lines give it (the rate is looked up for it);
        a SAC with no known rate is refused, naming the field."""
        user, where = refused_draft(issuer, "sac", "sac_code",
                                    {**line(100), "sac_code": "999999"})
        draft = draft_of(issuer, user, where, {**line(10_000), "sac_code": "998313"})
        invoice = issuer.issue_invoice(draft.id)
        [tax] = issuer.get_tax_calculations(invoice.id)
        assert (invoice.sac_code, tax.hsn_sac_code) == ("998313", "998313")


class TestDraftYearInSql:
    @settings(max_examples=20, deadline=None)
    @given(st.lists(st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2199, 1, 1),
                                 timezones=st.just(UTC)), min_size=1, max_size=50))
    def test_the_sweep_dates_a_draft_as_python_does(self, server_dsn: str,
                                                    moments: list[datetime]) -> None:
        """The retention sweep's SQL (``DRAFT_YEAR``) gives a draft the financial year that
        ``gst.financial_year`` gives it, at the IST turn of 1 April and of the century."""
        edges = [datetime(y, 3, 31, 18, 29, 59, 999_999, tzinfo=UTC) for y in (1999, 2026)]
        edges += [moment + timedelta(microseconds=1) for moment in edges]
        moments = moments + edges
        with psycopg.connect(server_dsn) as conn:
            years = [year for (year,) in conn.execute(
                "SELECT " + DRAFT_YEAR + " FROM unnest(%s::timestamptz[])"
                " WITH ORDINALITY AS t(created_at, n) ORDER BY n", (moments,))]
        assert years == [financial_year(moment) for moment in moments]
        assert ["1998-99", "2025-26", "1999-00", "2026-27"] == years[-4:]
