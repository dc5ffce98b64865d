"""Billing: addresses and payment methods, document series, invoices, credit/debit notes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate, EditableRecord, legacy_event
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.money import allocate, apply_bp

_NS = uuid5(NAMESPACE_URL, "https://akashone.com/akashone-es/billing")


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def note_id_for(invoice_id: str, note_number: str) -> UUID:
    """A credit/debit note's id, known before the note exists (its series records it)."""
    return uuid5(_NS, f"note:{invoice_id}:{note_number}")


def series_id(supplier_gstin: str, fy: str, kind: str) -> UUID:
    """One numbering series per supplier GSTIN, financial year and document kind."""
    return uuid5(_NS, f"series:{supplier_gstin}:{fy}:{kind}")


class OwnedRecord(EditableRecord):
    """A customer's record with a default flag (billing address, payment method).

    Events are triggered as ``type(self).X`` so each subclass stores its own topics.
    """

    class Created(Aggregate.Created):
        user_id: str
        fields: dict[str, Any]

    class DefaultSet(Aggregate.Event):
        is_default: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.is_default = self.is_default

    @event(Created)
    def __init__(self, user_id: str, fields: dict[str, Any]) -> None:
        self.user_id = user_id
        self.is_default = bool(fields.get("is_default"))
        self.deleted = False

    def set_default(self, is_default: bool) -> None:
        self.check_present()
        if self.is_default != is_default:
            self.trigger_event(type(self).DefaultSet, is_default=is_default)

class BillingAddress(OwnedRecord):
    """A customer's billing address; its state decides the place of supply for B2C."""


class DocumentSeries(Aggregate):
    """Consecutive numbers for one (supplier GSTIN, financial year, kind).

    A number is allocated in the same transaction as the document's issue event; two
    processes issuing at once conflict on this aggregate's version, and the loser retries,
    so the series has no gap and no duplicate.
    """

    class Opened(Aggregate.Created):
        supplier_gstin: str
        fy: str
        kind: str

    class Allocated(Aggregate.Event):
        sequence: int
        document_id: str

    @staticmethod
    def create_id(supplier_gstin: str, fy: str, kind: str, **_: Any) -> UUID:
        return series_id(supplier_gstin, fy, kind)

    @event(Opened)
    def __init__(self, supplier_gstin: str, fy: str, kind: str) -> None:
        self.supplier_gstin = supplier_gstin
        self.fy = fy
        self.kind = kind
        self.last = 0

    def allocate(self, document_id: UUID) -> int:
        self._allocate(self.last + 1, str(document_id))
        return self.last

    @event(Allocated)
    def _allocate(self, sequence: int, document_id: str) -> None:
        self.last = sequence


