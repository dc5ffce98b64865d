"""Legacy import benchmark (``scripts/bench --suite import``), beside its baseline.

import   akashone-es's Importer on a sample AkashOne dump (all 37 tables), into an
         empty database each round        vs A2: the same number of rows, raw executemany
                                          INSERT, 100 rows per transaction
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import orjson
import psycopg
from rich.console import Console

from akashone_es.legacy import Importer, sample_dump
from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.storage import open_storage

console = Console(stderr=True)
KARNATAKA = "29AAPFU0939F1ZR"
RAW_DDL = """CREATE TABLE IF NOT EXISTS bench_raw_import (id bigserial PRIMARY KEY,
  stream_id uuid NOT NULL, version int NOT NULL, type text NOT NULL, data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, version))"""
RAW_INSERT = ("INSERT INTO bench_raw_import (stream_id, version, type, data)"
              " VALUES (%s, 1, %s, %s::jsonb)")


def raw_a2(dsn: str, dump: dict[str, Any]) -> float:
    """A2: every record of the dump as one row, 100 rows per transaction; rows/s."""
    rows = [(uuid.uuid4(), table, orjson.dumps(record).decode())
            for table, records in dump.items() for record in records]
    with psycopg.connect(dsn) as conn:
        conn.execute(RAW_DDL)
        conn.execute("TRUNCATE bench_raw_import")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            for first in range(0, len(rows), 100):
                cur.executemany(RAW_INSERT, rows[first:first + 100])
                conn.commit()
        return len(rows) / (time.perf_counter() - start)


def ours(settings: Any, server_dsn: str, dump: dict[str, Any]) -> tuple[float, int]:
    """The import of ``dump`` into a fresh database; (records/s, records imported)."""
    dsn = with_database(server_dsn, f"akashone_bench_import_{uuid.uuid4().hex[:8]}")
    ensure_database(dsn)
    try:
        with open_storage(settings, dsn=dsn) as store, store.acting_as(system="bench import"):
            records = sum(len(records) for records in dump.values())
            start = time.perf_counter()
            summary = Importer(store).run(dump)
            elapsed = time.perf_counter() - start
        return records / elapsed, sum(c.imported for c in summary.tables.values())
    finally:
        drop_database(dsn)


def run(settings: Any, server_dsn: str, raw_dsn: str, rounds: int, users: int
        ) -> dict[str, Any]:
    # AkashOne's invoices are from Karnataka: our supplier GSTIN there, so they import
    settings = settings.model_copy(update={"supplier_gstin": KARNATAKA})
    dump = sample_dump(users)
    records = sum(len(r) for r in dump.values())
    per_round = []
    for n in range(rounds):
        first_raw = n % 2 == 1
        raw = raw_a2(raw_dsn, dump) if first_raw else 0.0
        rate, imported = ours(settings, server_dsn, dump)
        raw = raw or raw_a2(raw_dsn, dump)
        per_round.append({"ours": rate, "baseline": raw, "ratio": rate / raw,
                          "imported": imported})
        console.log(f"import round {n + 1}: {rate:,.0f} records/s ({records:,} records, "
                    f"{imported:,} imported) vs A2 {raw:,.0f} rows/s = {rate / raw:.2f}x")
    return {"name": "import", "unit": "records/s", "baseline": "A2 executemany, 100 rows/tx",
            "records": records, "rounds": per_round,
            "ours_median": statistics.median(r["ours"] for r in per_round),
            "baseline_median": statistics.median(r["baseline"] for r in per_round),
            "ratio_median": statistics.median(r["ratio"] for r in per_round)}
