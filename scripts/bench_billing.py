"""Billing benchmarks (imported by scripts/bench.py): invoice generation and billing rebuild.

generation  generate_invoice for customers with 100 usage records each  vs the same work as
            one raw psycopg transaction per customer (select usage, insert invoice and lines,
            mark usage billed) on copies of the same rows
rebuild     billing projection rebuild                                    vs the library's
            ProjectionRunner writing an equivalent usage table, one transaction per event
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.projection import ProjectionRunner
from eventsourcing.utils import get_topic
from psycopg import sql
from rich.console import Console

from akashone_es.application import AkashOneApplication
from akashone_es.domain.billing import BillingAddress
from akashone_es.domain.identity import User
from akashone_es.domain.usage import UsageRecord
from akashone_es.money import round_half_up
from akashone_es.persistence.database import eventsourcing_env
from projections.billing import BillingProjection
from projections.rebuild import rebuild

console = Console(stderr=True)
PERIOD = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
STATES = ("27", "29", "07", "33", "04", "36")
KINDS = (("compute", "hours", Decimal(500)), ("block_storage", "GB-hours", Decimal(1)),
         ("bandwidth", "GB", Decimal(1200)), ("kubernetes", "node-hours", Decimal(1000)))


def populate(storage: Any, customers: int, records: int, password_hash: str) -> list[Any]:
    """Customers with a default address and ``records`` unbilled usage records each."""
    start = time.perf_counter()
    ids = []
    for c in range(customers):
        tag = uuid.uuid4().hex[:6]
        user = User(username=f"cust{c}-{tag}", email=f"c{c}-{tag}@b.example",
                    password_hash=password_hash, gst_number=None, account_type="customer",
                    organization_id=None, status="active")
        state = STATES[c % len(STATES)]
        address = BillingAddress(user_id=str(user.id), fields={
            "address_line1": f"{c} Main Road", "city": "City", "state": f"State {state}",
            "state_code": state, "postal_code": "400001", "country": "India",
            "is_default": True})
        usage = []
        for r in range(records):
            kind, unit, price = KINDS[r % len(KINDS)]
            quantity = Decimal(r % 17 + 1) + Decimal("0.125")
            usage.append(UsageRecord(
                user_id=str(user.id), organization_id=None, resource_type=kind,
                resource_id=f"{kind}-{r}", resource_name=f"{kind} {r}", metric_type="runtime",
                quantity=quantity, unit=unit, unit_price=price, total_cost=quantity * price,
                recorded_at=PERIOD[1], period_start=PERIOD[0], period_end=PERIOD[1],
                metadata_json=None))
        storage.app.save(user, address, *usage)
        ids.append(user.id)
    console.log(f"populated {customers:,} customers x {records} usage records in "
                f"{time.perf_counter() - start:.1f}s")
    return ids


RAW_DDL = """
CREATE TABLE IF NOT EXISTS raw_usage AS SELECT id, user_id, resource_type, quantity, unit,
  total_cost, billed, invoice_id FROM usage_records WITH NO DATA;
