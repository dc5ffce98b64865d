"""Benchmarks: every figure beside its baseline, measured in the same run on the same database.

append   register users, one command per transaction      vs raw INSERT+COMMIT (A1)
rebuild  identity projection rebuild over the whole log    vs the library's ProjectionRunner
startup  open_storage() to first query, 20k and 200k events (no growth with log length)
query    get_user_by_email p50/p99 with 100k users         vs the same SELECT on raw psycopg
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import bcrypt
import bench_billing
import orjson
import psycopg
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.projection import ProjectionRunner
from eventsourcing.utils import get_topic
from psycopg import sql
from rich.console import Console
from rich.table import Table

from akashone_es import Settings, open_storage
from akashone_es.application import AkashOneApplication
from akashone_es.domain.identity import User, system_role_id_for
from akashone_es.persistence.database import drop_database, eventsourcing_env, with_database
from akashone_es.storage import resolve_dsn
from projections.identity import IdentityProjection
from projections.log import head
from projections.rebuild import rebuild

console = Console(stderr=True)
PASSWORD_HASH = bcrypt.hashpw(b"benchmark-password", bcrypt.gensalt(4)).decode()
PAYLOAD = {"username": "x" * 12, "email": "someone@example.com", "password_hash": PASSWORD_HASH,
           "gst_number": "27AAPFU0939F1ZV", "account_type": "customer", "status": "active",
           "organization_id": None, "metadata": {"actor_id": None, "correlation_id": "c" * 36}}

RAW_DDL = """CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY,
  stream_id uuid NOT NULL, version int NOT NULL, type text NOT NULL, data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, version))"""
RAW_INSERT = "INSERT INTO bench_raw (stream_id, version, type, data) VALUES (%s, %s, %s, %s::jsonb)"


def checkpoint(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


# -- append ---------------------------------------------------------------------------------
def raw_a1(dsn: str, n: int) -> float:
    """Baseline A1: one event per transaction, one client; events/s."""
    data = orjson.dumps(PAYLOAD).decode()
    with psycopg.connect(dsn) as conn:
        conn.execute(RAW_DDL)
        conn.commit()
        checkpoint(dsn)
        start = time.perf_counter()
        for _ in range(n):
            conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "UserRegistered", data))
            conn.commit()
        return n / (time.perf_counter() - start)


def project_append(storage: Any, n: int, tag: str) -> float:
    """Register users through the storage API, one command per transaction; events/s."""
    checkpoint(storage.dsn)
    start = time.perf_counter()
    for k in range(n):
        storage.create_user({"username": f"{tag}{k}", "email": f"{tag}{k}@bench.example.com",
                             "password": PASSWORD_HASH, "gst_number": "27AAPFU0939F1ZV"})
    return n / (time.perf_counter() - start)


def bench_append(storage: Any, rounds: int, n: int) -> dict[str, Any]:
    results = []
    for r in range(rounds):
        base = raw_a1(storage.dsn, n)
        ours = project_append(storage, n, f"a{r}_{uuid.uuid4().hex[:6]}_")
        results.append({"ours": ours, "baseline": base, "ratio": ours / base})
        console.log(f"append round {r + 1}: {ours:,.0f} ev/s vs A1 {base:,.0f} ev/s"
                    f" = {ours / base:.2f}x")
    return summarize("append", "events/s", "A1 raw INSERT+COMMIT", results)


# -- populate -------------------------------------------------------------------------------
def populate(storage: Any, users: int, per_save: int = 250) -> int:
    """users x (User.Registered + User.RoleGranted) through app.save in batches."""
    viewer = system_role_id_for("Viewer")
    tag = uuid.uuid4().hex[:6]
    start = time.perf_counter()
    for first in range(0, users, per_save):
        batch = []
        for k in range(first, min(users, first + per_save)):
            user = User(username=f"p{tag}{k}", email=f"p{tag}{k}@bench.example.com",
                        password_hash=PASSWORD_HASH, gst_number="27AAPFU0939F1ZV",
                        account_type="customer", organization_id=None, status="active")
            user.grant_role(viewer, None)
            batch.append(user)
        storage.app.save(*batch)
    elapsed = time.perf_counter() - start
    with psycopg.connect(storage.dsn) as conn:
        total = head(conn)
    console.log(f"populated {users:,} users ({2 * users:,} events) in {elapsed:.1f}s;"
                f" log head {total:,}")
    return total


# -- rebuild vs the library's ProjectionRunner ----------------------------------------------
class LibraryUsersView(PostgresTrackingRecorder):
    """The equivalent table, written the library's way: one transaction per event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS lib_users (id uuid PRIMARY KEY, username text UNIQUE,"
            " email text, password text, gst_number text, account_type text,"
            " organization_id uuid, status text, created_at timestamptz)"))
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS lib_user_roles (user_id uuid, role_id uuid,"
            " granted_by uuid, created_at timestamptz, PRIMARY KEY (user_id, role_id))"))

    def insert_user(self, e: User.Registered, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("INSERT INTO lib_users VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                         " ON CONFLICT (id) DO NOTHING",
                         (e.originator_id, e.username, e.email, e.password_hash, e.gst_number,
                          e.account_type, e.organization_id, e.status, e.timestamp),
                         prepare=True)
            self._insert_tracking(curs, tracking)

    def insert_grant(self, e: User.RoleGranted, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("INSERT INTO lib_user_roles VALUES (%s,%s,%s,%s)"
                         " ON CONFLICT DO NOTHING",
                         (e.originator_id, e.role_id, e.granted_by, e.timestamp), prepare=True)
            self._insert_tracking(curs, tracking)


class LibraryUsersProjection(LibraryProjection[LibraryUsersView]):
    name = "libusers"
    topics = (get_topic(User.Registered), get_topic(User.RoleGranted))

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: User.Registered, tracking: Tracking) -> None:
        self.view.insert_user(domain_event, tracking)

    @process_event.register
    def _(self, domain_event: User.RoleGranted, tracking: Tracking) -> None:
        self.view.insert_grant(domain_event, tracking)


def library_runner_rate(dsn: str, events: int) -> float:
    """Events/s of the library's ProjectionRunner over the first ``events`` events."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lib_users, lib_user_roles, libusers_tracking")
        row = conn.execute("SELECT notification_id FROM akashone_events"
                           " ORDER BY notification_id OFFSET %s LIMIT 1", (events - 1,)).fetchone()
    assert row is not None
    target = int(row[0])
    env = eventsourcing_env(dsn, pool_size=2, max_overflow=2, lock_timeout=10)
    checkpoint(dsn)
    start = time.perf_counter()
    with ProjectionRunner(application_class=AkashOneApplication,
                          projection_class=LibraryUsersProjection,
                          view_class=LibraryUsersView, env=env) as runner:
        runner.wait(target, timeout=3600)
        elapsed = time.perf_counter() - start
    return events / elapsed


def bench_rebuild(storage: Any, rounds: int, library_events: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        total = head(conn)
        identity_events = conn.execute(
            "SELECT count(*) FROM akashone_events WHERE topic = ANY(%s)",
            (IdentityProjection().topics(),)).fetchone()[0]  # type: ignore[index]
    results = []
    for r in range(rounds):
        checkpoint(storage.dsn)
        start = time.perf_counter()
        rebuild(storage.dsn, IdentityProjection, storage.reader, batch_size=5000)
        ours = identity_events / (time.perf_counter() - start)
        base = library_runner_rate(storage.dsn, library_events)
        results.append({"ours": ours, "baseline": base, "ratio": ours / base})
        console.log(f"rebuild round {r + 1}: {ours:,.0f} ev/s over {identity_events:,} events"
                    f" (log {total:,}) vs ProjectionRunner {base:,.0f} ev/s = {ours / base:.1f}x")
    out = summarize("rebuild", "events/s", "eventsourcing ProjectionRunner", results)
    out["events"] = identity_events
    out["library_events_measured"] = library_events
    return out


# -- startup --------------------------------------------------------------------------------
STARTUP_SCRIPT = """
import sys, time
from akashone_es import Settings, open_storage
start = time.perf_counter()
s = open_storage(Settings(log_level="warning"), dsn=sys.argv[1])
s.get_user_by_email("nobody@nowhere.example.com")
print(time.perf_counter() - start)
s.close()
"""


def startup_seconds(dsn: str) -> float:
    out = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, dsn], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# -- query ----------------------------------------------------------------------------------
def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000)


def bench_query(storage: Any, n: int) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        emails = [r[0] for r in conn.execute(
            "SELECT email FROM users ORDER BY random() LIMIT %s", (n,)).fetchall()]
    ours = []
    for email in emails:
        start = time.perf_counter()
        found = storage.get_user_by_email(email.upper())
        ours.append(time.perf_counter() - start)
        assert found is not None
    raw = []
    with psycopg.connect(storage.dsn, autocommit=True) as conn:
        for email in emails:
            start = time.perf_counter()
            conn.execute("SELECT * FROM users WHERE lower(email) = lower(%s)", (email,),
                         prepare=True).fetchone()
            raw.append(time.perf_counter() - start)
    p50, p99 = percentiles(ours)
    b50, b99 = percentiles(raw)
    console.log(f"get_user_by_email p50 {p50:.3f} ms p99 {p99:.3f} ms"
                f" (raw SELECT p50 {b50:.3f} ms p99 {b99:.3f} ms)")
    return {"name": "query", "unit": "ms", "p50": p50, "p99": p99, "baseline_p50": b50,
            "baseline_p99": b99, "baseline": "raw psycopg SELECT, same index", "lookups": n}


def summarize(name: str, unit: str, baseline: str, rounds: list[dict[str, float]]
              ) -> dict[str, Any]:
    return {"name": name, "unit": unit, "baseline": baseline, "rounds": rounds,
            "ours_median": statistics.median(r["ours"] for r in rounds),
            "baseline_median": statistics.median(r["baseline"] for r in rounds),
            "ratio_median": statistics.median(r["ratio"] for r in rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--append-events", type=int, default=3000)
    parser.add_argument("--users", type=int, default=100_000,
                        help="users in the big log (2 events each: 200k events)")
    parser.add_argument("--small-users", type=int, default=10_000,
                        help="users in the small log for startup (20k events)")
    parser.add_argument("--library-events", type=int, default=5000,
                        help="events the library's ProjectionRunner processes per round")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--suite", choices=("all", "foundation", "billing"), default="all")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--usage-records", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = parser.parse_args()

    settings = Settings(log_level="warning", bcrypt_rounds=4, supplier_gstin="27AAPFU0939F1ZV")
    server_dsn, server = resolve_dsn(settings)
    run = uuid.uuid4().hex[:8]
    small_dsn = with_database(server_dsn, f"akashone_bench_small_{run}")
    big_dsn = with_database(server_dsn, f"akashone_bench_{run}")
    billing_dsn = with_database(server_dsn, f"akashone_bench_billing_{run}")
    results: list[dict[str, Any]] = []
    try:
        if args.suite in ("all", "billing"):
            with open_storage(settings, dsn=billing_dsn) as store:  # type: ignore[attr-defined]
                customers = bench_billing.populate(store, args.customers, args.usage_records,
                                                   PASSWORD_HASH)
                results.append(bench_billing.bench_generation(store, customers, args.rounds))
                results.append(bench_billing.bench_billing_rebuild(store, args.rounds,
                                                                   args.library_events))
        if args.suite == "billing":
            report(results, args.out, server_dsn)
            return
        with open_storage(settings, dsn=small_dsn) as small:  # type: ignore[attr-defined]
            small.initialize_default_roles()
            populate(small, args.small_users)
        with open_storage(settings, dsn=big_dsn) as big:  # type: ignore[attr-defined]
            big.initialize_default_roles()
            results.append(bench_append(big, args.rounds, args.append_events))
            populate(big, args.users)
            results.append(bench_rebuild(big, args.rounds, args.library_events))
            results.append(bench_query(big, args.lookups))
        small_times = [startup_seconds(small_dsn) * 1000 for _ in range(args.rounds)]
        big_times = [startup_seconds(big_dsn) * 1000 for _ in range(args.rounds)]
        with psycopg.connect(small_dsn) as c1, psycopg.connect(big_dsn) as c2:
            sizes = (head(c1), head(c2))
        startup = {"name": "startup", "unit": "ms", "small_events": sizes[0],
                   "big_events": sizes[1], "small_ms": statistics.median(small_times),
                   "big_ms": statistics.median(big_times),
                   "ratio_median": statistics.median(big_times) / statistics.median(small_times),
                   "baseline": f"the same on a {sizes[0]:,}-event log"}
        console.log(f"startup {startup['small_ms']:.0f} ms at {sizes[0]:,} events,"
                    f" {startup['big_ms']:.0f} ms at {sizes[1]:,} events")
        results.append(startup)
        report(results, args.out, server_dsn)
    finally:
        if not args.keep:
            for dsn in (small_dsn, big_dsn, billing_dsn):
                drop_database(dsn)
        if server is not None:
            server.stop()


def report(results: list[dict[str, Any]], out: Path, server_dsn: str) -> None:
    table = Table(title="akashone-es benchmarks (medians; ratio per round, then median)")
    for column in ("benchmark", "ours", "baseline", "ratio", "aim"):
        table.add_column(column)
    by = {r["name"]: r for r in results}
    if "generation" in by:
        g, br = by["generation"], by["billing_rebuild"]
        table.add_row(f"invoice generation ({g['customers']:,} customers)",
                      f"{g['ours_median']:,.1f} inv/s", f"raw {g['baseline_median']:,.1f} inv/s",
                      f"{g['ratio_median']:.2f}x", "-")
        table.add_row(f"rebuild billing ({br['events']:,} ev)", f"{br['ours_median']:,.0f} ev/s",
                      f"ProjectionRunner {br['baseline_median']:,.0f} ev/s",
                      f"{br['ratio_median']:.1f}x", ">= 10x")
    if "append" not in by:
        Console().print(table)
        _write(results, out, server_dsn)
        return
    a, rb, q, s = by["append"], by["rebuild"], by["query"], by["startup"]
    table.add_row("append (create_user, 1/tx)", f"{a['ours_median']:,.0f} ev/s",
                  f"A1 {a['baseline_median']:,.0f} ev/s", f"{a['ratio_median']:.2f}x", ">= 0.5x")
    table.add_row(f"rebuild identity ({rb['events']:,} ev)", f"{rb['ours_median']:,.0f} ev/s",
                  f"ProjectionRunner {rb['baseline_median']:,.0f} ev/s",
                  f"{rb['ratio_median']:.1f}x", ">= 10x")
    table.add_row(f"startup ({s['small_events']:,} -> {s['big_events']:,} ev)",
                  f"{s['big_ms']:.0f} ms", f"{s['small_ms']:.0f} ms",
                  f"{s['ratio_median']:.2f}x", "~1x")
    table.add_row("get_user_by_email p50 / p99", f"{q['p50']:.3f} / {q['p99']:.3f} ms",
                  f"raw {q['baseline_p50']:.3f} / {q['baseline_p99']:.3f} ms",
                  f"{q['p99'] / q['baseline_p99']:.2f}x (p99)", "p99 < 2 ms")
    Console().print(table)
    _write(results, out, server_dsn)


def _write(results: list[dict[str, Any]], out: Path, server_dsn: str) -> None:
    with psycopg.connect(server_dsn) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    out.write_text(json.dumps({"server_version": version, "python": sys.version.split()[0],
                               "cpus": os.cpu_count(), "results": results}, indent=2))
    console.log(f"wrote {out}")


if __name__ == "__main__":
    threading.excepthook = lambda args: console.log(f"thread error: {args.exc_value!r}")
    main()
