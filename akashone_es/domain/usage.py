"""Usage metering: records with exact fractional paise, billed once; the default rates."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate
from akashone_es.errors import ConflictError

METERING_RATES: dict[str, tuple[str, Decimal]] = {
    "compute": ("hours", Decimal(500)),
    "block_storage": ("GB-hours", Decimal(1)),
    "object_storage": ("GB-hours", Decimal(1)),
    "bandwidth": ("GB", Decimal(1200)),
    "kubernetes": ("node-hours", Decimal(1000)),
    "database": ("hours", Decimal(500)),
    # a managed database's storage, billed beside its hours (AkashOne: 1 paisa per GB-hour)
    "database_storage": ("GB-hours", Decimal(1)),
}
LINE_DESCRIPTIONS = {
    "compute": "Virtual Machine Usage", "block_storage": "Block Storage",
    "object_storage": "Object Storage", "bandwidth": "Data Transfer",
    "kubernetes": "Kubernetes Cluster Usage", "database": "Managed Database Usage",
    "database_storage": "Managed Database Storage",
}


class UsageRecord(Aggregate):
    """Metered usage: fractional paise kept exactly (Decimal) until invoicing; billed once."""

    class Recorded(Aggregate.Created):
        user_id: str
        organization_id: str | None
        resource_type: str
        resource_id: str
        resource_name: str
        metric_type: str
        quantity: Decimal
        unit: str
        unit_price: Decimal
        total_cost: Decimal
        recorded_at: datetime
        period_start: datetime
        period_end: datetime
        metadata_json: dict[str, Any] | None

    class Billed(Aggregate.Event):
        invoice_id: str

    class Imported(Recorded):
        """An AkashOne ``usage_records`` row (``legacy``); one AkashOne billed names its
        invoice, so it is never billed again."""

        legacy: ClassVar[bool] = True
        source: str
        invoice_id: str | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate.invoice_id = self.invoice_id

    @event(Recorded)
    def __init__(self, user_id: str, organization_id: str | None, resource_type: str,
                 resource_id: str, resource_name: str, metric_type: str, quantity: Decimal,
                 unit: str, unit_price: Decimal, total_cost: Decimal, recorded_at: datetime,
                 period_start: datetime, period_end: datetime,
                 metadata_json: dict[str, Any] | None) -> None:
        self.user_id = user_id
        self.invoice_id: str | None = None

    @classmethod
    def with_id(cls, record_id: UUID, **fields: Any) -> UsageRecord:
        """A record whose id is given (metering derives it from resource and hour, so a
        second recording of that hour clashes on the id and is refused)."""
        return cls._create(cls.Recorded, id=record_id, **fields)

    @classmethod
    def billed_event(cls, record_id: UUID, invoice_id: UUID) -> UsageRecord.Billed:
        """The Billed event of an unbilled record without loading it: an unbilled record is
        always at version 1 (Recorded), so this is version 2; if a racing writer billed it
        first, the version clashes and the whole save fails with ConflictError."""
        return cls.Billed(originator_id=record_id, originator_version=2,
                          timestamp=cls.Billed.create_timestamp(), invoice_id=str(invoice_id))

    def bill(self, invoice_id: UUID) -> None:
        if self.invoice_id is not None:
            raise ConflictError(f"usage record {self.id} is already billed on {self.invoice_id}")
        self._bill(str(invoice_id))

    @event(Billed)
    def _bill(self, invoice_id: str) -> None:
        self.invoice_id = invoice_id

