"""Every declared resource kind through its generated methods: one suite, parametrized.

Create, get, list, get by CloudStack id, update, delete; tenancy both ways; unique keys;
bad input naming the field with the log unchanged; the feature flag; rebuild equivalence.
Kind-specific rules have their own tests below the suite.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from akashone_es.domain.catalog import feature_flag_id_for
from akashone_es.errors import (
    DuplicateError,
    FeatureDisabledError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.resources import KINDS
from akashone_es.resources.kind import Kind
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.rebuild import verify
from projections.resources import ResourcesProjection
from tests.conftest import log_size
from tests.integration.access_fixtures import call
from tests.integration.resource_samples import (
    OBSERVATIONS,
    SAMPLES,
    UPDATES,
    create,
    fresh_input,
    listed,
    make,
)

ALL = list(KINDS.values())
IDS = [kind.name for kind in ALL]
PASSWORD = "password-long-1"


def has(kind: Kind, method: str) -> bool:
    return method in kind.methods


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(KINDS)
    assert {k.name for k in ALL if k.updatable} == set(UPDATES)
    assert {k.name for k in ALL if k.observed} == set(OBSERVATIONS)


@pytest.mark.parametrize("kind", ALL, ids=IDS)
class TestEveryKind:
    def test_create_get_list_update_delete(self, storage: Storage, world: dict[str, Any],
                                           kind: Kind) -> None:
        owner = world["alpha"]
        made = make(storage, kind, "one", owner.id)
        assert made.user_id == owner.id
        assert made.organization_id == owner.organization_id
        if kind.lifecycle:
            assert getattr(made, kind.lifecycle.field) == kind.lifecycle.initial
        assert call(storage, kind, "get", made.id) == made.model_copy(
            update=dict.fromkeys(kind.secrets))
        assert [r.id for r in listed(storage, kind, made)] == [made.id]
        if has(kind, "by_cloudstack_id"):
            found = call(storage, kind, "by_cloudstack_id",
                         getattr(made, kind.cloudstack_column))
            assert found is not None
            assert found.id == made.id
        if has(kind, "update"):
            changes = UPDATES[kind.name]
            updated = call(storage, kind, "update", made.id, changes)
            for name, value in changes.items():
                assert getattr(updated, name) == value
            if kind.stamp:  # AkashOne's last_synced / last_modified move with every change
                assert getattr(updated, kind.stamp) > getattr(made, kind.stamp)
            assert call(storage, kind, "get", made.id) == updated
            before = log_size(storage.dsn)
            assert call(storage, kind, "update", made.id, changes) == updated
            assert log_size(storage.dsn) == before, "an update that changes nothing appended"
        assert call(storage, kind, "delete", made.id) is True
        assert call(storage, kind, "get", made.id) is None
        assert listed(storage, kind, made) == []
        assert call(storage, kind, "delete", made.id) is False

    def test_another_tenant_sees_and_changes_nothing(
            self, storage: Storage, world: dict[str, Any], kind: Kind) -> None:
        alpha, bravo = world["alpha"], world["bravo"]
        made = make(storage, kind, "mine", alpha.id)
        theirs = fresh_input(storage, kind, "theirs", alpha.id)
        with storage.acting_as(actor_id=bravo.id):
            assert call(storage, kind, "get", made.id) is None
            assert listed(storage, kind, made) == []
            if has(kind, "by_cloudstack_id"):
                assert call(storage, kind, "by_cloudstack_id",
                            getattr(made, kind.cloudstack_column)) is None
            if has(kind, "update"):
                assert call(storage, kind, "update", made.id, UPDATES[kind.name]) is None
            assert call(storage, kind, "delete", made.id) is False
            with pytest.raises(NotFoundError):
                call(storage, kind, "create", theirs)
        with storage.acting_as(actor_id=alpha.id):
            assert call(storage, kind, "get", made.id) == listed(storage, kind, made)[0]
            own = make(storage, kind, "own", alpha.id)
            assert own.organization_id == alpha.organization_id

    def test_bad_input_names_the_field_and_writes_nothing(
            self, storage: Storage, world: dict[str, Any], kind: Kind) -> None:
        data = fresh_input(storage, kind, "bad", world["alpha"].id)
        required = next(name for name, info in kind.fields.model_fields.items()
                        if info.is_required())
        before = log_size(storage.dsn)
        for broken, field in (({k: v for k, v in data.items() if k != required}, required),
                              ({**data, "surprise": 1}, "surprise"),
                              ({**data, "user_id": "not-a-uuid"}, "user_id")):
            with pytest.raises(ValidationError) as raised:
                call(storage, kind, "create", broken)
            assert field in raised.value.fields
        if kind.lifecycle:
            with pytest.raises(ValidationError) as raised:
                call(storage, kind, "create", {**data, kind.lifecycle.field: "Running"})
            assert kind.lifecycle.field in raised.value.fields
        assert log_size(storage.dsn) == before

    def test_cloudstack_id_is_unique(self, storage: Storage, world: dict[str, Any],
                                     kind: Kind) -> None:
        if kind.cloudstack == "none":
            pytest.skip("no CloudStack id")
        first = fresh_input(storage, kind, "first", world["alpha"].id)
        call(storage, kind, "create", first)
        again = {**fresh_input(storage, kind, "second", world["bravo"].id),
                 kind.cloudstack_column: first[kind.cloudstack_column]}
        before = log_size(storage.dsn)
        with pytest.raises(DuplicateError) as raised:
            call(storage, kind, "create", again)
        assert raised.value.field == kind.cloudstack_column
        assert log_size(storage.dsn) == before

    def test_an_observation_appends_only_what_changed(
            self, storage: Storage, world: dict[str, Any], kind: Kind) -> None:
        """CloudStack's report: a change is one Observed event stamped by the sync's context;
        the same report again appends nothing but moves observed_at."""
        if not kind.observed:
            pytest.skip("not observed")
        made = make(storage, kind, "seen", world["alpha"].id)
        cloudstack_id = getattr(made, kind.cloudstack_column)
        before = log_size(storage.dsn)
        with storage.acting_as(system="cloudstack sync"):
            seen = call(storage, kind, "observe", cloudstack_id, OBSERVATIONS[kind.name])
        for name, value in OBSERVATIONS[kind.name].items():
            assert getattr(seen, name) == value
        assert log_size(storage.dsn) == before + 1
        with psycopg.connect(storage.dsn) as conn:
            topic, metadata = conn.execute(
                "SELECT topic, convert_from(state, 'UTF8')::jsonb -> 'metadata'"
                " FROM akashone_events ORDER BY notification_id DESC LIMIT 1").fetchone()
        assert topic.endswith("Resource.Observed")
        assert (metadata["actor_kind"], metadata["reason"]) == ("system", "cloudstack sync")
        again = call(storage, kind, "observe", cloudstack_id, OBSERVATIONS[kind.name])
        assert log_size(storage.dsn) == before + 1, "an unchanged observation appended"
        assert again.observed_at > seen.observed_at
        if kind.stamp:
            assert getattr(again, kind.stamp) == again.observed_at
        assert call(storage, kind, "observe", "no-such-id", OBSERVATIONS[kind.name]) is None
        with pytest.raises(ValidationError) as raised:
            call(storage, kind, "observe", cloudstack_id, {"user_id": world["bravo"].id})
        assert raised.value.fields == ["user_id"]
        with storage.acting_as(actor_id=world["alpha"].id), pytest.raises(
                PermissionDeniedError):
            call(storage, kind, "observe", cloudstack_id, OBSERVATIONS[kind.name])

    def test_refused_while_its_feature_is_off(self, storage: Storage, world: dict[str, Any],
                                              kind: Kind) -> None:
        if kind.flag is None:
            pytest.skip("no feature flag")
        data = fresh_input(storage, kind, "off", world["alpha"].id)
        flag = storage.get_feature_flag_by_key(kind.flag)
        storage.update_feature_flag(flag.id, {"enabled": False})
        before = log_size(storage.dsn)
        with pytest.raises(FeatureDisabledError, match=kind.flag):
            call(storage, kind, "create", data)
        assert log_size(storage.dsn) == before


class TestRebuild:
    def test_rebuild_gives_the_same_tables(self, storage: Storage,
                                           world: dict[str, Any]) -> None:
        """Every kind created, updated and some deleted; a replay equals the live tables."""
        for n, kind in enumerate(ALL):
            made = [make(storage, kind, f"r{n}-{i}", world["alpha"].id) for i in range(3)]
            if has(kind, "update"):
                call(storage, kind, "update", made[0].id, UPDATES[kind.name])
            call(storage, kind, "delete", made[1].id)
        result = verify(storage.dsn, ResourcesProjection, storage.reader)
        assert result.ok, result


class TestFeatureFlags:
    def test_seeding_is_idempotent_and_has_akashones_thirty(self, storage: Storage) -> None:
        assert storage.initialize_default_feature_flags() == 30
        assert storage.initialize_default_feature_flags() == 0
        flags = storage.get_feature_flags()
        assert len(flags) == 30
        assert [f.sort_order for f in flags] == sorted(f.sort_order for f in flags)
        on = {f.key for f in flags if f.enabled}
        assert on == {"virtual_machines", "kubernetes", "database", "dns", "object_storage",
                      "billing"}

    def test_seeded_flags_have_ids_derived_from_their_keys(self, storage: Storage) -> None:
        """As permissions: the same flag has the same id in every database (found in a spec
        review: they were random). A flag deleted and seeded again takes a new id."""
        storage.initialize_default_feature_flags()
        flags = storage.get_feature_flags()
        assert all(f.id == feature_flag_id_for(f.key) for f in flags)
        vpc = storage.get_feature_flag_by_key("vpc")
        assert storage.delete_feature_flag(vpc.id)
        assert storage.initialize_default_feature_flags() == 1
        again = storage.get_feature_flag_by_key("vpc")
        assert again is not None
        assert again.id != vpc.id

    def test_two_processes_seeding_at_once_seed_each_flag_once(
            self, storage: Storage, settings: Settings) -> None:
        """Both derive the same ids: the one that commits second finds them taken (or the
        keys), looks again and adds nothing."""
        others = [open_storage(settings, dsn=storage.dsn) for _ in range(2)]
        start = threading.Barrier(2)
        added: list[int] = []

        def seed(store: Storage) -> None:
            with store.acting_as(system="seed"):
                start.wait()
                added.append(store.initialize_default_feature_flags())

        try:
            threads = [threading.Thread(target=seed, args=(s,)) for s in others]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            for other in others:
                other.close()
        assert sorted(added) == [0, 30]
        assert len(storage.get_feature_flags()) == 30

    def test_a_tenant_reads_flags_but_cannot_toggle_them(self, storage: Storage,
                                                         world: dict[str, Any]) -> None:
        flag = storage.get_feature_flag_by_key("vpc")
        with storage.acting_as(actor_id=world["alpha"].id):
            assert storage.get_feature_flag(flag.id) == flag
            with pytest.raises(PermissionDeniedError):
                storage.update_feature_flag(flag.id, {"enabled": False})
        assert storage.get_feature_flag(flag.id) == flag

    def test_a_change_moves_updated_at(self, storage: Storage) -> None:
        flag = storage.create_feature_flag({"key": "beta_thing", "name": "Beta", "category": "X"})
        changed = storage.update_feature_flag(flag.id, {"enabled": True})
        assert changed is not None
        assert changed.enabled
        assert changed.updated_at > flag.updated_at
        assert changed.created_at == flag.created_at

    def test_keys_are_unique(self, storage: Storage) -> None:
        storage.create_feature_flag({"key": "beta_thing", "name": "Beta", "category": "X"})
        with pytest.raises(DuplicateError) as raised:
            storage.create_feature_flag({"key": "beta_thing", "name": "Again", "category": "X"})
        assert raised.value.field == "key"

    def test_a_missing_flag_refuses_with_a_clear_error(self, storage: Storage,
                                                       world: dict[str, Any]) -> None:
        kind = KINDS["vpc"]
        flag = storage.get_feature_flag_by_key("vpc")
        storage.delete_feature_flag(flag.id)
        with pytest.raises(FeatureDisabledError, match="initialize_default_feature_flags"):
            call(storage, kind, "create", create(kind, "x", world["alpha"].id))


# -- kind-specific rules ------------------------------------------------------------------
class TestNetworkRules:
    @pytest.mark.parametrize(("changes", "field"), [
        ({"cidr": "8.8.8.0/24"}, "cidr"),
        ({"cidr": "10.0.0.1/16"}, "cidr"),
        ({"zone_id": ""}, "zone_id"),
    ])
    def test_vpc_inputs(self, storage: Storage, world: dict[str, Any],
                        changes: dict[str, Any], field: str) -> None:
        kind = KINDS["vpc"]
        with pytest.raises(ValidationError) as raised:
            call(storage, kind, "create", {**create(kind, "v", world["alpha"].id), **changes})
        assert field in raised.value.fields

    @pytest.mark.parametrize(("changes", "field"), [
        ({"protocol": "gre"}, "protocol"),
        ({"start_port": 0}, "start_port"),
        ({"end_port": 65536}, "end_port"),
        ({"start_port": 90, "end_port": 80}, "start_port"),
        ({"protocol": "icmp"}, "start_port"),
        ({"cidr_list": ["10.0.0.0/33"]}, "cidr_list"),
        ({"purpose": "Anything"}, "purpose"),
    ])
    def test_firewall_rule_inputs(self, storage: Storage, world: dict[str, Any],
                                  changes: dict[str, Any], field: str) -> None:
        kind = KINDS["firewall_rule"]
        with pytest.raises(ValidationError) as raised:
            call(storage, kind, "create", {**create(kind, "f", world["alpha"].id), **changes})
        assert field in raised.value.fields

    def test_an_update_is_checked_against_the_whole_record(
            self, storage: Storage, world: dict[str, Any]) -> None:
        """start <= end holds after merging: lowering end_port below start_port is refused."""
        kind = KINDS["firewall_rule"]
        rule = call(storage, kind, "create", create(kind, "f", world["alpha"].id))
        with pytest.raises(ValidationError) as raised:
            call(storage, kind, "update", rule.id, {"end_port": 21})
        assert "start_port" in raised.value.fields
        with pytest.raises(ValidationError) as raised:
            call(storage, kind, "update", rule.id, {"state": "Inactive"})
        assert "state" in raised.value.fields

    def test_a_reserved_address_belongs_to_one_tenant(
            self, storage: Storage, world: dict[str, Any]) -> None:
        kind = KINDS["reserved_ip"]
        call(storage, kind, "create", {**create(kind, "a", world["alpha"].id),
                                       "ip_address": "203.0.113.7"})
        with pytest.raises(DuplicateError) as raised:
            call(storage, kind, "create", {**create(kind, "b", world["bravo"].id),
                                           "ip_address": "203.0.113.7"})
        assert raised.value.field == "ip_address"
        with pytest.raises(ValidationError) as invalid:
            call(storage, kind, "create", {**create(kind, "c", world["bravo"].id),
                                           "ip_address": "203.0.113.300"})
        assert "ip_address" in invalid.value.fields


class TestSshKeys:
    def test_fingerprint_is_computed_and_private_key_shown_once(
            self, storage: Storage, world: dict[str, Any]) -> None:
        kind = KINDS["ssh_key"]
        made = call(storage, kind, "create", {**create(kind, "k", world["alpha"].id),
                                              "private_key": "PRIVATE-KEY-TEXT"})
        assert made.fingerprint == "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
        assert made.private_key == "PRIVATE-KEY-TEXT"
        assert call(storage, kind, "get", made.id).private_key is None
        assert [k.private_key for k in call(storage, kind, "list", world["alpha"].id)] == [None]
        with psycopg.connect(storage.dsn) as conn:
            logged = conn.execute("SELECT count(*) FROM akashone_events WHERE"
                                  " position('PRIVATE-KEY-TEXT' in convert_from(state, 'UTF8'))"
                                  " > 0").fetchone()
        assert logged == (0,), "the private key entered the log in clear"

    def test_names_are_unique_per_owner_not_globally(
            self, storage: Storage, world: dict[str, Any]) -> None:
        kind = KINDS["ssh_key"]
        data = create(kind, "same", world["alpha"].id)
        call(storage, kind, "create", data)
        with pytest.raises(DuplicateError) as raised:
            call(storage, kind, "create", data)
        assert raised.value.field == "name"
        other = call(storage, kind, "create", {**data, "user_id": world["bravo"].id})
        assert other.name == data["name"]

    def test_a_malformed_public_key_is_refused(self, storage: Storage,
                                               world: dict[str, Any]) -> None:
        kind = KINDS["ssh_key"]
        for key in ("ssh-rsa not-base64", "hello", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"):
            with pytest.raises(ValidationError) as raised:
                call(storage, kind, "create", {**create(kind, "bad", world["alpha"].id),
                                               "public_key": key})
            assert "public_key" in raised.value.fields


def test_unused_uuid_reads_as_absent(storage: Storage) -> None:
    for kind in ALL:
        assert call(storage, kind, "get", uuid.uuid4()) is None


def test_rows_read_ahead_are_seen_as_a_read_sees_them(storage: Storage,
                                                      world: dict[str, Any]) -> None:
    """The rows an import reads ahead (``_rows_read_ahead``) answer ``_resource`` as its
    own read would: another tenant's row stays absent, a row not read ahead is read, and
    after the block every row is read afresh."""
    kind = KINDS["virtual_machine"]
    alpha, bravo = world["alpha"], world["bravo"]
    mine, theirs = make(storage, kind, "mine", alpha.id), make(storage, kind, "theirs", bravo.id)
    later = make(storage, kind, "later", alpha.id)
    with storage.acting_as(actor_id=alpha.id), storage._rows_read_ahead(
            {kind.name: [mine.id, theirs.id, uuid.uuid4()]}):
        assert storage._resource(kind, mine.id) == storage.get_virtual_machine(mine.id)
        assert storage._resource(kind, theirs.id) is None
        assert storage._resource(kind, later.id) == storage.get_virtual_machine(later.id)
    with storage._rows_read_ahead({kind.name: [mine.id]}):
        storage.update_virtual_machine(mine.id, {"display_name": "Renamed"})
    assert storage._resource(kind, mine.id).display_name == "Renamed"
