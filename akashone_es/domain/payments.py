"""Payments and tax records: gateway transactions and GST audit rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate, legacy_event
from akashone_es.errors import ValidationError


class PaymentTransaction(Aggregate):
    """One gateway payment: pending -> success | failed; success -> refunded."""

    class Initiated(Aggregate.Created):
        invoice_id: str
        user_id: str
        fields: dict[str, Any]

    class Imported(Initiated):
        """An AkashOne ``payment_transactions`` row (``legacy``); ``extra`` holds what it
        recorded after the initiation (the gateway's response, an error, the completion), and
        the initiation's own time when it is not the record's creation (the event's time)."""

        legacy: ClassVar[bool] = True
        source: str
        extra: dict[str, Any] = {}

    class Succeeded(Aggregate.Event):
        completed_at: datetime
        gateway_response: dict[str, Any] | None

    class Failed(Aggregate.Event):
        error_code: str | None
        error_message: str | None
        gateway_response: dict[str, Any] | None

    class Refunded(Aggregate.Event):
        amount: int
        refunded_at: datetime

    class Updated(Aggregate.Event):
        changes: dict[str, Any]

    @event(Initiated)
    def __init__(self, invoice_id: str, user_id: str, fields: dict[str, Any]) -> None:
        self.invoice_id = invoice_id
        self.amount: int = fields["amount"]
        self.status: str = fields.get("status", "pending")

    def succeed(self, completed_at: datetime, response: dict[str, Any] | None) -> bool:
        """False when it already succeeded (an idempotent callback)."""
        if self.status == "success":
            return False
        if self.status not in ("pending", "processing"):
            raise ValidationError.single("status", f"transaction is {self.status}")
        self._succeed(completed_at, response)
        return True

    @event(Succeeded)
    def _succeed(self, completed_at: datetime, gateway_response: dict[str, Any] | None) -> None:
        self.status = "success"

    def fail(self, code: str | None, message: str | None,
             response: dict[str, Any] | None) -> bool:
        if self.status == "failed":
            return False
        if self.status not in ("pending", "processing"):
            raise ValidationError.single("status", f"transaction is {self.status}")
        self._fail(code, message, response)
        return True

    @event(Failed)
    def _fail(self, error_code: str | None, error_message: str | None,
              gateway_response: dict[str, Any] | None) -> None:
        self.status = "failed"

    def refund(self, refunded_at: datetime) -> None:
        if self.status != "success":
            raise ValidationError.single("status", f"only a successful payment can be "
                                                   f"refunded; this one is {self.status}")
        self._refund(self.amount, refunded_at)

    @event(Refunded)
    def _refund(self, amount: int, refunded_at: datetime) -> None:
        self.status = "refunded"

    @event(Updated)
    def update(self, changes: dict[str, Any]) -> None:
        pass


class TaxCalculation(Aggregate):
    """A GST audit record (append-only), written at issue or recorded explicitly."""

    class Recorded(Aggregate.Created):
        invoice_id: str
        user_id: str
        fields: dict[str, Any]

    @event(Recorded)
    def __init__(self, invoice_id: str, user_id: str, fields: dict[str, Any]) -> None:
        self.invoice_id = invoice_id


legacy_event(TaxCalculation, TaxCalculation.Recorded)
