"""Benchmarks: every figure beside its baseline, measured in the same run on the same database.

append   register users, one command per transaction      vs raw INSERT then COMMIT (A1,
         three round trips) and vs A1 in one round trip (BEGIN; INSERT; COMMIT as one message)
rebuild  identity projection rebuild over the whole log    vs the library's ProjectionRunner
         on the same kind of events (from where the bulk of the log starts)
startup  open_storage() to first query at 200k events      vs the same at 20k events, same round
query    get_user_by_email p50/p99 with 100k users         vs the same SELECT on raw psycopg
--suite resources: resource create, list, metering and rebuild (scripts/bench_resources.py)
--suite import: the AkashOne import vs A2, raw batched INSERT (scripts/bench_import.py)
--suite append: the append figure alone, on an empty log
--suite concurrency: 1, 2, 4, 8 writer processes vs raw INSERT+COMMIT with as many writers,
         and the follower's lag (scripts/bench_concurrency.py)
--suite replica: reads from a hot standby the bench starts (embedded), appends with one set,
         and a session reading its own writes there (scripts/bench_replica.py)

Each round measures both sides (the side that goes first alternates); figures are medians of
the rounds, ratios the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import bcrypt
import bench_billing
import bench_concurrency
import bench_import
import bench_replica
import bench_resources
import orjson
import psycopg
from bench_billing import library_runner_rate, raw_ordered_read
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.utils import get_topic
from psycopg import sql
from rich.console import Console
from rich.table import Table

from akashone_es import Settings, audit, open_storage
from akashone_es.domain.confusables import identity_key
from akashone_es.domain.identity import User, system_role_id_for
from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.storage import resolve_dsn
from projections.identity import IdentityProjection
from projections.positions import START, head, pending
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
#: A1 in one round trip: a ClientCursor binds the parameters, so the three statements go as
#: one simple-query message, as our recorder sends a command (BEGIN ... COMMIT, one message)
RAW_ONE_TRIP = f"BEGIN; {RAW_INSERT}; COMMIT"


def acting(storage: Any) -> AbstractContextManager[Any]:
    """The platform context the bench acts in. Storage refuses calls without one once the
    tenancy change lands; before it, acting_as takes no ``system=`` and none is needed."""
    try:
        return storage.acting_as(system="bench")  # type: ignore[no-any-return]
    except TypeError:
        return nullcontext()


def checkpoint(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


# -- append ---------------------------------------------------------------------------------
def raw_a1(dsn: str, n: int) -> float:
    """Baseline A1: one event per transaction, one client; events/s. psycopg sends BEGIN,
    the INSERT and COMMIT one by one, waiting for each: three round trips per event."""
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


def raw_a1_one_trip(dsn: str, n: int) -> float:
    """A1 in one round trip: ``BEGIN; INSERT; COMMIT`` as one message; events/s. Same
    durability as A1: one commit per event, under the server's own synchronous_commit."""
    data = orjson.dumps(PAYLOAD).decode()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RAW_DDL)
        checkpoint(dsn)
        cur = psycopg.ClientCursor(conn)
        start = time.perf_counter()
        for _ in range(n):
            cur.execute(RAW_ONE_TRIP, (uuid.uuid4(), 1, "UserRegistered", data))
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
    sides = ("a1", "one_trip", "ours")
    results: list[dict[str, Any]] = []
    for r in range(rounds):
        order = sides[r % 3:] + sides[:r % 3]  # each side goes first in turn
        rates: dict[str, float] = {}
        for side in order:
            if side == "a1":
                rates[side] = raw_a1(storage.dsn, n)
            elif side == "one_trip":
                rates[side] = raw_a1_one_trip(storage.dsn, n)
            else:
                rates[side] = project_append(storage, n, f"a{r}_{uuid.uuid4().hex[:6]}_")
        ours, base, one = rates["ours"], rates["a1"], rates["one_trip"]
        results.append({"ours": ours, "baseline": base, "ratio": ours / base,
                        "one_trip": one, "ratio_one_trip": ours / one, "order": list(order)})
        console.log(f"append round {r + 1} ({', '.join(order)}): {ours:,.0f} ev/s vs A1"
                    f" {base:,.0f} ev/s = {ours / base:.2f}x, vs A1 one trip {one:,.0f} ev/s"
                    f" = {ours / one:.2f}x")
    out = summarize("append", "events/s", "A1 raw INSERT then COMMIT", results)
    out["one_trip_baseline"] = "A1 as one message: BEGIN; INSERT; COMMIT"
    out["one_trip_median"] = statistics.median(r["one_trip"] for r in results)
    out["ratio_one_trip_median"] = statistics.median(r["ratio_one_trip"] for r in results)
    return out


