"""GST defects of issue 6 item 7: addresses abroad and exports, a second supplier GSTIN,
a registered customer whose address carries no GSTIN."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from rich.console import Console

from akashone_es import Storage, ValidationError
from akashone_es.cli.billing import render_invoice
from akashone_es.gst import financial_year
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from projections import billing_models as bm
from projections import models as m
from projections.billing import BillingProjection
from projections.rebuild import verify
from tests.conftest import TEST_SETTINGS, log_size
from tests.integration.test_billing_rules import customer, line

SUPPLIER = "27AAPFU0939F1ZV"  # registered in Maharashtra
SECOND_SUPPLIER = "29AAGCG6253J1Z8"  # another registration, in Karnataka
MUMBAI_BUYER = "27AAACR5055K1Z7"  # a registered customer in Maharashtra
START, END = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
FY = financial_year(datetime.now(UTC))
FIRST = f"INV/{FY[2:4]}{FY[5:7]}/000001"
FIRST_NOTE = f"CN/{FY[2:4]}{FY[5:7]}/000001"


def acting(store: Storage) -> AbstractContextManager[Any]:
    """A platform context for a storage the fixtures did not open (before the tenancy change
    lands, ``acting_as`` takes no ``system``: then no context is needed)."""
    try:
        return store.acting_as(system="tests")
    except TypeError:
        return nullcontext()


@pytest.fixture
def suppliers(dsn: str) -> Iterator[dict[str, Storage]]:
    """Storages of two supplier GSTINs (and one exporting under a LUT) on one database."""
    with ExitStack() as stack:
        stores = {}
        for name, extra in (("mh", {"supplier_gstin": SUPPLIER}),
                            ("ka", {"supplier_gstin": SECOND_SUPPLIER}),
                            ("lut", {"supplier_gstin": SUPPLIER, "lut_financial_years": [FY]})):
            store = open_storage(Settings(**{**TEST_SETTINGS, **extra}), dsn=dsn)
            stack.callback(store.close)
            stack.enter_context(acting(store))
            stores[name] = store
        yield stores


def address(s: Storage, user: m.User, **fields: Any) -> bm.BillingAddress:
    return s.create_billing_address({"user_id": user.id, "address_line1": "1 Raffles Place",
                                     "city": "Singapore", "postal_code": "048616", **fields})


def issue(s: Storage, user: m.User, addr: bm.BillingAddress, price: int = 10000
          ) -> bm.Invoice:
    inv = s.create_invoice({"user_id": user.id, "billing_address_id": addr.id,
                            "billing_period_start": START, "billing_period_end": END,
                            "lines": [line(price)]})
    return s.issue_invoice(inv.id)


def heads(inv: bm.Invoice | bm.InvoiceLineItem) -> tuple[int, int, int, int]:
    return inv.cgst_amount, inv.sgst_amount, inv.utgst_amount, inv.igst_amount


class TestAddressAbroad:
    def test_foreign_address_without_state_code_takes_96(self, suppliers: dict[str, Storage]
                                                         ) -> None:
        """Abroad, the state code may be omitted: it is recorded as 96 (Other Countries)."""
        s = suppliers["mh"]
        addr = address(s, customer(s, "lee"), country="Singapore")
        assert (addr.country, addr.state_code, addr.state) == ("Singapore", "96", "Singapore")

    def test_foreign_address_accepts_96_given_explicitly(self, suppliers: dict[str, Storage]
                                                         ) -> None:
        """96 with a country other than India is accepted as it is."""
        s = suppliers["mh"]
        addr = address(s, customer(s, "ann"), country="United States", state="California",
                       state_code="96")
        assert (addr.state_code, addr.state) == ("96", "California")

    @pytest.mark.parametrize(("country", "code", "rule"), [
        ("India", "96", "outside India, not in India"),
        ("IN", None, "needs its GST state code"),
        ("Singapore", "27", "takes place-of-supply code 96"),
    ])
    def test_state_code_must_fit_the_country(self, suppliers: dict[str, Storage], dsn: str,
                                             country: str, code: str | None, rule: str) -> None:
        """India needs an Indian state code (never 96); abroad takes only 96: nothing written."""
        s = suppliers["mh"]
        user = customer(s, "raj")
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            address(s, user, country=country, state_code=code)
        assert info.value.fields == ["state_code"]
        assert rule in info.value.errors[0]["rule"]
        assert (log_size(dsn), s.get_billing_addresses(user.id)) == (before, [])

    def test_moving_an_address_abroad_makes_it_96_and_back_needs_a_state(
            self, suppliers: dict[str, Storage]) -> None:
        """An update to another country re-checks the state code against it."""
        s = suppliers["mh"]
        addr = address(s, customer(s, "mia"), country="India", state_code="29")
        moved = s.update_billing_address(addr.id, {"country": "Germany"})
        assert moved is not None
        assert (moved.state_code, moved.state) == ("96", "Germany")
        with pytest.raises(ValidationError) as info:
            s.update_billing_address(addr.id, {"country": "India"})
        assert info.value.fields == ["state_code"]
        with pytest.raises(ValidationError):
            s.update_billing_address(addr.id, {"state_code": "27"})
        back = s.update_billing_address(addr.id, {"country": "India", "state_code": "27"})
        assert back is not None
        assert (back.state_code, back.state) == ("27", "Maharashtra")


class TestExportInvoice:
    def test_export_without_lut_charges_igst(self, suppliers: dict[str, Storage]) -> None:
        """A customer abroad: place of supply 96, an export taxed at IGST 18 % (no LUT)."""
        s = suppliers["mh"]
        user = customer(s, "lee")
        inv = issue(s, user, address(s, user, country="Singapore"))
        assert (inv.place_of_supply_code, inv.place_of_supply, inv.tax_type,
                inv.zero_rated) == ("96", "Other Countries", "export", False)
        assert (heads(inv), inv.total_amount) == ((0, 0, 0, 1800), 11800)
        [tax] = s.get_tax_calculations(inv.id)
        assert (tax.customer_state_code, tax.tax_type, tax.igst_amount) == ("96", "export",
                                                                            1800)

    def test_generated_export_under_lut_is_zero_rated(self, suppliers: dict[str, Storage]
                                                      ) -> None:
        """With a LUT for the financial year, usage billed abroad carries no tax at all."""
        s = suppliers["lut"]
        user = customer(s, "ann")
        address(s, user, country="United States", state="California", state_code="96")
        s.create_usage_record({"user_id": user.id, "resource_type": "compute",
                               "resource_id": "vm-1", "resource_name": "vm",
                               "metric_type": "runtime", "quantity": 10, "unit_price": 1000,
                               "period_start": START, "period_end": END})
        inv = s.generate_invoice({"user_id": user.id, "period_start": START,
                                  "period_end": END})
        assert (inv.place_of_supply_code, inv.tax_type, inv.zero_rated) == ("96", "export",
                                                                          True)
        assert (heads(inv), inv.taxable_amount, inv.total_amount) == ((0, 0, 0, 0), 10000,
                                                                      10000)
        assert [heads(li) for li in s.get_invoice_line_items(inv.id)] == [(0, 0, 0, 0)]
        printed = io.StringIO()
        render_invoice(Console(file=printed, width=80), s, inv)
        text = " ".join(printed.getvalue().split())
        assert ("SUPPLY MEANT FOR EXPORT UNDER LETTER OF UNDERTAKING WITHOUT PAYMENT OF "
                "INTEGRATED TAX") in text  # Rule 46's endorsement
        assert "California, United States" in text  # and the country of destination


class TestSecondSupplierGstin:
    def test_each_gstin_has_its_own_series(self, suppliers: dict[str, Storage]) -> None:
        """Two supplier GSTINs on one database each issue INV/.../000001 and CN/.../000001."""
        mh, ka = suppliers["mh"], suppliers["ka"]
        user = customer(mh, "asha")
        addr = address(mh, user, country="India", state_code="29")
        first, second = issue(mh, user, addr), issue(ka, user, addr)
        assert [(i.invoice_number, i.supplier_gstin, i.tax_type) for i in (first, second)] == [
            (FIRST, SUPPLIER, "inter_state"), (FIRST, SECOND_SUPPLIER, "intra_state")]
        notes = [s.issue_credit_note(i.id, 1000, "goodwill") for s, i in ((mh, first),
                                                                          (ka, second))]
        assert [(n.note_number, n.supplier_gstin) for n in notes] == [
            (FIRST_NOTE, SUPPLIER), (FIRST_NOTE, SECOND_SUPPLIER)]
        assert ka.get_next_invoice_number() == FIRST.replace("000001", "000002")

    def test_number_lookup_names_the_supplier_when_two_share_it(
            self, suppliers: dict[str, Storage], dsn: str) -> None:
        """By number: the one named, else this storage's own; with neither, ambiguous."""
        mh, ka = suppliers["mh"], suppliers["ka"]
        user = customer(mh, "asha")
        addr = address(mh, user, country="India", state_code="29")
        first, second = issue(mh, user, addr), issue(ka, user, addr)
        assert mh.get_invoice_by_number(FIRST.lower()) == first
        assert ka.get_invoice_by_number(FIRST) == second
        assert mh.get_invoice_by_number(FIRST, SECOND_SUPPLIER.lower()) == second
        assert ka.get_invoice_by_number(FIRST, supplier_gstin="07AAACR5055K1ZX") is None
        with ExitStack() as stack:
            auditor = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # no GSTIN
            stack.callback(auditor.close)
            stack.enter_context(acting(auditor))
            with pytest.raises(ValidationError) as info:
                auditor.get_invoice_by_number(FIRST)
            assert info.value.fields == ["supplier_gstin"]
            assert auditor.get_invoice_by_number(FIRST, SUPPLIER) == first

    def test_numbers_stay_unique_per_gstin_whatever_the_case(
            self, suppliers: dict[str, Storage], dsn: str) -> None:
        """The read table refuses the same number twice for one GSTIN, in any letter case."""
        mh = suppliers["mh"]
        user = customer(mh, "asha")
        inv = issue(mh, user, address(mh, user, country="India", state_code="29"))
        copy = ("INSERT INTO invoices (id, invoice_number, supplier_gstin, user_id,"
                " billing_address_id, billing_period_start, billing_period_end, due_date,"
                " created_at, updated_at) SELECT gen_random_uuid(), %s, %s, user_id,"
                " billing_address_id, billing_period_start, billing_period_end, due_date,"
                " created_at, updated_at FROM invoices WHERE id = %s")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(copy, (FIRST, SECOND_SUPPLIER, inv.id))  # another GSTIN: fine
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute(copy, (FIRST.lower(), SUPPLIER, inv.id))

    def test_an_existing_database_is_brought_up_to_date(self, dsn: str) -> None:
        """A database made with the global number indexes (and notes without a supplier
        GSTIN) is upgraded when a storage opens it: the second GSTIN can then issue, the old
        note gets its invoice's GSTIN, and the tables equal a rebuild from the log."""
        first_settings = Settings(**{**TEST_SETTINGS, "supplier_gstin": SUPPLIER})
        with ExitStack() as stack:
            mh = open_storage(first_settings, dsn=dsn)
            stack.callback(mh.close)
            stack.enter_context(acting(mh))
            user = customer(mh, "asha")
            addr = address(mh, user, country="India", state_code="29")
            first = issue(mh, user, addr)
            mh.issue_credit_note(first.id, 1000, "goodwill")
        with psycopg.connect(dsn, autocommit=True) as conn:  # the schema as it was shipped
            conn.execute("DROP INDEX invoices_supplier_number_key")
            conn.execute("CREATE UNIQUE INDEX invoices_number_key"
                         " ON invoices (upper(invoice_number))")
            conn.execute("ALTER TABLE adjustment_notes DROP COLUMN supplier_gstin")
            conn.execute("CREATE UNIQUE INDEX adjustment_notes_number_key"
                         " ON adjustment_notes (upper(note_number))")
        with ExitStack() as stack:
            ka = open_storage(Settings(**{**TEST_SETTINGS, "supplier_gstin": SECOND_SUPPLIER}),
                              dsn=dsn)
            stack.callback(ka.close)
            stack.enter_context(acting(ka))
            second = issue(ka, user, addr)
            note = ka.issue_credit_note(second.id, 1000, "goodwill")
            assert (second.invoice_number, note.note_number) == (FIRST, FIRST_NOTE)
            assert [n.supplier_gstin for n in ka.get_adjustment_notes(first.id)] == [SUPPLIER]
            assert verify(dsn, BillingProjection, ka.reader).ok
        with psycopg.connect(dsn) as conn:
            names = {r[0] for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename IN"
                " ('invoices', 'adjustment_notes')").fetchall()}
        assert not names & {"invoices_number_key", "adjustment_notes_number_key"}


