"""Snapshots are append-only like events, and a snapshot that disagrees with them is reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from akashone_es import Settings, ValidationError, open_storage
from akashone_es.domain.base import Snapshot
from akashone_es.domain.catalog import DiscountCoupon
from akashone_es.persistence.snapshot_seal import seal
from akashone_es.persistence.snapshots import check_snapshots
from akashone_es.storage import Storage
from tests.conftest import TEST_SETTINGS

COUPON = {"code": "ONCE", "name": "Once only", "discount_type": "percentage",
          "discount_value": 10, "max_uses": 1}


def open_with_interval(dsn: str, interval: int) -> Storage:
    settings = Settings(**{**TEST_SETTINGS, "snapshot_interval": interval})  # type: ignore[arg-type]
    return open_storage(settings, dsn=dsn)


@pytest.fixture
def rarely(dsn: str) -> Iterator[Storage]:
    """Storage whose aggregates are never snapshotted in a test (interval 50)."""
    store = open_with_interval(dsn, 50)
    try:
        with store.acting_as(system="tests"):
            yield store
    finally:
        store.close()


def forge_snapshot(storage: Storage, aggregate_id: UUID, *, sealed: bool = False,
                   **fields: Any) -> None:
    """As the owner, behind the API: a snapshot of the aggregate's current version whose
    ``fields`` are changed (``sealed``: with a valid seal, as only the application can)."""
    aggregate: Any = storage.app.repository.get(aggregate_id)
    aggregate.fields = {**aggregate.fields, **fields}
    stored = storage.app.mapper.to_stored_event(Snapshot.take(aggregate))
    if sealed:
        key = storage.app.snapshots.key  # type: ignore[attr-defined]
        stored = seal(key, stored)
    with psycopg.connect(storage.dsn) as owner:
        owner.execute("INSERT INTO akashone_snapshots (originator_id, originator_version,"
                      " topic, state) VALUES (%s, %s, %s, %s)",
                      (aggregate_id, stored.originator_version, stored.topic, stored.state))


class TestSnapshotsAreAppendOnly:
    @pytest.mark.parametrize("statement", [
        "UPDATE akashone_snapshots SET state = state",
        "DELETE FROM akashone_snapshots",
        "TRUNCATE akashone_snapshots",
    ])
    def test_owner_cannot_rewrite_a_snapshot(self, dsn: str, statement: str) -> None:
        """Even the owner, who may write the table, is stopped by the trigger."""
        storage = open_with_interval(dsn, 2)
        try:
            with storage.acting_as(system="tests"):
                user = storage.create_user({"username": "ravi", "email": "ravi@example.in",
                                            "password": "password-r1"})
                storage.update_user(user.id, {"status": "suspended"})
        finally:
            storage.close()
        with psycopg.connect(dsn) as owner:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)
            owner.rollback()
            row = owner.execute("SELECT count(*) FROM akashone_snapshots").fetchone()
        assert row is not None
        assert 1 == row[0]

    def test_refuses_a_snapshot_of_an_unrecorded_version(self, rarely: Storage) -> None:
        """A snapshot claiming a version the log does not have cannot be inserted."""
        coupon = rarely.create_discount_coupon(COUPON)
        with psycopg.connect(rarely.dsn) as owner, \
                pytest.raises(psycopg.errors.ForeignKeyViolation, match="no version 100"):
            owner.execute("INSERT INTO akashone_snapshots (originator_id, originator_version,"
                          " topic, state) VALUES (%s, 100, 'x', '{}')", (coupon.id,))


class TestCheckSnapshots:
    def test_honest_snapshots_agree_with_the_events(self, dsn: str) -> None:
        """Snapshots the application took are not reported (users, and a used coupon)."""
        storage = open_with_interval(dsn, 2)
        try:
            with storage.acting_as(system="tests"):
                user = storage.create_user({"username": "asha", "email": "asha@example.in",
                                            "password": "password-a1"})
                for status in ("suspended", "active", "suspended"):
                    storage.update_user(user.id, {"status": status})
                coupon = storage.create_discount_coupon(COUPON)
                storage.increment_coupon_usage(coupon.id)
            with psycopg.connect(dsn) as owner:
                row = owner.execute("SELECT count(*) FROM akashone_snapshots").fetchone()
            assert row is not None
            assert row[0] >= 3
            assert [] == check_snapshots(storage)
        finally:
            storage.close()

    def test_forged_coupon_snapshot_is_ignored_when_loading_and_reported(
            self, rarely: Storage) -> None:
        """A snapshot written behind the API resetting a max_uses=1 coupon's count has no
        valid seal: loading ignores it (the coupon cannot be used twice) and the check
        reports it, naming the coupon and its version."""
        coupon = rarely.create_discount_coupon(COUPON)
        rarely.increment_coupon_usage(coupon.id)
        forge_snapshot(rarely, coupon.id, times_used=0)

        mismatches = check_snapshots(rarely)

        assert [(coupon.id, 2)] == [(m.aggregate_id, m.version) for m in mismatches]
        assert "not sealed" in mismatches[0].reason
        loaded = rarely.app.repository.get(coupon.id)
        assert isinstance(loaded, DiscountCoupon)
        assert 1 == loaded.fields["times_used"]
        with pytest.raises(ValidationError):  # max_uses=1 holds despite the forgery
            rarely.increment_coupon_usage(coupon.id)

    def test_sealed_snapshot_that_disagrees_with_the_events_is_reported(
            self, rarely: Storage) -> None:
        """Even a correctly sealed snapshot (older code, a leaked key) is compared with a
        replay of its events, naming the field that differs."""
        coupon = rarely.create_discount_coupon(COUPON)
        rarely.increment_coupon_usage(coupon.id)
        forge_snapshot(rarely, coupon.id, sealed=True, times_used=0)

        mismatches = check_snapshots(rarely)

        assert [(coupon.id, 2)] == [(m.aggregate_id, m.version) for m in mismatches]
        assert "state.fields" in mismatches[0].reason

    def test_reports_an_unreadable_snapshot(self, rarely: Storage) -> None:
        """A snapshot that is not even JSON is reported, not a crash of the check."""
        coupon = rarely.create_discount_coupon(COUPON)
        with psycopg.connect(rarely.dsn) as owner:
            owner.execute("INSERT INTO akashone_snapshots (originator_id, originator_version,"
                          " topic, state) VALUES (%s, 1, %s, %s)",
                          (coupon.id, "akashone_es.domain.base:Snapshot", b"\xff"))

        mismatches = check_snapshots(rarely)

        assert 1 == len(mismatches)
        assert "not sealed" in mismatches[0].reason


class TestLoadingPastForgeries:
    def test_a_forged_latest_snapshot_does_not_hide_an_older_sealed_one(self, dsn: str
                                                                        ) -> None:
        """With sealed snapshots at versions 2 and 4, a forged one at 5 is read past: the
        load starts from version 4 and gives the true state."""
        storage = open_with_interval(dsn, 2)
        try:
            with storage.acting_as(system="tests"):
                coupon = storage.create_discount_coupon({**COUPON, "max_uses": 10})
                for _ in range(4):
                    storage.increment_coupon_usage(coupon.id)  # versions 2..5
                forge_snapshot(storage, coupon.id, times_used=0)
                loaded = storage.app.repository.get(coupon.id)
                assert isinstance(loaded, DiscountCoupon)
                assert (5, 4) == (loaded.version, loaded.fields["times_used"])
                kept = list(storage.app.snapshots.get(coupon.id, desc=True, limit=1))
                assert [4] == [s.originator_version for s in kept]
        finally:
            storage.close()


class TestUnsealedButTrue:
    def test_an_unsealed_snapshot_equal_to_the_events_is_not_a_finding(
            self, rarely: Storage) -> None:
        """A snapshot taken before sealing (or under an older key) that agrees with the
        events is ignored when loading and does not fail verify."""
        coupon = rarely.create_discount_coupon(COUPON)
        rarely.increment_coupon_usage(coupon.id)
        forge_snapshot(rarely, coupon.id)  # unsealed, content true
        assert [] == check_snapshots(rarely)
        loaded = rarely.app.repository.get(coupon.id)
        assert 1 == loaded.fields["times_used"]  # type: ignore[attr-defined]