class Invoice(Aggregate):
    """draft -> issued -> paid | overdue | cancelled. An issued invoice never changes."""

    class Drafted(Aggregate.Created):
        user_id: str
        organization_id: str | None
        billing_address_id: str
        buyer: dict[str, Any]
        billing_period_start: datetime
        billing_period_end: datetime
        due_date: datetime
        currency: str
        notes: str | None
        lines: list[dict[str, Any]]

    class LineAdded(Aggregate.Event):
        line: dict[str, Any]

    class LineRemoved(Aggregate.Event):
        line_id: str

    class DraftUpdated(Aggregate.Event):
        changes: dict[str, Any]

    class Discarded(Aggregate.Event):
        pass

    class Issued(Aggregate.Event):
        """Everything a tax auditor needs, computed once and never recomputed.

        v2 added ``buyer_gstin`` (the address's GSTIN, else the customer's: the one the place
        of supply was decided on); v1 invoices keep the GSTIN of their draft. v3 added
        ``due_date``: the draft's term (its due date less its creation) counted from the
        issue; v1 and v2 invoices keep their draft's due date."""

        class_version: ClassVar[int] = 3
        invoice_number: str
        fy: str
        issued_at: datetime
        supplier_gstin: str
        supplier_state_code: str
        place_of_supply: str
        tax_type: str
        zero_rated: bool
        rate_bp: int
        heads_bp: dict[str, int]
        sac_code: str
        lines: list[dict[str, Any]]
        totals: dict[str, int]
        coupon_code: str | None
        discount_percentage: int
        buyer_gstin: str | None = None
        due_date: datetime | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["buyer_gstin"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["due_date"] = None

    class PaymentApplied(Aggregate.Event):
        transaction_id: str
        amount: int
        amount_paid: int  # the invoice's total paid after this payment (idempotent replays)

    class PaymentReversed(Aggregate.Event):
        """v2 added ``reopen``: whether the invoice, paid, owes again (what it owes counts
        its notes); a v1 event reopened it when less than its total was paid."""

        class_version: ClassVar[int] = 2
        transaction_id: str
        amount: int
        amount_paid: int
        reopen: bool | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["reopen"] = None

    class Reopened(Aggregate.Event):
        """A paid invoice owes again: a debit note raised what it owes."""

    class Paid(Aggregate.Event):
        paid_at: datetime

    class UsageBilled(Aggregate.Event):
        """The usage records this invoice bills, named once (not one event per record): the
        billing projection refuses, in the same transaction, a record already billed."""

        record_ids: list[str]

    class MarkedOverdue(Aggregate.Event):
        pass

    class Cancelled(Aggregate.Event):
        reason: str | None

    class Adjusted(Aggregate.Event):
        """A credit or debit note was issued against this invoice (it stays unchanged).

        v2 added ``total_amount``, the note's total with its tax, by which it lowers (credit)
        or raises (debit) what the invoice owes; a v1 note's is its taxable value taxed at
        the invoice's rates."""

        class_version: ClassVar[int] = 2
        note_id: str
        kind: str
        taxable_amount: int
        total_amount: int | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["total_amount"] = None

    class Imported(Drafted):
        """An AkashOne invoice (``legacy``), as AkashOne numbered, taxed and settled it:
        ``akashone`` holds its columns beyond the draft (tax type, place of supply, rate,
        codes, totals, amount paid, e-invoice fields, times). Its line items follow as
        ``LineImported`` events. Never recomputed: an issued invoice is a legal record."""

        legacy: ClassVar[bool] = True
        source: str
        invoice_number: str
        fy: str
        status: str
        akashone: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            totals = self.akashone["totals"]
            aggregate.status = self.status
            aggregate.invoice_number = self.invoice_number
            aggregate.total = totals["total_amount"]
            aggregate.taxable = totals["taxable_amount"]
            aggregate.amount_paid = self.akashone["amount_paid"]
            aggregate.tax_type = self.akashone["tax_type"]
            rate_bp = self.akashone["rate_bp"]
            aggregate.heads_bp = ({"cgst": rate_bp // 2, "sgst": rate_bp // 2, "utgst": 0,
                                   "igst": 0} if self.akashone["tax_type"] == "intra_state"
                                  else {"cgst": 0, "sgst": 0, "utgst": 0, "igst": rate_bp})

    class LineImported(LineAdded):
        """An AkashOne ``invoice_line_items`` row of an imported invoice."""

        legacy: ClassVar[bool] = True
        source: str

        def apply(self, aggregate: Any) -> None:
            aggregate.lines.append(self.line)

    class PaymentImported(PaymentApplied):
        """An AkashOne payment of an imported invoice, registered so it can be refunded
        (``amount_paid``: a paid invoice's stays its total)."""

        legacy: ClassVar[bool] = True
        source: str

        def apply(self, aggregate: Any) -> None:
            aggregate.payments.append(self.transaction_id)
            aggregate.amount_paid = self.amount_paid

    @event(Drafted)
    def __init__(self, user_id: str, organization_id: str | None, billing_address_id: str,
                 buyer: dict[str, Any], billing_period_start: datetime,
                 billing_period_end: datetime, due_date: datetime, currency: str,
                 notes: str | None, lines: list[dict[str, Any]]) -> None:
        self.user_id = user_id
        self.organization_id = organization_id
        self.buyer = dict(buyer)
        self.status = "draft"
        self.lines = list(lines)
        self.total = 0
        self.amount_paid = 0
        self.due_date = due_date
        self.payments: list[str] = []
        self.deleted = False
        self.taxable = 0
        self.credited = 0
        self.debited = 0
        self.notes = 0
        self.adjusted = 0  # the notes' totals: debits add, credits take away

    # -- drafts -------------------------------------------------------------------------
    def check_draft(self, action: str) -> None:
        if self.deleted:
            raise NotFoundError("invoice", str(self.id))
        if self.status != "draft":
            raise PermissionDeniedError(
                f"cannot {action}: invoice is {self.status}; an issued invoice never changes "
                "(correct it with a credit or debit note)")

    def add_line(self, line: dict[str, Any]) -> None:
        self.check_draft("add a line")
        self._add_line(line)

    @event(LineAdded)
    def _add_line(self, line: dict[str, Any]) -> None:
        self.lines.append(line)

    def remove_line(self, line_id: str) -> None:
        self.check_draft("remove a line")
        if not any(line["id"] == line_id for line in self.lines):
            raise NotFoundError("invoice_line_item", line_id)
        self._remove_line(line_id)

    @event(LineRemoved)
    def _remove_line(self, line_id: str) -> None:
        self.lines = [line for line in self.lines if line["id"] != line_id]

    def update_draft(self, changes: dict[str, Any]) -> None:
        self.check_draft("update it")
        self._update_draft(changes)

    @event(DraftUpdated)
    def _update_draft(self, changes: dict[str, Any]) -> None:
        if "due_date" in changes:  # JSON in the event: parse back to a datetime
            self.due_date = _as_datetime(changes["due_date"])

    def discard(self) -> None:
        self.check_draft("delete it")
        self._discard()

    @event(Discarded)
    def _discard(self) -> None:
        self.deleted = True

    # -- issue ----------------------------------------------------------------------------
    def issue(self, **issued: Any) -> None:
        self.check_draft("issue it")
        if not self.lines:
            raise ValidationError.single("lines", "an invoice needs at least one line")
        # the draft's term runs from the issue (a draft made 40 days ago is not overdue when
        # issued today), to the second
        term = timedelta(seconds=round((self.due_date - self.created_on).total_seconds()))
        self._issue(**issued, due_date=issued["issued_at"] + term)
        if self.owed <= 0:  # wholly discounted: nothing to pay
            self._paid(issued["issued_at"])

    @event(Issued)
    def _issue(self, invoice_number: str, fy: str, issued_at: datetime, supplier_gstin: str,
               supplier_state_code: str, place_of_supply: str, tax_type: str,
               zero_rated: bool, rate_bp: int, heads_bp: dict[str, int], sac_code: str,
               lines: list[dict[str, Any]], totals: dict[str, int], coupon_code: str | None,
               discount_percentage: int, buyer_gstin: str | None = None,
               due_date: datetime | None = None) -> None:
        self.status = "issued"
        if due_date is not None:
            self.due_date = due_date
        self.invoice_number = invoice_number
        self.lines = lines
        self.total = totals["total_amount"]
        self.taxable = totals["taxable_amount"]
        self.tax_type = tax_type
        self.heads_bp = dict(heads_bp)

    @property
    def owed(self) -> int:
        """What the customer owes in all: the total, less its credit notes, plus its debit
        notes (with their tax)."""
        return self.total + self.adjusted

    @property
    def balance_due(self) -> int:
        return max(0, self.owed - self.amount_paid)

    def bill_usage(self, record_ids: list[str]) -> None:
        """Name the usage records this issued invoice bills."""
        if self.status != "issued":
            raise ConflictError(f"invoice {self.id} is not issued: it bills no usage")
        self._bill_usage(record_ids)

    @event(UsageBilled)
    def _bill_usage(self, record_ids: list[str]) -> None:
        pass

    # -- payments -------------------------------------------------------------------------
    def apply_payment(self, transaction_id: UUID, amount: int, paid_at: datetime) -> None:
        if str(transaction_id) in self.payments:
            return  # the same gateway callback twice has one effect
        if self.status not in ("issued", "overdue"):
            raise ValidationError.single("invoice_id", f"invoice is {self.status}; "
                                                       "only issued or overdue invoices take "
                                                       "payments")
        if amount <= 0:
            raise ValidationError.single("amount", "must be positive")
        self._apply_payment(str(transaction_id), amount, self.amount_paid + amount)
        if self.amount_paid >= self.owed:
            self._paid(paid_at)

    @event(PaymentApplied)
    def _apply_payment(self, transaction_id: str, amount: int, amount_paid: int) -> None:
        self.payments.append(transaction_id)
        self.amount_paid = amount_paid

    @event(Paid)
    def _paid(self, paid_at: datetime) -> None:
        self.status = "paid"

    def reverse_payment(self, transaction_id: UUID, amount: int) -> None:
        if str(transaction_id) not in self.payments:
            raise NotFoundError("payment_transaction", str(transaction_id), "transaction_id")
        # never below 0: an imported invoice's amount paid is what AkashOne's status implied,
        # which may be less than the payments it listed (a second run of an import, say)
        paid = max(0, self.amount_paid - amount)
        self._reverse_payment(str(transaction_id), amount, paid,
                              self.status == "paid" and paid < self.owed)

    @event(PaymentReversed)
    def _reverse_payment(self, transaction_id: str, amount: int, amount_paid: int,
                         reopen: bool | None = None) -> None:
        self.payments.remove(transaction_id)
        self.amount_paid = amount_paid
        if reopen is None:  # a v1 event: as it was decided then
            reopen = self.status == "paid" and self.amount_paid < self.total
        if reopen:
            self.status = "issued"

    def mark_overdue(self, today: datetime) -> bool:
        if self.status != "issued" or self.due_date >= today or not self.balance_due:
            return False
        self._mark_overdue()
        return True

    @event(MarkedOverdue)
    def _mark_overdue(self) -> None:
        self.status = "overdue"

    def adjust(self, note_id: UUID, kind: str, taxable_amount: int, total_amount: int,
               at: datetime) -> None:
        """Record a credit/debit note in this invoice's history, inside the note's own
        transaction: racing notes conflict here, so credits never exceed the taxable value.
        A credit that leaves nothing owed settles the invoice (paid); a debit on a paid
        invoice opens it again."""
        if self.deleted or self.status not in ("issued", "paid", "overdue"):
            raise ValidationError.single("invoice_id", f"invoice is {self.status}; only an "
                                                       "issued, paid or overdue invoice takes "
                                                       "credit or debit notes")
        charged = self.taxable + self.debited
        if kind == "credit_note" and self.credited + taxable_amount > charged:
            raise ValidationError.single(
                "amount", f"credit notes would exceed what the invoice and its debit notes "
                          f"charged ({self.credited} of {charged} paise of taxable value "
                          f"already credited)")
        self._adjust(str(note_id), kind, taxable_amount, total_amount)
        if self.status in ("issued", "overdue") and not self.balance_due:
            self._paid(at)
        elif self.status == "paid" and self.balance_due:
            self._reopen()

    @event(Adjusted)
    def _adjust(self, note_id: str, kind: str, taxable_amount: int,
                total_amount: int | None = None) -> None:
        self.notes += 1
        if total_amount is None:  # a v1 event: its value taxed at the invoice's rates
            total_amount = taxable_amount + sum(apply_bp(taxable_amount, bp)
                                                for bp in self.heads_bp.values())
        if kind == "credit_note":
            self.credited += taxable_amount
            self.adjusted -= total_amount
        else:
            self.debited += taxable_amount
            self.adjusted += total_amount

    @event(Reopened)
    def _reopen(self) -> None:
        self.status = "issued"

    def cancel(self, reason: str | None) -> None:
        if self.status in ("paid", "cancelled") or self.deleted:
            raise PermissionDeniedError(f"cannot cancel an invoice that is {self.status}")
        if self.notes:
            raise PermissionDeniedError("cannot cancel an invoice that has credit or debit "
                                        "notes; credit the rest instead")
        if self.amount_paid:
            raise PermissionDeniedError("cannot cancel an invoice with payments; refund first")
        self._cancel(reason)

    @event(Cancelled)
    def _cancel(self, reason: str | None) -> None:
        self.status = "cancelled"


class AdjustmentNote(Aggregate):
    """A credit note (or debit note): its own series, its own tax lines, the invoice it fixes."""

    class Issued(Aggregate.Created):
        """v2 added ``supplier_gstin`` (the invoice's; numbers are unique per supplier GSTIN);
        a v1 note is read with None and its row takes the invoice's supplier GSTIN."""

        class_version: ClassVar[int] = 2
        kind: str
        note_number: str
        fy: str
        invoice_id: str
        invoice_number: str
        user_id: str
        organization_id: str | None
        reason: str
        tax_type: str
        heads_bp: dict[str, int]
        lines: list[dict[str, Any]]
        totals: dict[str, int]
        supplier_gstin: str | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["supplier_gstin"] = None

    @staticmethod
    def create_id(invoice_id: str, note_number: str, **_: Any) -> UUID:
        return note_id_for(invoice_id, note_number)

    @event(Issued)
    def __init__(self, kind: str, note_number: str, fy: str, invoice_id: str,
                 invoice_number: str, user_id: str, organization_id: str | None, reason: str,
                 tax_type: str, heads_bp: dict[str, int], lines: list[dict[str, Any]],
                 totals: dict[str, int], supplier_gstin: str | None = None) -> None:
        self.kind = kind
        self.invoice_id = invoice_id
        self.total = int(totals.get("total_amount", 0))


class PaymentMethod(OwnedRecord):
    """A saved card, UPI id, net-banking or wallet reference (never a full card number)."""


def price_lines(lines: list[dict[str, Any]], discount: int,
                tax: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Allocate the invoice discount over the lines (before tax), tax each line per head
    (half-up to the paisa), and total the header as the sum of the lines (R8)."""
    amounts = [int(line["amount"]) for line in lines]
    discounts = allocate(min(discount, sum(amounts)), amounts)
    priced = []
    for line, line_discount in zip(lines, discounts, strict=True):
        taxable = int(line["amount"]) - line_discount
        heads = tax.tax(taxable)
        priced.append({**line, "discount_amount": line_discount, "taxable_amount": taxable,
                       "cgst_amount": heads["cgst"], "sgst_amount": heads["sgst"],
                       "utgst_amount": heads["utgst"], "igst_amount": heads["igst"]})
    totals = {"subtotal_amount": sum(amounts), "discount_amount": sum(discounts)}
    for key in ("taxable_amount", "cgst_amount", "sgst_amount", "utgst_amount", "igst_amount"):
        totals[key] = sum(int(line[key]) for line in priced)
    totals["round_off_amount"] = 0
    totals["total_amount"] = sum(totals[k] for k in ("taxable_amount", "cgst_amount",
                                                     "sgst_amount", "utgst_amount",
                                                     "igst_amount"))
    return priced, totals


HEADS = ("cgst", "sgst", "utgst", "igst")


def note_lines(kind: str, amount: int, lines: list[dict[str, Any]],
               notes: list[tuple[str, list[dict[str, Any]]]],
               tax: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """A credit or debit note's lines for ``amount`` paise of taxable value against an
    issued invoice's ``lines``, given the notes already issued against it (``(kind,
    lines)``), and its totals.

    A debit note spreads its amount over the lines' taxable values (their pre-discount
    amounts when the discount took them all to 0) and taxes each share half-up (R8). A
    credit note spreads its amount over what each line can still be credited (its taxable
    value plus its debits, less its credits: no line is credited beyond what was charged on
    it) and credits each head's tax progressively: on a line, the tax credited so far is the
    tax of the value credited so far, never more than the tax charged on it, and the note
    that credits a line in full reverses exactly the tax left on it. So many small credit
    notes never reverse more tax than the invoice (and its debit notes) charged (R8, R10)."""
    charged, credited = _note_ledger(lines, notes, tax)
    shares = _note_shares(kind, amount, lines, charged, credited)
    priced = []
    for line, share, was, done in zip(lines, shares, charged, credited, strict=True):
        if not share:
            continue
        if kind == "debit_note":
            heads = tax.tax(share)
        else:
            so_far = done["taxable"] + share
            full = so_far == was["taxable"]
            owed = tax.tax(so_far)
            heads = {h: max(0, was[h] - done[h]) if full else
                     max(0, min(owed[h] - done[h], was[h] - done[h])) for h in HEADS}
        priced.append({"id": str(uuid4()), "invoice_line_id": str(line["id"]),
                       "description": line["description"], "amount": share,
                       "discount_amount": 0, "taxable_amount": share,
                       **{f"{h}_amount": heads[h] for h in HEADS}})
    totals = {"discount_amount": 0, "round_off_amount": 0}
    for key in ("taxable_amount", *(f"{h}_amount" for h in HEADS)):
        totals[key] = sum(int(line[key]) for line in priced)
    totals["total_amount"] = totals["taxable_amount"] + sum(
        totals[f"{h}_amount"] for h in HEADS)
    return priced, totals


def _note_ledger(lines: list[dict[str, Any]], notes: list[tuple[str, list[dict[str, Any]]]],
                 tax: Any) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """Per invoice line: the taxable value and tax charged (the line's own and its debit
    notes'), and those credited so far."""
    charged: list[dict[str, int]] = []
    credited: list[dict[str, int]] = []
    index = {str(line["id"]): k for k, line in enumerate(lines)}
    for line in lines:
        taxable = int(line.get("taxable_amount", line["amount"]))
        # an imported AkashOne line has only its amount: its heads are the rates' on it
        heads = ({h: int(line[f"{h}_amount"]) for h in HEADS}
                 if "cgst_amount" in line else tax.tax(taxable))
        charged.append({"taxable": taxable, **heads})
        credited.append(dict.fromkeys(("taxable", *HEADS), 0))
    for note_kind, note in notes:
        for line in note:
            k = index.get(str(line.get("invoice_line_id")))
            if k is None:
                continue
            into = charged[k] if note_kind == "debit_note" else credited[k]
            into["taxable"] += int(line["taxable_amount"])
            for h in HEADS:
                into[h] += int(line[f"{h}_amount"])
    return charged, credited


def _note_shares(kind: str, amount: int, lines: list[dict[str, Any]],
                 charged: list[dict[str, int]], credited: list[dict[str, int]]) -> list[int]:
    """The note's taxable value on each line (see ``note_lines``)."""
    if kind == "debit_note":
        weights = [c["taxable"] for c in charged]
        if not any(weights):  # a fully discounted invoice: by what the lines cost
            weights = [int(line["amount"]) for line in lines]
        if not any(weights):
            weights = [1] + [0] * (len(lines) - 1)
        return allocate(amount, weights)
    # (never below 0: a note made before notes were credited line by line may have credited
    # a line beyond its value)
    room = [max(0, c["taxable"] - d["taxable"]) for c, d in zip(charged, credited, strict=True)]
    if amount > sum(room):
        raise ValidationError.single(
            "amount", f"credit notes would exceed what the invoice and its debit notes "
                      f"charged ({sum(d['taxable'] for d in credited)} of "
                      f"{sum(c['taxable'] for c in charged)} paise of taxable value "
                      f"already credited)")
    return allocate(amount, room)


for _record in (BillingAddress, PaymentMethod):
    legacy_event(_record, _record.Created)
