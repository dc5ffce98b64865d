"""Billing rules on PostgreSQL: bad input unwritten, place of supply, tenant scope, rebuild."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql
from psycopg.rows import dict_row

from akashone_es import NotFoundError, PermissionDeniedError, Storage, ValidationError
from akashone_es.gst import document_number, financial_year
from projections import billing_models as bm
from projections import models as m
from projections.billing import BillingProjection
from projections.positions import START as LOG_START
from projections.positions import head
from projections.rebuild import checksums, rebuild, verify
from tests.conftest import log_size
from tests.integration.projection_helpers import project_all, project_all_twice

SUPPLIER = "27AAPFU0939F1ZV"  # registered in Maharashtra
MUMBAI_BUYER = "27AAACR5055K1Z7"  # a registered customer in Maharashtra
START, END = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC)
FY = financial_year(datetime.now(UTC).date())


def customer(s: Storage, name: str, **extra: Any) -> m.User:
    return s.create_user({"username": name, "email": f"{name}@example.com",
                          "password": "long-enough-1", **extra})


def address(s: Storage, user: m.User, state_code: str | None = "29", **extra: Any
            ) -> bm.BillingAddress:
    return s.create_billing_address({"user_id": user.id, "address_line1": "12 MG Road",
                                     "city": "Bengaluru", "postal_code": "560001",
                                     "state_code": state_code, **extra})


def line(price: Any, name: str = "vm-1") -> dict[str, Any]:
    return {"resource_type": "compute", "resource_name": name, "description": f"{name} hours",
            "quantity": 1, "unit": "hours", "unit_price": price}


def draft(s: Storage, user: m.User, addr: bm.BillingAddress, *lines: dict[str, Any]
          ) -> bm.Invoice:
    return s.create_invoice({"user_id": user.id, "billing_address_id": addr.id,
                             "billing_period_start": START, "billing_period_end": END,
                             "lines": list(lines)})


def usage(s: Storage, user: m.User, kind: str = "compute", quantity: Any = "10"
          ) -> bm.UsageRecord:
    return s.create_usage_record({"user_id": user.id, "resource_type": kind,
                                  "resource_id": f"{kind}-1", "resource_name": kind,
                                  "metric_type": "runtime", "quantity": quantity,
                                  "period_start": START, "period_end": END})


def pay(s: Storage, invoice: bm.Invoice, amount: Any, **extra: Any) -> bm.PaymentTransaction:
    return s.create_payment_transaction({"invoice_id": invoice.id, "gateway": "razorpay",
                                         "amount": amount, **extra})


@dataclass
class Customer:
    user: m.User
    address: bm.BillingAddress
    invoice: bm.Invoice


@pytest.fixture
def asha(issuer: Storage) -> Customer:
    """A Karnataka customer with an issued invoice of 100 rupees."""
    user = customer(issuer, "asha")
    addr = address(issuer, user)
    return Customer(user, addr, issuer.issue_invoice(draft(issuer, user, addr,
                                                           line(10000)).id))


BadCall = Callable[[Storage, Customer], object]
BAD_INPUT: list[tuple[str, BadCall, str]] = [
    ("negative usage", lambda s, c: usage(s, c.user, quantity=Decimal("-0.5")), "quantity"),
    ("float usage price", lambda s, c: s.create_usage_record({
        "user_id": c.user.id, "resource_type": "compute", "resource_id": "vm-1",
        "resource_name": "vm", "metric_type": "runtime", "quantity": 1, "unit_price": 5.0,
        "period_start": START, "period_end": END}), "unit_price"),
    ("float line price", lambda s, c: draft(s, c.user, c.address, line(99.99)),
     "lines.0.unit_price"),
    ("float payment", lambda s, c: pay(s, c.invoice, 11800.0), "amount"),
    ("unknown state", lambda s, c: address(s, c.user, "42"), "state_code"),
    ("float tax rate", lambda s, c: s.create_tax_calculation({
        "invoice_id": c.invoice.id, "user_id": c.user.id, "supplier_state": "Maharashtra",
        "supplier_state_code": "27", "customer_state": "Karnataka",
        "customer_state_code": "29", "tax_type": "inter_state", "taxable_amount": 100,
        "igst_rate": 18.0, "total_tax_amount": 18}), "igst_rate"),
]


class TestBadInputIsRefusedUnwritten:
    @pytest.mark.parametrize(("case", "call", "field"), BAD_INPUT,
                             ids=[case for case, _, _ in BAD_INPUT])
    def test_bad_value_names_its_field_and_writes_nothing(
            self, issuer: Storage, dsn: str, asha: Customer, case: str, call: BadCall,
            field: str) -> None:
        """Negative quantities, float money, unknown state codes: ValidationError, no event."""
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            call(issuer, asha)
        assert info.value.fields == [field], case
        assert log_size(dsn) == before
        assert issuer.get_unbilled_usage_records(asha.user.id) == []
        assert issuer.get_invoice(asha.invoice.id) == asha.invoice

    def test_domestic_address_without_state_code_is_refused(self, storage: Storage,
                                                            dsn: str) -> None:
        """A B2C address in India needs its state code (place of supply); nothing is written."""
        user = customer(storage, "ravi")
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            address(storage, user, None)
        assert info.value.fields == ["state_code"]
        assert "needs its GST state code" in info.value.errors[0]["rule"]
        assert log_size(dsn) == before
        assert storage.get_billing_addresses(user.id) == []

    def test_long_numbers_are_looked_up_but_never_issued(self, issuer: Storage) -> None:
        """A 17-character number reads as None; serial 10,000,000 would exceed 16 characters."""
        assert issuer.get_invoice_by_number(f"INV/{FY[2:4]}{FY[5:7]}/10000000") is None
        assert document_number("invoice", FY, 9_999_999) == f"INV/{FY[2:4]}{FY[5:7]}/9999999"
        with pytest.raises(ValidationError) as info:
            document_number("invoice", FY, 10_000_000)
        assert info.value.fields == ["invoice_number"]


class TestPlaceOfSupply:
    def test_unregistered_customer_is_taxed_in_the_address_state(self, issuer: Storage,
                                                                 asha: Customer) -> None:
        """No GSTIN: the Karnataka address is the place of supply, so IGST from Maharashtra."""
        assert (asha.user.gst_number, asha.invoice.buyer_gstin) == (None, None)
        assert (asha.invoice.place_of_supply_code, asha.invoice.tax_type,
                asha.invoice.igst_amount, asha.invoice.cgst_amount) == ("29", "inter_state",
                                                                        1800, 0)

    def test_registered_customer_is_taxed_in_the_gstin_state(self, issuer: Storage) -> None:
        """A Maharashtra GSTIN on a Karnataka address: supply in 27, so CGST + SGST."""
        user = customer(issuer, "rao")
        addr = address(issuer, user, "29", gst_number=MUMBAI_BUYER)
        inv = issuer.issue_invoice(draft(issuer, user, addr, line(10000)).id)
        assert (inv.buyer_gstin, inv.place_of_supply, inv.tax_type, inv.cgst_amount,
                inv.sgst_amount, inv.igst_amount) == (MUMBAI_BUYER, "Maharashtra",
                                                      "intra_state", 900, 900, 0)


@dataclass
class Tenant:
    org: m.Organization
    user: m.User
    address: bm.BillingAddress
    invoice: bm.Invoice
    usage: bm.UsageRecord
    method: bm.PaymentMethod
    payment: bm.PaymentTransaction


def tenant(s: Storage, name: str) -> Tenant:
    org = s.create_organization({"name": name})
    user = customer(s, f"{name}-owner", organization_id=org.id)
    addr = address(s, user)
    invoice = s.issue_invoice(draft(s, user, addr, line(10000)).id)
    s.issue_credit_note(invoice.id, 1000, "goodwill")
    method = s.create_payment_method({"user_id": user.id, "gateway": "razorpay",
                                      "type": "upi", "upi_id": f"{name}@okaxis"})
    payment = pay(s, invoice, 5000, gateway_transaction_id=f"pay_{name}", status="success")
    return Tenant(org, user, addr, invoice, usage(s, user), method, payment)


def reads(s: Storage, t: Tenant) -> list[Any]:
    inv, user = t.invoice.id, t.user.id
    return [s.get_invoice(inv), s.get_invoices(user), s.get_invoice_by_number(
        t.invoice.invoice_number or ""), s.get_invoice_line_items(inv),
        s.get_adjustment_notes(inv), s.get_tax_calculations(inv),
        s.get_billing_address(t.address.id), s.get_billing_addresses(user),
        s.get_default_billing_address(user), s.get_usage_record(t.usage.id),
        s.get_usage_records(user), s.get_unbilled_usage_records(user),
        s.get_payment_method(t.method.id), s.get_payment_methods(user),
        s.get_default_payment_method(user), s.get_payment_transaction(t.payment.id),
        s.get_payment_transactions(user),
        s.get_payment_transaction_by_gateway_id(t.payment.gateway_transaction_id or "")]


class TestTenantScope:
    def test_other_orgs_billing_reads_as_missing_and_cannot_be_written(
            self, issuer: Storage, dsn: str) -> None:
        """Acting for org A, org B's invoices, addresses, usage and payments are None/empty."""
        a, b = tenant(issuer, "acme"), tenant(issuer, "bharat")
        before = log_size(dsn)
        with issuer.acting_as(actor_id=a.user.id, organization_id=a.org.id):
            assert all(reads(issuer, a))
            assert reads(issuer, b) == [None, [], None, [], [], [], None, [], None, None, [],
                                        [], None, [], None, None, [], None]
            line_id = issuer.get_invoice_line_items(a.invoice.id)[0].id
            assert issuer.get_invoice_line_item(line_id) is not None
            assert issuer.update_billing_address(b.address.id, {"city": "Pune"}) is None
            assert issuer.delete_billing_address(b.address.id) is False
            assert issuer.delete_payment_method(b.method.id) is False
            for write in (lambda: pay(issuer, b.invoice, 100),
                          lambda: address(issuer, b.user)):
                with pytest.raises(NotFoundError):
                    write()
            for supplier_write in (  # the supplier's side is the platform's, for any invoice
                    lambda: issuer.update_invoice(b.invoice.id, {"notes": "x"}),
                    lambda: issuer.update_payment_transaction(b.payment.id,
                                                              {"status": "refunded"}),
                    lambda: usage(issuer, b.user),
                    lambda: issuer.issue_credit_note(b.invoice.id, 100, "x")):
                with pytest.raises(PermissionDeniedError, match="platform only"):
                    supplier_write()
        # the platform acting on A's behalf is scoped to A: B's records are not found
        with issuer.acting_as(system="billing run", organization_id=a.org.id):
            assert issuer.update_invoice(b.invoice.id, {"notes": "x"}) is None
            assert issuer.update_payment_transaction(b.payment.id,
                                                     {"status": "refunded"}) is None
            for write in (lambda: pay(issuer, b.invoice, 100),
                          lambda: usage(issuer, b.user),
                          lambda: issuer.issue_credit_note(b.invoice.id, 100, "x"),
                          lambda: issuer.generate_invoice({"user_id": b.user.id,
                                                           "period_start": START,
                                                           "period_end": END})):
                with pytest.raises(NotFoundError):
                    write()
        assert log_size(dsn) == before
        assert issuer.get_invoice(b.invoice.id).amount_paid == 5000


