"""Reads from a hot standby (``scripts/bench --suite replica``), beside their baselines.

The bench starts its own two embedded servers on this machine: a primary, and a hot standby
streaming from it (``embedded.copy_of(standby=True)``). Each round measures, side by side:

read      ``get_user(id)`` through the storage, one client, by a session that has not
          written: with ``AKASHONE_READ_URL`` (served by the standby) vs a raw
          ``SELECT * FROM users WHERE id = %s`` on the standby; and without it (the primary)
          vs the same raw query on the primary
append    ``create_role``, one per transaction, with the standby set (each command then asks
          the primary for its WAL position) vs A1, raw INSERT+COMMIT on the primary; and
          the same without a standby set
own read  ``create_role`` then ``get_role`` of it by the same session (read-your-writes: the
          read waits for the standby to replay the write), latency p50/p99, vs the same pair
          on the primary alone; and the replay lag itself (commit to replayed on the standby)

On one machine the standby shares the two cores with the primary: these figures show what a
read costs there and what read-your-writes adds, not the capacity a standby on its own
machine adds.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console

from akashone_es import Settings, open_storage
from akashone_es.persistence.database import ensure_database
from akashone_es.persistence.embedded import EmbeddedServer, copy_of

console = Console(stderr=True)
DATABASE = "akashone_bench_replica"
RAW_DDL = """CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY,
  stream_id uuid NOT NULL, version int NOT NULL, type text NOT NULL, data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, version))"""
RAW_INSERT = "INSERT INTO bench_raw (stream_id, version, type, data) VALUES (%s, %s, %s, %s::jsonb)"
RAW_READ = "SELECT * FROM users WHERE id = %s"
REPLAYED = ("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn")


def run(settings: Settings, home: Path, rounds: int, reads: int, writes: int,
        report: Callable[[list[dict[str, Any]], str], None]) -> None:
    """Measure, then ``report(results, primary_dsn)`` while the servers still run."""
    primary = EmbeddedServer(home / "primary")
    try:
        ensure_database(primary.dsn(DATABASE))
        standby = copy_of(primary, home / "standby", standby=True)
        try:
            report(_measure(settings, primary, standby, rounds, reads, writes),
                   primary.dsn(DATABASE))
        finally:
            standby.stop()
    finally:
        primary.stop()


def _measure(settings: Settings, primary: EmbeddedServer, standby: EmbeddedServer,
             rounds: int, reads: int, writes: int) -> list[dict[str, Any]]:
    on_primary, on_standby = primary.dsn(DATABASE), standby.dsn(DATABASE)
    replicated = settings.model_copy(update={"read_url": on_standby, "read_wait_seconds": 5.0})
    with psycopg.connect(on_primary, autocommit=True) as conn:
        conn.execute(RAW_DDL)
    with open_storage(settings, dsn=on_primary) as storage, \
            storage.acting_as(system="bench"):
        storage.initialize_default_roles()
        ids = [storage.create_user({"username": f"reader{n}", "email": f"r{n}@example.com",
                                    "password": "long-enough-1"}).id for n in range(500)]
    _replayed(on_primary, on_standby)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in (
        "read_standby", "read_primary", "append_standby", "append_primary", "own_read")}
    lags: list[float] = []
    with open_storage(replicated, dsn=on_primary) as standby_storage, \
            open_storage(settings, dsn=on_primary) as plain:
        for r in range(rounds):
            rows["read_standby"].append(_pair(
                lambda: _reads(standby_storage, ids, reads),
                lambda: _raw_reads(on_standby, ids, reads)))
            rows["read_primary"].append(_pair(
                lambda: _reads(plain, ids, reads), lambda: _raw_reads(on_primary, ids, reads)))
            rows["append_standby"].append(_pair(
                lambda: _appends(standby_storage, writes), lambda: _raw_a1(on_primary, writes)))
            rows["append_primary"].append(_pair(
                lambda: _appends(plain, writes), lambda: _raw_a1(on_primary, writes)))
            ours, base = _own_reads(standby_storage, writes // 4), _own_reads(plain,
                                                                              writes // 4)
            rows["own_read"].append({"ours": _p(ours, 0.5), "baseline": _p(base, 0.5),
                                     "ours_p99": _p(ours, 0.99), "baseline_p99": _p(base, 0.99),
                                     "ratio": _p(ours, 0.5) / _p(base, 0.5)})
            lags += _replay_lags(on_primary, on_standby, writes // 4)
            console.log(f"round {r + 1}: " + ", ".join(
                f"{k} {v[-1]['ratio']:.2f}x" for k, v in rows.items()))
        served = dict(standby_storage._standby.counts)  # type: ignore[union-attr]
    lags.sort()
    return [
        _result("replica_read", "get_user from the standby", "reads/s",
                "raw SELECT by id on the standby", rows["read_standby"]),
        _result("primary_read", "get_user from the primary", "reads/s",
                "raw SELECT by id on the primary", rows["read_primary"]),
        _result("replica_append", "create_role with a standby set", "appends/s",
                "A1 raw INSERT+COMMIT on the primary", rows["append_standby"]),
        _result("primary_append", "create_role, no standby", "appends/s",
                "A1 raw INSERT+COMMIT on the primary", rows["append_primary"]),
        {**_result("replica_own_read", "create_role + get_role, with the standby", "ms p50",
                   "the same on the primary alone", rows["own_read"]),
         "replay_lag_ms": {"p50": _p(lags, 0.5), "p99": _p(lags, 0.99), "samples": len(lags)},
         "reads_served": served},
    ]


def _pair(ours: Any, baseline: Any) -> dict[str, float]:
    a, b = ours(), baseline()
    return {"ours": a, "baseline": b, "ratio": a / b}


def _reads(storage: Any, ids: list[Any], n: int) -> float:
    with storage.acting_as(system=f"reader-{uuid.uuid4().hex[:6]}"):  # has written nothing
        for user_id in ids[:50]:
            storage.get_user(user_id)
        started = time.perf_counter()
        for k in range(n):
            storage.get_user(ids[k % len(ids)])
        return n / (time.perf_counter() - started)


def _raw_reads(dsn: str, ids: list[Any], n: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user_id in ids[:50]:
            conn.execute(RAW_READ, (user_id,)).fetchone()
        started = time.perf_counter()
        for k in range(n):
            conn.execute(RAW_READ, (ids[k % len(ids)],)).fetchone()
        return n / (time.perf_counter() - started)


def _appends(storage: Any, n: int) -> float:
    tag = uuid.uuid4().hex[:8]
    with storage.acting_as(system="bench-writer"):
        started = time.perf_counter()
        for k in range(n):
            storage.create_role({"name": f"a-{tag}-{k}", "description": "bench role"})
        return n / (time.perf_counter() - started)


def _raw_a1(dsn: str, n: int) -> float:
    payload = '{"name": "role-name-12345", "description": "a role made by the bench"}'
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for _ in range(n):
            conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "RoleCreated", payload))
            conn.commit()
        return n / (time.perf_counter() - started)


def _own_reads(storage: Any, n: int) -> list[float]:
    """Milliseconds of each write-then-read-it pair by one session."""
    tag = uuid.uuid4().hex[:8]
    times = []
    with storage.acting_as(system=f"own-{tag}"):
        for k in range(n):
            started = time.perf_counter()
            role = storage.create_role({"name": f"o-{tag}-{k}"})
            if storage.get_role(role.id) is None:
                raise SystemExit("a session did not read its own write")
            times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def _replay_lags(on_primary: str, on_standby: str, n: int) -> list[float]:
    """Milliseconds from a commit on the primary until the standby has replayed it."""
    lags = []
    with psycopg.connect(on_primary, autocommit=True) as primary, \
            psycopg.connect(on_standby, autocommit=True) as standby:
        for _ in range(n):
            primary.execute(RAW_INSERT, (uuid.uuid4(), 1, "Lag", "{}"))
            lsn = primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
            started = time.perf_counter()
            while not standby.execute(REPLAYED, (lsn,)).fetchone()[0]:  # type: ignore[index]
                time.sleep(0.0002)
            lags.append((time.perf_counter() - started) * 1000)
    return lags


def _replayed(on_primary: str, on_standby: str) -> None:
    _replay_lags(on_primary, on_standby, 1)


def _p(values: list[float], q: float) -> float:
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def _result(key: str, name: str, unit: str, baseline: str, rounds: list[dict[str, float]]
            ) -> dict[str, Any]:
    return {"name": key, "label": name, "unit": unit, "baseline": baseline, "rounds": rounds,
            "ours_median": statistics.median(r["ours"] for r in rounds),
            "baseline_median": statistics.median(r["baseline"] for r in rounds),
            "ratio_median": statistics.median(r["ratio"] for r in rounds)}
