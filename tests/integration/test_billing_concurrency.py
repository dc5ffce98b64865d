"""Billing under real concurrency: processes racing to issue, generate, redeem and pay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from akashone_es.errors import ConflictError
from akashone_es.gst import financial_year
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from akashone_es.storage import usage as usage_storage
from tests.conftest import TEST_SETTINGS

GSTIN = "27AAPFU0939F1ZV"  # Maharashtra: customers in state 27 pay CGST + SGST
SETTINGS = {**TEST_SETTINGS, "supplier_gstin": GSTIN}
PERIOD_START = datetime(2026, 4, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 5, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]

#: the advisory lock a gated worker waits on before its first gated save (see ``race``)
GATE_KEY = 6010

#: A worker: opens its own storage, says "ready", waits for the go file, runs its body's
#: ``run(storage, args)`` and prints one ``result`` line (a ValidationError is a result too).
#: With a ``gate`` (an aggregate or event class name), its first save of such an object waits
#: on the GATE_KEY advisory lock the test holds, and it counts the saves refused because a
#: racing save won (ConflictError, DuplicateError): the proof that the saves raced.
WORKER = """
import json, os, sys, time
from akashone_es import Settings, ValidationError, open_storage
dsn, go, payload = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
storage = open_storage(Settings(**payload["settings"]), dsn=dsn)
acting = storage.acting_as(system="test worker")
acting.__enter__()
storage.get_users()  # the pool is connected before the race, not during it
{body}
gate, conflicts, waited = payload.get("gate"), [0], []
if gate:
    import psycopg
    from akashone_es import ConflictError, DuplicateError
    barrier = psycopg.connect(dsn, autocommit=True)
    save = storage._save
    def gated_save(*objs):
        if not waited and any(type(o).__qualname__.split(".")[0] == gate for o in objs):
            waited.append(True)  # everything this attempt needs is loaded: wait for the others
            barrier.execute("SELECT pg_advisory_lock_shared(%s)", (payload["gate_key"],))
            barrier.execute("SELECT pg_advisory_unlock_shared(%s)", (payload["gate_key"],))
        try:
            return save(*objs)
        except (ConflictError, DuplicateError):
            conflicts[0] += 1
            raise
    storage._save = gated_save
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.0005)
started = time.time()
try:
    outcome = {{"value": run(storage, payload["args"]), "error": None}}
except ValidationError as exc:
    print("ValidationError:", exc, flush=True)
    outcome = {{"value": None, "error": {{"type": "ValidationError", "rules": exc.errors}}}}
outcome.update(started=started, finished=time.time(), conflicts=conflicts[0],
               gated=bool(waited))
