"""Billing read tables: addresses, invoices and lines, notes, usage, payments, tax, catalogue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from akashone_es.domain.base import stamp
from akashone_es.domain.billing import (
    AdjustmentNote,
    BillingAddress,
    DocumentSeries,
    Invoice,
    PaymentMethod,
)
from akashone_es.domain.catalog import DiscountCoupon, FeatureFlag, HsnCode, ServicePlan
from akashone_es.domain.operations import Erasure
from akashone_es.domain.payments import PaymentTransaction, TaxCalculation
from akashone_es.domain.usage import UsageRecord
from akashone_es.gst import STATE_CODES
from akashone_es.personal import MARKER, erased_people, erased_years
from projections.billing_tables import (
    ADDRESS_COLUMNS,
    ADDRESS_DEFAULTS,
    ADJUSTMENT_NOTES,
    BILLING_ADDRESSES,
    COUPON_COLUMNS,
    DISCOUNT_COUPONS,
    DOCUMENT_SERIES,
    EINVOICE_COLUMNS,
    FEATURE_FLAGS,
    FLAG_COLUMNS,
    HSN_CODES,
    HSN_COLUMNS,
    INVOICE_LINE_ITEMS,
    INVOICE_TOTALS,
    INVOICES,
    ISSUED_COLUMNS,
    LINE_COLUMNS,
    METHOD_COLUMNS,
    PAYMENT_METHODS,
    PAYMENT_TRANSACTIONS,
    PLAN_COLUMNS,
    RETIRED_INDEXES,
    RETIRED_TABLES,
    SERVICE_PLANS,
    TAX_CALCULATIONS,
    TAX_COLUMNS,
    TRANSACTION_COLUMNS,
    USAGE_RECORDS,
)
from projections.engine import Batch, Projection, Query, handles


def _json(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


class BillingProjection(Projection):
    """Inline: the billing contract reads these; unique indexes guard numbers and codes."""

    name = "billing"
    mode = "inline"
    tables = (BILLING_ADDRESSES, INVOICES, INVOICE_LINE_ITEMS, ADJUSTMENT_NOTES, USAGE_RECORDS,
              PAYMENT_METHODS, PAYMENT_TRANSACTIONS, TAX_CALCULATIONS, HSN_CODES,
              DISCOUNT_COUPONS, SERVICE_PLANS, DOCUMENT_SERIES, FEATURE_FLAGS)
    unique_constraints = {
        "invoices_supplier_number_key": ("invoice", "invoice_number"),
        "adjustment_notes_supplier_number_key": ("adjustment_note", "note_number"),
        "payment_transactions_payer_gateway_key": ("payment_transaction",
                                                   "gateway_transaction_id"),
        "hsn_codes_service_type_key": ("hsn_code", "service_type"),
        "discount_coupons_code_key": ("discount_coupon", "code"),
        "feature_flags_key_key": ("feature_flag", "key"),
        "billing_addresses_one_default": ("billing_address", "is_default"),
        "payment_methods_one_default": ("payment_method", "is_default"),
    }

    def ddl(self) -> list[Query]:
        """The tables, plus bringing a database made by an earlier version up to date: notes
        made before they carried a supplier GSTIN take their invoice's, then the indexes that
        made numbers unique across all suppliers are dropped (only once: the DO block does
        nothing after that)."""
        notes, invoices = self.t("adjustment_notes"), self.t("invoices")
        upgrades: list[Query] = [sql.SQL(
            "DO $$ BEGIN IF to_regclass({retired}) IS NOT NULL THEN"
            " UPDATE {notes} n SET supplier_gstin = i.supplier_gstin FROM {invoices} i"
            " WHERE n.supplier_gstin IS NULL AND i.id = n.invoice_id; END IF; END $$").format(
            retired=sql.Literal(f"{self.schema}.adjustment_notes_number_key"), notes=notes,
            invoices=invoices)]
        upgrades += [sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(self.schema, name))
                     for name in RETIRED_INDEXES]
        upgrades += [sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(self.schema, name))
                     for name in RETIRED_TABLES]
        return [*super().ddl(), *upgrades]

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
            "UPDATE {t} SET status = 'issued', "
            # a v1 Issued event has no buyer GSTIN: the draft's stays
            + ", ".join("buyer_gstin = COALESCE(%s, buyer_gstin)" if c == "buyer_gstin"
                        else f"{c} = %s" for c in ISSUED_COLUMNS)
            # a v1 or v2 Issued event has no due date: the draft's stays
            + ", due_date = COALESCE(%s, due_date) WHERE id = %s RETURNING *", t="invoices")
        # an invoice drafted and issued in one save: its row as the two would leave it
        drafted = ("id", "user_id", "organization_id", "billing_address_id",
                   "billing_period_start", "billing_period_end", "due_date", "currency",
                   "notes", "created_at")
        self.insert_issued_invoice = self.q(
            "INSERT INTO {t} (status, " + ", ".join((*drafted, *ISSUED_COLUMNS)) + ") VALUES"
            " ('issued', " + ", ".join(["%s"] * (len(drafted) + len(ISSUED_COLUMNS))) + ")"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="invoices")
        # an AkashOne invoice as it numbered, taxed and settled it (``Invoice.Imported``)
        self.import_invoice = self.q(
            "UPDATE {t} SET invoice_number = %s, fy = %s, status = %s, issued_at = %s,"
            " supplier_gstin = %s, supplier_state_code = %s, place_of_supply = %s,"
            " place_of_supply_code = %s, tax_type = %s, gst_rate = %s, hsn_code = %s,"
            " sac_code = %s, amount_paid = %s, paid_at = %s, einvoice_irn = %s,"
            " einvoice_ack_no = %s, einvoice_ack_date = %s, einvoice_qr_code = %s,"
            " einvoice_enabled = %s, "
            + ", ".join(f"{c} = %s" for c in INVOICE_TOTALS)
            + ", updated_at = %s WHERE id = %s RETURNING *", t="invoices")
        self.set_paid = self.q(
            "UPDATE {t} SET amount_paid = %s, updated_at = %s WHERE id = %s RETURNING *",
            t="invoices")
        # a v1 note has no supplier GSTIN: it is its invoice's (issued before the note)
        self.insert_note = self.q(
            "INSERT INTO {t} (id, kind, note_number, fy, invoice_id, invoice_number, user_id,"
            " organization_id, reason, tax_type, taxable_amount, cgst_amount, sgst_amount,"
            " utgst_amount, igst_amount, total_amount, lines, issued_at, supplier_gstin)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " COALESCE(%s, (SELECT supplier_gstin FROM {i} WHERE id = %s)))"
            " ON CONFLICT (id) DO NOTHING RETURNING *", t="adjustment_notes", i="invoices")
        self.insert_usage = self._insert(
            "usage_records", ("user_id", "organization_id", "resource_type", "resource_id",
                              "resource_name", "metric_type", "quantity", "unit",
                              "unit_price", "total_cost", "recorded_at", "period_start",
                              "period_end", "metadata"), stamps=("created_at",))
        # a record billed on another invoice fails the statement (the table's trigger,
        # ``billing_tables.USAGE_RECORDS``); the same bill again changes nothing. Rows of one
        # statement merge into one array each (``Batch.add_row``): a replay of many events
        # that bill one record each is one UPDATE
        self.bill_usage = self.q(
            "UPDATE {t} u SET invoice_id = v.invoice_id, billed = true"
            " FROM unnest(%s::uuid[], %s::uuid[]) AS v(invoice_id, id) WHERE u.id = v.id",
            t="usage_records")
        # an invoice's records: one invoice id, the record ids as one comma-joined text
        # (binding 100 uuids as an array costs more client time than the UPDATE's server time)
        self.bill_invoice_usage = self.q(
            "UPDATE {t} SET invoice_id = %s, billed = true"
            " WHERE id = ANY(string_to_array(%s, ',')::uuid[])", t="usage_records")
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
                                     "error_message", "initiated_at", "completed_at",
                                     "refunded_at"), None)
        self.insert_tax = self._insert("tax_calculations", ("invoice_id", "user_id",
                                                            *TAX_COLUMNS),
                                       stamps=("created_at",))
        self.catalog: dict[type, tuple[bytes, dict[str, bytes], bytes, tuple[str, ...],
                                       tuple[str, ...]]] = {}
        for cls, table, columns, stamps in (
                (HsnCode, "hsn_codes", HSN_COLUMNS, ("created_at", "updated_at")),
                (DiscountCoupon, "discount_coupons", COUPON_COLUMNS, ("created_at",)),
                (ServicePlan, "service_plans", PLAN_COLUMNS, ("created_at", "updated_at")),
                (FeatureFlag, "feature_flags", FLAG_COLUMNS, ("created_at", "updated_at"))):
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
                                    bool(e.fields.get("is_default")), e.timestamp,
                                    stamp(e, "updated_at")),
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

    def apply(self, events: Iterable[tuple[Any, int]], batch: Batch) -> None:
        """As every projection, except for an invoice drafted and at once issued in the same
        save (``generate_invoice``): its row is inserted issued, and its lines written once,
        where the two handlers would insert the draft's row and lines, then update the row,
        delete the lines and write the issued ones. The rows are the same."""
        pairs = list(events)
        index = 0
        while index < len(pairs):
            event, position = pairs[index]
            issue = pairs[index + 1][0] if index + 1 < len(pairs) else None
            if (type(event) is Invoice.Drafted and type(issue) is Invoice.Issued
                    and issue.originator_id == event.originator_id):
                self._drafted_and_issued(event, issue, batch)
                index += 2
                continue
            self.handle(event, position, batch)
            index += 1

    def _drafted_and_issued(self, draft: Invoice.Drafted, e: Invoice.Issued, b: Batch
                            ) -> None:
        b.add(self.insert_issued_invoice, (
            draft.originator_id, draft.user_id, draft.organization_id,
            draft.billing_address_id, draft.billing_period_start, draft.billing_period_end,
            e.due_date or draft.due_date, draft.currency, draft.notes, draft.timestamp,
            *self._issued_values(e, buyer_gstin=draft.buyer.get("gst_number")
                                 if e.buyer_gstin is None else e.buyer_gstin)),
            returns=("invoices", e.originator_id))
        for number, line in enumerate(e.lines, start=1):
            self._line(e.originator_id, number, line, e.timestamp, b)

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
        b.add(self.issue_invoice, (*self._issued_values(e, buyer_gstin=e.buyer_gstin),
                                   e.due_date, e.originator_id),
              returns=("invoices", e.originator_id))

    @staticmethod
    def _issued_values(e: Invoice.Issued, *, buyer_gstin: str | None) -> tuple[Any, ...]:
        """The values ``ISSUED_COLUMNS`` take from an issue, in that order."""
        return (e.invoice_number, e.fy, e.issued_at, buyer_gstin, e.supplier_gstin,
                e.supplier_state_code, STATE_CODES.get(e.place_of_supply, "Other Countries"),
                e.place_of_supply, e.tax_type, e.zero_rated, e.rate_bp / 100, e.sac_code,
                e.sac_code, e.coupon_code, e.discount_percentage,
                *[e.totals[c] for c in INVOICE_TOTALS], e.timestamp)

    @handles(Invoice.Imported)
    def _invoice_imported(self, e: Invoice.Imported, position: int, b: Batch) -> None:
        self._invoice_drafted(e, position, b)
        a = e.akashone
        b.add(self.import_invoice, (
            e.invoice_number, e.fy, e.status, a["issued_at"], a["supplier_gstin"],
            a["supplier_state_code"], a["place_of_supply"], a["place_of_supply_code"],
            a["tax_type"], a["rate_bp"] / 100, a["hsn_code"], a["sac_code"], a["amount_paid"],
            a["paid_at"], *[a["einvoice"].get(c) for c in EINVOICE_COLUMNS],
            *[a["totals"][c] for c in INVOICE_TOTALS], a["updated_at"], e.originator_id),
            returns=("invoices", e.originator_id))

    @handles(Invoice.PaymentApplied)
    def _payment_applied(self, e: Invoice.PaymentApplied, _: int, b: Batch) -> None:
        b.add(self.set_paid, (e.amount_paid, e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

    @handles(Invoice.PaymentReversed)
    def _payment_reversed(self, e: Invoice.PaymentReversed, _: int, b: Batch) -> None:
        b.add(self.set_paid, (e.amount_paid, e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))
        if e.reopen is None:  # a v1 event: reopened when less than the total was paid
            b.add(self.q("UPDATE {t} SET status = 'issued', paid_at = NULL WHERE id = %s"
                         " AND status = 'paid' AND amount_paid < total_amount", t="invoices"),
                  (e.originator_id,))
        elif e.reopen:
            self._invoice_reopened(e, _, b)

    @handles(Invoice.Reopened)
    def _invoice_reopened(self, e: Any, _: int, b: Batch) -> None:
        b.add(self.q("UPDATE {t} SET status = 'issued', paid_at = NULL, updated_at = %s"
                     " WHERE id = %s", t="invoices"), (e.timestamp, e.originator_id),
              returns=("invoices", e.originator_id))

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
                                 t["total_amount"], Jsonb(e.lines), e.timestamp,
                                 e.supplier_gstin, e.invoice_id),
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

    @handles(UsageRecord.Imported)
    def _usage_imported(self, e: UsageRecord.Imported, position: int, b: Batch) -> None:
        self._usage_recorded(e, position, b)
        if e.invoice_id is not None:  # billed by AkashOne
            b.add_row(self.bill_usage, (e.invoice_id, str(e.originator_id)))

    @handles(UsageRecord.Billed)
    def _usage_billed(self, e: UsageRecord.Billed, _: int, b: Batch) -> None:
        # ids as text on every path: rows of one statement are merged into one array each
        b.add_row(self.bill_usage, (e.invoice_id, str(e.originator_id)))

    @handles(Invoice.UsageBilled)
    def _invoice_billed_usage(self, e: Invoice.UsageBilled, _: int, b: Batch) -> None:
        b.add(self.bill_invoice_usage, (e.originator_id, ",".join(e.record_ids)))

    # -- payments -------------------------------------------------------------------------
    @handles(PaymentMethod.Created)
    def _method_added(self, e: PaymentMethod.Created, _: int, b: Batch) -> None:
        values = [e.fields.get(c) for c in METHOD_COLUMNS]
        b.add(self.insert_method, (e.originator_id, e.user_id, *values,
                                   bool(e.fields.get("is_default")), e.timestamp,
                                   stamp(e, "updated_at")),
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

    @handles(PaymentTransaction.Imported)
    def _transaction_imported(self, e: PaymentTransaction.Imported, position: int, b: Batch
                              ) -> None:
        """An AkashOne transaction: initiated as it was, then what it recorded after."""
        self._transaction_initiated(e, position, b)
        if e.extra:
            self._set_transaction(e, b, **e.extra)

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
    @handles(HsnCode.Created, DiscountCoupon.Created, ServicePlan.Created, FeatureFlag.Created)
    def _record_created(self, e: Any, _: int, b: Batch) -> None:
        insert, _updates, _delete, columns, stamps = self.catalog[_owner(e)]
        b.add(insert, (e.originator_id, *[e.fields.get(c) for c in columns],
                       *[stamp(e, s) for s in stamps]),
              returns=(_owner(e).__name__, e.originator_id))

    @handles(HsnCode.Updated, DiscountCoupon.Updated, ServicePlan.Updated, FeatureFlag.Updated)
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

    @handles(HsnCode.Deleted, DiscountCoupon.Deleted, ServicePlan.Deleted, FeatureFlag.Deleted)
    def _record_deleted(self, e: Any, _: int, b: Batch) -> None:
        b.add(self.catalog[_owner(e)][2], (e.originator_id,))

    @handles(Erasure.Recorded)
    def _erased(self, e: Erasure.Recorded, _: int, b: Batch) -> None:
        """Erased people's address books (lines, postal code, GSTIN) and UPI ids read as the
        marker (invoices keep their buyer's address under the year's retention key, not the
        person's)."""
        years = erased_years(e.subjects)
        if years:  # a retention sweep: the buyer GSTIN sealed under the year's key
            b.add(self.q(
                "UPDATE {t} SET buyer_gstin = %s WHERE buyer_gstin IS NOT NULL AND"
                " buyer_gstin <> %s AND CASE WHEN status = 'draft' THEN " + DRAFT_YEAR
                + " ELSE fy END = ANY(%s)", t="invoices"),
                (MARKER, MARKER, years))
        people = erased_people(e.subjects)
        if people:
            b.add(self.q("UPDATE {t} SET address_line1 = %s, postal_code = %s,"
                         " address_line2 = CASE WHEN address_line2 IS NULL THEN NULL"
                         " ELSE %s END, gst_number = CASE WHEN gst_number IS NULL THEN NULL"
                         " ELSE %s END WHERE id = ANY(%s::uuid[])", t="billing_addresses"),
                  (MARKER, MARKER, MARKER, MARKER, people))
            b.add(self.q("UPDATE {t} SET upi_id = %s WHERE upi_id IS NOT NULL"
                         " AND id = ANY(%s::uuid[])", t="payment_methods"), (MARKER, people))


#: a draft's financial year, as ``gst.financial_year`` gives it: the IST date of its
#: creation, the year from 1 April ('2026-27')
_SHIFTED = "((created_at AT TIME ZONE 'Asia/Kolkata') - interval '3 months')"
DRAFT_YEAR = (f"(to_char({_SHIFTED}, 'YYYY') || '-' ||"
              f" to_char({_SHIFTED} + interval '1 year', 'YY'))")


def _owner(event: Any) -> type:
    """The catalogue aggregate class an event belongs to (each has its own event classes)."""
    owner = type(event).__qualname__.split(".")[0]
    return {cls.__name__: cls for cls in (HsnCode, DiscountCoupon, ServicePlan,
                                          FeatureFlag)}[owner]
