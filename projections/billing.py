"""Billing read tables: addresses, invoices and lines, notes, usage, payments, tax, catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from akashone_es.domain.billing import (
    AdjustmentNote,
    BillingAddress,
    DocumentSeries,
    Invoice,
    PaymentMethod,
    PaymentTransaction,
    TaxCalculation,
    UsageRecord,
)
from akashone_es.domain.catalog import DiscountCoupon, HsnCode, ServicePlan
from akashone_es.gst import STATE_CODES
from projections.engine import Batch, Projection, Table, handles

ADDRESS_COLUMNS = ("address_line1", "address_line2", "city", "state", "state_code",
                   "postal_code", "country", "gst_number", "is_sez", "lut_number")
ADDRESS_DEFAULTS: dict[str, Any] = {"is_sez": False, "country": "India"}
METHOD_COLUMNS = ("gateway", "gateway_method_id", "type", "card_last4", "card_brand",
                  "card_exp_month", "card_exp_year", "upi_id", "status")
TRANSACTION_COLUMNS = ("payment_method_id", "gateway", "gateway_transaction_id",
                       "gateway_order_id", "amount", "currency", "status", "payment_method")
TAX_COLUMNS = ("supplier_state", "supplier_state_code", "customer_state",
               "customer_state_code", "tax_type", "taxable_amount", "cgst_rate", "sgst_rate",
               "utgst_rate", "igst_rate", "cgst_amount", "sgst_amount", "utgst_amount",
               "igst_amount", "total_tax_amount", "gst_rate", "hsn_sac_code", "calculated_at")
HSN_COLUMNS = ("service_type", "hsn_code", "sac_code", "description", "gst_rate", "is_active")
COUPON_COLUMNS = ("code", "name", "description", "discount_type", "discount_value",
                  "duration_type", "duration_months", "max_uses", "times_used",
                  "min_order_amount", "valid_from", "valid_until", "is_active", "created_by")
PLAN_COLUMNS = ("name", "description", "cpu", "memory", "storage", "bandwidth",
                "cloudstack_offering_id", "price", "is_active", "is_public", "organization_id",
                "sort_order")
INVOICE_TOTALS = ("subtotal_amount", "discount_amount", "taxable_amount", "cgst_amount",
                  "sgst_amount", "utgst_amount", "igst_amount", "round_off_amount",
                  "total_amount")
LINE_COLUMNS = ("resource_type", "resource_id", "resource_name", "description", "quantity",
                "unit", "unit_price", "amount", "discount_amount", "taxable_amount",
                "cgst_amount", "sgst_amount", "utgst_amount", "igst_amount", "sac_code",
                "usage_start", "usage_end")

BILLING_ADDRESSES = Table("billing_addresses", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, address_line1 text NOT NULL,
    address_line2 text, city text NOT NULL, state text NOT NULL, state_code text NOT NULL,
    postal_code text NOT NULL, country text NOT NULL DEFAULT 'India', gst_number text,
    is_sez boolean NOT NULL DEFAULT false, lut_number text,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS billing_addresses_user_idx ON {table} (user_id)",
     "CREATE UNIQUE INDEX IF NOT EXISTS billing_addresses_one_default"
     " ON {table} (user_id) WHERE is_default"])

INVOICES = Table("invoices", """
    id uuid PRIMARY KEY, invoice_number text, fy text, user_id uuid NOT NULL,
    organization_id uuid, billing_address_id uuid NOT NULL,
    billing_period_start timestamptz NOT NULL, billing_period_end timestamptz NOT NULL,
    subtotal_amount bigint NOT NULL DEFAULT 0, discount_amount bigint NOT NULL DEFAULT 0,
    taxable_amount bigint NOT NULL DEFAULT 0, cgst_amount bigint NOT NULL DEFAULT 0,
    sgst_amount bigint NOT NULL DEFAULT 0, utgst_amount bigint NOT NULL DEFAULT 0,
    igst_amount bigint NOT NULL DEFAULT 0, round_off_amount bigint NOT NULL DEFAULT 0,
    total_amount bigint NOT NULL DEFAULT 0, amount_paid bigint NOT NULL DEFAULT 0,
    tax_type text, gst_rate numeric(5,2) NOT NULL DEFAULT 18, hsn_code text, sac_code text,
    place_of_supply text, place_of_supply_code text, supplier_gstin text,
    supplier_state_code text, buyer_gstin text, zero_rated boolean NOT NULL DEFAULT false,
    coupon_code text, discount_percentage integer NOT NULL DEFAULT 0,
    einvoice_irn text, einvoice_ack_no text, einvoice_ack_date timestamptz,
    einvoice_qr_code text, einvoice_enabled boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'draft', issued_at timestamptz,
    due_date timestamptz NOT NULL, paid_at timestamptz, notes text,
    currency text NOT NULL DEFAULT 'INR', created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS invoices_number_key ON {table} (upper(invoice_number))",
     "CREATE INDEX IF NOT EXISTS invoices_user_idx ON {table} (user_id, created_at DESC)"])