ALTER TABLE raw_usage ADD PRIMARY KEY (id);
CREATE INDEX IF NOT EXISTS raw_usage_user ON raw_usage (user_id, billed);
CREATE TABLE IF NOT EXISTS raw_invoices (id uuid PRIMARY KEY, number text UNIQUE,
  user_id uuid, subtotal bigint, tax bigint, total bigint, created_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS raw_lines (id uuid PRIMARY KEY, invoice_id uuid,
  resource_type text, quantity numeric, amount bigint, tax bigint);
"""


def raw_generation(dsn: str, customers: list[Any], first_number: int) -> float:
    """Invoices/s for the same work done by hand: one transaction per customer."""
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        for n, customer in enumerate(customers):
            rows = conn.execute("SELECT id, resource_type, quantity, total_cost FROM raw_usage"
                                " WHERE user_id = %s AND NOT billed", (customer,)).fetchall()
            groups: dict[str, list[Decimal]] = {}
            for _, kind, quantity, cost in rows:
                groups.setdefault(kind, [Decimal(0), Decimal(0)])
                groups[kind][0] += quantity
                groups[kind][1] += cost
            invoice = uuid.uuid4()
            amounts = {k: round_half_up(v[1]) for k, v in groups.items()}
            taxes = {k: (a * 1800 + 5000) // 10000 for k, a in amounts.items()}
            subtotal, tax = sum(amounts.values()), sum(taxes.values())
            conn.execute("INSERT INTO raw_invoices (id, number, user_id, subtotal, tax, total)"
                         " VALUES (%s, %s, %s, %s, %s, %s)",
                         (invoice, f"RAW/{first_number + n:06d}", customer, subtotal, tax,
                          subtotal + tax))
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO raw_lines VALUES (%s, %s, %s, %s, %s, %s)",
                                [(uuid.uuid4(), invoice, k, groups[k][0], amounts[k], taxes[k])
                                 for k in groups])
            conn.execute("UPDATE raw_usage SET billed = true, invoice_id = %s"
                         " WHERE id = ANY(%s)", (invoice, [r[0] for r in rows]))
            conn.commit()
        return len(customers) / (time.perf_counter() - start)


def ours_generation(storage: Any, customers: list[Any]) -> float:
    start = time.perf_counter()
    for customer in customers:
        storage.generate_invoice({"user_id": customer, "period_start": PERIOD[0],
                                  "period_end": PERIOD[1]})
    return len(customers) / (time.perf_counter() - start)


def bench_generation(storage: Any, customers: list[Any], rounds: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn, autocommit=True) as conn:
        conn.execute(RAW_DDL)
        conn.execute("INSERT INTO raw_usage SELECT id, user_id, resource_type, quantity, unit,"
                     " total_cost, billed, invoice_id FROM usage_records")
    size = len(customers) // rounds
    results = []
    for r in range(rounds):
        chunk = customers[r * size:(r + 1) * size]
        with psycopg.connect(storage.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        base = raw_generation(storage.dsn, chunk, r * size + 1)
        with psycopg.connect(storage.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        ours = ours_generation(storage, chunk)
        results.append({"ours": ours, "baseline": base, "ratio": ours / base})
        console.log(f"generation round {r + 1}: {ours:,.1f} invoices/s vs raw {base:,.1f}"
                    f" invoices/s = {ours / base:.2f}x ({len(chunk)} customers)")
    return {"name": "generation", "unit": "invoices/s",
            "baseline": "raw psycopg, one transaction per customer",
            "rounds": results, "customers": len(customers),
            "ours_median": statistics.median(r["ours"] for r in results),
            "baseline_median": statistics.median(r["baseline"] for r in results),
            "ratio_median": statistics.median(r["ratio"] for r in results)}


class LibraryUsageView(PostgresTrackingRecorder):
    """An equivalent usage table, written the library's way: one transaction per event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS lib_usage (id uuid PRIMARY KEY, user_id uuid,"
            " resource_type text, quantity numeric, total_cost numeric, billed boolean,"
            " invoice_id uuid)"))

    def recorded(self, e: UsageRecord.Recorded, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("INSERT INTO lib_usage VALUES (%s, %s, %s, %s, %s, false, NULL)"
                         " ON CONFLICT (id) DO NOTHING",
                         (e.originator_id, e.user_id, e.resource_type, e.quantity,
                          e.total_cost), prepare=True)
            self._insert_tracking(curs, tracking)

    def billed(self, e: UsageRecord.Billed, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("UPDATE lib_usage SET billed = true, invoice_id = %s WHERE id = %s",
                         (e.invoice_id, e.originator_id), prepare=True)
            self._insert_tracking(curs, tracking)


class LibraryUsageProjection(LibraryProjection[LibraryUsageView]):
    name = "libusage"
    topics = (get_topic(UsageRecord.Recorded), get_topic(UsageRecord.Billed))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: UsageRecord.Recorded, tracking: Tracking) -> None:
        self.view.recorded(domain_event, tracking)

    @process_event.register
    def _(self, domain_event: UsageRecord.Billed, tracking: Tracking) -> None:
        self.view.billed(domain_event, tracking)


def library_rate(dsn: str, events: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lib_usage, libusage_tracking")
        row = conn.execute("SELECT notification_id FROM akashone_events WHERE topic = ANY(%s)"
                           " ORDER BY notification_id OFFSET %s LIMIT 1",
                           (list(LibraryUsageProjection.topics), events - 1)).fetchone()
        conn.execute("CHECKPOINT")
    assert row is not None
    env = eventsourcing_env(dsn, pool_size=2, max_overflow=2, lock_timeout=10)
    start = time.perf_counter()
    with ProjectionRunner(application_class=AkashOneApplication,
                          projection_class=LibraryUsageProjection,
                          view_class=LibraryUsageView, env=env) as runner:
        runner.wait(int(row[0]), timeout=3600)
        elapsed = time.perf_counter() - start
    return events / elapsed


def bench_billing_rebuild(storage: Any, rounds: int, library_events: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        events = conn.execute("SELECT count(*) FROM akashone_events WHERE topic = ANY(%s)",
                              (BillingProjection().topics(),)).fetchone()[0]  # type: ignore[index]
    results = []
    for r in range(rounds):
        with psycopg.connect(storage.dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        start = time.perf_counter()
        rebuild(storage.dsn, BillingProjection, storage.reader, batch_size=5000)
        ours = events / (time.perf_counter() - start)
        base = library_rate(storage.dsn, library_events)
        results.append({"ours": ours, "baseline": base, "ratio": ours / base})
        console.log(f"billing rebuild round {r + 1}: {ours:,.0f} ev/s over {events:,} events"
                    f" vs ProjectionRunner {base:,.0f} ev/s = {ours / base:.1f}x")
    return {"name": "billing_rebuild", "unit": "events/s",
            "baseline": "eventsourcing ProjectionRunner", "events": events,
            "library_events_measured": library_events, "rounds": results,
            "ours_median": statistics.median(r["ours"] for r in results),
            "baseline_median": statistics.median(r["baseline"] for r in results),
            "ratio_median": statistics.median(r["ratio"] for r in results)}
