"""Usage metering on the storage facade, and invoice generation from usage."""


from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.domain import billing as domain
from akashone_es.domain import usage as usage_domain
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from akashone_es.gst import (
    DEFAULT_SAC,
)
from akashone_es.money import round_half_up
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.billing_base import now, retrying
from akashone_es.storage.customers import DEFAULT_ADDRESS
from akashone_es.storage.invoices import InvoiceStorage, SeriesHead
from akashone_es.storage.users import USER_BY_ID
from projections import billing_models as bm
from projections import models as m

Q = sql.SQL
USAGE = Q("SELECT * FROM usage_records WHERE id = %s")
USAGE_OF = Q("SELECT * FROM usage_records WHERE user_id = %s"
             " AND (%s::timestamptz IS NULL OR period_start >= %s)"
             " AND (%s::timestamptz IS NULL OR period_end <= %s)"
             " AND (%s::boolean IS NULL OR billed = %s)"
             " ORDER BY recorded_at DESC, id")
#: a record belongs to the billing window its metering period ends in, so a record that
#: straddles a window boundary is billed once, in the later window
_UNBILLED = (" FROM usage_records WHERE user_id = %s AND NOT billed"
             " AND period_end > %s AND period_end <= %s")
UNBILLED_IN = Q("SELECT id, resource_type, quantity, unit, total_cost, period_start,"
                " period_end" + _UNBILLED + " ORDER BY resource_type, id")
#: the same records summed per resource type by the database (exactly: numeric), what an
#: invoice line needs, with the record ids as one text; an invoice's hundred records cost a
#: few rows to read instead of a hundred (1.7 -> 0.55 ms, most of it the client's)
UNBILLED_TOTALS = Q("SELECT resource_type, count(*), sum(quantity),"
                    " (array_agg(unit ORDER BY id))[1], sum(total_cost), min(period_start),"
                    " max(period_end), string_agg(id::text, ',' ORDER BY id),"
                    " bool_and(total_cost >= 0)" + _UNBILLED
                    + " GROUP BY resource_type ORDER BY resource_type")


class Unbilled(NamedTuple):
    """What generating an invoice needs of an unbilled usage record (a plain tuple: an
    invoice reads a hundred of them, and a validated model each cost more than the rest)."""

    id: UUID
    resource_type: str
    quantity: Decimal
    unit: str
    total_cost: Decimal
    period_start: datetime
    period_end: datetime


class UnbilledTotal(NamedTuple):
    """One resource type's unbilled records, summed: one invoice line (``UNBILLED_TOTALS``)."""

    resource_type: str
    records: int
    quantity: Decimal
    unit: str
    total_cost: Decimal
    period_start: datetime
    period_end: datetime
    #: the records' ids, comma-joined
    ids: str
    #: whether no record costs less than nothing
    no_credit: bool


