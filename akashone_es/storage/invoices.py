"""Invoices on the storage facade: drafts, issue with GST, lines, notes, tax records."""


from __future__ import annotations

import copy
import functools
import threading
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from psycopg import sql

from akashone_es import context
from akashone_es.domain import billing as domain
from akashone_es.domain.base import Aggregate
from akashone_es.domain.catalog import DiscountCoupon
from akashone_es.domain.payments import TaxCalculation
from akashone_es.errors import (
    NotFoundError,
    ValidationError,
)
from akashone_es.gst import (
    DEFAULT_RATES,
    DEFAULT_SAC,
    STATE_CODES,
    credit_note_deadline,
    document_number,
    financial_year,
    ist_date,
    place_of_supply,
    tax_treatment,
)
from akashone_es.money import apply_bp, round_half_up, round_off_to_rupee
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.billing_base import now, retrying
from akashone_es.storage.customers import CustomerRecordsStorage
from projections import billing_models as bm
from projections.engine import Query
from projections.positions import EVENTS

Q = sql.SQL
ADDRESS = Q("SELECT * FROM billing_addresses WHERE id = %s")
INVOICE = Q("SELECT * FROM invoices WHERE id = %s")
# numbers are unique per supplier GSTIN only: several suppliers may each have INV/2627/000001
INVOICES_BY_NUMBER = Q("SELECT * FROM invoices WHERE upper(invoice_number) = upper(%s)"
                       " AND (%s::text IS NULL OR supplier_gstin = upper(%s))"
                       " ORDER BY supplier_gstin")
INVOICES_OF = Q("SELECT * FROM invoices WHERE user_id = %s"
                " AND (%s::text IS NULL OR status = %s)"
                " AND (%s::timestamptz IS NULL OR created_at >= %s)"
                " AND (%s::timestamptz IS NULL OR created_at <= %s)"
                " ORDER BY created_at DESC, id")
LINES_OF = Q("SELECT * FROM invoice_line_items WHERE invoice_id = %s ORDER BY line_number, id")
LINE = Q("SELECT * FROM invoice_line_items WHERE id = %s")
NOTES_OF = Q("SELECT * FROM adjustment_notes WHERE invoice_id = %s ORDER BY issued_at, id")
NOTES_BY_NUMBER = Q("SELECT * FROM adjustment_notes WHERE upper(note_number) = upper(%s)"
                    " ORDER BY issued_at, id")
TAX_OF = Q("SELECT * FROM tax_calculations WHERE invoice_id = %s ORDER BY calculated_at, id")
TAX = Q("SELECT * FROM tax_calculations WHERE id = %s")
SERIES_LAST = Q("SELECT last_sequence FROM document_series WHERE id = %s")
COUPON_BY_CODE = Q("SELECT * FROM discount_coupons WHERE upper(code) = upper(%s)")
#: a number series' last version in the log (None: not opened yet), by the events' unique
#: (originator_id, originator_version) index
SERIES_HEAD = Q("SELECT %s::uuid AS id, max(originator_version) AS version FROM {events}"
                " WHERE originator_id = %s").format(events=EVENTS)


class SeriesHead(NamedTuple):
    id: UUID
    version: int | None