class TestRegisteredCustomerWithoutAddressGstin:
    def test_the_customers_gstin_decides_buyer_and_place_of_supply(
            self, suppliers: dict[str, Storage]) -> None:
        """User GSTIN in Maharashtra, Karnataka address without one: a B2B supply in 27."""
        s = suppliers["mh"]
        user = customer(s, "rao", gst_number=MUMBAI_BUYER)
        addr = address(s, user, country="India", state_code="29")
        draft = s.create_invoice({"user_id": user.id, "billing_address_id": addr.id,
                                  "billing_period_start": START, "billing_period_end": END,
                                  "lines": [line(10000)]})
        assert draft.buyer_gstin == MUMBAI_BUYER
        inv = s.issue_invoice(draft.id)
        assert (inv.buyer_gstin, inv.place_of_supply_code, inv.tax_type) == (
            MUMBAI_BUYER, "27", "intra_state")
        assert heads(inv) == (900, 900, 0, 0)

    def test_the_address_gstin_comes_first(self, suppliers: dict[str, Storage]) -> None:
        """An address with its own GSTIN (Karnataka) is billed on that one."""
        s = suppliers["mh"]
        user = customer(s, "rao", gst_number=MUMBAI_BUYER)
        addr = address(s, user, country="India", state_code="29",
                       gst_number=SECOND_SUPPLIER)
        inv = issue(s, user, addr)
        assert (inv.buyer_gstin, inv.place_of_supply_code, heads(inv)) == (
            SECOND_SUPPLIER, "29", (0, 0, 0, 1800))
