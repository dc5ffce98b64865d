"""The resource kinds' own behaviour: VM lifecycle and destroy, volumes, snapshots, DNS,
derived values of the managed services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from akashone_es import context
from akashone_es.errors import (
    ConflictError,
    ContextError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.resources import KINDS
from akashone_es.storage import Storage
from tests.conftest import log_size
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import create, fresh_input, make

PASSWORD = "password-long-1"


@pytest.fixture
def people(storage: Storage) -> dict[str, Any]:
    enable_all_features(storage)
    org = storage.create_organization({"name": "alpha org"})
    return {name: storage.create_user({
        "username": name, "email": f"{name}@alpha.example", "password": PASSWORD,
        "organization_id": org.id}) for name in ("asha", "ravi")}


def vm(storage: Storage, owner: Any, tag: str = "web", state: str | None = "Running",
       zone: str = "zone-1") -> Any:
    made = storage.create_virtual_machine({**create(KINDS["virtual_machine"], tag, owner.id),
                                           "zone_id": zone})
    return storage.update_virtual_machine(made.id, {"state": state}) if state else made


def volume(storage: Storage, owner: Any, tag: str = "data", kind: str = "DATADISK",
           zone: str = "zone-1") -> Any:
    made = storage.create_volume({**create(KINDS["volume"], tag, owner.id), "type": kind,
                                  "zone_id": zone})
    return storage.update_volume(made.id, {"state": "Ready"})


class TestVirtualMachines:
    def test_only_real_transitions_are_allowed(self, storage: Storage,
                                               people: dict[str, Any]) -> None:
        machine = vm(storage, people["asha"], state=None)
        assert machine.state == "Creating"
        assert machine.display_name == machine.name
        for state in ("Running", "Stopping", "Stopped", "Starting", "Running"):
            machine = storage.update_virtual_machine(machine.id, {"state": state})
            assert machine.state == state
        before = log_size(storage.dsn)
        with pytest.raises(ConflictError, match="Running"):
            storage.update_virtual_machine(machine.id, {"state": "Expunging"})
        with pytest.raises(ValidationError) as raised:
            storage.update_virtual_machine(machine.id, {"state": "Sleeping"})
        assert raised.value.fields == ["state"]
        assert log_size(storage.dsn) == before
        assert storage.get_virtual_machine(machine.id).state == "Running"

    def test_a_vm_in_error_is_only_destroyed_or_expunged(self, storage: Storage,
                                                         people: dict[str, Any]) -> None:
        """CloudStack moves a VM in Error only to Expunging (or destroys it): setting it
        Running again would bill a VM that is not running."""
        machine = vm(storage, people["asha"], state="Error")
        before = log_size(storage.dsn)
        for state in ("Running", "Starting", "Stopped"):
            with pytest.raises(ConflictError, match="Error"):
                storage.update_virtual_machine(machine.id, {"state": state})
        assert log_size(storage.dsn) == before
        assert storage.update_virtual_machine(machine.id, {"state": "Expunging"}).state == (
            "Expunging")

    def test_a_report_older_than_one_recorded_changes_nothing(
            self, storage: Storage, people: dict[str, Any]) -> None:
        """Found in review: CloudStack's Stopped, then an older Running delivered late,
        left the VM Running (and billed). With the report's time, the stale one is ignored;
        one in the future is refused."""
        machine = vm(storage, people["asha"])
        cs_id, now = machine.cloudstack_id, datetime.now(UTC)
        assert storage.observe_virtual_machine(
            cs_id, {"state": "Stopped"}, reported_at=now - timedelta(seconds=10)
        ).state == "Stopped"
        before = log_size(storage.dsn)
        assert storage.observe_virtual_machine(
            cs_id, {"state": "Running"}, reported_at=now - timedelta(seconds=20)
        ).state == "Stopped"
        assert log_size(storage.dsn) == before
        with pytest.raises(ValidationError) as refused:
            storage.observe_virtual_machine(cs_id, {"state": "Running"},
                                            reported_at=now + timedelta(hours=1))
        assert refused.value.fields == ["reported_at"]
        assert storage.observe_virtual_machine(
            cs_id, {"state": "Running"}, reported_at=now).state == "Running"

    def test_a_state_change_stamps_last_synced(self, storage: Storage,
                                               people: dict[str, Any]) -> None:
        machine = vm(storage, people["asha"], state=None)
        moved = storage.update_virtual_machine(machine.id, {"state": "Running",
                                                            "ip_address": "10.0.0.5"})
        assert moved.ip_address == "10.0.0.5"
        assert moved.last_synced > machine.last_synced

    def test_destroy_detaches_releases_and_removes_in_one_transaction(
            self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        machine = vm(storage, owner)
        data = storage.attach_volume(volume(storage, owner).id, machine.id)
        root = storage.attach_volume(volume(storage, owner, "root", "ROOT").id, machine.id)
        nat = storage.create_nat_gateway({**fresh_input(storage, KINDS["nat_gateway"], "nat",
                                                        owner.id),
                                          "type": "StaticNAT", "vm_id": machine.id})
        snapshot = storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "s", owner.id,
                                                     machine.id))
        with psycopg.connect(storage.dsn) as conn:
            before = conn.execute("SELECT max(notification_id) FROM akashone_events"
                                  ).fetchone()[0]
        assert storage.delete_virtual_machine(machine.id) is True
        assert storage.get_virtual_machine(machine.id) is None
        detached = storage.get_volume(data.id)
        assert (detached.state, detached.attached_vm_id, detached.device_id) == (
            "Ready", None, None)
        assert storage.get_volume(root.id) is None
        assert storage.get_nat_gateway(nat.id) is None
        assert storage.get_vm_snapshot(snapshot.id) is None
        with psycopg.connect(storage.dsn) as conn:
            rows = conn.execute(
                "SELECT topic, originator_id FROM akashone_events WHERE notification_id > %s"
                " ORDER BY notification_id", (before,)).fetchall()
            # one transaction: all of them commit together, so one xmin
            assert conn.execute("SELECT count(DISTINCT xmin::text) FROM akashone_events"
                                " WHERE notification_id > %s", (before,)).fetchone() == (1,)
        assert len(rows) == 5
        assert {r[1] for r in rows} == {data.id, root.id, nat.id, snapshot.id, machine.id}


class TestVolumes:
    def test_attach_and_detach(self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        machine, disk = vm(storage, owner), volume(storage, owner)
        attached = storage.attach_volume(disk.id, machine.id)
        assert (attached.state, attached.attached_vm_id, attached.attached_vm_name,
                attached.device_id) == ("Attached", machine.id, machine.name, 1)
        second = storage.attach_volume(volume(storage, owner, "more").id, machine.id, "alias")
        assert (second.device_id, second.attached_vm_name) == (2, "alias")
        with pytest.raises(ConflictError, match="already"):
            storage.attach_volume(disk.id, machine.id)
        with pytest.raises(ConflictError, match="detach"):
            storage.delete_volume(disk.id)
        with pytest.raises(ConflictError, match="own actions"):
            storage.update_volume(disk.id, {"state": "Ready"})
        detached = storage.detach_volume(disk.id)
        assert (detached.state, detached.attached_vm_id) == ("Ready", None)
        with pytest.raises(ConflictError):
            storage.detach_volume(disk.id)
        assert storage.delete_volume(disk.id) is True

    @pytest.mark.parametrize("case", ["other zone", "other owner", "creating vm", "no vm"])
    def test_attach_refusals(self, storage: Storage, people: dict[str, Any],
                             case: str) -> None:
        asha, ravi = people["asha"], people["ravi"]
        disk = volume(storage, asha)
        target = {"other zone": lambda: vm(storage, asha, zone="zone-2").id,
                  "other owner": lambda: vm(storage, ravi).id,
                  "creating vm": lambda: vm(storage, asha, state=None).id,
                  "no vm": lambda: KINDS["virtual_machine"].name and disk.id}[case]()
        before = log_size(storage.dsn)
        with pytest.raises((ConflictError, PermissionDeniedError, NotFoundError)):
            storage.attach_volume(disk.id, target)
        assert log_size(storage.dsn) == before
        assert storage.get_volume(disk.id).state == "Ready"

    def test_a_vm_boots_from_one_root_volume(self, storage: Storage,
                                             people: dict[str, Any]) -> None:
        owner = people["asha"]
        machine = vm(storage, owner)
        storage.attach_volume(volume(storage, owner, "root", "ROOT").id, machine.id)
        second = volume(storage, owner, "root2", "ROOT")
        with pytest.raises(ConflictError, match="ROOT volume already"):
            storage.attach_volume(second.id, machine.id)
        assert storage.get_volume(second.id).state == "Ready"
        assert storage.attach_volume(volume(storage, owner, "d").id, machine.id).state == (
            "Attached")

    def test_a_root_volume_is_never_detached(self, storage: Storage,
                                             people: dict[str, Any]) -> None:
        owner = people["asha"]
        root = storage.attach_volume(volume(storage, owner, "root", "ROOT").id,
                                     vm(storage, owner).id)
        with pytest.raises(ConflictError, match="ROOT"):
            storage.detach_volume(root.id)
        with pytest.raises(ConflictError, match="ROOT"):
            storage.delete_volume(root.id)


class TestSnapshots:
    def test_restore_sets_the_vm_state_and_lists_are_per_vm_and_owner(
            self, storage: Storage, people: dict[str, Any]) -> None:
        asha = people["asha"]
        machine = vm(storage, asha)
        kept = storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "m", asha.id,
                                                 machine.id))
        cold = storage.create_vm_snapshot({**create(KINDS["vm_snapshot"], "c", asha.id,
                                                    machine.id), "snapshot_memory": False})
        assert {s.id for s in storage.get_vm_snapshots(machine.id, asha.id)} == {kept.id,
                                                                                 cold.id}
        assert storage.get_vm_snapshots(machine.id, people["ravi"].id) == []
        assert storage.restore_vm_snapshot(cold.id).state == "Stopped"
        assert storage.restore_vm_snapshot(kept.id).state == "Running"

    def test_only_a_running_or_stopped_vm_is_snapshotted_or_reverted(
            self, storage: Storage, people: dict[str, Any]) -> None:
        """CloudStack snapshots and reverts a Running or Stopped VM, to a Ready snapshot;
        a revert once made a VM in Error, or still Creating, Running."""
        asha = people["asha"]
        machine = vm(storage, asha)
        snap = storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "m", asha.id,
                                                 machine.id))
        for state in (None, "Error"):
            other = vm(storage, asha, f"vm{state}", state=state)
            with pytest.raises(ConflictError, match=other.state):
                storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "x", asha.id,
                                                  other.id))
        storage.update_virtual_machine(machine.id, {"state": "Error"})
        before = log_size(storage.dsn)
        with pytest.raises(ConflictError, match="Error"):
            storage.restore_vm_snapshot(snap.id)
        assert log_size(storage.dsn) == before
        assert storage.get_virtual_machine(machine.id).state == "Error"
        healthy = vm(storage, asha, "healthy")
        broken = storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "b", asha.id,
                                                   healthy.id))
        storage.observe_vm_snapshot(broken.cloudstack_snapshot_id, {"state": "Error"})
        with pytest.raises(ConflictError, match="snapshot that is Error"):
            storage.restore_vm_snapshot(broken.id)

    def test_a_snapshot_is_taken_of_the_owners_vm_only(self, storage: Storage,
                                                       people: dict[str, Any]) -> None:
        machine = vm(storage, people["asha"])
        with pytest.raises(PermissionDeniedError, match="vm_id"):
            storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "x", people["ravi"].id,
                                              machine.id))
        with pytest.raises(NotFoundError):
            storage.create_vm_snapshot(create(KINDS["vm_snapshot"], "x", people["ravi"].id,
                                              people["ravi"].id))


class TestDns:
    def test_record_count_and_last_modified_follow_the_records(
            self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        domain = make(storage, KINDS["dns_domain"], "zone", owner.id)
        assert (domain.record_count, domain.status) == (0, "pending")
        record = lambda **kw: storage.create_dns_record(  # noqa: E731
            {**create(KINDS["dns_record"], "r", owner.id, domain.id), **kw})
        www = record(name="www")
        mail = record(type="MX", name="@", value="mail.example.com", priority=10)
        after = storage.get_dns_domain(domain.id)
        assert after.record_count == 2
        assert after.last_modified >= mail.created_at
        storage.update_dns_record(www.id, {"ttl": 120})
        assert storage.get_dns_domain(domain.id).last_modified > after.last_modified
        storage.delete_dns_record(www.id)
        assert storage.get_dns_domain(domain.id).record_count == 1
        assert [r.id for r in storage.get_dns_records(domain.id)] == [mail.id]
        assert storage.delete_dns_domain(domain.id) is True
        assert storage.get_dns_record(mail.id) is None

    @pytest.mark.parametrize(("fields", "field"), [
        ({"type": "A", "value": "2001:db8::1"}, "value"),
        ({"type": "AAAA", "value": "203.0.113.1"}, "value"),
        ({"type": "CNAME", "value": "not a name"}, "value"),
        ({"type": "MX", "value": "mail.example.com"}, "priority"),
        ({"type": "A", "priority": 10}, "priority"),
        ({"type": "SRV", "value": "5 0 sip.example.com", "priority": 1}, "value"),
        ({"type": "CAA", "value": "issue letsencrypt.org"}, "value"),
        ({"type": "PTR"}, "type"),
        ({"ttl": 5}, "ttl"),
        ({"name": "bad name"}, "name"),
    ])
    def test_values_are_checked_per_type(self, storage: Storage, people: dict[str, Any],
                                         fields: dict[str, Any], field: str) -> None:
        owner = people["asha"]
        domain = make(storage, KINDS["dns_domain"], "zone", owner.id)
        with pytest.raises(ValidationError) as raised:
            storage.create_dns_record({**create(KINDS["dns_record"], "r", owner.id,
                                                domain.id), **fields})
        assert field in raised.value.fields

    def test_a_cname_is_alone_at_its_name(self, storage: Storage,
                                          people: dict[str, Any]) -> None:
        owner = people["asha"]
        domain = make(storage, KINDS["dns_domain"], "zone", owner.id)
        base = create(KINDS["dns_record"], "r", owner.id, domain.id)
        storage.create_dns_record({**base, "name": "shop"})
        with pytest.raises(ConflictError, match="CNAME"):
            storage.create_dns_record({**base, "name": "shop", "type": "CNAME",
                                       "value": "shops.example.net"})
        storage.create_dns_record({**base, "name": "blog", "type": "CNAME",
                                   "value": "blogs.example.net"})
        with pytest.raises(ConflictError, match="CNAME"):
            storage.create_dns_record({**base, "name": "blog"})

    def test_a_domain_once_per_tenant(self, storage: Storage, people: dict[str, Any]) -> None:
        kind = KINDS["dns_domain"]
        storage.create_dns_domain({**create(kind, "z", people["asha"].id),
                                   "name": "Shop.Example.com."})
        with pytest.raises(DuplicateError) as raised:
            storage.create_dns_domain({**create(kind, "z", people["ravi"].id),
                                       "name": "shop.example.com"})
        assert raised.value.field == "name"


class TestManagedServices:
    def test_cluster_totals_follow_the_node_counts(self, storage: Storage,
                                                   people: dict[str, Any]) -> None:
        cluster = make(storage, KINDS["kubernetes_cluster"], "k", people["asha"].id)
        assert (cluster.master_nodes, cluster.worker_nodes, cluster.cpu_total,
                cluster.memory_total, cluster.pods_total, cluster.status) == (
            3, 3, 24, 96, 250, "creating")
        grown = storage.update_kubernetes_cluster(cluster.id, {"worker_nodes": 7,
                                                               "status": "running"})
        assert (grown.cpu_total, grown.memory_total, grown.status) == (40, 160, "running")
        with pytest.raises(ValidationError) as raised:
            storage.update_kubernetes_cluster(cluster.id, {"cpu_total": 1})
        assert raised.value.fields == ["cpu_total"]

    @pytest.mark.parametrize(("engine", "port", "connections"), [
        ("mysql", 3306, 200), ("postgresql", 5432, 500), ("mongodb", 27017, 100),
        ("redis", 6379, 1000)])
    def test_database_endpoint_port_and_limits(self, storage: Storage, people: dict[str, Any],
                                               engine: str, port: int,
                                               connections: int) -> None:
        db = storage.create_database({**create(KINDS["database"], engine, people["asha"].id),
                                      "name": f"orders-{engine}", "engine": engine})
        assert (db.endpoint, db.port, db.connections_max, db.connections_current,
                db.storage, db.status) == (f"orders-{engine}.akashone.com", port, connections,
                                           0, 100, "creating")

    def test_database_names_are_unique_endpoints(self, storage: Storage,
                                                 people: dict[str, Any]) -> None:
        kind = KINDS["database"]
        storage.create_database({**create(kind, "a", people["asha"].id), "name": "orders"})
        with pytest.raises(DuplicateError) as raised:
            storage.create_database({**create(kind, "b", people["ravi"].id), "name": "orders"})
        assert raised.value.field == "name"
        with pytest.raises(ValidationError) as invalid:
            storage.create_database({**create(kind, "c", people["ravi"].id),
                                     "engine": "oracle"})
        assert invalid.value.fields == ["engine"]


class TestLookups:
    def test_a_reserved_ip_is_found_by_any_spelling_of_its_address(
            self, storage: Storage, people: dict[str, Any]) -> None:
        kind = KINDS["reserved_ip"]
        made = storage.create_reserved_ip({**create(kind, "ip", people["asha"].id),
                                           "ip_address": "2001:DB8:0:0::10"})
        assert made.ip_address == "2001:db8::10"
        assert storage.get_reserved_ip_by_address("2001:db8:0000::0010").id == made.id
        assert storage.get_reserved_ip_by_address("not an address") is None

    def test_an_ssh_key_by_name_is_per_user(self, storage: Storage,
                                            people: dict[str, Any]) -> None:
        kind = KINDS["ssh_key"]
        asha, ravi = people["asha"], people["ravi"]
        mine = storage.create_ssh_key({**create(kind, "k", asha.id), "name": "laptop"})
        theirs = storage.create_ssh_key({**create(kind, "k", ravi.id), "name": "laptop"})
        assert storage.get_ssh_key_by_name("laptop", asha.id).id == mine.id
        assert storage.get_ssh_key_by_name("laptop", ravi.id).id == theirs.id
        assert storage.get_ssh_key_by_name("desktop", asha.id) is None


class TestActivity:
    def test_resource_events_are_named_by_kind_and_copy_no_field(
            self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        key = storage.create_ssh_key({**create(KINDS["ssh_key"], "k", owner.id),
                                      "private_key": "PRIVATE-KEY-TEXT"})
        machine = vm(storage, owner, "web")
        storage.attach_volume(volume(storage, owner).id, machine.id)
        rows = storage.get_user_activities()
        actions = {(r.action, r.resource_type) for r in rows}
        assert {("ssh_key.created", "ssh_key"), ("virtual_machine.created", "virtual_machine"),
                ("virtual_machine.update", "virtual_machine"),
                ("volume.attach", "volume")} <= actions
        assert any(r.resource_id == str(key.id) and r.resource_name == key.name for r in rows)
        with psycopg.connect(storage.dsn) as conn:
            leaked = conn.execute("SELECT count(*) FROM user_activities WHERE"
                                  " user_activities::text LIKE '%PRIVATE-KEY%'").fetchone()
        assert leaked == (0,)


class TestReviewedHoles:
    """Holes a hostile review found, each closed."""

    def test_a_private_key_pasted_with_the_certificate_is_refused(
            self, storage: Storage, people: dict[str, Any]) -> None:
        kind = KINDS["ssl_certificate"]
        data = create(kind, "c", people["asha"].id)
        before = log_size(storage.dsn)
        for field, value in (("certificate", data["certificate"] + data["private_key"]),
                             ("chain", data["certificate"] + data["private_key"])):
            with pytest.raises(ValidationError) as raised:
                storage.create_ssl_certificate({**data, field: value})
            assert field in raised.value.fields
        assert log_size(storage.dsn) == before

    def test_another_tenants_domain_tells_nothing_of_its_records(
            self, storage: Storage, people: dict[str, Any]) -> None:
        bravo_org = storage.create_organization({"name": "bravo org"})
        bravo = storage.create_user({"username": "bravo", "email": "b@bravo.example",
                                     "password": PASSWORD, "organization_id": bravo_org.id})
        domain = make(storage, KINDS["dns_domain"], "z", bravo.id)
        storage.create_dns_record({**create(KINDS["dns_record"], "r", bravo.id, domain.id),
                                   "name": "mail"})
        asha = people["asha"]
        with storage.acting_as(actor_id=asha.id):
            for name in ("mail", "empty"):
                with pytest.raises(NotFoundError):
                    storage.create_dns_record({
                        **create(KINDS["dns_record"], "x", asha.id, domain.id),
                        "name": name, "type": "CNAME", "value": "x.example.net"})

    def test_an_update_cannot_put_a_record_beside_a_cname(
            self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        domain = make(storage, KINDS["dns_domain"], "z", owner.id)
        base = create(KINDS["dns_record"], "r", owner.id, domain.id)
        storage.create_dns_record({**base, "name": "www"})
        cname = storage.create_dns_record({**base, "name": "blog", "type": "CNAME",
                                           "value": "blogs.example.net"})
        with pytest.raises(ConflictError, match="CNAME"):
            storage.update_dns_record(cname.id, {"name": "www"})
        txt = storage.create_dns_record({**base, "name": "txt", "type": "TXT",
                                         "value": "hello"})
        with pytest.raises(ConflictError, match="CNAME"):
            storage.update_dns_record(txt.id, {"name": "blog"})

    def test_backdating_is_the_platforms_and_never_before_the_last_change(
            self, storage: Storage, people: dict[str, Any]) -> None:
        owner = people["asha"]
        disk = volume(storage, owner)
        with context.events_at(disk.last_synced - timedelta(hours=1)):
            with pytest.raises(ConflictError, match="before it"):
                storage.update_volume(disk.id, {"size": 60})
            with storage.acting_as(actor_id=owner.id), pytest.raises(ContextError):
                make(storage, KINDS["volume"], "t", owner.id)
        assert storage.get_volume(disk.id).size == 50

    def test_an_unattached_root_volume_can_be_deleted(self, storage: Storage,
                                                      people: dict[str, Any]) -> None:
        root = volume(storage, people["asha"], "root", "ROOT")
        assert storage.delete_volume(root.id) is True

    @pytest.mark.parametrize("state", [["Running"], 1, {"x": 1}])
    def test_a_state_that_is_not_text_is_a_validation_error(
            self, storage: Storage, people: dict[str, Any], state: Any) -> None:
        machine = vm(storage, people["asha"], state=None)
        with pytest.raises(ValidationError) as raised:
            storage.update_virtual_machine(machine.id, {"state": state})
        assert raised.value.fields == ["state"]
        with pytest.raises(ValidationError) as raised:
            storage.observe_virtual_machine(machine.cloudstack_id, {"state": state})
        assert raised.value.fields == ["state"]

    def test_an_attach_names_the_vm_within_bounds(self, storage: Storage,
                                                  people: dict[str, Any]) -> None:
        owner = people["asha"]
        with pytest.raises(ValidationError) as raised:
            storage.attach_volume(volume(storage, owner).id, vm(storage, owner).id, "x" * 201)
        assert raised.value.fields == ["vm_name"]


class TestOrganizationMoves:
    def test_a_user_who_owns_resources_is_not_moved(self, storage: Storage,
                                                    people: dict[str, Any]) -> None:
        """Its resources belong to its organization (whose tenants see them, and whose
        invoices bill them): moving it would strand them."""
        owner = people["asha"]
        other = storage.create_organization({"name": "other org"})
        key = make(storage, KINDS["ssh_key"], "k", owner.id)
        with pytest.raises(ConflictError, match="owns 1 cloud resource"):
            storage.update_user(owner.id, {"organization_id": other.id})
        assert storage.get_user(owner.id).organization_id == owner.organization_id
        storage.delete_ssh_key(key.id)
        moved = storage.update_user(owner.id, {"organization_id": other.id})
        assert moved.organization_id == other.id

    def test_a_user_whose_resources_ran_metered_hours_is_not_moved(
            self, storage: Storage, people: dict[str, Any]) -> None:
        """A disk deleted before the meter ran: its hours are the organization's to bill,
        and a move would have let the meter bill them in the other (whose tenants read
        them)."""
        owner = people["asha"]
        other = storage.create_organization({"name": "other org"})
        storage.delete_volume(volume(storage, owner).id)
        before = log_size(storage.dsn)
        with pytest.raises(ConflictError, match="ran 1 metered cloud resource"):
            storage.update_user(owner.id, {"organization_id": other.id})
        assert log_size(storage.dsn) == before
