"""Metering from the log: usage per hour window, exactly once, billed by generate_invoice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import time_machine

from akashone_es import context
from akashone_es.errors import ConflictError, ValidationError
from akashone_es.resources import KINDS
from akashone_es.storage import Storage
from projections.rebuild import verify
from projections.resources import ResourcesProjection
from tests.conftest import log_size
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import create, make
from tests.integration.test_billing_storage import address

DAY = datetime(2026, 3, 2, tzinfo=UTC)
PASSWORD = "password-long-1"


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


@pytest.fixture
def owner(storage: Storage) -> Any:
    enable_all_features(storage)
    return storage.create_user({"username": "asha", "email": "asha@example.in",
                                "password": PASSWORD})


def vm_running_between(storage: Storage, owner: Any, spans: list[tuple[float, float]]) -> Any:
    """A VM deployed at the first start, Running during each span, Stopped between."""
    with time_machine.travel(at(spans[0][0]) - timedelta(minutes=5), tick=False):
        machine = make(storage, KINDS["virtual_machine"], "web", owner.id)
    for start, stop in spans:
        with time_machine.travel(at(start), tick=False):
            storage.update_virtual_machine(machine.id, {"state": "Running"})
        with time_machine.travel(at(stop), tick=False):
            storage.update_virtual_machine(machine.id, {"state": "Stopped"})
    return machine


def usage_of(storage: Storage, user_id: Any) -> list[Any]:
    return sorted(storage.get_usage_records(user_id), key=lambda r: r.period_start)


class TestVirtualMachines:
    def test_started_stopped_started_gives_three_and_a_half_hours(
            self, storage: Storage, owner: Any) -> None:
        """10:00-12:30 and 14:00-15:00, metered until 15:00: 3.5 hours = 1,750 paise,
        and generate_invoice bills exactly that (plus GST)."""
        machine = vm_running_between(storage, owner, [(10, 12.5)])
        with time_machine.travel(at(14), tick=False):
            storage.update_virtual_machine(machine.id, {"state": "Running"})
        with time_machine.travel(at(15.2), tick=False):
            result = storage.meter(at(15))
        records = usage_of(storage, owner.id)
        assert [(r.period_start, r.quantity) for r in records] == [
            (at(10), Decimal(1)), (at(11), Decimal(1)), (at(12), Decimal("0.5")),
            (at(14), Decimal(1))]
        assert sum(r.total_cost for r in records) == 1750
        assert {r.resource_type for r in records} == {"compute"}
        assert (result.windows, result.recorded, result.already) == (4, 4, 0)

    def test_generate_invoice_bills_the_metered_hours(self, issuer: Storage) -> None:
        """The same 3.5 hours, invoiced: one compute line of 1,750 paise, GST on top."""
        enable_all_features(issuer)
        owner = issuer.create_user({"username": "ravi", "email": "ravi@example.in",
                                    "password": PASSWORD})
        address(issuer, owner)
        machine = vm_running_between(issuer, owner, [(10, 12.5)])
        with time_machine.travel(at(14), tick=False):
            issuer.update_virtual_machine(machine.id, {"state": "Running"})
        with time_machine.travel(at(15), tick=False):
            issuer.update_virtual_machine(machine.id, {"state": "Stopped"})
        with time_machine.travel(at(15.2), tick=False):
            issuer.meter(at(15))
        invoice = issuer.generate_invoice({"user_id": owner.id, "period_start": at(0),
                                           "period_end": at(24)})
        [line] = issuer.get_invoice_line_items(invoice.id)
        assert (line.resource_type, line.quantity, line.amount) == ("compute", Decimal("3.5"),
                                                                   1750)
        assert invoice.subtotal_amount == 1750
        assert invoice.total_amount == 1750 + 315  # 18% GST
        assert issuer.get_unbilled_usage_records(owner.id) == []

    def test_a_period_is_invoiced_once_it_is_metered(self, issuer: Storage) -> None:
        """Found in review: an invoice made while metering had reached 12:00 of a VM
        running 10:00-18:00 billed two hours, and the other six were billed by no period.
        It is refused until the meter has covered the period; then it bills all eight."""
        enable_all_features(issuer)
        owner = issuer.create_user({"username": "late", "email": "late@example.in",
                                    "password": PASSWORD})
        address(issuer, owner)
        vm_running_between(issuer, owner, [(10, 18)])
        period = {"user_id": owner.id, "period_start": at(0), "period_end": at(24)}
        with time_machine.travel(at(24.2), tick=False):
            issuer.meter(at(12))
            before = log_size(issuer.dsn)
            with pytest.raises(ValidationError, match="6 metered hours") as refused:
                issuer.generate_invoice(period)
            assert refused.value.fields == ["period_end"]
            assert "from 2026-03-02 12:00 UTC" in str(refused.value)
            assert log_size(issuer.dsn) == before
            issuer.meter(at(24))
            invoice = issuer.generate_invoice(period)
        [line] = issuer.get_invoice_line_items(invoice.id)
        assert (line.quantity, line.amount) == (Decimal(8), 4000)

    def test_history_recorded_late_reaches_no_metered_hour(self, storage: Storage,
                                                           owner: Any) -> None:
        """Found in review: a stop recorded (``events_at``) 1.5 hours into six hours that
        were metered left all six billed. A change before the end of the resource's last
        metered hour is refused; one after it is recorded."""
        machine = vm_running_between(storage, owner, [(10, 16)])
        with time_machine.travel(at(16.2), tick=False):
            storage.meter(at(16))
        with time_machine.travel(at(18), tick=False):
            for moment in (at(11.5), at(15.9)):
                with context.events_at(moment), pytest.raises(ConflictError,
                                                              match="metered up to"):
                    storage.update_virtual_machine(machine.id, {"display_name": "late"})
            with context.events_at(at(17)):
                assert storage.update_virtual_machine(machine.id, {"state": "Running"}
                                                      ).state == "Running"

    def test_a_rerun_and_a_later_run_bill_each_hour_once(self, storage: Storage,
                                                         owner: Any) -> None:
        vm_running_between(storage, owner, [(9.75, 13.25)])
        with time_machine.travel(at(16), tick=False):
            first = storage.meter(at(12))
            again = storage.meter(at(12))
            later = storage.meter(at(15))
        assert (first.recorded, again.recorded, again.already) == (3, 0, 3)
        assert (later.recorded, later.already) == (2, 3)
        quantities = [r.quantity for r in usage_of(storage, owner.id)]
        assert quantities == [Decimal("0.25"), 1, 1, 1, Decimal("0.25")]

    def test_an_open_window_is_left_for_a_later_run(self, storage: Storage,
                                                    owner: Any) -> None:
        vm_running_between(storage, owner, [(10, 11.5)])
        with time_machine.travel(at(12.1), tick=False):
            assert storage.meter(at(11.5)).recorded == 1  # 10-11 only; 11-12 not over
            assert storage.meter(at(12)).recorded == 1
        assert [r.quantity for r in usage_of(storage, owner.id)] == [1, Decimal("0.5")]

    def test_until_is_checked(self, storage: Storage, owner: Any) -> None:
        with pytest.raises(ValidationError, match="5 minutes ago"):
            storage.meter(datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(ValidationError, match="5 minutes ago"):  # may still be committing
            storage.meter(datetime.now(UTC) - timedelta(minutes=4))
        with pytest.raises(ValidationError, match="time zone"):
            storage.meter(datetime(2026, 1, 1))


def billed_by_type(storage: Storage, user_id: Any) -> dict[str, Decimal]:
    """The quantities metered for a user, summed by resource type."""
    found: dict[str, Decimal] = {}
    for record in usage_of(storage, user_id):
        found[record.resource_type] = found.get(record.resource_type, Decimal(0)) + \
            record.quantity
    return found


class TestOtherKinds:
    def test_volumes_buckets_clusters_and_databases(self, storage: Storage,
                                                    owner: Any) -> None:
        with time_machine.travel(at(10), tick=False):
            make(storage, KINDS["volume"], "v", owner.id)  # 50 GB, billed in any state
            cluster = make(storage, KINDS["kubernetes_cluster"], "k", owner.id)
            db = make(storage, KINDS["database"], "d", owner.id)
            make(storage, KINDS["object_storage_bucket"], "b", owner.id)  # empty: nothing
        with time_machine.travel(at(10.5), tick=False):
            storage.update_kubernetes_cluster(cluster.id, {"status": "running"})
            storage.update_database(db.id, {"status": "running"})
        with time_machine.travel(at(11.5), tick=False):
            storage.update_kubernetes_cluster(cluster.id, {"worker_nodes": 1})
        with time_machine.travel(at(13), tick=False):
            storage.meter(at(12))
        by_type = billed_by_type(storage, owner.id)
        assert by_type == {
            "block_storage": Decimal(100),  # 50 GB x 2 hours
            "kubernetes": Decimal(8),  # 6 nodes x 1 hour, then 4 nodes x 0.5 hours
            "database": Decimal("1.5"),
            "database_storage": Decimal(150),  # 100 GB x 1.5 hours
        }

    def test_a_service_being_updated_is_still_billed(self, storage: Storage,
                                                     owner: Any) -> None:
        """Found in review: a cluster or database in ``updating`` (it still runs while it
        is resized or upgraded) billed nothing, so those hours were lost."""
        with time_machine.travel(at(10), tick=False):
            cluster = make(storage, KINDS["kubernetes_cluster"], "k", owner.id)
            db = make(storage, KINDS["database"], "d", owner.id)
            storage.update_kubernetes_cluster(cluster.id, {"status": "running"})
            storage.update_database(db.id, {"status": "running"})
        with time_machine.travel(at(10.5), tick=False):
            storage.update_kubernetes_cluster(cluster.id, {"status": "updating"})
            storage.update_database(db.id, {"status": "updating"})
        with time_machine.travel(at(11.5), tick=False):
            storage.update_kubernetes_cluster(cluster.id, {"status": "running"})
            storage.update_database(db.id, {"status": "running"})
        with time_machine.travel(at(13), tick=False):
            storage.meter(at(12))
        by_type = billed_by_type(storage, owner.id)
        assert by_type == {"kubernetes": Decimal(12), "database": Decimal(2),
                           "database_storage": Decimal(200)}  # two hours, none lost

    def test_a_bucket_is_billed_for_the_size_observed(self, storage: Storage,
                                                       owner: Any) -> None:
        """Its GB (size in bytes / 1024^3) for each hour, from when the sync reports it."""
        with time_machine.travel(at(10), tick=False):
            bucket = make(storage, KINDS["object_storage_bucket"], "b", owner.id)
        with time_machine.travel(at(10.5), tick=False):
            storage.observe_object_storage_bucket(bucket.cloudstack_id,
                                                  {"size": 10 * 1024**3, "object_count": 3})
        with time_machine.travel(at(13), tick=False):
            storage.meter(at(12))
        assert sorted((r.resource_type, r.quantity) for r in usage_of(storage, owner.id)) == [
            ("object_storage", Decimal(5)), ("object_storage", Decimal(10))]

    def test_a_window_below_the_records_precision_is_no_record(self, storage: Storage,
                                                                owner: Any) -> None:
        """400 bytes for an hour is 3.7e-7 GB-hours: zero at the records' six places, so no
        record of zero quantity and cost is made for it."""
        with time_machine.travel(at(10), tick=False):
            bucket = make(storage, KINDS["object_storage_bucket"], "b", owner.id)
            storage.observe_object_storage_bucket(bucket.cloudstack_id,
                                                  {"size": 400, "object_count": 1})
        with time_machine.travel(at(13), tick=False):
            assert storage.meter(at(12)).windows == 0
        assert usage_of(storage, owner.id) == []

    def test_a_deleted_resource_stops_billing(self, storage: Storage, owner: Any) -> None:
        with time_machine.travel(at(10), tick=False):
            disk = make(storage, KINDS["volume"], "v", owner.id)
        with time_machine.travel(at(10.25), tick=False):
            storage.delete_volume(disk.id)
        with time_machine.travel(at(13), tick=False):
            storage.meter(at(12))
        assert [r.quantity for r in usage_of(storage, owner.id)] == [Decimal("12.5")]

    def test_two_changes_at_one_moment_keep_billing(self, storage: Storage, owner: Any,
                                                    dsn: str) -> None:
        """A volume made and resized at one moment (an import, a replay), a VM stopped and
        started again at one moment: each bills every hour after at its last quantity (the
        segment opened and closed at that moment gave way to the open one; it once left
        none open, and nothing was billed again)."""
        with time_machine.travel(at(10), tick=False):
            disk = make(storage, KINDS["volume"], "v", owner.id)
            storage.update_volume(disk.id, {"size": 100})
        machine = vm_running_between(storage, owner, [(10, 11)])
        with time_machine.travel(at(11), tick=False):
            storage.update_virtual_machine(machine.id, {"state": "Running"})
        with time_machine.travel(at(13), tick=False):
            storage.meter(at(12))
        assert sorted((r.period_start.hour, r.resource_type, r.quantity)
                      for r in usage_of(storage, owner.id)) == [
            (10, "block_storage", 100), (10, "compute", 1), (11, "block_storage", 100),
            (11, "compute", 1)]
        assert verify(dsn, ResourcesProjection, storage.reader).ok


METER = ("import sys; from datetime import datetime; from akashone_es import Settings,"
         " open_storage; s = open_storage(Settings(), dsn=sys.argv[1]);"
         " ctx = s.acting_as(system='meter'); ctx.__enter__();"
         " r = s.meter(datetime.fromisoformat(sys.argv[2])); print(r.recorded)")


def run_meter(dsn: str, until: datetime, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", METER, dsn, until.isoformat()], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class TestRacingAndKilledMeters:
    @pytest.fixture
    def many(self, storage: Storage, owner: Any) -> int:
        """100 VMs running 00:00 to 20:00: 2,000 hour windows to meter (10 batches)."""
        with time_machine.travel(at(-0.1), tick=False):
            machines = [storage.create_virtual_machine(create(KINDS["virtual_machine"],
                                                              f"m{n}", owner.id))
                        for n in range(100)]
        with time_machine.travel(at(0), tick=False):
            for machine in machines:
                storage.update_virtual_machine(machine.id, {"state": "Running"})
        with time_machine.travel(at(20), tick=False):
            for machine in machines:
                storage.update_virtual_machine(machine.id, {"state": "Stopped"})
        return 2000

    def env(self, storage: Storage) -> dict[str, str]:
        return {**os.environ, "AKASHONE_SECRET_KEY": storage.settings.secret_key or "",
                "AKASHONE_DATA_DIR": str(storage.settings.data_dir)}

    def totals(self, storage: Storage, owner: Any) -> tuple[int, Decimal]:
        records = storage.get_usage_records(owner.id)
        return len(records), sum((r.total_cost for r in records), Decimal(0))

    def test_two_racing_meters_bill_every_hour_once(self, storage: Storage, owner: Any,
                                                    many: int) -> None:
        env = self.env(storage)
        meters = [run_meter(storage.dsn, at(24), env) for _ in range(2)]
        outputs = [m.communicate(timeout=300) for m in meters]
        assert all(m.returncode == 0 for m in meters), outputs
        assert sum(int(out.strip().splitlines()[-1]) for out, _ in outputs) == many
        assert self.totals(storage, owner) == (many, Decimal(many * 500))

    def test_a_killed_meter_leaves_nothing_half_done(self, storage: Storage, owner: Any,
                                                     many: int) -> None:
        env = self.env(storage)
        meter = run_meter(storage.dsn, at(24), env)
        with psycopg.connect(storage.dsn, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM usage_records").fetchone()[0] == 0:
                assert meter.poll() is None, meter.communicate()
                conn.execute("SELECT pg_sleep(0.002)")
            # hold the next batch mid-transaction, then kill the meter there
            with conn.transaction():
                conn.execute("LOCK TABLE usage_records IN SHARE MODE")
                conn.execute("SELECT pg_sleep(0.3)")
                meter.send_signal(signal.SIGKILL)
                meter.wait(timeout=60)
        partial, _ = self.totals(storage, owner)
        assert 0 < partial < many
        assert partial % 200 == 0  # whole batches only
        again = run_meter(storage.dsn, at(24), env)
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert int(out.strip().splitlines()[-1]) == many - partial
        assert self.totals(storage, owner) == (many, Decimal(many * 500))
