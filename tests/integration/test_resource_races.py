"""Unique keys under two racing processes: for every kind with one, exactly one create wins.

Both processes open storage, wait on a lock the test holds, then create the same resource
(same CloudStack id, address, name, ...) at once. The unique index inside the append
transaction decides: one succeeds, the other gets DuplicateError naming the key's field,
and one row and one Created event exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest

from akashone_es import context
from akashone_es.errors import AkashOneError
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind
from akashone_es.storage import Storage
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import fresh_input

#: every kind with a unique key the sample input fills (a DNS record's is the CNAME rule)
RACED = [kind for kind in KINDS.values() if kind.unique_keys() and kind.name != "dns_record"]
BARRIER = 7_707_001

RACER = """
import json, sys
import psycopg
from akashone_es import DuplicateError, Settings, open_storage
dsn, method, data = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
storage = open_storage(Settings(log_level="warning"), dsn=dsn)
with storage.acting_as(system="race"), psycopg.connect(dsn, autocommit=True) as gate:
    print("ready", flush=True)
    gate.execute("SELECT pg_advisory_lock_shared(%s)", (int(sys.argv[4]),))
    try:
        getattr(storage, method)(data)
        print("ok")
    except DuplicateError as exc:
        print("duplicate", exc.field)
storage.close()
"""


def race(storage: Storage, kind: Kind, data: dict[str, Any]) -> list[str]:
    env = {**os.environ, "AKASHONE_SECRET_KEY": storage.settings.secret_key or "",
           "AKASHONE_DATA_DIR": str(storage.settings.data_dir)}
    payload = json.dumps(data, default=str)
    with psycopg.connect(storage.dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (BARRIER,))
        racers = [subprocess.Popen(
            [sys.executable, "-c", RACER, storage.dsn, kind.method_names()["create"], payload,
             str(BARRIER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
        for racer in racers:  # both are at the gate before it opens
            assert racer.stdout is not None
            assert racer.stdout.readline().strip() == "ready", racer.stderr
        gate.execute("SELECT pg_advisory_unlock(%s)", (BARRIER,))
        outputs = [r.communicate(timeout=120) for r in racers]
    assert all(r.returncode == 0 for r in racers), outputs
    return sorted(out.strip() for out, _ in outputs)


@pytest.mark.parametrize("kind", RACED, ids=[k.name for k in RACED])
def test_one_of_two_racing_creates_wins(storage: Storage, kind: Kind) -> None:
    enable_all_features(storage)
    owner = storage.create_user({"username": "racer", "email": "racer@example.in",
                                 "password": "password-long-1"})
    data = fresh_input(storage, kind, "race", owner.id)
    outcomes = race(storage, kind, data)
    fields = {key.field for key in kind.unique_keys()}
    assert outcomes[1] == "ok", outcomes
    verdict, field = outcomes[0].split()
    assert verdict == "duplicate"
    assert field in fields
    with psycopg.connect(storage.dsn) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {kind.table}").fetchone()
    assert rows == (1,)


def together(*calls: Any) -> list[Any]:
    """Run ``calls`` at once on their own threads (each with its own pooled connection);
    their results, or the project errors they raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Any) -> None:
        with context.entered(ctx):
            barrier.wait()
            try:
                results[index] = call()
            except AkashOneError as exc:
                results[index] = exc

    ctx = context.current()
    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


class TestRacingRules:
    """Rules checked before the append hold under races: the resources they concern record
    each change, so racing writers conflict and the later one checks again."""

    def test_an_attach_racing_the_vms_destroy_never_leaves_a_dangling_disk(
            self, storage: Storage) -> None:
        enable_all_features(storage)
        owner = storage.create_user({"username": "racer", "email": "racer@example.in",
                                     "password": "password-long-1"})
        for n in range(8):
            vm = storage.create_virtual_machine(fresh_input(storage, KINDS["virtual_machine"],
                                                            f"vm{n}", owner.id))
            storage.update_virtual_machine(vm.id, {"state": "Running"})
            disk = storage.create_volume(fresh_input(storage, KINDS["volume"], f"d{n}",
                                                     owner.id))
            storage.update_volume(disk.id, {"state": "Ready"})
            together(lambda v=vm, d=disk: storage.attach_volume(d.id, v.id),
                     lambda v=vm: storage.delete_virtual_machine(v.id))
            after = storage.get_volume(disk.id)
            assert storage.get_virtual_machine(vm.id) is None
            assert (after.state, after.attached_vm_id) == ("Ready", None), n

    def test_a_record_racing_a_cname_at_its_name_never_shares_it(
            self, storage: Storage) -> None:
        enable_all_features(storage)
        owner = storage.create_user({"username": "racer", "email": "racer@example.in",
                                     "password": "password-long-1"})
        domain = storage.create_dns_domain(fresh_input(storage, KINDS["dns_domain"], "z",
                                                       owner.id))
        base = {"user_id": owner.id, "domain_id": domain.id}
        for n in range(8):
            name = f"www{n}"
            together(lambda at=name: storage.create_dns_record({
                         **base, "name": at, "type": "A", "value": "203.0.113.5"}),
                     lambda at=name: storage.create_dns_record({
                         **base, "name": at, "type": "CNAME", "value": "edge.example.net"}))
            kinds = [r.type for r in storage.get_dns_records(domain.id) if r.name == name]
            assert len(kinds) == 1, (name, kinds)