# -- populate -------------------------------------------------------------------------------
def settle(dsn: str) -> None:
    """VACUUM ANALYZE a freshly filled database, so that autovacuum does not start on the
    new rows in the middle of a measured round."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


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
        total = pending(conn, START, head(conn))
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
            " organization_id uuid, status text, created_at timestamptz)").format())
        self.sql_create_statements.append(sql.SQL(
            "CREATE TABLE IF NOT EXISTS lib_user_roles (user_id uuid, role_id uuid,"
            " granted_by uuid, created_at timestamptz, PRIMARY KEY (user_id, role_id))").format())

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


def bench_rebuild(storage: Any, rounds: int, library_events: int, bulk_from: int
                  ) -> dict[str, Any]:
    """Our identity rebuild over the whole log vs the library's runner over ``library_events``
    events from ``bulk_from`` on, where the populated bulk of the log (Registered and
    RoleGranted in turn, as in most of what we replay) starts."""
    with psycopg.connect(storage.dsn) as conn:
        total = pending(conn, START, head(conn))
        identity_events = conn.execute(
            "SELECT count(*) FROM akashone_events WHERE topic = ANY(%s)",
            (IdentityProjection().topics(),)).fetchone()[0]  # type: ignore[index]
    results = []
    for r in range(rounds):
        sides = ("ours", "library") if r % 2 == 0 else ("library", "ours")
        rates: dict[str, float] = {}
        for side in sides:
            if side == "ours":
                checkpoint(storage.dsn)
                start = time.perf_counter()
                rebuild(storage.dsn, IdentityProjection, storage.reader, batch_size=5000)
                rates[side] = identity_events / (time.perf_counter() - start)
                rates["raw_read"] = raw_ordered_read(storage.dsn)
            else:
                rates[side] = library_runner_rate(
                    storage.dsn, LibraryUsersProjection, LibraryUsersView, after=bulk_from,
                    events=library_events, drop="lib_users, lib_user_roles, libusers_tracking")
        ours, base = rates["ours"], rates["library"]
        raw = rates["raw_read"]
        results.append({"ours": ours, "baseline": base, "ratio": ours / base,
                        "raw_read": raw, "ratio_raw_read": ours / raw})
        console.log(f"rebuild round {r + 1} ({sides[0]} first): {ours:,.0f} ev/s over"
                    f" {identity_events:,} events (log {total:,}) vs ProjectionRunner"
                    f" {base:,.0f} ev/s = {ours / base:.1f}x; vs a raw ordered read"
                    f" {raw:,.0f} rows/s = {ours / raw:.3f}x")
    out = summarize("rebuild", "events/s", "eventsourcing ProjectionRunner", results)
    out["raw_read_median"] = statistics.median(r["raw_read"] for r in results)
    out["ratio_raw_read_median"] = statistics.median(r["ratio_raw_read"] for r in results)
    out["events"] = identity_events
    out["library_events_measured"] = library_events
    out["library_from_position"] = bulk_from
    return out


# -- the hash chain's verify ------------------------------------------------------------------
def bench_verify(storage: Any, rounds: int) -> dict[str, Any]:
    """audit.verify over the whole (sealed) log vs a raw ordered read of the same rows."""
    with psycopg.connect(storage.dsn) as conn:
        start = time.perf_counter()
        audit.seal(conn)
        conn.commit()
        position = audit.sealed_count(conn)
        sealing = position / (time.perf_counter() - start)
    results = []
    for r in range(rounds):
        sides = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
        rates: dict[str, float] = {}
        for side in sides:
            if side == "ours":
                with psycopg.connect(storage.dsn) as conn:
                    start = time.perf_counter()
                    verdict = audit.verify(conn)
                    rates[side] = verdict.events / (time.perf_counter() - start)
                    assert verdict.ok, verdict
            else:
                rates[side] = raw_ordered_read(storage.dsn)
        results.append({"ours": rates["ours"], "baseline": rates["raw"],
                        "ratio": rates["ours"] / rates["raw"]})
        console.log(f"verify round {r + 1} ({sides[0]} first): {rates['ours']:,.0f} ev/s over"
                    f" {position:,} events vs raw ordered read {rates['raw']:,.0f} rows/s ="
                    f" {rates['ours'] / rates['raw']:.2f}x")
    out = summarize("verify", "events/s", "raw ordered read of the same rows", results)
    out["events"], out["sealing"] = position, sealing
    return out


# -- startup --------------------------------------------------------------------------------
STARTUP_SCRIPT = """
import sys, time
from contextlib import nullcontext
from akashone_es import Settings, audit, open_storage
start = time.perf_counter()
s = open_storage(Settings(log_level="warning"), dsn=sys.argv[1])
try:
    acting = s.acting_as(system="bench")
