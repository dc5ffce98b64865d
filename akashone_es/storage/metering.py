"""Metering from the log: usage records for every metered hour of every resource.

The resources projection keeps metered segments (``resource_meter_segments``): while a
resource bills something (a VM is Running, a volume exists, a cluster runs its nodes), one
open segment at its quantity per hour. ``meter(until)`` cuts every segment into hour windows
that end by ``until`` and records one usage record per (resource, metric, window), with an id
derived from exactly that: a rerun, two meters racing or a meter killed mid-run never bill an
hour twice and never lose one (the missing windows are recorded by the next run). A segment
that crosses a window is split exactly; a window's records sum every segment inside it.

AkashOne's tracker was never scheduled and looked for states nothing set; here the states
are the lifecycle's own, and usage comes from the same events as the resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from psycopg import sql

from akashone_es import context
from akashone_es.domain import usage as usage_domain
from akashone_es.errors import ConflictError, ValidationError
from akashone_es.storage import billing_inputs as bi
from akashone_es.storage import inputs as i
from akashone_es.storage import limits as lim
from akashone_es.storage.billing import BillingStorage
from projections import billing_models as bm

HOUR = timedelta(hours=1)
_NS = uuid5(NAMESPACE_URL, "https://akashone.com/akashone-es/metering")
#: records saved per transaction
BATCH = 200
#: how long after an hour ends it may be metered: a change is stamped before it commits, and
#: one that commits late in the hour must be in the segments when the hour is metered
GRACE = timedelta(minutes=5)
#: how far before a resource's last recorded hour a run looks again for a missing one
RESCAN = timedelta(days=2)
#: the oldest window a run looks at (usage older than this was metered by earlier runs)
LOOKBACK = timedelta(days=400)
PLACES = Decimal(1).scaleb(-lim.QUANTITY_PLACES)

SEGMENTS = sql.SQL(
    "SELECT resource_id, metric, started_at, ended_at, kind, resource_type, user_id,"
    " organization_id, resource_name, quantity FROM resource_meter_segments"
    " WHERE started_at < %s AND (ended_at IS NULL OR ended_at > %s)"
    " ORDER BY resource_id, metric, started_at")
RECORDED = sql.SQL("SELECT id FROM usage_records WHERE id = ANY(%s)")
#: the end of the last recorded hour of each (resource, metric): one index probe each
LAST_METERED = sql.SQL(
    "SELECT s.resource_id, s.metric, (SELECT max(u.period_end) FROM usage_records u"
    " WHERE u.resource_id = s.resource_id AND u.metric_type = s.metric) AS last"
    " FROM unnest(%s::text[], %s::text[]) AS s(resource_id, metric)")
#: one customer's segments that reach into a span (an invoice's period)
SEGMENTS_OF_USER = sql.SQL(
    "SELECT resource_id, metric, started_at, ended_at, kind, resource_type, user_id,"
    " organization_id, resource_name, quantity FROM resource_meter_segments"
    " WHERE user_id = %s AND started_at < %s AND (ended_at IS NULL OR ended_at > %s)"
    " ORDER BY resource_id, metric, started_at")


def usage_id(resource_id: UUID, metric: str, window: datetime) -> UUID:
    """The one usage record of a resource's metric in an hour window."""
    return uuid5(_NS, f"{resource_id}:{metric}:{window.astimezone(UTC).isoformat()}")


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class Window:
    """One resource's metric in one hour: quantity in units x hours."""

    resource_id: UUID
    metric: str
    start: datetime
    resource_type: str
    user_id: UUID
    organization_id: UUID | None
    resource_name: str
    kind: str
    quantity: Decimal

    @property
    def id(self) -> UUID:
        return usage_id(self.resource_id, self.metric, self.start)


@dataclass(frozen=True)
class MeterResult:
    until: datetime
    windows: int
    recorded: int
    already: int


