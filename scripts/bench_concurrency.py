"""Concurrency benchmark (``scripts/bench --suite concurrency``), beside its baseline.

writers  1, 2, 4 and 8 writer processes, each appending one command per transaction
         (``create_role``) through the storage API    vs as many processes doing raw
         INSERT then COMMIT (A1) into a plain table, same run, same server
lag      while the writers run, a follower (the projection runner, in this process) applies
         an async projection; lag = time projected - the event's own timestamp, p50/p99 ms

Every process connects and warms up first; the clock starts when all are ready (a barrier)
and each side runs for the same number of seconds. Rounds alternate which side goes first.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import psycopg
from rich.console import Console

from akashone_es.storage import open_storage
from projections.engine import Batch, Projection
from projections.runner import Runner

console = Console(stderr=True)
WRITERS = (1, 2, 4, 8)
RAW_DDL = """CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY,
  stream_id uuid NOT NULL, version int NOT NULL, type text NOT NULL, data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, version))"""
RAW_INSERT = "INSERT INTO bench_raw (stream_id, version, type, data) VALUES (%s, %s, %s, %s::jsonb)"
PAYLOAD = orjson.dumps({"name": "role-name-12345", "description": "a role made by the bench",
                        "organization_id": None, "is_system": False,
                        "metadata": {"actor_id": None, "correlation_id": "c" * 36}}).decode()


def _raw_writer(dsn: str, ready: Any, seconds: float, counts: Any, index: int) -> None:
    with psycopg.connect(dsn) as conn:
        for _ in range(20):  # warm
            conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "RoleCreated", PAYLOAD))
            conn.commit()
        ready.wait()
        done, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            conn.execute(RAW_INSERT, (uuid.uuid4(), 1, "RoleCreated", PAYLOAD))
            conn.commit()
            done += 1
        counts[index] = done


def _our_writer(settings: Any, dsn: str, ready: Any, seconds: float, counts: Any,
                index: int) -> None:
    with open_storage(settings, dsn=dsn) as storage, storage.acting_as(system="bench"):
        tag = uuid.uuid4().hex[:8]
        for k in range(20):  # warm: the pool's connection, parsed statements, caches
            storage.create_role({"name": f"warm-{tag}-{k}"})
        ready.wait()
        done, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            storage.create_role({"name": f"r-{tag}-{done}", "description": "bench role"})
            done += 1
        counts[index] = done


def _run(target: Any, args: tuple[Any, ...], writers: int, seconds: float) -> float:
    """Appends/s of ``writers`` processes running ``target``, from the barrier on."""
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(writers + 1)
    counts = context.Array("q", writers)
    processes = [context.Process(target=target, args=(*args, ready, seconds, counts, k))
                 for k in range(writers)]
    for process in processes:
        process.start()
    ready.wait(timeout=300)
    for process in processes:
        process.join(timeout=seconds + 300)
        if process.exitcode != 0:
            raise SystemExit(f"a writer process failed (exit {process.exitcode})")
    return sum(counts) / seconds  # each process appended for ``seconds`` from the barrier


class LagProjection(Projection):
    """Remembers each event's timestamp; the runner's progress callback, called after each
    batch commits, turns them into lags."""

    name = "bench_lag"
    mode = "async"
    tables: ClassVar[Sequence[Any]] = ()
    topics_: ClassVar[list[str]] = ["akashone_es.domain.identity:Role.Created"]

    def prepare(self) -> None:
        self.pending: list[datetime] = []

    def topics(self) -> list[str] | None:
        return self.topics_

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        self.pending.append(event.timestamp)


class Follower:
    """A Runner following the log in a thread, measuring commit-to-projected lag."""

    def __init__(self, dsn: str, reader: Any) -> None:
        self.projection = LagProjection()
        self.lags: list[float] = []
        self.measuring = False
        self.runner = Runner(dsn, [self.projection], reader, batch_size=500,
                             poll_seconds=0.005)
        self.thread = threading.Thread(target=self.runner.run,
                                       kwargs={"progress": self._projected}, daemon=True)

    def _projected(self, *_: Any) -> None:
        now = datetime.now(UTC)
        if self.measuring:
            self.lags += [(now - at).total_seconds() * 1000 for at in self.projection.pending]
        self.projection.pending.clear()

    def __enter__(self) -> Follower:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)


def run(settings: Any, dsn: str, raw_dsn: str, rounds: int, seconds: float,
        writer_counts: Sequence[int] = WRITERS) -> list[dict[str, Any]]:
    with psycopg.connect(raw_dsn, autocommit=True) as conn:
        conn.execute(RAW_DDL)
    results = []
    with open_storage(settings, dsn=dsn) as storage:
        reader = storage.reader
    single_ours: list[float] = []
    for writers in writer_counts:
        per_round = []
        lags: list[float] = []
        for r in range(rounds):
            sides = ("ours", "raw") if r % 2 == 0 else ("raw", "ours")
            rates: dict[str, float] = {}
            for side in sides:
                if side == "raw":
                    rates[side] = _run(_raw_writer, (raw_dsn,), writers, seconds)
                    continue
                with Follower(dsn, reader) as follower:
                    time.sleep(0.2)
                    follower.measuring = True
                    rates[side] = _run(_our_writer, (settings, dsn), writers, seconds)
                    time.sleep(0.5)  # the last batch
                    lags += follower.lags
            per_round.append({"ours": rates["ours"], "baseline": rates["raw"],
                              "ratio": rates["ours"] / rates["raw"]})
            console.log(f"{writers} writer(s), round {r + 1}: ours {rates['ours']:,.0f}/s"
                        f" vs raw {rates['raw']:,.0f}/s = {per_round[-1]['ratio']:.2f}x")
        ours = statistics.median(p["ours"] for p in per_round)
        if writers == 1:
            single_ours = [p["ours"] for p in per_round]
        lags.sort()
        results.append({
            "name": f"append, {writers} writer process{'es' if writers > 1 else ''}",
            "unit": "appends/s", "baseline": f"raw INSERT+COMMIT, {writers} writer(s)",
            "rounds": per_round, "ours_median": ours,
            "baseline_median": statistics.median(p["baseline"] for p in per_round),
            "ratio_median": statistics.median(p["ratio"] for p in per_round),
            "vs_our_single_writer": (ours / statistics.median(single_ours)
                                     if single_ours else None),
            "follower_lag_ms": {"p50": _pct(lags, 0.50), "p99": _pct(lags, 0.99),
                                "events": len(lags)}})
    return results


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)