def billing_data_set(s: Storage, *, settled_payments: bool = True) -> None:
    """Two customers, address and method defaults moved, drafts edited, discarded and
    issued, usage invoiced with a coupon, payments, a credit note, the catalogue."""
    s.initialize_default_service_plans()
    org = s.create_organization({"name": "Acme"})
    s.create_service_plan({"name": "Acme GPU", "cpu": 32, "memory": 65536, "storage": 1000,
                           "is_public": False, "organization_id": org.id})
    s.create_hsn_code({"service_type": "compute", "hsn_code": "998315", "sac_code": "998315",
                       "description": "Hosting"})
    s.create_discount_coupon({"code": "welcome10", "name": "Welcome",
                              "discount_type": "percentage", "discount_value": 10})
    asha, ravi = customer(s, "asha"), customer(s, "ravi", organization_id=org.id)
    s.update_user(ravi.id, {"default_discount_percentage": 5})
    home, office = address(s, asha), address(s, asha, "27")
    s.set_default_billing_address(asha.id, office.id)
    s.update_billing_address(home.id, {"city": "Mysuru"})
    s.delete_billing_address(address(s, asha, "07").id)
    ravi_addr = address(s, ravi, "27", gst_number=MUMBAI_BUYER)
    card = s.create_payment_method({"user_id": asha.id, "gateway": "razorpay",
                                    "type": "card", "card_last4": "4242"})
    upi = s.create_payment_method({"user_id": asha.id, "gateway": "cashfree", "type": "upi",
                                   "upi_id": "asha@okhdfc", "is_default": True})
    s.update_payment_method(card.id, {"card_exp_year": 2031})
    s.delete_payment_method(upi.id)
    s.delete_invoice(draft(s, asha, home, line(500)).id)
    edited = draft(s, asha, home, line(10000), line(Decimal("3333.5"), "disk"))
    s.update_invoice(edited.id, {"notes": "PO 7"})
    s.delete_invoice_line_item(s.create_invoice_line_item({"invoice_id": edited.id,
                                                           **line(1, "ip")}).id)
    invoice = s.issue_invoice(edited.id)
    usage(s, ravi), usage(s, ravi, "block_storage", Decimal("250.75"))
    usage(s, ravi, "bandwidth", Decimal("1.5"))
    generated = s.generate_invoice({"user_id": ravi.id, "period_start": START,
                                    "period_end": END, "coupon_code": "WELCOME10"})
    credit = s.issue_credit_note(invoice.id, 2500, "outage")
    s.create_tax_calculation({"invoice_id": generated.id, "user_id": ravi.id,
                              "supplier_state": "Maharashtra", "supplier_state_code": "27",
                              "customer_state": "Maharashtra", "customer_state_code": "27",
                              "tax_type": "intra_state", "taxable_amount": 100,
                              "cgst_rate": Decimal(9), "sgst_rate": Decimal(9),
                              "cgst_amount": 9, "sgst_amount": 9, "total_tax_amount": 18})
    failed = pay(s, invoice, 700, gateway_transaction_id="pay_F", payment_method_id=card.id)
    s.update_payment_transaction(failed.id, {"status": "failed", "error_code": "DECLINED"})
    if settled_payments:
        part = pay(s, invoice, 5000, gateway_transaction_id="pay_1", status="success")
        pay(s, invoice, 5000, gateway_transaction_id="pay_1", status="success")
        # the balance: the total less the credit note and the first payment
        rest = pay(s, invoice, invoice.total_amount - credit.total_amount - 5000,
                   gateway_transaction_id="pay_2")
        s.update_payment_transaction(rest.id, {"status": "success"})
        s.update_payment_transaction(part.id, {"status": "refunded"})
        pay(s, generated, generated.total_amount, status="success")
    s.mark_usage_records_as_billed([usage(s, asha).id], invoice.id)
    assert ravi_addr.is_default