class UsageStorage(InvoiceStorage):
    """The IStorage group usage records (5), and generate_invoice."""

    # -- usage records (5) ----------------------------------------------------------------
    def get_usage_records(self, user_id: UUID | str, filters: dict[str, Any] | None = None
                          ) -> list[bm.UsageRecord]:
        """Newest first; ``filters``: start_date (period_start >=), end_date (period_end <=),
        billed."""
        user = self.get_user(user_id)
        if user is None:
            return []
        f = i.parse(bi.UsageFilters, filters or {})
        start, end, billed = f.start_date, f.end_date, f.billed
        return self._all(bm.UsageRecord, USAGE_OF, (user.id, start, start, end, end, billed,
                                                    billed))

    def get_usage_record(self, record_id: UUID | str) -> bm.UsageRecord | None:
        return self._owned(self._one(bm.UsageRecord, USAGE, (i.parse_id(record_id, "record_id"),)))

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

    def _usage(self, usage: bi.InsertUsageRecord) -> usage_domain.UsageRecord:
        user = self._user_of(usage.user_id)
        unit, rate = usage_domain.METERING_RATES.get(usage.resource_type, (None, None))
        price = usage.unit_price if usage.unit_price is not None else rate
        if price is None:
            raise ValidationError.single("unit_price", f"no metering rate for resource type "
                                                       f"{usage.resource_type!r}: give one")
        unit_name = usage.unit or unit
        if unit_name is None:
            raise ValidationError.single("unit", "required for this resource type")
        problem = bi.line_amount_problem(usage.quantity, price)  # here: price may be the rate
        if problem:
            raise ValidationError.single("quantity", problem)
        return usage_domain.UsageRecord(
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
        if isinstance(record_ids, str | bytes) or len(record_ids) > lim.IDS_MAX:
            raise ValidationError.single("record_ids", f"a list of at most {lim.IDS_MAX} ids")
        invoice = self.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError("invoice", invoice_id, "invoice_id")
        records = []
        for record_id in record_ids:
            row = self.get_usage_record(i.parse_id(record_id, "record_ids"))
            if row is None or row.user_id != invoice.user_id:  # not visible, or not theirs
                raise NotFoundError("usage_record", record_id, "record_ids")
            if row.invoice_id is not None:  # e.g. billed by an invoice's UsageBilled
                raise ConflictError(f"usage record {row.id} is already billed on "
                                    f"{row.invoice_id}")
            record = self._load(usage_domain.UsageRecord, row.id, "usage_record")
            record.bill(invoice.id)
            records.append(record)
        with context.command():
            self._save(*records)

    def generate_invoice(self, data: bi.GenerateInvoice | dict[str, Any]) -> bm.Invoice:
        """Group the period's unbilled usage into lines, apply the coupon and the customer's
        discount, compute GST, issue, and mark the usage billed: one transaction. Two racing
        generations cannot bill a record twice: the loser finds nothing left to bill. A period
        with more usage than one invoice may hold (see ``invoice_share``) is billed over
        several invoices: each call bills the next share."""
        request = i.parse(bi.GenerateInvoice, data)

        def attempt() -> bm.Invoice:
            # every read of the command in one round trip: the customer, its default
            # address, the usage to bill and the number series' head
            window = (request.user_id, request.period_start, request.period_end)
            users, addresses, totals, heads = self._read_together([
                (USER_BY_ID, (request.user_id,)), (DEFAULT_ADDRESS, (request.user_id,)),
                (UNBILLED_TOTALS, window), self._series_head_read()], as_tuples=(2,))
            user = m.User.model_validate(users[0]) if users else None
            if user is None or not self._visible_row(user.organization_id, user.id):
                raise NotFoundError("user", request.user_id, "user_id")
            if not addresses:
                raise ValidationError.single("billing_address", "the customer has no default "
                                                                "billing address (needed for "
                                                                "the place of supply)")
            address = bm.BillingAddress.model_validate(addresses[0])
            usage = billable([UnbilledTotal(*row) for row in totals],
                             lambda: self._unbilled(window))
            if not usage:
                raise ValidationError.single("period", "no unbilled usage in the period")
            with context.command():
                invoice = self._draft(user, address, request.period_start, request.period_end,
                                      None, request.notes, usage_lines(usage))
                aggregates = self._issue(invoice, address.id, request.coupon_code,
                                         known=(address, user), series_head=SeriesHead(
                                             **heads[0]))
                # one event names the records; the billing projection refuses, in this
                # transaction, a record another invoice billed first (the loser retries)
                invoice.bill_usage([record_id for total in usage
                                    for record_id in total.ids.split(",")])
                row = self._save_returning(bm.Invoice, ("invoices", invoice.id), *aggregates)
                self._series_saved(next(a for a in aggregates
                                        if isinstance(a, domain.DocumentSeries)))
            return self._must(row)

        return retrying(attempt)

    def _unbilled(self, window: tuple[Any, ...]) -> list[Unbilled]:
        """Each unbilled record of the customer's billing window (``UNBILLED_IN``)."""
        [rows] = self._read_together([(UNBILLED_IN, window)], as_tuples=(0,))
        return [Unbilled(*row) for row in rows]


def billable(totals: list[UnbilledTotal], records: Callable[[], list[Unbilled]]
             ) -> list[UnbilledTotal]:
    """What one invoice bills, one total per line: the period's unbilled usage as the
    database summed it, when it fits one invoice whole (the usual case; ``invoice_share``
    would take every record); otherwise the share ``invoice_share`` takes of its
    ``records``, read only then."""
    whole = (len(totals) <= lim.INVOICE_LINES_MAX
             and sum(t.records for t in totals) <= lim.USAGE_RECORDS_PER_INVOICE_MAX
             # with no negative record, no running sum of a line exceeds its total
             and all(t.no_credit and round_half_up(t.total_cost) <= lim.LINE_AMOUNT_MAX
                     for t in totals))
    return totals if whole else totals_of(invoice_share(records()))


def invoice_share(usage: list[Unbilled]) -> list[Unbilled]:
    """The records one invoice bills: at most ``INVOICE_LINES_MAX`` resource types (one line
    each), each line within ``LINE_AMOUNT_MAX``, and at most ``USAGE_RECORDS_PER_INVOICE_MAX``
    records; the rest stays unbilled for the next invoice. Each record is itself within a
    line's bound, so every period can be invoiced."""
    share: list[Unbilled] = []
    line_costs: dict[str, Decimal] = {}
    for record in usage:
        cost = line_costs.get(record.resource_type)
        if cost is None and len(line_costs) >= lim.INVOICE_LINES_MAX:
            continue
        cost = (cost or Decimal(0)) + record.total_cost
        if round_half_up(cost) > lim.LINE_AMOUNT_MAX:
            continue
        line_costs[record.resource_type] = cost
        share.append(record)
        if len(share) >= lim.USAGE_RECORDS_PER_INVOICE_MAX:
            break
    return share


def totals_of(usage: Sequence[Unbilled]) -> list[UnbilledTotal]:
    """``usage`` summed per resource type as ``UNBILLED_TOTALS`` sums it (records in order).
    The sums are exact in Decimal's default 28 digits: a line is at most ``LINE_AMOUNT_MAX``
    (16 digits) with 12 places, the product of a quantity's and a price's 6 each."""
    groups: dict[str, list[Unbilled]] = {}
    for record in usage:
        groups.setdefault(record.resource_type, []).append(record)
    return [UnbilledTotal(
        resource_type=resource_type, records=len(records),
        quantity=sum((r.quantity for r in records), Decimal(0)), unit=records[0].unit,
        total_cost=sum((r.total_cost for r in records), Decimal(0)),
        period_start=min(r.period_start for r in records),
        period_end=max(r.period_end for r in records),
        ids=",".join(str(r.id) for r in records),
        no_credit=all(r.total_cost >= 0 for r in records))
        for resource_type, records in groups.items()]


def usage_lines(usage: list[UnbilledTotal]) -> list[dict[str, Any]]:
    """One line per resource type's total (summed exactly, by the database or ``totals_of``),
    its amount rounded once."""
    lines = []
    for total in sorted(usage, key=lambda t: t.resource_type):
        name = usage_domain.LINE_DESCRIPTIONS.get(total.resource_type, total.resource_type)
        lines.append({
            "id": str(uuid.uuid4()), "resource_type": total.resource_type,
            "resource_id": None, "resource_name": name,
            "description": f"{name} ({total.records} record"
                           f"{'' if total.records == 1 else 's'})",
            "quantity": str(total.quantity), "unit": total.unit,
            "unit_price": str((total.total_cost / total.quantity).quantize(Decimal("0.0001")))
            if total.quantity else "0", "amount": round_half_up(total.total_cost),
            "sac_code": DEFAULT_SAC, "usage_start": total.period_start.isoformat(),
            "usage_end": total.period_end.isoformat()})
    return lines
