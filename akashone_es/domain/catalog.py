"""Commercial catalogue: HSN/SAC codes, discount coupons, service plans."""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate, EditableRecord, legacy_event
from akashone_es.domain.identity import _NS
from akashone_es.errors import ValidationError
from akashone_es.money import apply_bp


class Record(EditableRecord):
    """A catalogue record: created with fields, updated by changes, deleted.

    Updated and Deleted are triggered as ``type(self).Updated`` so each subclass stores its
    own topics (``HsnCode.Updated``, ...), which its projection handles.
    """

    class Created(Aggregate.Created):
        fields: dict[str, Any]

    class Updated(EditableRecord.Updated):
        def apply(self, aggregate: Any) -> None:
            aggregate.fields.update(self.changes)

    @event(Created)
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = dict(fields)
        self.deleted = False


class HsnCode(Record):
    """SAC/HSN code and GST rate for a service type (one active row per type)."""


class ServicePlan(Record):
    """A machine size for sale; ``price`` is whole rupees per month (AkashOne's unit)."""


class DiscountCoupon(Record):
    """A coupon: validated in AkashOne's order of checks; redemptions never exceed max_uses."""

    class Redeemed(Aggregate.Event):
        """v2 added ``customer``: whose invoice it discounted (None: a use counted outside
        an invoice, or a v1 event), so a coupon's duration is kept per customer."""

        class_version: ClassVar[int] = 2
        invoice_id: str
        times_used: int
        customer: str | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["customer"] = None

        def apply(self, aggregate: Any) -> None:
            aggregate.fields["times_used"] = self.times_used
            if self.customer is not None:  # the first time each customer used it
                first = dict(getattr(aggregate, "first_used", {}))  # (an older snapshot)
                first.setdefault(self.customer, self.timestamp.isoformat())
                aggregate.first_used = first

    def validation_error(self, order_amount: int | None,  # noqa: PLR0911 - one return per check
                         now: datetime) -> str | None:
        """AkashOne's order: exists (caller), active, valid_from, valid_until, uses, minimum."""
        f = self.fields
        if self.deleted:
            return "Invalid coupon code"
        if not f.get("is_active", True):
            return "Coupon is not active"
        if f.get("valid_from") and datetime.fromisoformat(str(f["valid_from"])) > now:
            return "Coupon is not yet valid"
        if f.get("valid_until") and datetime.fromisoformat(str(f["valid_until"])) < now:
            return "Coupon has expired"
        max_uses = f.get("max_uses")
        if max_uses is not None and f.get("times_used", 0) >= max_uses:
            return "Coupon usage limit reached"
        minimum = f.get("min_order_amount")
        if order_amount is not None and minimum is not None and order_amount < minimum:
            return f"Minimum order amount is ₹{minimum / 100:.2f}"
        return None

    def redeem(self, invoice_id: UUID, order_amount: int, now: datetime,
               customer: str | None = None) -> None:
        """Use the coupon once; concurrent redemptions conflict on this aggregate's version.
        For a ``customer``'s invoice, its duration holds too: a ``once`` coupon discounts one
        invoice of each customer, a ``repeating`` one those within ``duration_months`` of
        the customer's first, a ``forever`` one every invoice."""
        problem = self.validation_error(order_amount, now) or (
            self.duration_error(customer, now) if customer is not None else None)
        if problem:
            raise ValidationError.single("coupon_code", problem)
        self.trigger_event(self.Redeemed, invoice_id=str(invoice_id),
                           times_used=self.fields.get("times_used", 0) + 1, customer=customer)

    def duration_error(self, customer: str, now: datetime) -> str | None:
        first = getattr(self, "first_used", {}).get(customer)
        if first is None:
            return None
        kind, months = self.fields.get("duration_type", "once"), self.fields.get(
            "duration_months")
        if kind == "once":
            return "Coupon applies to one invoice per customer and was used already"
        if kind == "repeating" and months and now >= add_months(
                datetime.fromisoformat(first), int(months)):
            return f"Coupon applied for {months} months from its first use; they have ended"
        return None

    def discount_for(self, amount: int) -> int:
        """Paise off ``amount``: a percentage (1-100), or a fixed amount in paise (capped)."""
        value = int(self.fields["discount_value"])
        if self.fields["discount_type"] == "percentage":
            return apply_bp(amount, value * 100)
        return min(amount, value)


class FeatureFlag(Record):
    """A feature switch, global (not a tenant's): set by the platform only."""


def feature_flag_id_for(key: str) -> UUID:
    """A seeded flag's id, derived from its key (as a permission's): the same everywhere."""
    return uuid5(_NS, f"feature_flag:{key}")


for _record in (HsnCode, ServicePlan, DiscountCoupon, FeatureFlag):
    legacy_event(_record, _record.Created)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    return moment.replace(year=year, month=month,
                          day=min(moment.day, calendar.monthrange(year, month)[1]))