INVOICE_LINE_ITEMS = Table("invoice_line_items", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, line_number integer NOT NULL,
    resource_type text NOT NULL, resource_id varchar, resource_name text NOT NULL,
    description text NOT NULL, quantity numeric NOT NULL, unit text NOT NULL,
    unit_price numeric NOT NULL, amount bigint NOT NULL,
    discount_amount bigint NOT NULL DEFAULT 0, taxable_amount bigint NOT NULL DEFAULT 0,
    cgst_amount bigint NOT NULL DEFAULT 0, sgst_amount bigint NOT NULL DEFAULT 0,
    utgst_amount bigint NOT NULL DEFAULT 0, igst_amount bigint NOT NULL DEFAULT 0,
    sac_code text, usage_start timestamptz, usage_end timestamptz,
    created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS invoice_line_items_invoice_idx"
     " ON {table} (invoice_id, line_number)"])

ADJUSTMENT_NOTES = Table("adjustment_notes", """
    id uuid PRIMARY KEY, kind text NOT NULL, note_number text NOT NULL, fy text NOT NULL,
    invoice_id uuid NOT NULL, invoice_number text NOT NULL, user_id uuid NOT NULL,
    organization_id uuid, reason text NOT NULL, tax_type text NOT NULL,
    taxable_amount bigint NOT NULL, cgst_amount bigint NOT NULL, sgst_amount bigint NOT NULL,
    utgst_amount bigint NOT NULL, igst_amount bigint NOT NULL, total_amount bigint NOT NULL,
    lines jsonb NOT NULL, issued_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS adjustment_notes_number_key"
     " ON {table} (upper(note_number))",
     "CREATE INDEX IF NOT EXISTS adjustment_notes_invoice_idx ON {table} (invoice_id)"])

USAGE_RECORDS = Table("usage_records", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, organization_id uuid,
    resource_type text NOT NULL, resource_id varchar NOT NULL, resource_name text NOT NULL,
    metric_type text NOT NULL, quantity numeric NOT NULL, unit text NOT NULL,
    unit_price numeric NOT NULL, total_cost numeric NOT NULL,
    recorded_at timestamptz NOT NULL, period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL, invoice_id uuid, billed boolean NOT NULL DEFAULT false,
    metadata jsonb, created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS usage_records_user_idx"
     " ON {table} (user_id, billed, period_start)",
     "CREATE INDEX IF NOT EXISTS usage_records_invoice_idx ON {table} (invoice_id)"])

PAYMENT_METHODS = Table("payment_methods", """
    id uuid PRIMARY KEY, user_id uuid NOT NULL, gateway text NOT NULL,
    gateway_method_id text, type text NOT NULL, card_last4 text, card_brand text,
    card_exp_month integer, card_exp_year integer, upi_id text,
    is_default boolean NOT NULL DEFAULT false, status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS payment_methods_user_idx ON {table} (user_id)",
     "CREATE UNIQUE INDEX IF NOT EXISTS payment_methods_one_default"
     " ON {table} (user_id) WHERE is_default"])

