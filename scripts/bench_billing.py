"""Billing benchmarks (imported by scripts/bench.py): invoice generation and billing rebuild.

generation  generate_invoice for customers with 100 usage records each  vs the same work as
            one raw psycopg transaction per customer (select usage, insert invoice and lines,
            mark usage billed) on copies of the same rows
rebuild     billing projection rebuild                                    vs the library's
            ProjectionRunner writing an equivalent usage table, one transaction per event,
            timed on the same mix of events as ours: its rate on UsageRecord.Recorded (an
            INSERT each) and on Invoice.UsageBilled (an UPDATE of the records it names, rows
            present) is weighted by how many of each our rebuild replays
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
from akashone_es.domain.billing import BillingAddress, Invoice
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
        rates: dict[str, float] = {}
        sides = ("raw", "ours") if r % 2 == 0 else ("ours", "raw")  # alternate who goes first
        for side in sides:
            with psycopg.connect(storage.dsn, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            rates[side] = (raw_generation(storage.dsn, chunk, r * size + 1) if side == "raw"
                           else ours_generation(storage, chunk))
        ours, base = rates["ours"], rates["raw"]
        results.append({"ours": ours, "baseline": base, "ratio": ours / base})
        console.log(f"generation round {r + 1} ({sides[0]} first): {ours:,.1f} invoices/s vs"
                    f" raw {base:,.1f} invoices/s = {ours / base:.2f}x ({len(chunk)} customers)")
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
            " invoice_id uuid)").format())

    def recorded(self, e: UsageRecord.Recorded, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("INSERT INTO lib_usage VALUES (%s, %s, %s, %s, %s, false, NULL)"
                         " ON CONFLICT (id) DO NOTHING",
                         (e.originator_id, e.user_id, e.resource_type, e.quantity,
                          e.total_cost), prepare=True)
            self._insert_tracking(curs, tracking)

    def billed(self, e: Invoice.UsageBilled, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("UPDATE lib_usage SET billed = true, invoice_id = %s"
                         " WHERE id = ANY(%s::uuid[])",
                         (e.originator_id, e.record_ids), prepare=True)
            self._insert_tracking(curs, tracking)


class LibraryUsageProjection(LibraryProjection[LibraryUsageView]):
    name = "libusage"
    topics = (get_topic(UsageRecord.Recorded), get_topic(Invoice.UsageBilled))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: UsageRecord.Recorded, tracking: Tracking) -> None:
        self.view.recorded(domain_event, tracking)

    @process_event.register
    def _(self, domain_event: Invoice.UsageBilled, tracking: Tracking) -> None:
        self.view.billed(domain_event, tracking)


def _starting_after(view_class: type[Any], position: int) -> type[Any]:
    """``view_class`` whose runner starts after ``position`` (a window in mid-log)."""

    class StartingAfter(view_class):  # type: ignore[misc]
        def max_tracking_id(self, application_name: str) -> int | None:
            found = super().max_tracking_id(application_name)
            return position if found is None else max(found, position)

    return StartingAfter


def library_runner_rate(dsn: str, projection_class: type[Any], view_class: type[Any], *,
                        after: int, events: int, drop: str) -> float:
    """Events/s of the library's ProjectionRunner over its next ``events`` events (of its
    topics) after position ``after``; ``drop`` names the tables to start it afresh."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {drop}")
        row = conn.execute("SELECT notification_id FROM akashone_events WHERE topic = ANY(%s)"
                           " AND notification_id > %s ORDER BY notification_id"
                           " OFFSET %s LIMIT 1",
                           (list(projection_class.topics), after, events - 1)).fetchone()
        conn.execute("CHECKPOINT")
    if row is None:
        raise SystemExit(f"fewer than {events} {projection_class.name} events after {after}:"
                         " lower --library-events")
    env = eventsourcing_env(dsn, pool_size=2, max_overflow=2, lock_timeout=10)
    target = int(row[0])
    start = time.perf_counter()
    with ProjectionRunner(application_class=AkashOneApplication,
                          projection_class=projection_class,
                          view_class=_starting_after(view_class, after), env=env) as runner:
        # poll every 10 ms: runner.wait() backs off to 800 ms sleeps, which would add up to
        # 0.8 s to the library's time
        deadline = time.monotonic() + 3600
        while not (runner.view.has_tracking_id(runner.app_name, target)
                   or runner.is_interrupted.is_set() or time.monotonic() > deadline):
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        runner.wait(target, timeout=1)  # raises the runner's error, if it stopped on one
    return events / elapsed