def windows(segments: list[dict[str, Any]], until: datetime,
            metered: dict[tuple[str, str], datetime] | None = None) -> Iterator[Window]:
    """Every hour window that ends by ``until``, with the segments' usage inside it summed;
    with ``metered`` (the end of each resource's and metric's last recorded hour), from a
    margin before it only: a run records a resource's hours in order, so none before is
    missing, and a meter run hourly does not cut a year of a VM's hours each time."""
    found: dict[tuple[UUID, str, datetime], Window] = {}
    for seg in segments:
        end = min(seg["ended_at"] or until, until)
        hour = floor_hour(seg["started_at"])
        last = (metered or {}).get((str(seg["resource_id"]), seg["metric"]))
        if last is not None:
            hour = max(hour, floor_hour(last - RESCAN))
        while hour + HOUR <= until and hour < end:
            lo, hi = max(seg["started_at"], hour), min(end, hour + HOUR)
            if hi > lo:
                hours = Decimal((hi - lo) // timedelta(microseconds=1)) / Decimal(3_600_000_000)
                key = (seg["resource_id"], seg["metric"], hour)
                window = found.get(key)
                if window is None:
                    window = found[key] = Window(
                        seg["resource_id"], seg["metric"], hour, seg["resource_type"],
                        seg["user_id"], seg["organization_id"], seg["resource_name"],
                        seg["kind"], Decimal(0))
                window.quantity += Decimal(seg["quantity"]) * hours
            hour += HOUR
    yield from found.values()


class MeteringStorage(BillingStorage):
    """``meter``: usage records from the resources' metered segments."""

    def generate_invoice(self, data: bi.GenerateInvoice | dict[str, Any]) -> bm.Invoice:
        """As ``BillingStorage.generate_invoice``, once every metered hour of the customer's
        resources that the period bills is metered: an invoice made before ``meter`` had
        reached the period's end billed part of it, and no later period billed the rest."""
        request = i.parse(bi.GenerateInvoice, data)
        if self._visible_user(request.user_id) is not None:  # else: not found, as before
            self._metered_through(request)
        return super().generate_invoice(request)

    def _metered_through(self, request: bi.GenerateInvoice) -> None:
        start, end = request.period_start, request.period_end
        segments = self._rows(SEGMENTS_OF_USER, (request.user_id, end, start - HOUR))
        wanted = {w.id: w for w in windows(segments, end)
                  if w.start + HOUR > start and w.quantity.quantize(PLACES) > 0}
        if not wanted:
            return
        missing = sorted(set(wanted) - set(self._column(RECORDED, (list(wanted),))),
                         key=lambda key: wanted[key].start)
        if missing:
            first = wanted[missing[0]].start
            raise ValidationError.single(
                "period_end", f"{len(missing)} metered hour{'s' if len(missing) > 1 else ''} "
                              f"of the customer's resources in the period are not metered "
                              f"yet (the first from {first:%Y-%m-%d %H:%M} UTC): meter until "
                              f"the period's end first")

    def meter(self, until: datetime) -> MeterResult:
        """Record the usage of every hour window that ends by ``until`` (an aware time, at
        least ``GRACE`` ago); returns how many windows there were and how many were new."""
        if not isinstance(until, datetime) or until.tzinfo is None:
            raise ValidationError.single("until", "must be a date-time with a time zone")
        if until > datetime.now(UTC) - GRACE:
            raise ValidationError.single(
                "until", f"must be at least {GRACE.seconds // 60} minutes ago (an hour is "
                         "metered once, after it ends and its changes have committed)")
        until = until.astimezone(UTC)
        with self._cursor() as cur:
            cur.execute(SEGMENTS, (until, until - LOOKBACK))
            segments = cur.fetchall()
            keys = sorted({(str(s["resource_id"]), s["metric"]) for s in segments})
            cur.execute(LAST_METERED, ([k[0] for k in keys], [k[1] for k in keys]))
            metered = {(r["resource_id"], r["metric"]): r["last"] for r in cur.fetchall()
                       if r["last"] is not None}
        # a window too small to show at the records' precision (a few bytes stored) is none
        found = [w for w in windows(segments, until, metered)
                 if w.quantity.quantize(PLACES) > 0]
        recorded = 0
        for start in range(0, len(found), BATCH):
            recorded += self._record_windows(found[start:start + BATCH])
        return MeterResult(until, len(found), recorded, len(found) - recorded)

    def _record_windows(self, batch: list[Window]) -> int:
        """Save the windows not recorded yet, in one transaction; a racing meter that saved
        some first makes this one look again."""
        for _ in range(5):
            done = set(self._column(RECORDED, ([w.id for w in batch],)))
            missing = [w for w in batch if w.id not in done]
            if not missing:
                return 0
            records = [self._record(w) for w in missing]
            try:
                with context.command():
                    self._save(*records)
            except ConflictError:
                continue
            return len(records)
        raise ConflictError("metering kept meeting a racing meter; run it again")

    @staticmethod
    def _record(w: Window) -> usage_domain.UsageRecord:
        unit, rate = usage_domain.METERING_RATES[w.resource_type]
        quantity = w.quantity.quantize(PLACES)
        return usage_domain.UsageRecord.with_id(
            w.id, user_id=str(w.user_id),
            organization_id=str(w.organization_id) if w.organization_id else None,
            resource_type=w.resource_type, resource_id=str(w.resource_id),
            resource_name=w.resource_name, metric_type=w.metric, quantity=quantity,
            unit=unit, unit_price=rate, total_cost=quantity * rate,
            recorded_at=datetime.now(UTC), period_start=w.start, period_end=w.start + HOUR,
            metadata_json={"kind": w.kind, "metered": True})