def live_rows(dsn: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        return {t.name: cur.execute(psql.SQL("SELECT * FROM {} ORDER BY id").format(
            psql.Identifier(t.name))).fetchall() for t in BillingProjection.tables}


class TestBillingProjection:
    def test_rebuild_from_the_log_gives_the_same_tables(self, issuer: Storage,
                                                        dsn: str) -> None:
        """Checksums of every billing table after drop + rebuild equal those before."""
        billing_data_set(issuer)
        projection = issuer.projection(BillingProjection.name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            before, last = checksums(conn, projection), head(conn)
            for table in projection.tables:
                conn.execute(psql.SQL("DROP TABLE {}").format(projection.t(table.name)))
        counts = {c.table: c.rows for c in before}
        assert {k: counts[k] for k in ("invoices", "invoice_line_items", "usage_records",
                                       "payment_transactions", "adjustment_notes",
                                       "service_plans", "billing_addresses")} == {
            "invoices": 2, "invoice_line_items": 5, "usage_records": 4,
            "payment_transactions": 4, "adjustment_notes": 1, "service_plans": 6,
            "billing_addresses": 3}

        assert rebuild(dsn, BillingProjection, issuer.reader) == last

        with psycopg.connect(dsn) as conn:
            assert checksums(conn, projection) == before
        assert verify(dsn, BillingProjection, issuer.reader).ok

    def test_every_event_delivered_twice_leaves_the_rows_unchanged(self, issuer: Storage,
                                                                   dsn: str) -> None:
        """Given the billing events of the log, projected once or each twice, the same rows
        as the live tables."""
        billing_data_set(issuer, settled_payments=False)
        with psycopg.connect(dsn) as conn:
            events, _ = issuer.reader.read(conn, LOG_START, head(conn), 10**9,
                                           BillingProjection().topics())
        once = project_all(dsn, BillingProjection, events)
        assert once == live_rows(dsn)
        serial = f"INV/{FY[2:4]}{FY[5:7]}/"
        assert sorted((r["invoice_number"], r["status"]) for r in once["invoices"]) == [
            (f"{serial}000001", "issued"), (f"{serial}000002", "issued")]
        assert project_all_twice(dsn, BillingProjection, events) == once