print("result", json.dumps(outcome), flush=True)
storage.close()
"""


@dataclass(frozen=True)
class Outcome:
    """What one worker process reported."""

    value: Any
    error: dict[str, Any] | None
    started: float
    finished: float
    stdout: str
    #: saves of this worker refused because a racing save won (Conflict/DuplicateError)
    conflicts: int = 0
    #: whether it waited at the gate before its first gated save
    gated: bool = False

    @property
    def rules(self) -> list[str]:
        return [rule["rule"] for rule in (self.error or {}).get("rules", [])]


def gate_waiters(conn: psycopg.Connection[Any]) -> int:
    """Workers of this database waiting on the GATE_KEY advisory lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = 0 AND objid = %s AND objsubid = 1", (GATE_KEY,)).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def gate_closed(dsn: str, workers: int) -> Iterator[Callable[[], None]]:
    """Hold the gate; the yielded ``open_gate()`` waits until all ``workers`` wait at it (each
    has loaded what it will save), then lets them save at once: an overlap that is forced."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))

        def open_gate() -> None:
            deadline = time.monotonic() + 60
            while gate_waiters(conn) < workers:
                if time.monotonic() > deadline:
                    pytest.fail(f"only {gate_waiters(conn)} of {workers} workers reached the gate")
                time.sleep(0.01)
            conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))

        yield open_gate


def race(dsn: str, go: Path, body: str, args: list[dict[str, Any]], *,
         gate: str | None = None) -> list[Outcome]:
    """Start one process per ``args``, release them together, and collect their outcomes.

    With ``gate`` (a class name, e.g. ``"DiscountCoupon"``), each worker's first save of such
    an object waits until every worker is at that point, so all of them load the same state
    and then save at once; each outcome counts its refused (raced) saves.
    """
    script = WORKER.format(body=body)
    env = {**os.environ, "AKASHONE_LOG_LEVEL": "warning"}
    payload = {"settings": SETTINGS, "gate": gate, "gate_key": GATE_KEY}
    workers = [subprocess.Popen(
        [sys.executable, "-c", script, dsn, str(go),
         json.dumps({**payload, "args": worker_args})],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for worker_args in args]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            if line != "ready":
                worker.kill()
                pytest.fail(f"worker not ready ({line!r}): {worker.communicate()[1]}")
        with gate_closed(dsn, len(workers)) as open_gate:
            go.touch()
            if gate:
                open_gate()
        outputs = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    outcomes = []
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        [result] = [line for line in stdout.splitlines() if line.startswith("result ")]
        outcomes.append(Outcome(**json.loads(result.removeprefix("result ")), stdout=stdout))
    starts = [o.started for o in outcomes]
    assert max(starts) - min(starts) < 1.0, starts  # released together, not one by one
    if gate:
        assert all(o.gated for o in outcomes), [o.stdout for o in outcomes]
    return outcomes


# -- database helpers ------------------------------------------------------------------------
def rows(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def scalar(dsn: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    [(value,)] = rows(dsn, query, params)
    return value


def events(dsn: str, name: str) -> int:
    """How many events of ``name`` (e.g. 'Invoice.Issued') the log holds."""
    return int(scalar(dsn, "SELECT count(*) FROM akashone_events WHERE topic LIKE %s",
                      (f"%:{name}",)))


def number(sequence: int) -> str:
    """The invoice number this financial year's series gives ``sequence``."""
    fy = financial_year(datetime.now(UTC).date())
    return f"INV/{fy[2:4]}{fy[5:7]}/{sequence:06d}"


# -- fixtures and set-up ------------------------------------------------------------------------
@pytest.fixture
def billing(dsn: str) -> Iterator[Storage]:
    """Storage on a fresh database, issuing from the supplier GSTIN."""
    store = open_storage(Settings(**SETTINGS), dsn=dsn)  # type: ignore[arg-type]
    try:
        with store.acting_as(system="tests"):
            yield store
    finally:
        store.close()


def customer(storage: Storage, name: str) -> str:
    """A customer in Maharashtra with a default billing address; returns the user id."""
    user = storage.create_user({"username": name, "email": f"{name}@example.com",
                                "password": "long-enough-1"})
    storage.create_billing_address({"user_id": user.id, "address_line1": "12 MG Road",
                                    "city": "Pune", "state_code": "27",
                                    "postal_code": "411001", "is_default": True})
    return str(user.id)


def draft(storage: Storage, user_id: str, quantity: str, unit_price: str) -> str:
    """A draft invoice with one compute line; returns the invoice id."""
    address = storage.get_default_billing_address(user_id)
    assert address is not None
    invoice = storage.create_invoice({
        "user_id": user_id, "billing_address_id": address.id,
        "billing_period_start": PERIOD_START, "billing_period_end": PERIOD_END,
        "lines": [{"resource_type": "compute", "resource_name": "vm-1",
                   "description": "Virtual Machine Usage", "quantity": quantity,
                   "unit": "hours", "unit_price": unit_price}]})
    return str(invoice.id)


def meter(storage: Storage, user_id: str, resource_type: str, quantity: str, count: int
          ) -> None:
    """``count`` usage records in the period, each of ``quantity`` at the default rate."""
    for n in range(count):
        storage.create_usage_record({
            "user_id": user_id, "resource_type": resource_type,
            "resource_id": f"{resource_type}-{n}", "resource_name": f"{resource_type} {n}",
            "metric_type": "usage", "quantity": quantity,
            "period_start": PERIOD_START, "period_end": PERIOD_END})


