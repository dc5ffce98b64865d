"""Resource benchmarks (``scripts/bench --suite resources``), each beside its baseline.

create   create_virtual_machine, one command per transaction   vs A1: raw INSERT, then COMMIT
list     get_virtual_machines(user) with 100k resources       vs the same SELECT on raw psycopg
meter    meter() of 10k running VMs x 24 hours (240k records) vs the same usage rows written
         by raw psycopg, 200 rows per transaction (as meter saves them)
rebuild  the resources projection                             vs the library's ProjectionRunner
         writing an equivalent VM table, one transaction per event, on the same mix
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from bench_billing import library_runner_rate
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.utils import get_topic
from psycopg import sql
from rich.console import Console

from akashone_es import context
from akashone_es.domain.identity import User
from akashone_es.domain.resources import Resource
from akashone_es.storage.metering import usage_id
from projections.positions import START, head, pending
from projections.rebuild import rebuild
from projections.resources import ResourcesProjection

console = Console(stderr=True)
VM_FIELDS: dict[str, Any] = {
    "name": "vm", "display_name": "vm", "template_id": "tpl", "template_name": None,
    "service_offering_id": "so", "service_offering_name": None, "zone_id": "z1",
    "zone_name": None, "cpu": 2, "memory": 2048, "disk_size": None, "ip_address": None,
    "public_ip": None, "network_ids": [], "tags": None, "state": "Creating"}
RATE = Decimal(500)


def enable_features(storage: Any) -> None:
    storage.initialize_default_feature_flags()
    for flag in storage.get_feature_flags():
        if not flag.enabled:
            storage.update_feature_flag(flag.id, {"enabled": True})


def _users(storage: Any, count: int, password_hash: str) -> list[User]:
    tag = uuid.uuid4().hex[:6]
    users = [User(username=f"r{tag}{k}", email=f"r{tag}{k}@bench.example.com",
                  password_hash=password_hash, gst_number=None, account_type="customer",
                  organization_id=None, status="active") for k in range(count)]
    for first in range(0, count, 500):
        storage.app.save(*users[first:first + 500])
    return users


def _vms(storage: Any, owners: list[User], per_owner: int, *, running: bool = False,
         per_save: int = 250) -> int:
    """``per_owner`` VMs for each owner, saved in batches; Running when asked."""
    made, batch = 0, []
    for owner in owners:
        for n in range(per_owner):
            vm = Resource(kind="virtual_machine", user_id=str(owner.id), organization_id=None,
                          fields={**VM_FIELDS, "name": f"vm-{n}",
                                  "cloudstack_id": f"b-{uuid.uuid4().hex}"})
            if running:
                vm.transition("start", "state", "Running", {"Creating": frozenset({"Running"})})
            batch.append(vm)
            if len(batch) >= per_save:
                storage.app.save(*batch)
                made, batch = made + len(batch), []
    if batch:
        storage.app.save(*batch)
        made += len(batch)
    return made


# -- create ---------------------------------------------------------------------------------
def ours_create(storage: Any, owner: Any, n: int) -> float:
    start = time.perf_counter()
    for k in range(n):
        storage.create_virtual_machine({
            "user_id": owner.id, "cloudstack_id": f"c-{uuid.uuid4().hex}", "name": f"web-{k}",
            "template_id": "tpl-ubuntu", "service_offering_id": "so-small",
            "zone_id": "zone-1", "cpu": 2, "memory": 2048})
    return n / (time.perf_counter() - start)


def bench_create(storage: Any, rounds: int, n: int, raw_a1: Any) -> dict[str, Any]:
    owner = storage.create_user({"username": f"creator-{uuid.uuid4().hex[:6]}",
                                 "email": f"c{uuid.uuid4().hex[:6]}@bench.example.com",
                                 "password": "bench-password-1"})
    results = []
    for r in range(rounds):
        sides = ("ours", "a1") if r % 2 == 0 else ("a1", "ours")
        rates = {}
        for side in sides:
            rates[side] = ours_create(storage, owner, n) if side == "ours" else raw_a1(
                storage.dsn, n)
        results.append({"ours": rates["ours"], "baseline": rates["a1"],
                        "ratio": rates["ours"] / rates["a1"]})
        console.log(f"create round {r + 1} ({sides[0]} first): {rates['ours']:,.0f} VMs/s vs"
                    f" A1 {rates['a1']:,.0f} ev/s = {rates['ours'] / rates['a1']:.2f}x")
    return _summary("resource_create", "commands/s", "A1 raw INSERT then COMMIT", results)


# -- list -----------------------------------------------------------------------------------
def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def bench_list(storage: Any, rounds: int, owners: list[User], lookups: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        total = conn.execute("SELECT (SELECT count(*) FROM virtual_machines)"
                             " + (SELECT count(*) FROM volumes)").fetchone()[0]  # type: ignore[index]
    query = "SELECT * FROM virtual_machines WHERE user_id = %s ORDER BY created_at, id"
    results = []
    for r in range(rounds):
        chosen = [random.choice(owners).id for _ in range(lookups)]  # noqa: S311 - sampling
        sides = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
        found: dict[str, tuple[float, float]] = {}
        for side in sides:
            samples = []
            if side == "ours":
                for user_id in chosen:
                    start = time.perf_counter()
                    storage.get_virtual_machines(user_id)
                    samples.append((time.perf_counter() - start) * 1000)
            else:
                with psycopg.connect(storage.dsn) as conn:
                    for user_id in chosen:
                        start = time.perf_counter()
                        conn.execute(query, (user_id,), prepare=True).fetchall()
                        samples.append((time.perf_counter() - start) * 1000)
            found[side] = _percentiles(samples)
        row = {"ours_p50": found["ours"][0], "ours_p99": found["ours"][1],
               "raw_p50": found["raw"][0], "raw_p99": found["raw"][1],
               "ratio_p99": found["ours"][1] / found["raw"][1]}
        results.append(row)
        console.log(f"list round {r + 1}: get_virtual_machines p50 {row['ours_p50']:.3f} ms"
                    f" p99 {row['ours_p99']:.3f} ms vs raw p50 {row['raw_p50']:.3f} ms"
                    f" p99 {row['raw_p99']:.3f} ms ({total:,} resources)")
    return {"name": "resource_list", "unit": "ms", "resources": total, "rounds": results,
            "baseline": "the same SELECT on raw psycopg",
            **{k: statistics.median(r[k] for r in results)
               for k in ("ours_p50", "ours_p99", "raw_p50", "raw_p99", "ratio_p99")}}


# -- meter ----------------------------------------------------------------------------------
RAW_USAGE_DDL = """CREATE TABLE IF NOT EXISTS bench_raw_usage (id uuid PRIMARY KEY,
  user_id uuid NOT NULL, resource_type text NOT NULL, resource_id text NOT NULL,
  resource_name text NOT NULL, metric_type text NOT NULL, quantity numeric NOT NULL,
  unit text NOT NULL, unit_price numeric NOT NULL, total_cost numeric NOT NULL,
  period_start timestamptz NOT NULL, period_end timestamptz NOT NULL)"""


def raw_meter(dsn: str, windows: list[tuple[Any, Any, str, datetime]]) -> float:
    """The same usage rows, 200 per transaction, by raw psycopg; rows/s."""
    with psycopg.connect(dsn) as conn:
        conn.execute(RAW_USAGE_DDL)
        conn.execute("TRUNCATE bench_raw_usage")
        conn.commit()
        start = time.perf_counter()
        for first in range(0, len(windows), 200):
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO bench_raw_usage VALUES (%s, %s, 'compute', %s, %s, 'hours',"
                    " 1, 'hours', %s, %s, %s, %s)",
                    [(usage_id(rid, "hours", hour), uid, str(rid), name, RATE, RATE, hour,
                      hour + timedelta(hours=1))
                     for rid, uid, name, hour in windows[first:first + 200]])
            conn.commit()
        return len(windows) / (time.perf_counter() - start)


def bench_meter(storage: Any, rounds: int, resources: int, password_hash: str
                ) -> dict[str, Any]:
    """``resources`` VMs running from a day ``rounds`` days ago; round r meters day r."""
    first_day = (datetime.now(UTC) - timedelta(days=rounds + 1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    owners = _users(storage, max(1, resources // 10), password_hash)
    with context.events_at(first_day):
        _vms(storage, owners, 10, running=True)
    with psycopg.connect(storage.dsn) as conn:
        vms = conn.execute("SELECT id, user_id, name FROM virtual_machines WHERE"
                           " cloudstack_id LIKE 'b-%%' AND state = 'Running'").fetchall()
    results = []
    for r in range(rounds):
        day = first_day + timedelta(days=r)
        windows = [(vid, uid, name, day + timedelta(hours=h)) for vid, uid, name in vms
                   for h in range(24)]
        sides = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
        rates = {}
        for side in sides:
            if side == "ours":
                start = time.perf_counter()
                result = storage.meter(day + timedelta(days=1))
                rates[side] = result.recorded / (time.perf_counter() - start)
            else:
                rates[side] = raw_meter(storage.dsn, windows)
        results.append({"ours": rates["ours"], "baseline": rates["raw"],
                        "ratio": rates["ours"] / rates["raw"], "records": len(windows)})
        console.log(f"meter round {r + 1} ({sides[0]} first): {rates['ours']:,.0f} records/s"
                    f" ({len(windows):,} records) vs raw batches {rates['raw']:,.0f} rows/s"
                    f" = {rates['ours'] / rates['raw']:.2f}x")
    out = _summary("meter", "records/s", "raw psycopg, 200 rows per transaction", results)
    out["resources"], out["hours"] = len(vms), 24
    return out


# -- rebuild --------------------------------------------------------------------------------
class LibraryVmView(PostgresTrackingRecorder):
    """An equivalent VM table, written the library's way: one transaction per event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS lib_vms (id uuid PRIMARY KEY, user_id uuid,"
            " cloudstack_id text UNIQUE, name text, state text, cpu bigint, memory bigint,"
            " created_at timestamptz)").format())

    def created(self, e: Resource.Created, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("INSERT INTO lib_vms VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                         " ON CONFLICT (id) DO NOTHING",
                         (e.originator_id, e.user_id, e.fields.get("cloudstack_id"),
                          e.fields.get("name"), e.fields.get("state"), e.fields.get("cpu"),
                          e.fields.get("memory"), e.timestamp), prepare=True)
            self._insert_tracking(curs, tracking)

    def moved(self, e: Resource.Transitioned, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("UPDATE lib_vms SET state = %s WHERE id = %s",
                         (e.changes.get("state"), e.originator_id), prepare=True)
            self._insert_tracking(curs, tracking)


class LibraryVmProjection(LibraryProjection[LibraryVmView]):
    name = "libvms"
    topics = (get_topic(Resource.Created), get_topic(Resource.Transitioned))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: Resource.Created, tracking: Tracking) -> None:
        self.view.created(domain_event, tracking)

    @process_event.register
    def _(self, domain_event: Resource.Transitioned, tracking: Tracking) -> None:
        self.view.moved(domain_event, tracking)


def bench_rebuild(storage: Any, rounds: int, library_events: int, bulk_from: int
                  ) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        events = conn.execute("SELECT count(*) FROM akashone_events WHERE topic = ANY(%s)",
                              (ResourcesProjection().topics(),)).fetchone()[0]  # type: ignore[index]
        total = pending(conn, START, head(conn))
    results = []
    for r in range(rounds):
        sides = ("ours", "library") if r % 2 == 0 else ("library", "ours")
        rates = {}
        for side in sides:
            if side == "ours":
                with psycopg.connect(storage.dsn, autocommit=True) as conn:
                    conn.execute("CHECKPOINT")
                start = time.perf_counter()
                rebuild(storage.dsn, ResourcesProjection, storage.reader, batch_size=5000)
                rates[side] = events / (time.perf_counter() - start)
            else:
                rates[side] = library_runner_rate(
                    storage.dsn, LibraryVmProjection, LibraryVmView, after=bulk_from,
                    events=library_events, drop="lib_vms, libvms_tracking")
        results.append({"ours": rates["ours"], "baseline": rates["library"],
                        "ratio": rates["ours"] / rates["library"]})
        console.log(f"resources rebuild round {r + 1} ({sides[0]} first): {rates['ours']:,.0f}"
                    f" ev/s over {events:,} events (log {total:,}) vs ProjectionRunner"
                    f" {rates['library']:,.0f} ev/s = {rates['ours'] / rates['library']:.1f}x")
    out = _summary("resources_rebuild", "events/s", "eventsourcing ProjectionRunner", results)
    out["events"], out["library_events_measured"] = events, library_events
    return out


def _summary(name: str, unit: str, baseline: str, results: list[dict[str, Any]]
             ) -> dict[str, Any]:
    return {"name": name, "unit": unit, "baseline": baseline, "rounds": results,
            "ours_median": statistics.median(r["ours"] for r in results),
            "baseline_median": statistics.median(r["baseline"] for r in results),
            "ratio_median": statistics.median(r["ratio"] for r in results)}


def run(storage: Any, args: Any, raw_a1: Any, password_hash: str) -> list[dict[str, Any]]:
    """The whole suite on one database (its size grows as it goes)."""
    enable_features(storage)
    results = [bench_create(storage, args.rounds, args.append_events, raw_a1)]
    with psycopg.connect(storage.dsn) as conn:
        bulk_from = head(conn).position
    owners = _users(storage, args.resources // 10, password_hash)
    start = time.perf_counter()
    made = _vms(storage, owners, 10)
    console.log(f"populated {made:,} VMs for {len(owners):,} users in"
                f" {time.perf_counter() - start:.1f}s")
    results.append(bench_list(storage, args.rounds, owners, args.lookups))
    results.append(bench_rebuild(storage, args.rounds, args.library_events, bulk_from))
    results.append(bench_meter(storage, args.rounds, args.meter_resources, password_hash))
    return results