def library_mix_rate(dsn: str, events: int, counts: dict[str, int]) -> dict[str, float]:
    """The library's rate on the same mix of inserts and updates as our rebuild.

    Inserts: the first ``events`` Recorded events into an empty table. Updates: the first
    ``events`` Billed events, on a table holding every usage row (as our rebuild's table does
    by then). The mix rate is total events over the time the library would take for our
    counts of each: n / (n_ins / rate_ins + n_upd / rate_upd).
    """
    recorded, billed = (get_topic(UsageRecord.Recorded), get_topic(Invoice.UsageBilled))
    inserts = library_runner_rate(dsn, LibraryUsageProjection, LibraryUsageView, after=0,
                                  events=events, drop="lib_usage, libusage_tracking")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO lib_usage SELECT id, user_id, resource_type, quantity,"
                     " total_cost, false, NULL FROM usage_records ON CONFLICT (id) DO NOTHING")
        first = conn.execute("SELECT min(notification_id) FROM akashone_events"
                             " WHERE topic = %s", (billed,)).fetchone()
    if first is None or first[0] is None:
        raise SystemExit("no Invoice.UsageBilled events: the generation benchmark makes them")
    n_ins, n_upd = counts.get(recorded, 0), counts.get(billed, 0)
    updates = library_runner_rate(dsn, LibraryUsageProjection, LibraryUsageView,
                                  after=int(first[0]) - 1, events=min(events, n_upd),
                                  drop="libusage_tracking")
    mix = (n_ins + n_upd) / (n_ins / inserts + n_upd / updates)
    return {"baseline": mix, "baseline_inserts": inserts, "baseline_updates": updates}


def raw_ordered_read(dsn: str) -> float:
    """Rows/s of reading every event in log order (the columns a replay reads), raw psycopg:
    the baseline of verify and of the rebuilds (aim >= 0.1x)."""
    with psycopg.connect(dsn) as conn, conn.cursor(name="raw_read") as cur:
        cur.itersize = 5000
        start = time.perf_counter()
        cur.execute("SELECT notification_id, originator_id, originator_version, topic, state"
                    " FROM akashone_events ORDER BY notification_id")
        count = sum(1 for _ in cur)
        return count / (time.perf_counter() - start)


def bench_billing_rebuild(storage: Any, rounds: int, library_events: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        counts: dict[str, int] = dict(conn.execute(
            "SELECT topic, count(*) FROM akashone_events WHERE topic = ANY(%s) GROUP BY topic",
            (BillingProjection().topics(),)).fetchall())
    events = sum(counts.values())
    recorded, billed = (counts.get(get_topic(UsageRecord.Recorded), 0),
                        counts.get(get_topic(Invoice.UsageBilled), 0))
    results = []
    for r in range(rounds):
        # alternate which side runs first: the other's writes leave dirty pages and WAL
        sides = ("ours", "library") if r % 2 == 0 else ("library", "ours")
        row: dict[str, float] = {}
        for side in sides:
            if side == "ours":
                with psycopg.connect(storage.dsn, autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
                start = time.perf_counter()
                rebuild(storage.dsn, BillingProjection, storage.reader, batch_size=5000)
                row["ours"] = events / (time.perf_counter() - start)
                row["raw_read"] = raw_ordered_read(storage.dsn)
            else:
                row.update(library_mix_rate(storage.dsn, library_events, counts))
        row["ratio"] = row["ours"] / row["baseline"]
        row["ratio_raw_read"] = row["ours"] / row["raw_read"]
        results.append(row)
        console.log(f"billing rebuild round {r + 1} ({sides[0]} first): {row['ours']:,.0f} ev/s"
                    f" over {events:,} events vs ProjectionRunner {row['baseline']:,.0f} ev/s"
                    f" on the same mix (inserts {row['baseline_inserts']:,.0f},"
                    f" updates {row['baseline_updates']:,.0f}) = {row['ratio']:.1f}x; vs a raw"
                    f" ordered read {row['raw_read']:,.0f} rows/s = {row['ratio_raw_read']:.3f}x")
    return {"name": "billing_rebuild", "unit": "events/s",
            "baseline": "eventsourcing ProjectionRunner, same mix of inserts and updates",
            "events": events, "recorded_events": recorded, "billed_events": billed,
            "library_events_measured": library_events, "rounds": results,
            "ours_median": statistics.median(r["ours"] for r in results),
            "baseline_median": statistics.median(r["baseline"] for r in results),
            "ratio_median": statistics.median(r["ratio"] for r in results),
            "raw_read_median": statistics.median(r["raw_read"] for r in results),
            "ratio_raw_read_median": statistics.median(r["ratio_raw_read"] for r in results)}