except TypeError:  # before the tenancy change: no system= and no context needed
    acting = nullcontext()
with acting:
    s.get_user_by_email("nobody@nowhere.example.com")
print(time.perf_counter() - start)
s.close()
"""


def startup_seconds(dsn: str) -> float:
    out = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, dsn], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_startup(small_dsn: str, big_dsn: str, rounds: int) -> dict[str, Any]:
    """Fresh process per measurement; each round times the big log against the small one
    (the baseline, measured in the same round; who goes first alternates)."""
    with psycopg.connect(small_dsn) as c1, psycopg.connect(big_dsn) as c2:
        sizes = (pending(c1, START, head(c1)), pending(c2, START, head(c2)))
    for dsn in (small_dsn, big_dsn):  # not timed: the first run compiles .pyc files
        startup_seconds(dsn)
    results: list[dict[str, Any]] = []
    for r in range(rounds):
        order = ("small", "big") if r % 2 == 0 else ("big", "small")
        ms = {side: startup_seconds(small_dsn if side == "small" else big_dsn) * 1000
              for side in order}
        results.append({"ours": ms["big"], "baseline": ms["small"],
                        "ratio": ms["big"] / ms["small"]})
        console.log(f"startup round {r + 1} ({order[0]} first): {ms['big']:.0f} ms at"
                    f" {sizes[1]:,} events vs {ms['small']:.0f} ms at {sizes[0]:,} events"
                    f" = {ms['big'] / ms['small']:.2f}x")
    out = summarize("startup", "ms", f"the same on a {sizes[0]:,}-event log", results)
    out.update(small_events=sizes[0], big_events=sizes[1], small_ms=out["baseline_median"],
               big_ms=out["ours_median"])
    return out


# -- query ----------------------------------------------------------------------------------
def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000)


def query_ours(storage: Any, emails: list[str]) -> list[float]:
    samples = []
    for email in emails:
        start = time.perf_counter()
        found = storage.get_user_by_email(email.upper())
        samples.append(time.perf_counter() - start)
        assert found is not None
    return samples


def query_raw(dsn: str, emails: list[str]) -> list[float]:
    samples = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for email in emails:
            start = time.perf_counter()
            conn.execute("SELECT * FROM users WHERE email_key = %s", (identity_key(email),),
                         prepare=True).fetchone()
            samples.append(time.perf_counter() - start)
    return samples


def bench_query(storage: Any, n: int, rounds: int) -> dict[str, Any]:
    """Each round looks up the same ``n`` random users both ways; who goes first alternates
    (the first side warms the cache for the second)."""
    results: list[dict[str, Any]] = []
    for r in range(rounds):
        with psycopg.connect(storage.dsn) as conn:
            emails = [row[0] for row in conn.execute(
                "SELECT email FROM users ORDER BY random() LIMIT %s", (n,)).fetchall()]
        order = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
        samples = {side: query_ours(storage, emails) if side == "ours"
                   else query_raw(storage.dsn, emails) for side in order}
        (p50, p99), (b50, b99) = percentiles(samples["ours"]), percentiles(samples["raw"])
        results.append({"p50": p50, "p99": p99, "baseline_p50": b50, "baseline_p99": b99,
                        "ratio_p50": p50 / b50, "ratio_p99": p99 / b99, "order": list(order)})
        console.log(f"query round {r + 1} ({order[0]} first): get_user_by_email p50 {p50:.3f}"
                    f" ms p99 {p99:.3f} ms vs raw SELECT p50 {b50:.3f} ms p99 {b99:.3f} ms")
    out: dict[str, Any] = {"name": "query", "unit": "ms",
                           "baseline": "raw psycopg SELECT, same index", "lookups": n,
                           "rounds": results}
    for key in ("p50", "p99", "baseline_p50", "baseline_p99", "ratio_p50", "ratio_p99"):
        out[key] = statistics.median(r[key] for r in results)
    return out


def summarize(name: str, unit: str, baseline: str, rounds: list[dict[str, Any]]
              ) -> dict[str, Any]:
    return {"name": name, "unit": unit, "baseline": baseline, "rounds": rounds,
            "ours_median": statistics.median(r["ours"] for r in rounds),
            "baseline_median": statistics.median(r["baseline"] for r in rounds),
            "ratio_median": statistics.median(r["ratio"] for r in rounds)}


def main() -> None:  # noqa: PLR0911, PLR0912 - one branch per suite
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--append-events", type=int, default=3000)
    parser.add_argument("--users", type=int, default=100_000,
                        help="users in the big log (2 events each: 200k events)")
    parser.add_argument("--small-users", type=int, default=10_000,
                        help="users in the small log for startup (20k events)")
    parser.add_argument("--library-events", type=int, default=5000,
                        help="events the library's ProjectionRunner processes per round (billing:"
                             " this many inserts and this many updates)")
    parser.add_argument("--lookups", type=int, default=5000,
                        help="lookups per side per round in the query benchmark")
    parser.add_argument("--suite", choices=("all", "foundation", "billing", "resources",
                                            "import", "concurrency", "append",
                                            "replica"),
                        default="all")
    parser.add_argument("--resources", type=int, default=100_000,
                        help="VMs in the database for the resource listing benchmark")
    parser.add_argument("--meter-resources", type=int, default=10_000,
                        help="running VMs metered over 24 hours per round (x24 records)")
    parser.add_argument("--import-users", type=int, default=3000,
                        help="users in the sample AkashOne dump imported per round")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--usage-records", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="concurrency: seconds each side appends per round")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4, 8],
                        help="concurrency: the writer process counts to measure")
    parser.add_argument("--reads", type=int, default=5000,
                        help="replica: reads per side per round")
    parser.add_argument("--writes", type=int, default=1000,
                        help="replica: appends per side per round (a quarter of it for the "
                             "write-then-read pairs)")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="print the docs/benchmarks.md table of a results file; no run")
    args = parser.parse_args()
    if args.render:
        data = json.loads(args.render.read_text())
        if "results" not in data:
            raise SystemExit(f"{args.render}: not a results file of scripts/bench (it has no"
                             " 'results'); a hand-made comparison is read as it is")
        print(render_markdown(data))
        return

    settings = Settings(log_level="warning", bcrypt_rounds=4, supplier_gstin="27AAPFU0939F1ZV")
    if args.suite == "replica":  # its own two embedded servers, whatever DATABASE_URL says
        home = Path(tempfile.mkdtemp(prefix="akashone-bench-replica-"))
        try:
            bench_replica.run(settings, home, args.rounds, args.reads, args.writes,
                              lambda results, dsn: report(results, args.out, dsn))
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return
    server_dsn, server = resolve_dsn(settings)
    run = uuid.uuid4().hex[:8]
    small_dsn = with_database(server_dsn, f"akashone_bench_small_{run}")
    big_dsn = with_database(server_dsn, f"akashone_bench_{run}")
    billing_dsn = with_database(server_dsn, f"akashone_bench_billing_{run}")
    resources_dsn = with_database(server_dsn, f"akashone_bench_resources_{run}")
    results: list[dict[str, Any]] = []
    try:
        if args.suite in ("all", "concurrency"):
            raw_dsn = with_database(server_dsn, f"akashone_bench_raw_concurrency_{run}")
            ours_dsn = with_database(server_dsn, f"akashone_bench_concurrency_{run}")
            ensure_database(raw_dsn)
            try:
                results += bench_concurrency.run(settings, ours_dsn, raw_dsn, args.rounds,
                                                 args.seconds, args.writers)
            finally:
                drop_database(raw_dsn)
                drop_database(ours_dsn)
        if args.suite == "concurrency":
            report(results, args.out, server_dsn)
            return
        if args.suite in ("all", "import"):
            import_dsn = with_database(server_dsn, f"akashone_bench_raw_import_{run}")
            ensure_database(import_dsn)
            try:
                results.append(bench_import.run(settings, server_dsn, import_dsn, args.rounds,
                                                args.import_users))
            finally:
                drop_database(import_dsn)
        if args.suite == "import":
            report(results, args.out, server_dsn)
            return
        if args.suite in ("all", "resources"):
            with open_storage(settings, dsn=resources_dsn) as store, acting(store):
                results += bench_resources.run(store, args, raw_a1, PASSWORD_HASH)
        if args.suite == "resources":
            report(results, args.out, server_dsn)
            return
        if args.suite in ("all", "billing"):
            with open_storage(settings, dsn=billing_dsn) as store, \
                    acting(store):
                customers = bench_billing.populate(store, args.customers, args.usage_records,
                                                   PASSWORD_HASH)
                results.append(bench_billing.bench_generation(store, customers, args.rounds))
                results.append(bench_billing.bench_billing_rebuild(store, args.rounds,
                                                                   args.library_events))
        if args.suite == "billing":
            report(results, args.out, server_dsn)
            return
        if args.suite == "append":  # the append figure alone, on an empty log
            with open_storage(settings, dsn=big_dsn) as big, acting(big):
                big.initialize_default_roles()  # type: ignore[attr-defined]
                results.append(bench_append(big, args.rounds, args.append_events))
            report(results, args.out, server_dsn)
            return
        with open_storage(settings, dsn=small_dsn) as small, \
                acting(small):
            small.initialize_default_roles()  # type: ignore[attr-defined]
            populate(small, args.small_users)
        with open_storage(settings, dsn=big_dsn) as big, \
                acting(big):
            big.initialize_default_roles()  # type: ignore[attr-defined]
            results.append(bench_append(big, args.rounds, args.append_events))
            with psycopg.connect(big.dsn) as conn:
                bulk_from = head(conn).position
            populate(big, args.users)
            settle(big.dsn)
            results.append(bench_rebuild(big, args.rounds, args.library_events, bulk_from))
            results.append(bench_verify(big, args.rounds))
            results.append(bench_query(big, args.lookups, args.rounds))
        results.append(bench_startup(small_dsn, big_dsn, args.rounds))
        report(results, args.out, server_dsn)
    finally:
        if not args.keep:
            for dsn in (small_dsn, big_dsn, billing_dsn, resources_dsn):
                drop_database(dsn)
        if server is not None:
            server.stop()


def report(results: list[dict[str, Any]], out: Path, server_dsn: str  # noqa: PLR0912
           ) -> None:
    table = Table(title="akashone-es benchmarks (medians; ratio per round, then median)")
    for column in ("benchmark", "ours", "baseline", "ratio", "aim"):
        table.add_column(column)
    by = {r["name"]: r for r in results}
    for r in results:
        if r["name"].startswith("append, "):
            lag = r["follower_lag_ms"]
            single = r["vs_our_single_writer"]
            table.add_row(r["name"], f"{r['ours_median']:,.0f}/s"
                          f" ({single:.2f}x our 1 writer)" if single else "",
                          f"raw {r['baseline_median']:,.0f}/s", f"{r['ratio_median']:.2f}x",
                          f"lag p99 {lag['p99']} ms" if lag["p99"] is not None else "-")
    if "import" in by:
        im = by["import"]
        table.add_row(f"import ({im['records']:,} AkashOne records)",
                      f"{im['ours_median']:,.0f} records/s",
                      f"A2 {im['baseline_median']:,.0f} rows/s", f"{im['ratio_median']:.2f}x",
                      ">= 0.5x")
    if "generation" in by:
        g = by["generation"]
        table.add_row(f"invoice generation ({g['customers']:,} customers)",
                      f"{g['ours_median']:,.1f} inv/s", f"raw {g['baseline_median']:,.1f} inv/s",
                      f"{g['ratio_median']:.2f}x", "-")
    if "billing_rebuild" in by:
        br = by["billing_rebuild"]
        table.add_row(f"rebuild billing ({br['events']:,} ev)", f"{br['ours_median']:,.0f} ev/s",
                      f"ProjectionRunner, same mix {br['baseline_median']:,.0f} ev/s",
                      f"{br['ratio_median']:.1f}x", ">= 10x")
        if "raw_read_median" in br:
            table.add_row("", "", f"raw ordered read {br['raw_read_median']:,.0f} rows/s",
                          f"{br['ratio_raw_read_median']:.3f}x", ">= 0.1x, 20k ev/s")
    if "append" in by:
        a = by["append"]
        table.add_row("append (create_user, 1/tx)", f"{a['ours_median']:,.0f} ev/s",
                      f"A1 {a['baseline_median']:,.0f} ev/s", f"{a['ratio_median']:.2f}x",
                      ">= 0.5x")
        table.add_row("", "", f"A1 one trip {a['one_trip_median']:,.0f} ev/s",
                      f"{a['ratio_one_trip_median']:.2f}x", "-")
    if "rebuild" in by:
        rb = by["rebuild"]
        table.add_row(f"rebuild identity ({rb['events']:,} ev)", f"{rb['ours_median']:,.0f} ev/s",
                      f"ProjectionRunner {rb['baseline_median']:,.0f} ev/s",
                      f"{rb['ratio_median']:.1f}x", ">= 10x")
        if "raw_read_median" in rb:
            table.add_row("", "", f"raw ordered read {rb['raw_read_median']:,.0f} rows/s",
                          f"{rb['ratio_raw_read_median']:.3f}x", ">= 0.1x, 20k ev/s")
    if "verify" in by:
        v = by["verify"]
        table.add_row(f"audit verify ({v['events']:,} ev)", f"{v['ours_median']:,.0f} ev/s",
                      f"raw read {v['baseline_median']:,.0f} rows/s",
                      f"{v['ratio_median']:.2f}x", ">= 50k ev/s")
    if "startup" in by:
        st = by["startup"]
        table.add_row(f"startup ({st['small_events']:,} -> {st['big_events']:,} ev)",
                      f"{st['big_ms']:.0f} ms", f"{st['small_ms']:.0f} ms",
                      f"{st['ratio_median']:.2f}x", "~1x")
    if "query" in by:
        q = by["query"]
        table.add_row("get_user_by_email p50 / p99", f"{q['p50']:.3f} / {q['p99']:.3f} ms",
                      f"raw {q['baseline_p50']:.3f} / {q['baseline_p99']:.3f} ms",
                      f"{q['ratio_p50']:.2f}x / {q['ratio_p99']:.2f}x", "p99 < 2 ms")
    for name, label in (("resource_create", "create_virtual_machine (1/tx)"),
                        ("meter", "meter (10k VMs x 24 h)"),
                        ("resources_rebuild", "rebuild resources")):
        if name in by:
            x = by[name]
            table.add_row(label, f"{x['ours_median']:,.0f} {x['unit']}",
                          f"{x['baseline_median']:,.0f}", f"{x['ratio_median']:.2f}x",
                          {"resource_create": ">= 0.5x", "resources_rebuild": ">= 10x"}.get(
                              name, "-"))
    if "resource_list" in by:
        rl = by["resource_list"]
        table.add_row(f"get_virtual_machines ({rl['resources']:,})",
                      f"{rl['ours_p50']:.3f} / {rl['ours_p99']:.3f} ms",
                      f"raw {rl['raw_p50']:.3f} / {rl['raw_p99']:.3f} ms",
                      f"p99 {rl['ratio_p99']:.2f}x", "p99 < 2 ms")
    for r in results:
        if r["name"].startswith(("replica_", "primary_")):
            unit = r["unit"]
            figure = "{:,.0f} " if unit.endswith("/s") else "{:.2f} "
            table.add_row(r["label"], figure.format(r["ours_median"]) + unit,
                          f"{r['baseline']}: " + figure.format(r["baseline_median"]) + unit,
                          f"{r['ratio_median']:.2f}x", "-")
            if "replay_lag_ms" in r:
                lag = r["replay_lag_ms"]
                table.add_row("standby replay lag", f"p50 {lag['p50']} / p99 {lag['p99']} ms",
                              "", "", "-")
    Console().print(table)
    _write(results, out, server_dsn)


def _git(*args: str) -> str:
    try:
        # git from PATH, as a developer runs it; a tree without git records no commit
        return subprocess.run(["git", *args], capture_output=True, text=True,  # noqa: S607
                              check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _write(results: list[dict[str, Any]], out: Path, server_dsn: str) -> None:
    # the maintenance database: the embedded server's own one may not exist
    with psycopg.connect(with_database(server_dsn, "postgres")) as conn:
        server: dict[str, Any] = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")}
    # the code measured: a figure in the docs names this commit (dirty: tracked files changed)
    code: dict[str, Any] = {"commit": _git("rev-parse", "HEAD"), "dirty": bool(
        _git("status", "--porcelain", "--untracked-files=no"))}
    out.write_text(json.dumps({**server, **code, "python": sys.version.split()[0],
                               "cpus": os.cpu_count(), "argv": sys.argv[1:],
                               "results": results}, indent=2))
    dirty = " + uncommitted changes" if code["dirty"] else ""
    console.log(f"wrote {out} (commit {code['commit'][:12]}{dirty})")


def _rounds(result: dict[str, Any], key: str = "ratio", fmt: str = "{:.2f}") -> str:
    values = [fmt.format(r[key]) for r in result["rounds"]]
    return f"{fmt.format(result[key + '_median'])}x (rounds {', '.join(values)})"


def render_markdown(data: dict[str, Any]) -> str:
    """The docs/benchmarks.md header line and table for one results file."""
    by = {r["name"]: r for r in data["results"]}
    dirty = " plus uncommitted changes" if data.get("dirty") else ""
    lines = [f"Commit `{data.get('commit', '?')[:12]}`{dirty}; PostgreSQL"
             f" {data['server_version'].split()[0]} (synchronous_commit"
             f" {data.get('synchronous_commit', '?')}, fsync {data.get('fsync', '?')}),"
             f" Python {data['python']}, {data['cpus']} CPUs;"
             f" `scripts/bench {' '.join(data.get('argv', []))}`.", "",
             "| benchmark | ours (median) | baseline (median) | ratio (median of per-round"
             " ratios) | aim |", "|---|---|---|---|---|"]
    if "append" in by:
        a = by["append"]
        lines.append(f"| append: `create_user`, one command per transaction |"
                     f" {a['ours_median']:,.0f} ev/s | A1 (INSERT, then COMMIT)"
                     f" {a['baseline_median']:,.0f} ev/s | {_rounds(a)} | >= 0.5x |")
        if "one_trip_median" in a:  # measured since 2026-12-04
            lines.append(f"| append, against one round trip | same | A1 in one round trip"
                         f" {a['one_trip_median']:,.0f} ev/s | {_rounds(a, 'ratio_one_trip')}"
                         " | - |")
    if "rebuild" in by:
        rb = by["rebuild"]
        lines.append(f"| rebuild: identity projection over {rb['events']:,} events |"
                     f" {rb['ours_median']:,.0f} ev/s | `ProjectionRunner`"
                     f" {rb['baseline_median']:,.0f} ev/s | {_rounds(rb, fmt='{:.1f}')} |"
                     f" >= 10x |")
        lines += _raw_read_line(rb)
    if "verify" in by:
        v = by["verify"]
        lines.append(f"| audit: `verify` of the hash chain over {v['events']:,} events |"
                     f" {v['ours_median']:,.0f} events/s (sealing {v['sealing']:,.0f} ev/s) |"
                     f" raw ordered read of the same rows {v['baseline_median']:,.0f} rows/s |"
                     f" {_rounds(v)} | >= 50k events/s |")
    if "startup" in by:
        st = by["startup"]
        lines.append(f"| startup: `open_storage()` to first query | {st['big_ms']:.0f} ms at"
                     f" {st['big_events']:,} events | {st['small_ms']:.0f} ms at"
                     f" {st['small_events']:,} events | {_rounds(st)} for"
                     f" {st['big_events'] / st['small_events']:.1f}x the log | no growth |")
    if "query" in by:
        q = by["query"]
        p99 = ", ".join(f"{r['ratio_p99']:.2f}" for r in q["rounds"])
        lines.append(f"| query: `get_user_by_email` | p50 {q['p50']:.3f} ms, p99"
                     f" {q['p99']:.3f} ms | raw SELECT p50 {q['baseline_p50']:.3f} ms, p99"
                     f" {q['baseline_p99']:.3f} ms | p50 {q['ratio_p50']:.2f}x, p99"
                     f" {q['ratio_p99']:.2f}x (p99 rounds {p99}) | p99 < 2 ms |")
    if "import" in by:
        im = by["import"]
        lines.append(f"| import: AkashOne dump, {im['records']:,} records | "
                     f"{im['ours_median']:,.0f} records/s | A2 (executemany, 100 rows a"
                     f" transaction) {im['baseline_median']:,.0f} rows/s | {_rounds(im)} |"
                     " >= 0.5x |")
    if "generation" in by:
        g = by["generation"]
        lines.append(f"| invoice generation: `generate_invoice`, {g['customers']:,} customers |"
                     f" {g['ours_median']:,.1f} invoices/s | raw psycopg, one transaction per"
                     f" customer {g['baseline_median']:,.1f} invoices/s | {_rounds(g)} | >= 0.5x |")
    if "billing_rebuild" in by:
        br = by["billing_rebuild"]
        mix = ""
        if all("baseline_inserts" in r for r in br["rounds"]):  # the mix, since 2026-12-04
            ins = statistics.median(r["baseline_inserts"] for r in br["rounds"])
            upd = statistics.median(r["baseline_updates"] for r in br["rounds"])
            mix = f" (inserts {ins:,.0f}, updates {upd:,.0f})"
        lines.append(f"| rebuild: billing projection over {br['events']:,} events |"
                     f" {br['ours_median']:,.0f} ev/s | `ProjectionRunner` on the same mix"
                     f" {br['baseline_median']:,.0f} ev/s{mix} |"
                     f" {_rounds(br, fmt='{:.1f}')} | >= 10x |")
        lines += _raw_read_line(br)
    lines += _resource_lines(by)
    lines += _concurrency_lines(data["results"])
    lines += _labelled_lines(data["results"])
    return "\n".join(lines)


def _labelled_lines(results: list[dict[str, Any]]) -> list[str]:
    """Results that name themselves (``label``: the replica suite's), one row each."""
    return [f"| {r['label']} | {r['ours_median']:,.2f} {r['unit']} | {r['baseline']}"
            f" {r['baseline_median']:,.2f} | {_rounds(r)} | - |"
            for r in results if "label" in r]


def _raw_read_line(result: dict[str, Any]) -> list[str]:
    """A rebuild's row against the raw ordered read of the same rounds (when measured)."""
    if "raw_read_median" not in result:
        return []
    return [f"| the same rebuild, against a raw ordered read | same | raw ordered read of the"
            f" log {result['raw_read_median']:,.0f} rows/s |"
            f" {_rounds(result, 'ratio_raw_read', '{:.3f}')} | >= 0.1x, >= 20k ev/s |"]


def _concurrency_lines(results: list[dict[str, Any]]) -> list[str]:
    """``--suite concurrency``: a row per writer count."""
    return [f"| {r['name']}: `create_role`, one per transaction | {r['ours_median']:,.0f}/s"
            f" ({r['vs_our_single_writer']:.2f}x our 1 writer; follower lag p50"
            f" {r['follower_lag_ms']['p50']} ms, p99 {r['follower_lag_ms']['p99']} ms) |"
            f" raw INSERT+COMMIT, as many writers, {r['baseline_median']:,.0f}/s |"
            f" {_rounds(r)} | 4 writers: >= 0.5x, >= 1.8x our 1 writer |"
            for r in results if "vs_our_single_writer" in r]


def _resource_lines(by: dict[str, Any]) -> list[str]:
    lines = []
    if "resource_create" in by:
        c = by["resource_create"]
        lines.append(f"| resources: `create_virtual_machine`, one command per transaction |"
                     f" {c['ours_median']:,.0f} commands/s | A1 (INSERT, then COMMIT)"
                     f" {c['baseline_median']:,.0f} ev/s | {_rounds(c)} | >= 0.5x |")
    if "resource_list" in by:
        rl = by["resource_list"]
        lines.append(f"| resources: `get_virtual_machines(user)`, {rl['resources']:,} resources"
                     f" | p50 {rl['ours_p50']:.3f} ms, p99 {rl['ours_p99']:.3f} ms | raw SELECT"
                     f" p50 {rl['raw_p50']:.3f} ms, p99 {rl['raw_p99']:.3f} ms | p99"
                     f" {rl['ratio_p99']:.2f}x | p99 < 2 ms |")
    if "meter" in by:
        m = by["meter"]
        lines.append(f"| resources: `meter`, {m['resources']:,} VMs x 24 hours |"
                     f" {m['ours_median']:,.0f} records/s | raw psycopg, 200 rows per"
                     f" transaction {m['baseline_median']:,.0f} rows/s | {_rounds(m)} | - |")
    if "resources_rebuild" in by:
        rr = by["resources_rebuild"]
        lines.append(f"| rebuild: resources projection over {rr['events']:,} events |"
                     f" {rr['ours_median']:,.0f} ev/s | `ProjectionRunner`"
                     f" {rr['baseline_median']:,.0f} ev/s | {_rounds(rr, fmt='{:.1f}')} |"
                     f" >= 10x |")
    return lines


if __name__ == "__main__":
    threading.excepthook = lambda args: console.log(f"thread error: {args.exc_value!r}")
    main()