PAYMENT_TRANSACTIONS = Table("payment_transactions", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, user_id uuid NOT NULL,
    payment_method_id uuid, gateway text NOT NULL, gateway_transaction_id text,
    gateway_order_id text, amount bigint NOT NULL, currency text NOT NULL DEFAULT 'INR',
    status text NOT NULL DEFAULT 'pending', payment_method text, gateway_response jsonb,
    error_code text, error_message text, initiated_at timestamptz NOT NULL,
    completed_at timestamptz, refunded_at timestamptz, created_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS payment_transactions_gateway_key"
     " ON {table} (gateway, gateway_transaction_id)",
     "CREATE INDEX IF NOT EXISTS payment_transactions_user_idx"
     " ON {table} (user_id, initiated_at DESC)"])

TAX_CALCULATIONS = Table("tax_calculations", """
    id uuid PRIMARY KEY, invoice_id uuid NOT NULL, user_id uuid NOT NULL,
    supplier_state text NOT NULL, supplier_state_code text NOT NULL,
    customer_state text NOT NULL, customer_state_code text NOT NULL, tax_type text NOT NULL,
    taxable_amount bigint NOT NULL, cgst_rate numeric(5,2) NOT NULL DEFAULT 0,
    sgst_rate numeric(5,2) NOT NULL DEFAULT 0, utgst_rate numeric(5,2) NOT NULL DEFAULT 0,
    igst_rate numeric(5,2) NOT NULL DEFAULT 0, cgst_amount bigint NOT NULL DEFAULT 0,
    sgst_amount bigint NOT NULL DEFAULT 0, utgst_amount bigint NOT NULL DEFAULT 0,
    igst_amount bigint NOT NULL DEFAULT 0, total_tax_amount bigint NOT NULL,
    gst_rate numeric(5,2) NOT NULL DEFAULT 18, hsn_sac_code text NOT NULL DEFAULT '998315',
    calculated_at timestamptz NOT NULL, created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS tax_calculations_invoice_idx ON {table} (invoice_id)"])

HSN_CODES = Table("hsn_codes", """
    id uuid PRIMARY KEY, service_type text NOT NULL, hsn_code text NOT NULL,
    sac_code text NOT NULL, description text NOT NULL, gst_rate numeric(5,2) NOT NULL DEFAULT 18,
    is_active boolean NOT NULL DEFAULT true, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS hsn_codes_service_type_key ON {table} (service_type)"])

DISCOUNT_COUPONS = Table("discount_coupons", """
    id uuid PRIMARY KEY, code text NOT NULL, name text NOT NULL, description text,
    discount_type text NOT NULL, discount_value integer NOT NULL,
    duration_type text NOT NULL, duration_months integer, max_uses integer,
    times_used integer NOT NULL DEFAULT 0, min_order_amount bigint,
    valid_from timestamptz, valid_until timestamptz, is_active boolean NOT NULL DEFAULT true,
    created_by uuid, created_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS discount_coupons_code_key ON {table} (upper(code))"])

SERVICE_PLANS = Table("service_plans", """
    id uuid PRIMARY KEY, name text NOT NULL, description text, cpu integer NOT NULL,
    memory integer NOT NULL, storage integer NOT NULL, bandwidth integer,
    cloudstack_offering_id varchar, price integer NOT NULL DEFAULT 0,
    is_active boolean NOT NULL DEFAULT true, is_public boolean NOT NULL DEFAULT true,
    organization_id uuid, sort_order integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS service_plans_org_idx ON {table} (organization_id)"])


DOCUMENT_SERIES = Table("document_series", """
    id uuid PRIMARY KEY, supplier_gstin text NOT NULL, fy text NOT NULL, kind text NOT NULL,
    last_sequence bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL""",
    ["CREATE UNIQUE INDEX IF NOT EXISTS document_series_key"
     " ON {table} (supplier_gstin, fy, kind)"])


def _json(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


class BillingProjection(Projection):
    """Inline: the billing contract reads these; unique indexes guard numbers and codes."""

    name = "billing"
    mode = "inline"
    tables = (BILLING_ADDRESSES, INVOICES, INVOICE_LINE_ITEMS, ADJUSTMENT_NOTES, USAGE_RECORDS,
              PAYMENT_METHODS, PAYMENT_TRANSACTIONS, TAX_CALCULATIONS, HSN_CODES,
              DISCOUNT_COUPONS, SERVICE_PLANS, DOCUMENT_SERIES)
    unique_constraints = {
        "invoices_number_key": ("invoice", "invoice_number"),
        "adjustment_notes_number_key": ("adjustment_note", "note_number"),
        "payment_transactions_gateway_key": ("payment_transaction", "gateway_transaction_id"),
        "hsn_codes_service_type_key": ("hsn_code", "service_type"),
        "discount_coupons_code_key": ("discount_coupon", "code"),
        "billing_addresses_one_default": ("billing_address", "is_default"),
        "payment_methods_one_default": ("payment_method", "is_default"),
    }

    def _insert(self, table: str, columns: Sequence[str], *, stamps: Sequence[str]) -> bytes:
        names = ["id", *columns, *stamps]
        marks = ", ".join(["%s"] * len(names))
        return self.q("INSERT INTO {t} (" + ", ".join(names) + ") VALUES (" + marks + ")"
                      " ON CONFLICT (id) DO NOTHING RETURNING *", t=table)

    def _updates(self, table: str, columns: Sequence[str], stamp: str | None) -> dict[str, bytes]:
        tail = f", {stamp} = %s" if stamp else ""
        return {c: self.q("UPDATE {t} SET " + c + " = %s" + tail + " WHERE id = %s RETURNING *",
                          t=table) for c in columns}

    def prepare(self) -> None:
        self.open_series = self.q(
            "INSERT INTO {t} (id, supplier_gstin, fy, kind, updated_at) VALUES (%s, %s, %s, %s,"
            " %s) ON CONFLICT (id) DO NOTHING", t="document_series")
        self.advance_series = self.q(
            "UPDATE {t} SET last_sequence = %s, updated_at = %s WHERE id = %s",
            t="document_series")
        self.insert_address = self._insert(
            "billing_addresses", ("user_id", *ADDRESS_COLUMNS, "is_default"),
            stamps=("created_at", "updated_at"))
        self.update_address = self._updates("billing_addresses",
                                            (*ADDRESS_COLUMNS, "is_default"), "updated_at")
        self.delete_address = self.q("DELETE FROM {t} WHERE id = %s", t="billing_addresses")
        self.insert_invoice = self._insert(
            "invoices", ("user_id", "organization_id", "billing_address_id", "buyer_gstin",
                         "billing_period_start", "billing_period_end", "due_date", "currency",
                         "notes"), stamps=("created_at", "updated_at"))
        self.insert_line = self._insert("invoice_line_items",
                                        ("invoice_id", "line_number", *LINE_COLUMNS),
                                        stamps=("created_at",))
        self.delete_line = self.q("DELETE FROM {t} WHERE id = %s", t="invoice_line_items")
        self.delete_lines = self.q("DELETE FROM {t} WHERE invoice_id = %s",
                                   t="invoice_line_items")
        self.update_invoice = self._updates(
            "invoices", ("due_date", "notes", "billing_period_start", "billing_period_end",
                         "status", "amount_paid", "paid_at"), "updated_at")
        self.delete_invoice = self.q("DELETE FROM {t} WHERE id = %s", t="invoices")
        self.issue_invoice = self.q(
            "UPDATE {t} SET invoice_number = %s, fy = %s, issued_at = %s, status = 'issued',"
            " supplier_gstin = %s, supplier_state_code = %s, place_of_supply = %s,"
            " place_of_supply_code = %s, tax_type = %s, zero_rated = %s, gst_rate = %s,"
            " hsn_code = %s, sac_code = %s, coupon_code = %s, discount_percentage = %s, "
            + ", ".join(f"{c} = %s" for c in INVOICE_TOTALS)
            + ", updated_at = %s WHERE id = %s RETURNING *", t="invoices")
        self.set_paid = self.q(
            "UPDATE {t} SET amount_paid = %s, updated_at = %s WHERE id = %s RETURNING *",
            t="invoices")
        self.insert_note = self._insert(
            "adjustment_notes", ("kind", "note_number", "fy", "invoice_id", "invoice_number",
                                 "user_id", "organization_id", "reason", "tax_type",
                                 "taxable_amount", "cgst_amount", "sgst_amount",
                                 "utgst_amount", "igst_amount", "total_amount", "lines"),
            stamps=("issued_at",))
        self.insert_usage = self._insert(
            "usage_records", ("user_id", "organization_id", "resource_type", "resource_id",
                              "resource_name", "metric_type", "quantity", "unit",
                              "unit_price", "total_cost", "recorded_at", "period_start",
                              "period_end", "metadata"), stamps=("created_at",))
        self.bill_usage = self.q(
            "UPDATE {t} u SET invoice_id = v.invoice_id, billed = true"
            " FROM unnest(%s::uuid[], %s::uuid[]) AS v(invoice_id, id) WHERE u.id = v.id",
            t="usage_records")
        self.insert_method = self._insert("payment_methods",
                                          ("user_id", *METHOD_COLUMNS, "is_default"),
                                          stamps=("created_at", "updated_at"))
        self.update_method = self._updates("payment_methods", (*METHOD_COLUMNS, "is_default"),
                                           "updated_at")
        self.insert_transaction = self._insert(
            "payment_transactions", ("invoice_id", "user_id", *TRANSACTION_COLUMNS),
            stamps=("initiated_at", "created_at"))
        self.update_transaction = self._updates(
            "payment_transactions", (*TRANSACTION_COLUMNS, "gateway_response", "error_code",
                                     "error_message", "completed_at", "refunded_at"), None)
        self.insert_tax = self._insert("tax_calculations", ("invoice_id", "user_id",
                                                            *TAX_COLUMNS),
                                       stamps=("created_at",))
        self.catalog: dict[type, tuple[bytes, dict[str, bytes], bytes, tuple[str, ...],
                                       tuple[str, ...]]] = {}
        for cls, table, columns, stamps in (
                (HsnCode, "hsn_codes", HSN_COLUMNS, ("created_at", "updated_at")),
                (DiscountCoupon, "discount_coupons", COUPON_COLUMNS, ("created_at",)),
                (ServicePlan, "service_plans", PLAN_COLUMNS, ("created_at", "updated_at"))):
            self.catalog[cls] = (
                self._insert(table, columns, stamps=stamps),
                self._updates(table, columns, "updated_at" if "updated_at" in stamps else None),
                self.q("DELETE FROM {t} WHERE id = %s", t=table), columns, stamps)

    # -- document series ------------------------------------------------------------------
    @handles(DocumentSeries.Opened)
    def _series_opened(self, e: DocumentSeries.Opened, _: int, b: Batch) -> None:
        b.add(self.open_series, (e.originator_id, e.supplier_gstin, e.fy, e.kind, e.timestamp))

    @handles(DocumentSeries.Allocated)
    def _series_allocated(self, e: DocumentSeries.Allocated, _: int, b: Batch) -> None:
        b.add(self.advance_series, (e.sequence, e.timestamp, e.originator_id))

    # -- billing addresses ----------------------------------------------------------------
    @handles(BillingAddress.Created)
    def _address_created(self, e: BillingAddress.Created, _: int, b: Batch) -> None:
        values = [e.fields.get(c, ADDRESS_DEFAULTS.get(c)) for c in ADDRESS_COLUMNS]
        b.add(self.insert_address, (e.originator_id, e.user_id, *values,
                                    bool(e.fields.get("is_default")), e.timestamp, e.timestamp),
              returns=("billing_addresses", e.originator_id))

    @handles(BillingAddress.Updated)
    def _address_updated(self, e: BillingAddress.Updated, _: int, b: Batch) -> None:
        for column, value in e.changes.items():
            b.add(self.update_address[column], (value, e.timestamp, e.originator_id),
                  returns=("billing_addresses", e.originator_id))

    @handles(BillingAddress.DefaultSet)
    def _address_default(self, e: BillingAddress.DefaultSet, _: int, b: Batch) -> None:
        b.add(self.update_address["is_default"], (e.is_default, e.timestamp, e.originator_id),
              returns=("billing_addresses", e.originator_id))

    @handles(BillingAddress.Deleted)
    def _address_deleted(self, e: BillingAddress.Deleted, _: int, b: Batch) -> None:
        b.add(self.delete_address, (e.originator_id,))

    # -- invoices -------------------------------------------------------------------------
    def _line(self, invoice_id: Any, number: int, line: dict[str, Any], at: Any, b: Batch
              ) -> None:
        b.add(self.insert_line, (line["id"], invoice_id, number,
                                 *[_json(line.get(c, 0 if c.endswith("_amount") else None))
                                   for c in LINE_COLUMNS], at),
              returns=("invoice_line_items", line["id"]))

    @handles(Invoice.Drafted)
    def _invoice_drafted(self, e: Invoice.Drafted, _: int, b: Batch) -> None:
        b.add(self.insert_invoice, (e.originator_id, e.user_id, e.organization_id,
                                    e.billing_address_id, e.buyer.get("gst_number"),
                                    e.billing_period_start, e.billing_period_end, e.due_date,
                                    e.currency, e.notes, e.timestamp, e.timestamp),
              returns=("invoices", e.originator_id))
        for number, line in enumerate(e.lines, start=1):
            self._line(e.originator_id, number, line, e.timestamp, b)

    @handles(Invoice.LineAdded)
    def _line_added(self, e: Invoice.LineAdded, _: int, b: Batch) -> None:
        self._line(e.originator_id, e.originator_version, e.line, e.timestamp, b)

    @handles(Invoice.LineRemoved)
    def _line_removed(self, e: Invoice.LineRemoved, _: int, b: Batch) -> None:
        b.add(self.delete_line, (e.line_id,))

    @handles(Invoice.DraftUpdated)
    def _draft_updated(self, e: Invoice.DraftUpdated, _: int, b: Batch) -> None:
        for column, value in e.changes.items():
            b.add(self.update_invoice[column], (value, e.timestamp, e.originator_id),
                  returns=("invoices", e.originator_id))

    @handles(Invoice.Discarded)
    def _invoice_discarded(self, e: Invoice.Discarded, _: int, b: Batch) -> None:
        b.add(self.delete_lines, (e.originator_id,))
        b.add(self.delete_invoice, (e.originator_id,))

    @handles(Invoice.Issued)
    def _invoice_issued(self, e: Invoice.Issued, _: int, b: Batch) -> None:
        b.add(self.delete_lines, (e.originator_id,))
        for number, line in enumerate(e.lines, start=1):
            self._line(e.originator_id, number, line, e.timestamp, b)
        b.add(self.issue_invoice, (
            e.invoice_number, e.fy, e.issued_at, e.supplier_gstin, e.supplier_state_code,
            STATE_CODES.get(e.place_of_supply, "Other Countries"), e.place_of_supply,
            e.tax_type, e.zero_rated, e.rate_bp / 100, e.sac_code, e.sac_code, e.coupon_code,
            e.discount_percentage, *[e.totals[c] for c in INVOICE_TOTALS], e.timestamp,
            e.originator_id), returns=("invoices", e.originator_id))

    @handles(Invoice.PaymentApplied)
    def _payment_applied(self, e: Invoice.PaymentApplied, _: int, b: Batch) -> None:
        b.add(self.set_paid, (e.amount_paid, e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

    @handles(Invoice.PaymentReversed)
    def _payment_reversed(self, e: Invoice.PaymentReversed, _: int, b: Batch) -> None:
        b.add(self.set_paid, (e.amount_paid, e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))
        b.add(self.q("UPDATE {t} SET status = 'issued', paid_at = NULL WHERE id = %s"
                     " AND status = 'paid' AND amount_paid < total_amount", t="invoices"),
              (e.originator_id,))

    @handles(Invoice.Paid)
    def _invoice_paid(self, e: Invoice.Paid, _: int, b: Batch) -> None:
        b.add(self.update_invoice["status"], ("paid", e.timestamp, e.originator_id))
        b.add(self.update_invoice["paid_at"], (e.paid_at, e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

    @handles(Invoice.MarkedOverdue)
    def _invoice_overdue(self, e: Invoice.MarkedOverdue, _: int, b: Batch) -> None:
        b.add(self.update_invoice["status"], ("overdue", e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

    @handles(Invoice.Cancelled)
    def _invoice_cancelled(self, e: Invoice.Cancelled, _: int, b: Batch) -> None:
        b.add(self.update_invoice["status"], ("cancelled", e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

    @handles(AdjustmentNote.Issued)
    def _note_issued(self, e: AdjustmentNote.Issued, _: int, b: Batch) -> None:
        t = e.totals
        b.add(self.insert_note, (e.originator_id, e.kind, e.note_number, e.fy, e.invoice_id,
                                 e.invoice_number, e.user_id, e.organization_id, e.reason,
                                 e.tax_type, t["taxable_amount"], t["cgst_amount"],
                                 t["sgst_amount"], t["utgst_amount"], t["igst_amount"],
                                 t["total_amount"], Jsonb(e.lines), e.timestamp),
              returns=("adjustment_notes", e.originator_id))

    # -- usage ----------------------------------------------------------------------------
    @handles(UsageRecord.Recorded)
    def _usage_recorded(self, e: UsageRecord.Recorded, _: int, b: Batch) -> None:
        b.add(self.insert_usage, (e.originator_id, e.user_id, e.organization_id,
                                  e.resource_type, e.resource_id, e.resource_name,
                                  e.metric_type, e.quantity, e.unit, e.unit_price,
                                  e.total_cost, e.recorded_at, e.period_start, e.period_end,
                                  _json(e.metadata_json), e.timestamp),
              returns=("usage_records", e.originator_id))

    @handles(UsageRecord.Billed)
    def _usage_billed(self, e: UsageRecord.Billed, _: int, b: Batch) -> None:
        b.add_row(self.bill_usage, (e.invoice_id, e.originator_id))

    # -- payments -------------------------------------------------------------------------
    @handles(PaymentMethod.Created)
    def _method_added(self, e: PaymentMethod.Created, _: int, b: Batch) -> None:
        values = [e.fields.get(c) for c in METHOD_COLUMNS]
        b.add(self.insert_method, (e.originator_id, e.user_id, *values,
                                   bool(e.fields.get("is_default")), e.timestamp, e.timestamp),
              returns=("payment_methods", e.originator_id))

    @handles(PaymentMethod.Updated)
    def _method_updated(self, e: PaymentMethod.Updated, _: int, b: Batch) -> None:
        for column, value in e.changes.items():
            b.add(self.update_method[column], (value, e.timestamp, e.originator_id),
                  returns=("payment_methods", e.originator_id))

    @handles(PaymentMethod.DefaultSet)
    def _method_default(self, e: PaymentMethod.DefaultSet, _: int, b: Batch) -> None:
        b.add(self.update_method["is_default"], (e.is_default, e.timestamp, e.originator_id),
              returns=("payment_methods", e.originator_id))

    @handles(PaymentMethod.Deleted)
    def _method_removed(self, e: PaymentMethod.Deleted, _: int, b: Batch) -> None:
        b.add(self.update_method["status"], ("removed", e.timestamp, e.originator_id))
        b.add(self.update_method["is_default"], (False, e.timestamp, e.originator_id),
              returns=("payment_methods", e.originator_id))

    @handles(PaymentTransaction.Initiated)
    def _transaction_initiated(self, e: PaymentTransaction.Initiated, _: int, b: Batch
                               ) -> None:
        values = [e.fields.get(c) for c in TRANSACTION_COLUMNS]
        b.add(self.insert_transaction, (e.originator_id, e.invoice_id, e.user_id, *values,
                                        e.timestamp, e.timestamp),
              returns=("payment_transactions", e.originator_id))

    def _set_transaction(self, e: Any, b: Batch, **values: Any) -> None:
        for column, value in values.items():
            b.add(self.update_transaction[column], (_json(value), e.originator_id),
                  returns=("payment_transactions", e.originator_id))

    @handles(PaymentTransaction.Succeeded)
    def _transaction_succeeded(self, e: PaymentTransaction.Succeeded, _: int, b: Batch
                               ) -> None:
        self._set_transaction(e, b, gateway_response=e.gateway_response,
                              completed_at=e.completed_at, status="success")

    @handles(PaymentTransaction.Failed)
    def _transaction_failed(self, e: PaymentTransaction.Failed, _: int, b: Batch) -> None:
        self._set_transaction(e, b, gateway_response=e.gateway_response,
                              error_code=e.error_code, error_message=e.error_message,
                              status="failed")

    @handles(PaymentTransaction.Refunded)
    def _transaction_refunded(self, e: PaymentTransaction.Refunded, _: int, b: Batch) -> None:
        self._set_transaction(e, b, refunded_at=e.refunded_at, status="refunded")

    @handles(PaymentTransaction.Updated)
    def _transaction_updated(self, e: PaymentTransaction.Updated, _: int, b: Batch) -> None:
        self._set_transaction(e, b, **e.changes)

    @handles(TaxCalculation.Recorded)
    def _tax_recorded(self, e: TaxCalculation.Recorded, _: int, b: Batch) -> None:
        b.add(self.insert_tax, (e.originator_id, e.invoice_id, e.user_id,
                                *[e.fields.get(c) for c in TAX_COLUMNS], e.timestamp),
              returns=("tax_calculations", e.originator_id))

    # -- catalogue ------------------------------------------------------------------------
    @handles(HsnCode.Created, DiscountCoupon.Created, ServicePlan.Created)
    def _record_created(self, e: Any, _: int, b: Batch) -> None:
        insert, _updates, _delete, columns, stamps = self.catalog[_owner(e)]
        b.add(insert, (e.originator_id, *[e.fields.get(c) for c in columns],
                       *[e.timestamp] * len(stamps)),
              returns=(_owner(e).__name__, e.originator_id))

    @handles(HsnCode.Updated, DiscountCoupon.Updated, ServicePlan.Updated)
    def _record_updated(self, e: Any, _: int, b: Batch) -> None:
        _insert, updates, _delete, _columns, stamps = self.catalog[_owner(e)]
        stamped = "updated_at" in stamps
        for column, value in e.changes.items():
            params = (value, e.timestamp, e.originator_id) if stamped else (
                value, e.originator_id)
            b.add(updates[column], params, returns=(_owner(e).__name__, e.originator_id))

    @handles(DiscountCoupon.Redeemed)
    def _coupon_redeemed(self, e: DiscountCoupon.Redeemed, _: int, b: Batch) -> None:
        _insert, updates, _delete, _columns, _stamps = self.catalog[DiscountCoupon]
        b.add(updates["times_used"], (e.times_used, e.originator_id),
              returns=("DiscountCoupon", e.originator_id))

    @handles(HsnCode.Deleted, DiscountCoupon.Deleted, ServicePlan.Deleted)
    def _record_deleted(self, e: Any, _: int, b: Batch) -> None:
        b.add(self.catalog[_owner(e)][2], (e.originator_id,))


def _owner(event: Any) -> type:
    """The catalogue aggregate class an event belongs to (each has its own event classes)."""
    owner = type(event).__qualname__.split(".")[0]
    return {cls.__name__: cls for cls in (HsnCode, DiscountCoupon, ServicePlan)}[owner]