class KnownSeries:
    """Number series as this process last saved them, handed out as copies, each only at the
    version the log says is its head (another process may have numbered since)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[UUID, domain.DocumentSeries] = {}

    def at(self, series_id: UUID, version: int) -> domain.DocumentSeries | None:
        with self._lock:
            series = self._series.get(series_id)
            if series is None or series.version != version:
                return None
            return copy.deepcopy(series)

    def keep(self, series: domain.DocumentSeries) -> None:
        with self._lock:
            if series.id not in self._series and len(self._series) >= SERIES_CACHED:
                del self._series[next(iter(self._series))]  # the one kept longest
            self._series[series.id] = series


#: number series kept in memory (one per supplier GSTIN, financial year and kind)
SERIES_CACHED = 64


class InvoiceStorage(CustomerRecordsStorage):
    """The IStorage groups invoices (7), invoice lines (4), tax calculations (3); issuing
    and credit/debit notes."""

    # -- invoices (7) ---------------------------------------------------------------------
    def get_invoices(self, user_id: UUID | str, filters: dict[str, Any] | None = None
                     ) -> list[bm.Invoice]:
        """Newest first; ``filters`` may hold status, start_date and end_date (created_at)."""
        user = self.get_user(user_id)
        if user is None:
            return []
        f = i.parse(bi.InvoiceFilters, filters or {})
        status, start, end = f.status, f.start_date, f.end_date
        return self._all(bm.Invoice, INVOICES_OF, (user.id, status, status, start, start, end,
                                                   end))

    def get_invoice(self, invoice_id: UUID | str) -> bm.Invoice | None:
        return self._owned(self._one(bm.Invoice, INVOICE, (i.parse_id(invoice_id, "invoice_id"),)))

    def get_invoice_buyer(self, invoice_id: UUID | str) -> dict[str, Any] | None:
        """The recipient as the invoice names it (Rule 46): name, address, GSTIN, state and
        country, as they were when it was drafted (the address book may have changed
        since); its name and address read as the marker once its year's retention ended."""
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            return None
        aggregate = self._load(domain.Invoice, invoice.id, "invoice")
        return dict(aggregate.buyer)

    def get_invoice_by_number(self, invoice_number: str, supplier_gstin: str | None = None
                              ) -> bm.Invoice | None:
        """Case-insensitive, as GST document numbers are. Numbers repeat across supplier
        GSTINs: without ``supplier_gstin``, the one visible match, else this storage's
        supplier's; several others are ambiguous (ValidationError naming supplier_gstin)."""
        if supplier_gstin is not None and not isinstance(supplier_gstin, str):
            raise ValidationError.single("supplier_gstin", "must be a GSTIN string")
        found = [row for row in self._all(bm.Invoice, INVOICES_BY_NUMBER, (
            invoice_number, supplier_gstin, supplier_gstin)) if self._owned(row)]
        if len(found) <= 1:
            return found[0] if found else None
        own = (self.settings.supplier_gstin or "").upper()
        for row in found:
            if row.supplier_gstin == own:
                return row
        raise ValidationError.single(
            "supplier_gstin", f"{len(found)} supplier GSTINs issued {invoice_number}: "
                              f"name one ({', '.join(str(r.supplier_gstin) for r in found)})")

    def create_invoice(self, data: bi.InsertInvoice | dict[str, Any]) -> bm.Invoice:
        """A draft (no number yet: numbers are assigned at issue, so drafts leave no gaps)."""
        draft = i.parse(bi.InsertInvoice, data)
        due_check(draft.due_date, False)
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
        buyer["gst_number"] = buyer_gstin(address, user)
        buyer["name"] = user.username  # the recipient a tax invoice names (Rule 46)
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
        if not DEFAULT_RATES.knows(values["sac_code"]):
            raise ValidationError.single(
                "sac_code", f"no GST rate is known for SAC {values['sac_code']} (known: "
                            f"{', '.join(DEFAULT_RATES.codes())})")
        return values

    def update_invoice(self, invoice_id: UUID | str,
                       changes: bi.UpdateInvoice | dict[str, Any]) -> bm.Invoice | None:
        """Drafts only: an issued invoice never changes (PermissionDeniedError)."""
        update = i.parse(bi.UpdateInvoice, changes)
        current = self.get_invoice(invoice_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        due_check(update.due_date, "due_date" in values)
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

    @functools.cached_property
    def _series_repository(self) -> Repository[UUID]:
        """Number series, cached and brought forward on each read by the events since (every
        issue reads its series; replaying it from its last snapshot cost a millisecond)."""
        return Repository(self.app.events, snapshot_store=self.app.snapshots,
                          cache_maxsize=SERIES_CACHED, fastforward=True)

    def _series(self, gstin: str, fy: str, kind: str, head: SeriesHead | None = None
                ) -> domain.DocumentSeries:
        """The series numbering ``kind`` of ``gstin`` in ``fy``, as the log has it now (a
        new one when none is opened yet). A copy: a racing issuer's save conflicts on its
        version, as before. ``head``: the series' last version in the log, read by the
        caller with its other reads (``SERIES_HEAD``); when the cached series is at that
        version, the log is not asked again."""
        series_id = domain.series_id(gstin, fy, kind)
        if head is not None and head.id == series_id:
            if head.version is None:
                return domain.DocumentSeries(supplier_gstin=gstin, fy=fy, kind=kind)
            known = self._known_series.at(series_id, head.version)
            if known is not None:
                return known
        try:
            series: domain.DocumentSeries = self._series_repository.get(series_id)
        except AggregateNotFoundError:
            return domain.DocumentSeries(supplier_gstin=gstin, fy=fy, kind=kind)
        return series

    @functools.cached_property
    def _known_series(self) -> KnownSeries:
        return KnownSeries()

    def _series_saved(self, series: domain.DocumentSeries) -> None:
        """A series' save committed: it is kept at its new version (the next issue need not
        read it from the log); the caller is done with it."""
        self._known_series.keep(series)

    def _series_head_read(self, kind: str = "invoice") -> tuple[Query, tuple[Any, ...]]:
        """The read of the current series' head (``SERIES_HEAD``), to send with others."""
        gstin, _ = self._supplier()
        series_id = domain.series_id(gstin, financial_year(now()), kind)
        return SERIES_HEAD, (series_id, series_id)

    def _issue(self, invoice: domain.Invoice, address_id: UUID, coupon_code: str | None, *,
               known: tuple[bm.BillingAddress, Any] | None = None,
               series_head: SeriesHead | None = None) -> list[Aggregate]:
        """The invoice issued (numbered, taxed) and the aggregates to save with it (the
        series first); ``known``: its address and user as the command already read them;
        ``series_head``: see ``_series``."""
        gstin, supplier_state = self._supplier()
        if known is not None:
            address, user = known
        else:
            address = self._must(self._one(bm.BillingAddress, ADDRESS, (address_id,)))
            user = self._user_of(invoice.user_id)
        at = now()
        fy = financial_year(at)
        buyer = buyer_gstin(address, user)
        pos = place_of_supply(customer_gstin=buyer, address_state_code=address.state_code,
                              country=address.country)
        sac, rate_bp = invoice_rate(invoice.lines, ist_date(at))
        treatment = tax_treatment(supplier_state=supplier_state, place_of_supply_code=pos,
                                  # an SEZ unit or developer is registered: no GSTIN,
                                  # no SEZ supply
                                  rate_bp=rate_bp, sez=address.is_sez and buyer is not None,
                                  lut=fy in self.settings.lut_financial_years)
        subtotal = sum(int(line["amount"]) for line in invoice.lines)
        saved: list[Aggregate] = []
        coupon_off = 0
        if coupon_code:
            coupon = self._coupon_aggregate(coupon_code)
            coupon.redeem(invoice.id, subtotal, at, customer=str(invoice.user_id))
            coupon_off = coupon.discount_for(subtotal)
            saved.append(coupon)
        percentage = user.default_discount_percentage
        discount = coupon_off + apply_bp(subtotal - coupon_off, percentage * 100)
        lines, totals = domain.price_lines(invoice.lines, discount, treatment)
        if self.settings.invoice_round_off:
            totals["round_off_amount"] = round_off_to_rupee(totals["total_amount"])
            totals["total_amount"] += totals["round_off_amount"]
        series = self._series(gstin, fy, "invoice", series_head)
        number = document_number("invoice", fy, series.allocate(invoice.id))
        heads = {"cgst": treatment.cgst_bp, "sgst": treatment.sgst_bp,
                 "utgst": treatment.utgst_bp, "igst": treatment.igst_bp}
        invoice.issue(invoice_number=number, fy=fy, issued_at=at, supplier_gstin=gstin,
                      supplier_state_code=supplier_state, place_of_supply=pos,
                      tax_type=treatment.kind, zero_rated=treatment.zero_rated, rate_bp=rate_bp,
                      heads_bp=heads, sac_code=sac, lines=lines, totals=totals,
                      coupon_code=coupon_code.upper() if coupon_code else None,
                      discount_percentage=percentage, buyer_gstin=buyer)
        tax = TaxCalculation(invoice_id=str(invoice.id), user_id=str(invoice.user_id),
                                    fields=self._tax_fields(supplier_state, pos, treatment,
                                                            heads, totals, rate_bp, at, sac))
        return [series, invoice, tax, *saved]

    @staticmethod
    def _tax_fields(supplier_state: str, pos: str, treatment: Any, heads: dict[str, int],
                    totals: dict[str, int], rate_bp: int, at: datetime, sac: str
                    ) -> dict[str, Any]:
        taxes = {f"{h}_amount": totals[f"{h}_amount"] for h in heads}
        return {"supplier_state": STATE_CODES[supplier_state],
                "supplier_state_code": supplier_state,
                "customer_state": STATE_CODES.get(pos, "Other Countries"),
                "customer_state_code": pos, "tax_type": treatment.kind,
                "taxable_amount": totals["taxable_amount"],
                **{f"{h}_rate": str(Decimal(bp) / 100) for h, bp in heads.items()},
                **taxes, "total_tax_amount": sum(taxes.values()),
                "gst_rate": str(Decimal(rate_bp) / 100), "hsn_sac_code": sac,
                "calculated_at": at.isoformat()}

    def _coupon_aggregate(self, code: str) -> DiscountCoupon:
        row = self._one(bm.DiscountCoupon, COUPON_BY_CODE, (code,))
        if row is None:
            raise ValidationError.single("coupon_code", "Invalid coupon code")
        coupon: DiscountCoupon = self._load(DiscountCoupon, row.id, "discount_coupon")
        return coupon

    def cancel_invoice(self, invoice_id: UUID | str, reason: str | None = None) -> bm.Invoice:
        if reason is not None and len(reason) > lim.DESCRIPTION_MAX:
            raise ValidationError.single("reason", f"at most {lim.DESCRIPTION_MAX} characters")
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
            if self.tenant_id is not None and self._owned(row) is None:
                continue  # a run for a tenant marks only its own organization's invoices
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
        if amount > lim.INVOICE_TOTAL_MAX:  # a debit note's tax and totals stay within bigint
            raise ValidationError.single("amount", f"at most {lim.INVOICE_TOTAL_MAX} paise")
        if kind not in ("credit_note", "debit_note"):
            raise ValidationError.single("kind", "must be credit_note or debit_note")
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError.single("reason", "a note must say why")
        if len(reason) > lim.DESCRIPTION_MAX:
            raise ValidationError.single("reason", f"at most {lim.DESCRIPTION_MAX} characters")
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", invoice_id)

        def attempt() -> bm.AdjustmentNote:
            with context.command():
                aggregate = self._load(domain.Invoice, invoice.id, "invoice")
                series, note = self._note(invoice, aggregate, amount, reason, kind)
                # checked again on every retry
                aggregate.adjust(note.id, kind, amount, note.total, now())
                row = self._save_returning(bm.AdjustmentNote, ("adjustment_notes", note.id),
                                           series, note, aggregate)
            return self._must(row)

        return retrying(attempt)

    def _note(self, invoice: bm.Invoice, issued: domain.Invoice, amount: int, reason: str,
              kind: str) -> list[Any]:
        """The series and the note for ``amount`` against ``issued`` (the loaded invoice,
        whose lines and tax heads are those of its Issued event)."""
        if issued.status == "draft":
            raise ValidationError.single("invoice_id", "invoice is draft; only an issued, paid "
                                                       "or overdue invoice takes notes")
        at = now()
        if kind == "credit_note" and invoice.fy:
            last = credit_note_deadline(invoice.fy)
            if ist_date(at) > last:
                raise ValidationError.single(
                    "invoice_id", f"a credit note for a supply of FY {invoice.fy} could be "
                                  f"issued until {last.isoformat()} (CGST s. 34(2)); settle "
                                  f"with the customer without GST instead")
        # the note comes from the GSTIN that issued the invoice, in that GSTIN's series
        gstin = invoice.supplier_gstin or self._supplier()[0]
        fy = financial_year(at)
        heads = dict(issued.heads_bp)
        treatment = tax_treatment_from_heads(issued.tax_type, heads)
        earlier = [(row.kind, row.lines) for row in
                   self._all(bm.AdjustmentNote, NOTES_OF, (invoice.id,))]
        priced, totals = domain.note_lines(kind, amount, issued.lines, earlier, treatment)
        series = self._series(gstin, fy, kind)
        number = document_number(kind, fy, series.last + 1)
        series.allocate(domain.note_id_for(str(invoice.id), number))
        note = domain.AdjustmentNote(
            kind=kind, note_number=number, fy=fy, invoice_id=str(invoice.id),
            invoice_number=str(invoice.invoice_number), user_id=str(invoice.user_id),
            organization_id=str(invoice.organization_id) if invoice.organization_id else None,
            reason=reason, tax_type=issued.tax_type, heads_bp=heads, lines=priced,
            totals=totals, supplier_gstin=gstin)
        return [series, note]

    def get_adjustment_notes(self, invoice_id: UUID | str) -> list[bm.AdjustmentNote]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.AdjustmentNote, NOTES_OF, (invoice.id,)) if invoice else []

    def get_adjustment_notes_by_number(self, note_number: str) -> list[bm.AdjustmentNote]:
        """Credit/debit notes numbered ``note_number`` (case-insensitive) that the acting
        party may see; several when supplier GSTINs repeat a number."""
        if not isinstance(note_number, str):
            raise ValidationError.single("note_number", "must be a string")
        return [note for note in self._all(bm.AdjustmentNote, NOTES_BY_NUMBER, (note_number,))
                if self._owned(note)]

    # -- invoice lines (4) ----------------------------------------------------------------
    def get_invoice_line_items(self, invoice_id: UUID | str) -> list[bm.InvoiceLineItem]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.InvoiceLineItem, LINES_OF, (invoice.id,)) if invoice else []

    def get_invoice_line_item(self, line_id: UUID | str) -> bm.InvoiceLineItem | None:
        line = self._one(bm.InvoiceLineItem, LINE, (i.parse_id(line_id, "line_id"),))
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
            if len(aggregate.lines) >= lim.INVOICE_LINES_MAX:  # so the total cannot overflow
                raise ValidationError.single("lines", f"an invoice has at most "
                                                      f"{lim.INVOICE_LINES_MAX} lines")
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

    # -- tax calculations (3) -------------------------------------------------------------
    def get_tax_calculations(self, invoice_id: UUID | str) -> list[bm.TaxCalculation]:
        invoice = self.get_invoice(invoice_id)
        return self._all(bm.TaxCalculation, TAX_OF, (invoice.id,)) if invoice else []

    def get_tax_calculation(self, calculation_id: UUID | str) -> bm.TaxCalculation | None:
        return self._owned(self._one(bm.TaxCalculation, TAX,
                                     (i.parse_id(calculation_id, "calculation_id"),)))

    def create_tax_calculation(self, data: bi.InsertTaxCalculation | dict[str, Any]
                               ) -> bm.TaxCalculation:
        calc = i.parse(bi.InsertTaxCalculation, data)
        invoice = self.get_invoice(calc.invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", calc.invoice_id, "invoice_id")
        if str(calc.user_id) != str(invoice.user_id):  # the record belongs to the invoice's owner
            raise ValidationError.single("user_id", "must be the invoice's user")
        fields = calc.model_dump(mode="json", exclude={"invoice_id", "user_id"})
        fields["calculated_at"] = fields["calculated_at"] or now().isoformat()
        with context.command():
            aggregate = TaxCalculation(invoice_id=str(calc.invoice_id),
                                              user_id=str(calc.user_id), fields=fields)
            row = self._save_returning(bm.TaxCalculation, ("tax_calculations", aggregate.id),
                                       aggregate)
        return self._must(row)




def invoice_rate(lines: list[dict[str, Any]], on: date) -> tuple[str, int]:
    """The invoice's SAC (its first line's, as AkashOne took it) and the GST rate in force
    for it on ``on``: every line's SAC must be taxed at that rate (one invoice, one rate)."""
    codes = list(dict.fromkeys(str(line.get("sac_code") or DEFAULT_SAC) for line in lines))
    rates = {code: DEFAULT_RATES.rate_bp(code, on) for code in codes}
    if len(set(rates.values())) > 1:
        raise ValidationError.single("lines", "lines of SACs taxed at different rates "
                                              f"cannot share an invoice ({rates})")
    return codes[0], rates[codes[0]]


def due_check(due: datetime | None, given: bool) -> None:
    """A due date given for a draft is a moment to come (a draft given none is due
    ``invoice_due_days`` after it is issued)."""
    if given and due is None:
        raise ValidationError.single("due_date", "a draft always has a due date: give one, "
                                                 "or leave it out for the default")
    if due is not None and due <= now():
        raise ValidationError.single("due_date", "must be later than now")


def tax_treatment_from_heads(kind: str, heads: dict[str, int]) -> Any:
    """The treatment an issued invoice used, rebuilt from its recorded basis points."""
    from akashone_es.gst import TaxTreatment  # noqa: PLC0415 - local to notes

    return TaxTreatment(kind, cgst_bp=heads.get("cgst", 0), sgst_bp=heads.get("sgst", 0),
                        utgst_bp=heads.get("utgst", 0), igst_bp=heads.get("igst", 0),
                        zero_rated=not any(heads.values()))


def buyer_gstin(address: bm.BillingAddress, user: Any) -> str | None:
    """The buyer's GSTIN: the billing address's, else the customer's own (a registered
    customer stays registered when its address carries no GSTIN: R4)."""
    return address.gst_number or getattr(user, "gst_number", None) or None