# -- invoice numbers -----------------------------------------------------------------------------
ISSUE = """
def run(storage, args):
    return [[invoice_id, storage.issue_invoice(invoice_id).invoice_number]
            for invoice_id in args["invoices"]]
"""


class TestIssueInvoiceConcurrently:
    @pytest.mark.slow
    def test_processes_issuing_at_once_get_consecutive_numbers_without_gap_or_duplicate(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """4 processes x 6 drafts issued at once: numbers 000001..000024 of this FY, each
        once, the series at 24, 24 Issued events, each process's numbers ascending."""
        drafts = {}
        for n in range(4):
            user_id = customer(billing, f"buyer{n}")
            drafts[user_id] = [draft(billing, user_id, "10", "500") for _ in range(6)]

        outcomes = race(dsn, tmp_path / "go", ISSUE,
                        [{"invoices": invoices} for invoices in drafts.values()])

        assert [o.error for o in outcomes] == [None] * 4
        # every process was still issuing when the last one began: a race, not a queue
        assert max(o.started for o in outcomes) < min(o.finished for o in outcomes)
        issued = [pair for o in outcomes for pair in o.value]
        assert sorted(n for _, n in issued) == [number(s) for s in range(1, 25)]
        for outcome in outcomes:
            numbers = [n for _, n in outcome.value]
            assert numbers == sorted(numbers)
        assert sorted(rows(dsn, "SELECT id::text, invoice_number FROM invoices")) == sorted(
            (invoice_id, n) for invoice_id, n in issued)
        assert rows(dsn, "SELECT count(DISTINCT upper(invoice_number)), count(*),"
                         " count(*) FILTER (WHERE status = 'issued') FROM invoices") == [
            (24, 24, 24)]
        fy = financial_year(datetime.now(UTC).date())
        assert rows(dsn, "SELECT supplier_gstin, fy, kind, last_sequence"
                         " FROM document_series") == [(GSTIN, fy, "invoice", 24)]
        assert events(dsn, "Invoice.Issued") == 24
        allocated = rows(dsn, "SELECT (s->>'sequence')::int, s->>'document_id' FROM"
                              " (SELECT convert_from(state, 'UTF8')::jsonb AS s FROM"
                              "  akashone_events WHERE topic LIKE %s) AS a ORDER BY 1",
                         ("%:DocumentSeries.Allocated",))
        by_number = {n: invoice_id for invoice_id, n in issued}
        assert allocated == [(s, by_number[number(s)]) for s in range(1, 25)]


# -- usage billing -------------------------------------------------------------------------------
GENERATE = """
def run(storage, args):
    invoice = storage.generate_invoice({"user_id": args["user_id"],
                                        "period_start": args["start"],
                                        "period_end": args["end"],
                                        "coupon_code": args.get("coupon")})
    return {"id": str(invoice.id), "number": invoice.invoice_number,
            "coupon_code": invoice.coupon_code, "discount": invoice.discount_amount}
"""


def generate_args(user_id: str, coupon: str | None = None) -> dict[str, Any]:
    return {"user_id": user_id, "start": PERIOD_START.isoformat(),
            "end": PERIOD_END.isoformat(), "coupon": coupon}


class TestGenerateInvoiceConcurrently:
    @pytest.mark.slow
    def test_racing_generations_bill_each_usage_record_once_on_one_invoice(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """3 processes read the same unbilled usage, then save at once (forced: each waits at
        the gate with its invoice built): one invoice with all 50 records (exact paise); the
        other two are refused, re-read, and fail with 'no unbilled usage', using no number."""
        user_id = customer(billing, "metered")
        meter(billing, user_id, "compute", "1.5", 20)  # 20 x 750 paise
        meter(billing, user_id, "block_storage", "12.5", 30)  # 30 x 12.5 paise = 375

        outcomes = race(dsn, tmp_path / "go", GENERATE, [generate_args(user_id)] * 3,
                        gate="Invoice")

        winners = [o for o in outcomes if o.error is None]
        losers = [o for o in outcomes if o.error is not None]
        assert len(winners) == 1, [o.stdout for o in outcomes]
        assert [o.conflicts >= 1 for o in losers] == [True, True]  # their saves really raced
        assert [o.rules for o in losers] == [["no unbilled usage in the period"]] * 2
        assert all("ValidationError: invalid input: period: no unbilled usage in the period"
                   in o.stdout for o in losers)
        invoice = winners[0].value
        assert invoice["number"] == number(1)
        assert rows(dsn, "SELECT id::text, subtotal_amount, cgst_amount, sgst_amount,"
                         " total_amount FROM invoices") == [
            (invoice["id"], 15375, 1384, 1384, 18143)]
        assert rows(dsn, "SELECT resource_type, amount FROM invoice_line_items"
                         " ORDER BY line_number") == [("block_storage", 375), ("compute", 15000)]
        assert rows(dsn, "SELECT invoice_id::text, billed, count(*) FROM usage_records"
                         " GROUP BY 1, 2") == [(invoice["id"], True, 50)]
        # one event names the 50 records billed; none is written per record
        assert events(dsn, "UsageRecord.Billed") == 0
        assert rows(dsn, "SELECT originator_id::text, jsonb_array_length(convert_from(state,"
                         " 'UTF8')::jsonb->'record_ids') FROM akashone_events"
                         " WHERE topic LIKE %s", ("%:Invoice.UsageBilled",)) == [
            (invoice["id"], 50)]
        assert events(dsn, "Invoice.Issued") == 1
        assert scalar(dsn, "SELECT last_sequence FROM document_series") == 1


    @pytest.mark.slow
    def test_processes_generating_for_their_own_customers_number_without_gap_or_duplicate(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """3 processes x 4 customers each, generated at once: each process keeps the number
        series it saved last and uses it only while the log's head is still at that
        version, so the other processes' numbers in between are never reused or skipped:
        000001..000012, each once, each process's ascending, the series at 12."""
        customers = [[customer(billing, f"gen{p}x{c}") for c in range(4)] for p in range(3)]
        for user_id in (u for group in customers for u in group):
            meter(billing, user_id, "compute", "1.5", 3)
        body = """
def run(storage, args):
    return [storage.generate_invoice({"user_id": user_id, "period_start": args["start"],
                                      "period_end": args["end"]}).invoice_number
            for user_id in args["users"]]
"""
        outcomes = race(dsn, tmp_path / "go", body, [
            {"users": group, "start": PERIOD_START.isoformat(),
             "end": PERIOD_END.isoformat()} for group in customers])

        assert [o.error for o in outcomes] == [None] * 3, [o.stdout for o in outcomes]
        numbers = [n for o in outcomes for n in o.value]
        assert sorted(numbers) == [number(s) for s in range(1, 13)]
        for outcome in outcomes:
            assert outcome.value == sorted(outcome.value)
        assert scalar(dsn, "SELECT last_sequence FROM document_series") == 12
        assert rows(dsn, "SELECT count(DISTINCT invoice_id), count(*) FILTER (WHERE billed)"
                         " FROM usage_records") == [(12, 36)]

    def test_a_series_another_storage_numbered_is_read_again(self, billing: Storage,
                                                            dsn: str) -> None:
        """The race above, made deterministic: this storage keeps the series it saved last;
        another storage numbers an invoice in between; this storage's next invoice follows
        the log's head (its kept copy is stale), so the numbers run 1, 2, 3."""
        users = [customer(billing, f"seq{n}") for n in range(3)]
        for user_id in users:
            meter(billing, user_id, "compute", "1.5", 1)
        other = open_storage(Settings(**SETTINGS), dsn=dsn)  # type: ignore[arg-type]
        try:
            first = billing.generate_invoice(generate_args_model(users[0]))
            with other.acting_as(system="tests"):
                second = other.generate_invoice(generate_args_model(users[1]))
            third = billing.generate_invoice(generate_args_model(users[2]))
        finally:
            other.close()
        assert [first.invoice_number, second.invoice_number, third.invoice_number] == [
            number(1), number(2), number(3)]
        assert scalar(dsn, "SELECT last_sequence FROM document_series") == 3

    def test_a_generation_that_read_billed_usage_is_refused_by_the_database(
            self, billing: Storage, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The guard is the database's, not the racing number series': a writer that read
        the usage before another invoice billed it (its series is current) names records
        already billed; its save fails whole, and the writer's retry finds nothing left."""
        user_id = customer(billing, "stale")
        meter(billing, user_id, "compute", "1.5", 3)
        stale = billing.get_unbilled_usage_records(user_id)
        first = billing.generate_invoice(generate_args_model(user_id))
        log, series = events_total(dsn), scalar(dsn, "SELECT last_sequence FROM document_series")
        monkeypatch.setattr(usage_storage, "billable",  # read before
                            lambda *_: usage_storage.totals_of(stale))
        monkeypatch.setattr(usage_storage, "retrying", lambda attempt: attempt())  # once
        with pytest.raises(ConflictError, match="usage_records_billed_once"):
            billing.generate_invoice(generate_args_model(user_id))
        assert events_total(dsn) == log  # nothing written: no invoice, no number used
        assert scalar(dsn, "SELECT last_sequence FROM document_series") == series
        assert rows(dsn, "SELECT DISTINCT invoice_id FROM usage_records") == [(first.id,)]

    def test_usage_billed_by_an_invoice_is_not_billed_again_by_hand(
            self, billing: Storage) -> None:
        user_id = customer(billing, "byhand")
        meter(billing, user_id, "compute", "1.5", 2)
        invoice = billing.generate_invoice(generate_args_model(user_id))
        record = billing.get_usage_records(user_id)[0]
        with pytest.raises(ConflictError, match="already billed"):
            billing.mark_usage_records_as_billed([record.id], invoice.id)


    def test_a_database_from_before_the_trigger_gets_it_and_keeps_its_bills(
            self, billing: Storage, dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A database of the version that guarded bills with a ``billed_usage`` table of
        guard rows (and no trigger): opening it adds the trigger and drops that table, with
        no rebuild (the records' invoice ids are already there), and a generation that read
        usage before it was billed, by an invoice or by hand, is refused."""
        user_id = customer(billing, "older")
        meter(billing, user_id, "compute", "1.5", 2)
        stale = billing.get_unbilled_usage_records(user_id)
        invoice = billing.generate_invoice(generate_args_model(user_id))
        meter(billing, user_id, "block_storage", "2", 2)
        by_hand = billing.get_unbilled_usage_records(user_id)
        billing.mark_usage_records_as_billed([r.id for r in by_hand], invoice.id)
        with psycopg.connect(dsn, autocommit=True) as conn:  # the schema of that version
            conn.execute("DROP TRIGGER usage_records_billed_once ON usage_records")
            conn.execute("CREATE TABLE billed_usage (id uuid PRIMARY KEY, invoice_id uuid"
                         " NOT NULL, UNIQUE (id, invoice_id))")
        log = events_total(dsn)
        store = open_storage(Settings(**SETTINGS), dsn=dsn)  # type: ignore[arg-type]
        try:
            assert scalar(dsn, "SELECT count(*) FROM pg_trigger"
                               " WHERE tgname = 'usage_records_billed_once'") == 1
            assert scalar(dsn, "SELECT to_regclass('billed_usage') IS NULL") is True
            monkeypatch.setattr(usage_storage, "retrying", lambda attempt: attempt())
            for read_before in (stale, by_hand):
                monkeypatch.setattr(usage_storage, "billable", lambda *_, rows=read_before:
                                    usage_storage.totals_of(rows))
                with store.acting_as(system="tests"), \
                        pytest.raises(ConflictError, match="usage_records_billed_once"):
                    store.generate_invoice(generate_args_model(user_id))
            assert events_total(dsn) == log
        finally:
            store.close()


    def test_no_index_holds_what_a_bill_sets(self, billing: Storage, dsn: str) -> None:
        """A bill sets ``invoice_id`` and ``billed`` on its records: no index of the table
        (its columns, expressions or predicate) may hold either, so the update can be HOT;
        an older database's indexes on them are dropped when it is opened."""
        indexed = ("SELECT string_agg(DISTINCT a.attname, ', ') FROM pg_index i"
                   " JOIN pg_attribute a"
                   " ON a.attrelid = i.indrelid AND a.attnum > 0"
                   " AND (a.attnum = ANY(i.indkey)"
                   "      OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M')"
                   "      OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"
                   " WHERE i.indrelid = 'usage_records'::regclass"
                   " AND a.attname IN ('invoice_id', 'billed')")
        assert scalar(dsn, indexed) is None
        with psycopg.connect(dsn, autocommit=True) as conn:  # the indexes of that version
            conn.execute("CREATE INDEX usage_records_user_idx"
                         " ON usage_records (user_id, billed, period_start)")
            conn.execute("CREATE INDEX usage_records_invoice_idx ON usage_records (invoice_id)")
        assert scalar(dsn, indexed) is not None
        open_storage(Settings(**SETTINGS), dsn=dsn).close()  # type: ignore[arg-type]
        assert scalar(dsn, indexed) is None
        assert scalar(dsn, "SELECT to_regclass('usage_records_user_period_idx') IS NOT NULL")

    def test_a_bill_keeps_each_record_on_its_page(self, billing: Storage, dsn: str) -> None:
        """Records written one after another fill their pages; the bill writes each one's
        new version, which stays on the record's own page (a HOT update, no index entry)
        only if the page has room for it: pages are filled to half (with full pages, 42 of
        120 stay; the new versions are a little longer, so a few move). An older table is
        given the setting when the database is opened."""
        user_id = customer(billing, "pages")
        meter(billing, user_id, "compute", "1", 120)
        blocks = ("SELECT id, (ctid::text::point)[0] FROM usage_records WHERE user_id = %s")
        before = dict(rows(dsn, blocks, (user_id,)))
        assert len(set(before.values())) >= 3  # the records span several pages
        billing.generate_invoice(generate_args_model(user_id))
        after = dict(rows(dsn, blocks, (user_id,)))
        assert scalar(dsn, "SELECT count(*) FROM usage_records WHERE billed") == 120
        assert sum(after[i] == block for i, block in before.items()) >= 108
        with psycopg.connect(dsn, autocommit=True) as conn:  # a table made before the setting
            conn.execute("ALTER TABLE usage_records RESET (fillfactor)")
        open_storage(Settings(**SETTINGS), dsn=dsn).close()  # type: ignore[arg-type]
        assert scalar(dsn, "SELECT reloptions FROM pg_class"
                           " WHERE oid = 'usage_records'::regclass") == ["fillfactor=50"]


def generate_args_model(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "period_start": PERIOD_START, "period_end": PERIOD_END}


def events_total(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM akashone_events"))


# -- coupons -------------------------------------------------------------------------------------
class TestCouponRedemptionConcurrently:
    @pytest.mark.slow
    def test_concurrent_redemptions_never_exceed_max_uses(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """6 processes invoice their own customer with a 3-use coupon, all having loaded the
        unused coupon before any saves (forced at the gate): 3 invoices carry the discount,
        times_used is 3, the other 3 fail and write nothing."""
        billing.create_discount_coupon({"code": "race10", "name": "Race 10 %",
                                        "discount_type": "percentage", "discount_value": 10,
                                        "max_uses": 3})
        users = [customer(billing, f"shopper{n}") for n in range(6)]
        for user_id in users:
            meter(billing, user_id, "compute", "2.5", 4)  # 4 x 1250 paise = 5000

        outcomes = race(dsn, tmp_path / "go", GENERATE,
                        [generate_args(user_id, "race10") for user_id in users],
                        gate="DiscountCoupon")

        redeemed = {u for u, o in zip(users, outcomes, strict=True) if o.error is None}
        refused = [(u, o) for u, o in zip(users, outcomes, strict=True) if o.error is not None]
        assert len(redeemed) == 3, [o.stdout for o in outcomes]
        # all six saved the same coupon version at once: five were refused and re-checked
        assert sum(o.conflicts for o in outcomes) >= 5
        assert [o.rules for _, o in refused] == [["Coupon usage limit reached"]] * 3
        assert all("Coupon usage limit reached" in o.stdout for _, o in refused)
        assert sorted(rows(dsn, "SELECT user_id::text, coupon_code, subtotal_amount,"
                                " discount_amount, cgst_amount, total_amount FROM invoices")) \
            == sorted((u, "RACE10", 5000, 500, 405, 5310) for u in redeemed)
        assert sorted(o.value["number"] for o in outcomes if o.value) == [
            number(s) for s in (1, 2, 3)]
        coupon = billing.get_discount_coupon_by_code("RACE10")
        assert coupon is not None
        assert coupon.times_used == 3
        assert billing.validate_coupon("RACE10").error == "Coupon usage limit reached"
        assert events(dsn, "DiscountCoupon.Redeemed") == 3
        assert events(dsn, "Invoice.Drafted") == 3
        for user_id, _ in refused:
            assert billing.get_invoices(user_id) == []
            assert len(billing.get_unbilled_usage_records(user_id)) == 4


# -- payments ------------------------------------------------------------------------------------
PAY = """
def run(storage, args):
    payment = storage.create_payment_transaction({
        "invoice_id": args["invoice_id"], "gateway": "razorpay",
        "gateway_transaction_id": args["gateway_id"], "amount": args["amount"],
        "status": args.get("status", "success")})
    return {"id": str(payment.id), "status": payment.status}
"""


class TestPaymentCallbackConcurrently:
    @pytest.mark.slow
    def test_the_same_gateway_callback_from_four_processes_pays_the_invoice_once(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """4 processes deliver one successful callback at once: one transaction (returned to
        all four), the invoice paid exactly its total, one PaymentApplied event."""
        user_id = customer(billing, "payer")
        invoice = billing.issue_invoice(draft(billing, user_id, "3", "99900"))
        assert invoice.total_amount == 353646  # 299700 + 9 % CGST + 9 % SGST

        outcomes = race(dsn, tmp_path / "go", PAY, [
            {"invoice_id": str(invoice.id), "gateway_id": "pay_RACE0001",
             "amount": invoice.total_amount}] * 4, gate="PaymentTransaction")

        assert [o.error for o in outcomes] == [None] * 4
        [(transaction_id, status)] = {(o.value["id"], o.value["status"]) for o in outcomes}
        assert status == "success"
        assert rows(dsn, "SELECT id::text, gateway_transaction_id, amount, status"
                         " FROM payment_transactions") == [
            (transaction_id, "pay_RACE0001", 353646, "success")]
        assert rows(dsn, "SELECT amount_paid, total_amount, status FROM invoices") == [
            (353646, 353646, "paid")]
        assert events(dsn, "Invoice.PaymentApplied") == 1
        assert events(dsn, "Invoice.Paid") == 1
        assert events(dsn, "PaymentTransaction.Initiated") == 1
        assert sum(o.conflicts for o in outcomes) >= 3

    @pytest.mark.slow
    def test_a_repeated_half_payment_callback_is_applied_once(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """Two processes deliver the same callback for half the invoice, both past the
        "seen before?" check when they save (forced at the gate): the loser's retry is
        refused by the (gateway, transaction id) index, and both get the one transaction.
        The invoice has half its total paid and stays issued."""
        user_id = customer(billing, "halfpayer")
        invoice = billing.issue_invoice(draft(billing, user_id, "2", "100000"))
        half = invoice.total_amount // 2

        outcomes = race(dsn, tmp_path / "go", PAY, [
            {"invoice_id": str(invoice.id), "gateway_id": "pay_HALF0001",
             "amount": half}] * 2, gate="PaymentTransaction")

        assert [o.error for o in outcomes] == [None, None]
        assert sum(o.conflicts for o in outcomes) == 1  # the saves raced; one lost
        [(transaction_id, status)] = {(o.value["id"], o.value["status"]) for o in outcomes}
        assert status == "success"
        assert rows(dsn, "SELECT id::text, amount FROM payment_transactions") == [
            (transaction_id, half)]
        assert rows(dsn, "SELECT amount_paid, status FROM invoices") == [(half, "issued")]
        assert events(dsn, "Invoice.PaymentApplied") == 1

    @pytest.mark.slow
    def test_two_payers_of_most_of_the_balance_never_overpay_it(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """Two different callbacks, each for 60% of the total, save at once: the balance
        is checked against the invoice the save is made on, so the loser's retry sees the
        winner's payment and is refused (it was checked before the race and overpaid)."""
        user_id = customer(billing, "twopayers")
        invoice = billing.issue_invoice(draft(billing, user_id, "1", "100000"))
        most = invoice.total_amount * 6 // 10

        outcomes = race(dsn, tmp_path / "go", PAY, [
            {"invoice_id": str(invoice.id), "gateway_id": f"pay_MOST000{n}", "amount": most}
            for n in (1, 2)], gate="PaymentTransaction")

        assert sorted(o.error is None for o in outcomes) == [False, True]
        [refused] = [o for o in outcomes if o.error is not None]
        assert refused.error is not None
        assert ["amount"] == [rule["field"] for rule in refused.error["rules"]]
        assert sum(o.conflicts for o in outcomes) == 1
        assert rows(dsn, "SELECT amount_paid, status FROM invoices") == [(most, "issued")]
        assert rows(dsn, "SELECT count(*) FROM payment_transactions") == [(1,)]
        assert events(dsn, "Invoice.PaymentApplied") == 1

    @pytest.mark.slow
    def test_a_repeated_pending_callback_records_one_transaction(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """Two processes record the same pending callback at once. Nothing else they save
        conflicts (the invoice is not touched), so only the (gateway, transaction id) index
        stops the second: one transaction, returned to both."""
        user_id = customer(billing, "pending")
        invoice = billing.issue_invoice(draft(billing, user_id, "1", "100000"))

        outcomes = race(dsn, tmp_path / "go", PAY, [
            {"invoice_id": str(invoice.id), "gateway_id": "pay_PEND0001",
             "amount": invoice.total_amount, "status": "pending"}] * 2,
            gate="PaymentTransaction")

        assert [o.error for o in outcomes] == [None, None]
        assert sum(o.conflicts for o in outcomes) == 1  # the index refused the loser's save
        [(transaction_id, status)] = {(o.value["id"], o.value["status"]) for o in outcomes}
        assert status == "pending"
        assert rows(dsn, "SELECT id::text, status FROM payment_transactions") == [
            (transaction_id, "pending")]
        assert events(dsn, "PaymentTransaction.Initiated") == 1


# -- credit notes --------------------------------------------------------------------------------
CREDIT = """
def run(storage, args):
    note = storage.issue_credit_note(args["invoice_id"], args["amount"], "racing credit")
    return {"number": note.note_number}
"""


class TestCreditNotesConcurrently:
    @pytest.mark.slow
    def test_racing_credit_notes_never_exceed_the_taxable_value(
            self, billing: Storage, dsn: str, tmp_path: Path) -> None:
        """6 processes credit 30% each at once: 3 notes go through (90%), 3 are refused."""
        user_id = customer(billing, "credited")
        invoice = billing.issue_invoice(draft(billing, user_id, "1", "100000"))
        assert invoice.taxable_amount == 100_000

        outcomes = race(dsn, tmp_path / "go", CREDIT, [
            {"invoice_id": str(invoice.id), "amount": 30_000}] * 6)

        issued = sorted(o.value["number"] for o in outcomes if o.error is None)
        assert len(issued) == 3
        assert [o.error is not None for o in outcomes].count(True) == 3
        assert scalar(dsn, "SELECT sum(taxable_amount) FROM adjustment_notes") == 90_000
        assert events(dsn, "Invoice.Adjusted") == 3
