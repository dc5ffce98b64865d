"""Billing on the storage facade: addresses, invoices and lines, usage, payments, tax."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg import sql

from akashone_es import context
from akashone_es.domain import billing as domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.catalog import DiscountCoupon
from akashone_es.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from akashone_es.gst import (
    DEFAULT_RATES,
    DEFAULT_SAC,
    STATE_CODES,
    document_number,
    financial_year,
    gstin_error,
    place_of_supply,
    tax_treatment,
)
from akashone_es.money import apply_bp, round_half_up, round_off_to_rupee
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage.identity import IdentityStorage
from projections import billing_models as bm

T = TypeVar("T")
Q = sql.SQL
ADDRESSES_OF = Q("SELECT * FROM billing_addresses WHERE user_id = %s ORDER BY created_at, id")
ADDRESS = Q("SELECT * FROM billing_addresses WHERE id = %s")
DEFAULT_ADDRESS = Q("SELECT * FROM billing_addresses WHERE user_id = %s AND is_default")
INVOICE = Q("SELECT * FROM invoices WHERE id = %s")
INVOICE_BY_NUMBER = Q("SELECT * FROM invoices WHERE upper(invoice_number) = upper(%s)")
INVOICES_OF = Q("SELECT * FROM invoices WHERE user_id = %s"
                " AND (%s::text IS NULL OR status = %s)"
                " AND (%s::timestamptz IS NULL OR created_at >= %s)"
                " AND (%s::timestamptz IS NULL OR created_at <= %s)"
                " ORDER BY created_at DESC, id")
LINES_OF = Q("SELECT * FROM invoice_line_items WHERE invoice_id = %s ORDER BY line_number, id")
LINE = Q("SELECT * FROM invoice_line_items WHERE id = %s")
NOTES_OF = Q("SELECT * FROM adjustment_notes WHERE invoice_id = %s ORDER BY issued_at, id")
USAGE = Q("SELECT * FROM usage_records WHERE id = %s")
USAGE_OF = Q("SELECT * FROM usage_records WHERE user_id = %s"
             " AND (%s::timestamptz IS NULL OR period_start >= %s)"
             " AND (%s::timestamptz IS NULL OR period_end <= %s)"
             " AND (%s::boolean IS NULL OR billed = %s)"
             " ORDER BY recorded_at DESC, id")
UNBILLED_IN = Q("SELECT * FROM usage_records WHERE user_id = %s AND NOT billed"
                " AND period_start >= %s AND period_end <= %s ORDER BY resource_type, id")
METHODS_OF = Q("SELECT * FROM payment_methods WHERE user_id = %s AND status <> 'removed'"
               " ORDER BY created_at, id")
METHOD = Q("SELECT * FROM payment_methods WHERE id = %s")
DEFAULT_METHOD = Q("SELECT * FROM payment_methods WHERE user_id = %s AND is_default")
TRANSACTIONS_OF = Q("SELECT * FROM payment_transactions WHERE user_id = %s"
                    " ORDER BY initiated_at DESC, id")
TRANSACTION = Q("SELECT * FROM payment_transactions WHERE id = %s")
TRANSACTION_BY_GATEWAY_ID = Q("SELECT * FROM payment_transactions"
                              " WHERE gateway_transaction_id = %s"
                              " AND (%s::text IS NULL OR gateway = %s)"
                              " ORDER BY initiated_at LIMIT 1")
TAX_OF = Q("SELECT * FROM tax_calculations WHERE invoice_id = %s ORDER BY calculated_at, id")
TAX = Q("SELECT * FROM tax_calculations WHERE id = %s")
SERIES_LAST = Q("SELECT last_sequence FROM document_series WHERE id = %s")
COUPON_BY_CODE = Q("SELECT * FROM discount_coupons WHERE upper(code) = upper(%s)")
RETRIES = 30


def now() -> datetime:
    return datetime.now(UTC)


def retrying(attempt: Callable[[], T]) -> T:
    """Run ``attempt`` again after a ConflictError (a racing writer won): the loser reloads
    and retries, so numbering stays gapless and nothing is applied twice."""
    for tries in range(RETRIES):
        try:
            return attempt()
        except ConflictError:
            if tries == RETRIES - 1:
                raise
            time.sleep(random.uniform(0.001, 0.01) * (tries + 1))  # noqa: S311 - jitter only
    raise AssertionError("unreachable")  # pragma: no cover


class BillingStorage(IdentityStorage):
    """The IStorage groups billing addresses, invoices, invoice lines, usage records,
    payment methods, payment transactions and tax calculations."""

    # -- helpers --------------------------------------------------------------------------
    def _user_of(self, user_id: UUID | str, field: str = "user_id") -> Any:
        user = self.get_user(i.parse_id(user_id, field))
        if user is None:
            raise NotFoundError("user", user_id, field)
        return user

    def _owned(self, row: T | None) -> T | None:
        """``row`` when its user is visible to the acting party, else None."""
        if row is None:
            return None
        return row if self.get_user(row.user_id) is not None else None  # type: ignore[attr-defined]

    def _load_or_none(self, cls: type[Any], aggregate_id: UUID) -> Any:
        try:
            return self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _supplier(self) -> tuple[str, str]:
        gstin = self.settings.supplier_gstin
        if not gstin:
            raise ConfigurationError("set AKASHONE_SUPPLIER_GSTIN: invoices are issued from the "
                                     "supplier's own GSTIN, and its state decides the tax")
        problem = gstin_error(gstin.upper())
        if problem:
            raise ConfigurationError(f"AKASHONE_SUPPLIER_GSTIN is not valid: {problem}")
        return gstin.upper(), gstin[:2]

    # -- billing addresses (7) ------------------------------------------------------------
    def get_billing_addresses(self, user_id: UUID | str) -> list[bm.BillingAddress]:
        user = self.get_user(user_id)
        return self._all(bm.BillingAddress, ADDRESSES_OF, (user.id,)) if user else []

    def get_billing_address(self, address_id: UUID | str) -> bm.BillingAddress | None:
        return self._owned(self._one(bm.BillingAddress, ADDRESS, (i.parse_id(address_id, "id"),)))

    def get_default_billing_address(self, user_id: UUID | str) -> bm.BillingAddress | None:
        user = self.get_user(user_id)
        return self._one(bm.BillingAddress, DEFAULT_ADDRESS, (user.id,)) if user else None

    def create_billing_address(self, data: bi.InsertBillingAddress | dict[str, Any]
                               ) -> bm.BillingAddress:
        """Add an address; a default one (or the user's first) clears the other defaults."""
        address = i.parse(bi.InsertBillingAddress, data)
        user = self._user_of(address.user_id)
        fields = address.model_dump(mode="json", exclude={"user_id"})
        fields["state"] = fields["state"] or STATE_CODES.get(fields["state_code"] or "", "")
        if not fields["state"]:
            raise ValidationError.single("state", "the state name is required outside India")
        current = self.get_default_billing_address(user.id)
        fields["is_default"] = address.is_default or current is None
        with context.command():
            aggregate = domain.BillingAddress(user_id=str(user.id), fields=fields)
            cleared = self._clear_default(domain.BillingAddress, current) if (
                fields["is_default"] and current) else []
            row = self._save_returning(bm.BillingAddress, ("billing_addresses", aggregate.id),
                                       *cleared, aggregate)
        return self._must(row or self.get_billing_address(aggregate.id))

    def _clear_default(self, cls: type[Any], current: Any) -> list[Aggregate]:
        aggregate = self._load(cls, current.id, cls.__name__)
        aggregate.set_default(False)
        return [aggregate]

    def update_billing_address(self, address_id: UUID | str,
                               changes: bi.UpdateBillingAddress | dict[str, Any]
                               ) -> bm.BillingAddress | None:
        update = i.parse(bi.UpdateBillingAddress, changes)
        current = self.get_billing_address(address_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if values.get("state_code") and "state" not in values:
            values["state"] = STATE_CODES[values["state_code"]]
        if not values:
            return current
        with context.command():
            aggregate = self._load(domain.BillingAddress, current.id, "billing_address")
            aggregate.check_present()
            aggregate.update(values)
            row = self._save_returning(bm.BillingAddress, ("billing_addresses", current.id),
                                       aggregate)
        return row or self.get_billing_address(current.id)

    def delete_billing_address(self, address_id: UUID | str) -> bool:
        current = self.get_billing_address(address_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load(domain.BillingAddress, current.id, "billing_address")
            aggregate.delete()
            self._save(aggregate)
        return True

    def set_default_billing_address(self, user_id: UUID | str,
                                    address_id: UUID | str) -> None:
        """Make one address the default; every other address of the user stops being one."""
        user = self._user_of(user_id)
        target = self.get_billing_address(address_id)
        if target is None or target.user_id != user.id:
            raise NotFoundError("billing_address", address_id, "address_id")
        self._set_default(domain.BillingAddress, target.id,
                          self.get_default_billing_address(user.id), "billing_address")

    def _set_default(self, cls: type[Any], target_id: UUID, current: Any, kind: str) -> None:
        if current is not None and current.id == target_id:
            return
        with context.command():
            cleared = self._clear_default(cls, current) if current else []
            aggregate = self._load(cls, target_id, kind)
            aggregate.set_default(True)
            self._save(*cleared, aggregate)  # cleared first: one default at every moment

    # -- invoices (7) ---------------------------------------------------------------------
    def get_invoices(self, user_id: UUID | str, filters: dict[str, Any] | None = None
                     ) -> list[bm.Invoice]:
        """Newest first; ``filters`` may hold status, start_date and end_date (created_at)."""
        user = self.get_user(user_id)
        if user is None:
            return []
        f = filters or {}
        status, start, end = f.get("status"), f.get("start_date"), f.get("end_date")
        return self._all(bm.Invoice, INVOICES_OF, (user.id, status, status, start, start, end,
                                                   end))

    def get_invoice(self, invoice_id: UUID | str) -> bm.Invoice | None:
        return self._owned(self._one(bm.Invoice, INVOICE, (i.parse_id(invoice_id, "id"),)))

    def get_invoice_by_number(self, invoice_number: str) -> bm.Invoice | None:
        """Case-insensitive, as GST document numbers are."""
        return self._owned(self._one(bm.Invoice, INVOICE_BY_NUMBER, (invoice_number,)))

    def create_invoice(self, data: bi.InsertInvoice | dict[str, Any]) -> bm.Invoice:
        """A draft (no number yet: numbers are assigned at issue, so drafts leave no gaps)."""
        draft = i.parse(bi.InsertInvoice, data)
        user = self._user_of(draft.user_id)
        address = self.get_billing_address(draft.billing_address_id)
        if address is None or address.user_id != user.id:
            raise NotFoundError("billing_address", draft.billing_address_id,
                                "billing_address_id")
        lines = [self._line(line) for line in draft.lines]
        with context.command():
            aggregate = self._draft(user, address, draft.billing_period_start,
                                    draft.billing_period_end, draft.due_date, draft.notes, lines)
            row = self._save_returning(bm.Invoice, ("invoices", aggregate.id), aggregate)
        return self._must(row or self.get_invoice(aggregate.id))

    def _draft(self, user: Any, address: bm.BillingAddress, start: datetime, end: datetime,
               due: datetime | None, notes: str | None, lines: list[dict[str, Any]]
               ) -> domain.Invoice:
        buyer = address.model_dump(mode="json", include={
            "gst_number", "state_code", "state", "country", "is_sez", "address_line1", "city",
            "postal_code"})
        return domain.Invoice(
            user_id=str(user.id),
            organization_id=str(user.organization_id) if user.organization_id else None,
            billing_address_id=str(address.id), buyer=buyer, billing_period_start=start,
            billing_period_end=end,
            due_date=due or now() + timedelta(days=self.settings.invoice_due_days),
            currency="INR", notes=notes, lines=lines)

    @staticmethod
    def _line(line: bi.InsertInvoiceLine) -> dict[str, Any]:
        values = line.model_dump(mode="json")
        values["id"] = str(uuid.uuid4())
        values["amount"] = round_half_up(line.quantity * line.unit_price)
        values["sac_code"] = line.sac_code or DEFAULT_SAC
        return values

    def update_invoice(self, invoice_id: UUID | str,
                       changes: bi.UpdateInvoice | dict[str, Any]) -> bm.Invoice | None:
        """Drafts only: an issued invoice never changes (PermissionDeniedError)."""
        update = i.parse(bi.UpdateInvoice, changes)
        current = self.get_invoice(invoice_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        with context.command():
            aggregate = self._load(domain.Invoice, current.id, "invoice")
            aggregate.update_draft(values)
            row = self._save_returning(bm.Invoice, ("invoices", current.id), aggregate)
        return row or self.get_invoice(current.id)

    def delete_invoice(self, invoice_id: UUID | str) -> bool:
        """Discard a draft; an issued invoice is cancelled or credited, never deleted."""
        current = self.get_invoice(invoice_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load(domain.Invoice, current.id, "invoice")
            aggregate.discard()
            self._save(aggregate)
        return True

    def get_next_invoice_number(self) -> str:
        """The number the next issued invoice will get (this financial year, this GSTIN)."""
        gstin, _ = self._supplier()
        fy = financial_year(now())
        last = self._scalar(SERIES_LAST, (domain.series_id(gstin, fy, "invoice"),)) or 0
        return document_number("invoice", fy, int(last) + 1)

    # -- issuing --------------------------------------------------------------------------
    def issue_invoice(self, invoice_id: UUID | str, coupon_code: str | None = None
                      ) -> bm.Invoice:
        """Number, tax and freeze a draft: one transaction with its series and tax record."""
        current = self.get_invoice(invoice_id)
        if current is None:
            raise NotFoundError("invoice", invoice_id)

        def attempt() -> bm.Invoice:
            with context.command():
                aggregate = self._load(domain.Invoice, current.id, "invoice")
                aggregates = self._issue(aggregate, current.billing_address_id, coupon_code)
                row = self._save_returning(bm.Invoice, ("invoices", current.id), *aggregates)
            return self._must(row or self.get_invoice(current.id))

        return retrying(attempt)

    def _issue(self, invoice: domain.Invoice, address_id: UUID, coupon_code: str | None
               ) -> list[Aggregate]:
        gstin, supplier_state = self._supplier()
        address = self._must(self._one(bm.BillingAddress, ADDRESS, (address_id,)))
        user = self._user_of(invoice.user_id)
        at = now()
        fy = financial_year(at)
        pos = place_of_supply(customer_gstin=address.gst_number,
                              address_state_code=address.state_code, country=address.country)
        rate_bp = DEFAULT_RATES.rate_bp(DEFAULT_SAC, at.date())
        treatment = tax_treatment(supplier_state=supplier_state, place_of_supply_code=pos,
                                  rate_bp=rate_bp, sez=address.is_sez,
                                  lut=fy in self.settings.lut_financial_years)
        subtotal = sum(int(line["amount"]) for line in invoice.lines)
        saved: list[Aggregate] = []
        coupon_off = 0
        if coupon_code:
            coupon = self._coupon_aggregate(coupon_code)
            coupon.redeem(invoice.id, subtotal, at)
            coupon_off = coupon.discount_for(subtotal)
            saved.append(coupon)
        percentage = user.default_discount_percentage
        discount = coupon_off + apply_bp(subtotal - coupon_off, percentage * 100)
        lines, totals = domain.price_lines(invoice.lines, discount, treatment)
        if self.settings.invoice_round_off:
            totals["round_off_amount"] = round_off_to_rupee(totals["total_amount"])
            totals["total_amount"] += totals["round_off_amount"]
        series = self._load_or_none(domain.DocumentSeries, domain.series_id(gstin, fy,
                                                                            "invoice"))
        if series is None:
            series = domain.DocumentSeries(supplier_gstin=gstin, fy=fy, kind="invoice")
        number = document_number("invoice", fy, series.allocate(invoice.id))
        heads = {"cgst": treatment.cgst_bp, "sgst": treatment.sgst_bp,
                 "utgst": treatment.utgst_bp, "igst": treatment.igst_bp}
        invoice.issue(invoice_number=number, fy=fy, issued_at=at, supplier_gstin=gstin,
                      supplier_state_code=supplier_state, place_of_supply=pos,
                      tax_type=treatment.kind, zero_rated=treatment.zero_rated, rate_bp=rate_bp,
                      heads_bp=heads, sac_code=DEFAULT_SAC, lines=lines, totals=totals,
                      coupon_code=coupon_code.upper() if coupon_code else None,
                      discount_percentage=percentage)
        tax = domain.TaxCalculation(invoice_id=str(invoice.id), user_id=str(invoice.user_id),
                                    fields=self._tax_fields(supplier_state, pos, treatment,
                                                            heads, totals, rate_bp, at))
        return [series, invoice, tax, *saved]

    @staticmethod
    def _tax_fields(supplier_state: str, pos: str, treatment: Any, heads: dict[str, int],
                    totals: dict[str, int], rate_bp: int, at: datetime) -> dict[str, Any]:
        taxes = {f"{h}_amount": totals[f"{h}_amount"] for h in heads}
        return {"supplier_state": STATE_CODES[supplier_state],
                "supplier_state_code": supplier_state,
                "customer_state": STATE_CODES.get(pos, "Other Countries"),
                "customer_state_code": pos, "tax_type": treatment.kind,
                "taxable_amount": totals["taxable_amount"],
                **{f"{h}_rate": str(Decimal(bp) / 100) for h, bp in heads.items()},
                **taxes, "total_tax_amount": sum(taxes.values()),
                "gst_rate": str(Decimal(rate_bp) / 100), "hsn_sac_code": DEFAULT_SAC,
                "calculated_at": at.isoformat()}

    def _coupon_aggregate(self, code: str) -> DiscountCoupon:
        row = self._one(bm.DiscountCoupon, COUPON_BY_CODE, (code,))
        if row is None:
            raise ValidationError.single("coupon_code", "Invalid coupon code")
        coupon: DiscountCoupon = self._load(DiscountCoupon, row.id, "discount_coupon")
        return coupon

    def cancel_invoice(self, invoice_id: UUID | str, reason: str | None = None) -> bm.Invoice:
        current = self.get_invoice(invoice_id)
        if current is None:
            raise NotFoundError("invoice", invoice_id)
        with context.command():
            aggregate = self._load(domain.Invoice, current.id, "invoice")
            aggregate.cancel(reason)
            row = self._save_returning(bm.Invoice, ("invoices", current.id), aggregate)
        return self._must(row or self.get_invoice(current.id))

    def mark_overdue_invoices(self, at: datetime | None = None) -> int:
        """Mark every issued invoice past its due date as overdue; returns how many."""
        moment = at or now()
        rows = self._all(bm.Invoice, Q("SELECT * FROM invoices WHERE status = 'issued'"
                                       " AND due_date < %s"), (moment,))
        marked = 0
        for row in rows:
            aggregate = self._load(domain.Invoice, row.id, "invoice")
            with context.command():
                if aggregate.mark_overdue(moment):
                    self._save(aggregate)
                    marked += 1
        return marked

    def issue_credit_note(self, invoice_id: UUID | str, amount: int, reason: str,
                          *, kind: str = "credit_note") -> bm.AdjustmentNote:
        """A credit (or debit) note against an issued invoice: its own series, its own tax
        lines at the invoice's rates, the invoice itself unchanged."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValidationError.single("amount", "must be a positive integer of paise")
        if kind not in ("credit_note", "debit_note"):
            raise ValidationError.single("kind", "must be credit_note or debit_note")
        if not reason.strip():
            raise ValidationError.single("reason", "a note must say why")
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", invoice_id)
        if invoice.invoice_number is None or invoice.status == "draft":
            raise ValidationError.single("invoice_id", "only an issued invoice can be credited")
        if kind == "credit_note":
            credited = sum(note.taxable_amount for note in self.get_adjustment_notes(invoice.id)
                           if note.kind == "credit_note")
            if credited + amount > invoice.taxable_amount:
                raise ValidationError.single(
                    "amount", f"credit notes would exceed the invoice's taxable value "
                              f"({credited} of {invoice.taxable_amount} paise already credited)")

        def attempt() -> bm.AdjustmentNote:
            with context.command():
                note = self._note(invoice, amount, reason, kind)
                row = self._save_returning(bm.AdjustmentNote, ("adjustment_notes", note[1].id),
                                           *note)
            return self._must(row)

        return retrying(attempt)

    def _note(self, invoice: bm.Invoice, amount: int, reason: str, kind: str
              ) -> list[Any]:
        gstin, _ = self._supplier()
        fy = financial_year(now())
        lines = self._all(bm.InvoiceLineItem, LINES_OF, (invoice.id,))
        event_lines: list[dict[str, Any]] = [
            {"id": str(uuid.uuid4()), "invoice_line_id": str(line.id),
             "description": line.description, "amount": line.taxable_amount}
            for line in lines]
        stored = self.app.recorder.select_events(invoice.id)
        issued = next(e for e in map(self.app.mapper.to_domain_event, stored)
                      if isinstance(e, domain.Invoice.Issued))
        heads = dict(issued.heads_bp)
        treatment = tax_treatment_from_heads(issued.tax_type, heads)
        # the credited amount is spread over the invoice's lines, then taxed line by line
        priced, totals = domain.price_lines(event_lines, sum(
            int(line["amount"]) for line in event_lines) - amount, treatment)
        priced = [line for line in priced if line["taxable_amount"]]
        series = self._load_or_none(domain.DocumentSeries, domain.series_id(gstin, fy, kind))
        if series is None:
            series = domain.DocumentSeries(supplier_gstin=gstin, fy=fy, kind=kind)
        note_id = uuid.uuid4()
        number = document_number(kind, fy, series.allocate(note_id))
        note = domain.AdjustmentNote(
            kind=kind, note_number=number, fy=fy, invoice_id=str(invoice.id),
            invoice_number=str(invoice.invoice_number), user_id=str(invoice.user_id),
            organization_id=str(invoice.organization_id) if invoice.organization_id else None,
            reason=reason, tax_type=issued.tax_type, heads_bp=heads, lines=priced,
            totals={k: v for k, v in totals.items() if k != "subtotal_amount"})
        return [series, note]

    def get_adjustment_notes(self, invoice_id: UUID | str) -> list[bm.AdjustmentNote]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.AdjustmentNote, NOTES_OF, (invoice.id,)) if invoice else []

    # -- invoice lines (4) ----------------------------------------------------------------
    def get_invoice_line_items(self, invoice_id: UUID | str) -> list[bm.InvoiceLineItem]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.InvoiceLineItem, LINES_OF, (invoice.id,)) if invoice else []

    def get_invoice_line_item(self, line_id: UUID | str) -> bm.InvoiceLineItem | None:
        line = self._one(bm.InvoiceLineItem, LINE, (i.parse_id(line_id, "id"),))
        return line if line and self.get_invoice(line.invoice_id) else None

    def create_invoice_line_item(self, data: dict[str, Any]) -> bm.InvoiceLineItem:
        """Add a line to a draft invoice (``invoice_id`` plus the line's fields)."""
        values = dict(data)
        invoice = self.get_invoice(i.parse_id(values.pop("invoice_id", None), "invoice_id"))
        if invoice is None:
            raise NotFoundError("invoice", data.get("invoice_id"), "invoice_id")
        line = self._line(i.parse(bi.InsertInvoiceLine, values))
        with context.command():
            aggregate = self._load(domain.Invoice, invoice.id, "invoice")
            aggregate.add_line(line)
            row = self._save_returning(bm.InvoiceLineItem,
                                       ("invoice_line_items", line["id"]), aggregate)
        return self._must(row)

    def delete_invoice_line_item(self, line_id: UUID | str) -> bool:
        line = self.get_invoice_line_item(line_id)
        if line is None:
            return False
        with context.command():
            aggregate = self._load(domain.Invoice, line.invoice_id, "invoice")
            aggregate.remove_line(str(line.id))
            self._save(aggregate)
        return True

    # -- usage records (5) ----------------------------------------------------------------
    def get_usage_records(self, user_id: UUID | str, filters: dict[str, Any] | None = None
                          ) -> list[bm.UsageRecord]:
        """Newest first; ``filters``: start_date (period_start >=), end_date (period_end <=),
        billed."""
        user = self.get_user(user_id)
        if user is None:
            return []
        f = filters or {}
        start, end, billed = f.get("start_date"), f.get("end_date"), f.get("billed")
        return self._all(bm.UsageRecord, USAGE_OF, (user.id, start, start, end, end, billed,
                                                    billed))

    def get_usage_record(self, record_id: UUID | str) -> bm.UsageRecord | None:
        return self._owned(self._one(bm.UsageRecord, USAGE, (i.parse_id(record_id, "id"),)))

    def get_unbilled_usage_records(self, user_id: UUID | str) -> list[bm.UsageRecord]:
        return self.get_usage_records(user_id, {"billed": False})

    def create_usage_record(self, data: bi.InsertUsageRecord | dict[str, Any]
                            ) -> bm.UsageRecord:
        """Meter usage; fractional paise are kept exactly (total = quantity x unit price)."""
        aggregate = self._usage(i.parse(bi.InsertUsageRecord, data))
        with context.command():
            row = self._save_returning(bm.UsageRecord, ("usage_records", aggregate.id),
                                       aggregate)
        return self._must(row)

    def _usage(self, usage: bi.InsertUsageRecord) -> domain.UsageRecord:
        user = self._user_of(usage.user_id)
        unit, rate = domain.METERING_RATES.get(usage.resource_type, (None, None))
        price = usage.unit_price if usage.unit_price is not None else rate
        if price is None:
            raise ValidationError.single("unit_price", f"no metering rate for resource type "
                                                       f"{usage.resource_type!r}: give one")
        unit_name = usage.unit or unit
        if unit_name is None:
            raise ValidationError.single("unit", "required for this resource type")
        return domain.UsageRecord(
            user_id=str(user.id),
            organization_id=str(user.organization_id) if user.organization_id else None,
            resource_type=usage.resource_type, resource_id=usage.resource_id,
            resource_name=usage.resource_name, metric_type=usage.metric_type,
            quantity=usage.quantity, unit=unit_name, unit_price=price,
            total_cost=usage.quantity * price, recorded_at=usage.recorded_at or now(),
            period_start=usage.period_start, period_end=usage.period_end,
            metadata_json=usage.metadata)

    def mark_usage_records_as_billed(self, record_ids: Sequence[UUID | str],
                                     invoice_id: UUID | str) -> None:
        """All or nothing: a record already billed raises ConflictError and nothing changes."""
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", invoice_id, "invoice_id")
        records = []
        for record_id in record_ids:
            row = self.get_usage_record(i.parse_id(record_id, "record_ids"))
            if row is None or row.user_id != invoice.user_id:  # not visible, or not theirs
                raise NotFoundError("usage_record", record_id, "record_ids")
            record = self._load(domain.UsageRecord, row.id, "usage_record")
            record.bill(invoice.id)
            records.append(record)
        with context.command():
            self._save(*records)

    def generate_invoice(self, data: bi.GenerateInvoice | dict[str, Any]) -> bm.Invoice:
        """Group the period's unbilled usage into lines, apply the coupon and the customer's
        discount, compute GST, issue, and mark the usage billed: one transaction. Two racing
        generations cannot bill a record twice: the loser finds nothing left to bill."""
        request = i.parse(bi.GenerateInvoice, data)
        user = self._user_of(request.user_id)
        address = self.get_default_billing_address(user.id)
        if address is None:
            raise ValidationError.single("billing_address", "the customer has no default "
                                                            "billing address (needed for the "
                                                            "place of supply)")

        def attempt() -> bm.Invoice:
            usage = self._all(bm.UsageRecord, UNBILLED_IN, (user.id, request.period_start,
                                                            request.period_end))
            if not usage:
                raise ValidationError.single("period", "no unbilled usage in the period")
            with context.command():
                invoice = self._draft(user, address, request.period_start, request.period_end,
                                      None, request.notes, usage_lines(usage))
                billed = [domain.UsageRecord.billed_event(record.id, invoice.id)
                          for record in usage]
                aggregates = self._issue(invoice, address.id, request.coupon_code)
                row = self._save_returning(bm.Invoice, ("invoices", invoice.id), *aggregates,
                                           *billed)
            return self._must(row)

        return retrying(attempt)

    # -- payment methods (7) --------------------------------------------------------------
    def get_payment_methods(self, user_id: UUID | str) -> list[bm.PaymentMethod]:
        user = self.get_user(user_id)
        return self._all(bm.PaymentMethod, METHODS_OF, (user.id,)) if user else []

    def get_payment_method(self, method_id: UUID | str) -> bm.PaymentMethod | None:
        return self._owned(self._one(bm.PaymentMethod, METHOD, (i.parse_id(method_id, "id"),)))

    def get_default_payment_method(self, user_id: UUID | str) -> bm.PaymentMethod | None:
        user = self.get_user(user_id)
        return self._one(bm.PaymentMethod, DEFAULT_METHOD, (user.id,)) if user else None

    def create_payment_method(self, data: bi.InsertPaymentMethod | dict[str, Any]
                              ) -> bm.PaymentMethod:
        method = i.parse(bi.InsertPaymentMethod, data)
        user = self._user_of(method.user_id)
        fields = method.model_dump(mode="json", exclude={"user_id"})
        current = self.get_default_payment_method(user.id)
        fields["is_default"] = method.is_default or current is None
        with context.command():
            aggregate = domain.PaymentMethod(user_id=str(user.id), fields=fields)
            cleared = self._clear_default(domain.PaymentMethod, current) if (
                fields["is_default"] and current) else []
            row = self._save_returning(bm.PaymentMethod, ("payment_methods", aggregate.id),
                                       *cleared, aggregate)
        return self._must(row)

    def update_payment_method(self, method_id: UUID | str,
                              changes: bi.UpdatePaymentMethod | dict[str, Any]
                              ) -> bm.PaymentMethod | None:
        update = i.parse(bi.UpdatePaymentMethod, changes)
        current = self.get_payment_method(method_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if not values:
            return current
        with context.command():
            aggregate = self._load(domain.PaymentMethod, current.id, "payment_method")
            aggregate.check_present()
            aggregate.update(values)
            row = self._save_returning(bm.PaymentMethod, ("payment_methods", current.id),
                                       aggregate)
        return row or self.get_payment_method(current.id)

    def delete_payment_method(self, method_id: UUID | str) -> bool:
        current = self.get_payment_method(method_id)
        if current is None or current.status == "removed":
            return False
        with context.command():
            aggregate = self._load(domain.PaymentMethod, current.id, "payment_method")
            aggregate.delete()
            self._save(aggregate)
        return True

    def set_default_payment_method(self, user_id: UUID | str, method_id: UUID | str) -> None:
        user = self._user_of(user_id)
        target = self.get_payment_method(method_id)
        if target is None or target.user_id != user.id or target.status == "removed":
            raise NotFoundError("payment_method", method_id, "method_id")
        self._set_default(domain.PaymentMethod, target.id,
                          self.get_default_payment_method(user.id), "payment_method")

    # -- payment transactions (5) ---------------------------------------------------------
    def get_payment_transactions(self, user_id: UUID | str) -> list[bm.PaymentTransaction]:
        user = self.get_user(user_id)
        return self._all(bm.PaymentTransaction, TRANSACTIONS_OF, (user.id,)) if user else []

    def get_payment_transaction(self, transaction_id: UUID | str
                                ) -> bm.PaymentTransaction | None:
        return self._owned(self._one(bm.PaymentTransaction, TRANSACTION,
                                     (i.parse_id(transaction_id, "id"),)))

    def get_payment_transaction_by_gateway_id(self, gateway_transaction_id: str,
                                              gateway: str | None = None
                                              ) -> bm.PaymentTransaction | None:
        """By the gateway's own id (optionally of one gateway: ids are unique per gateway)."""
        return self._owned(self._one(bm.PaymentTransaction, TRANSACTION_BY_GATEWAY_ID,
                                     (gateway_transaction_id, gateway, gateway)))

    def create_payment_transaction(self, data: bi.InsertPaymentTransaction | dict[str, Any]
                                   ) -> bm.PaymentTransaction:
        """Record a payment. Idempotent per gateway transaction id: the same gateway callback
        twice returns the first record and has no second effect. A successful payment is
        applied to its invoice in the same transaction (paid when fully paid)."""
        payment = i.parse(bi.InsertPaymentTransaction, data)
        if payment.gateway_transaction_id:
            existing = self.get_payment_transaction_by_gateway_id(
                payment.gateway_transaction_id, payment.gateway)
            if existing is not None:
                return existing
        invoice = self.get_invoice(payment.invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", payment.invoice_id, "invoice_id")
        fields = payment.model_dump(mode="json", exclude={"invoice_id", "user_id",
                                                          "gateway_response"})
        success = fields["status"] == "success"
        if success:
            fields["status"] = "pending"  # becomes success through its Succeeded event
        try:
            return retrying(lambda: self._pay(invoice, fields, payment, success))
        except Exception:
            if payment.gateway_transaction_id:  # lost a race with the same callback
                existing = self.get_payment_transaction_by_gateway_id(
                    payment.gateway_transaction_id, payment.gateway)
                if existing is not None:
                    return existing
            raise

    def _pay(self, invoice: bm.Invoice, fields: dict[str, Any],
             payment: bi.InsertPaymentTransaction, success: bool) -> bm.PaymentTransaction:
        with context.command():
            transaction = domain.PaymentTransaction(invoice_id=str(invoice.id),
                                                    user_id=str(invoice.user_id), fields=fields)
            saved: list[Aggregate] = [transaction]
            if success:
                at = now()
                transaction.succeed(at, payment.gateway_response)
                aggregate = self._load(domain.Invoice, invoice.id, "invoice")
                aggregate.apply_payment(transaction.id, payment.amount, at)
                saved.append(aggregate)
            row = self._save_returning(bm.PaymentTransaction,
                                       ("payment_transactions", transaction.id), *saved)
        return self._must(row)

    def update_payment_transaction(self, transaction_id: UUID | str,
                                   changes: bi.UpdatePaymentTransaction | dict[str, Any]
                                   ) -> bm.PaymentTransaction | None:
        """Status changes are events: success applies the payment to the invoice, refunded
        reverses it; a repeated status has no second effect."""
        update = i.parse(bi.UpdatePaymentTransaction, changes)
        current = self.get_payment_transaction(transaction_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        status = values.pop("status", None)
        response = values.pop("gateway_response", None)
        code, message = values.pop("error_code", None), values.pop("error_message", None)

        def attempt() -> bm.PaymentTransaction | None:
            with context.command():
                transaction = self._load(domain.PaymentTransaction, current.id,
                                         "payment_transaction")
                saved: list[Aggregate] = [transaction]
                if values:
                    transaction.update(values)
                at = now()
                invoice = self._load(domain.Invoice, current.invoice_id, "invoice")
                if status == "success" and transaction.succeed(at, response):
                    invoice.apply_payment(transaction.id, transaction.amount, at)
                    saved.append(invoice)
                elif status == "failed":
                    transaction.fail(code, message, response)
                elif status == "refunded" and transaction.status != "refunded":
                    transaction.refund(at)
                    invoice.reverse_payment(transaction.id, transaction.amount)
                    saved.append(invoice)
                elif status in ("pending", "processing") and status != transaction.status:
                    raise ValidationError.single("status", f"cannot go back to {status}")
                return self._save_returning(bm.PaymentTransaction,
                                            ("payment_transactions", current.id), *saved)

        row = retrying(attempt)
        return row or self.get_payment_transaction(current.id)

    # -- tax calculations (3) -------------------------------------------------------------
    def get_tax_calculations(self, invoice_id: UUID | str) -> list[bm.TaxCalculation]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.TaxCalculation, TAX_OF, (invoice.id,)) if invoice else []

    def get_tax_calculation(self, calculation_id: UUID | str) -> bm.TaxCalculation | None:
        return self._owned(self._one(bm.TaxCalculation, TAX,
                                     (i.parse_id(calculation_id, "id"),)))

    def create_tax_calculation(self, data: bi.InsertTaxCalculation | dict[str, Any]
                               ) -> bm.TaxCalculation:
        calc = i.parse(bi.InsertTaxCalculation, data)
        if self.get_invoice(calc.invoice_id) is None:
            raise NotFoundError("invoice", calc.invoice_id, "invoice_id")
        fields = calc.model_dump(mode="json", exclude={"invoice_id", "user_id"})
        fields["calculated_at"] = fields["calculated_at"] or now().isoformat()
        with context.command():
            aggregate = domain.TaxCalculation(invoice_id=str(calc.invoice_id),
                                              user_id=str(calc.user_id), fields=fields)
            row = self._save_returning(bm.TaxCalculation, ("tax_calculations", aggregate.id),
                                       aggregate)
        return self._must(row)


def usage_lines(usage: list[bm.UsageRecord]) -> list[dict[str, Any]]:
    """One line per resource type: quantities and exact costs summed, rounded once."""
    groups: dict[str, list[bm.UsageRecord]] = {}
    for record in usage:
        groups.setdefault(record.resource_type, []).append(record)
    lines = []
    for resource_type, records in sorted(groups.items()):
        quantity = sum((r.quantity for r in records), Decimal(0))
        cost = sum((r.total_cost for r in records), Decimal(0))
        lines.append({
            "id": str(uuid.uuid4()), "resource_type": resource_type, "resource_id": None,
            "resource_name": domain.LINE_DESCRIPTIONS.get(resource_type, resource_type),
            "description": f"{domain.LINE_DESCRIPTIONS.get(resource_type, resource_type)}"
                           f" ({len(records)} records)",
            "quantity": str(quantity), "unit": records[0].unit,
            "unit_price": str((cost / quantity).quantize(Decimal("0.0001"))) if quantity
            else "0", "amount": round_half_up(cost), "sac_code": DEFAULT_SAC,
            "usage_start": min(r.period_start for r in records).isoformat(),
            "usage_end": max(r.period_end for r in records).isoformat()})
    return lines


def tax_treatment_from_heads(kind: str, heads: dict[str, int]) -> Any:
    """The treatment an issued invoice used, rebuilt from its recorded basis points."""
    from akashone_es.gst import TaxTreatment  # noqa: PLC0415 - local to notes

    return TaxTreatment(kind, cgst_bp=heads.get("cgst", 0), sgst_bp=heads.get("sgst", 0),
                        utgst_bp=heads.get("utgst", 0), igst_bp=heads.get("igst", 0),
                        zero_rated=not any(heads.values()))


