"""The one-off re-encryption: a log written before personal data was encrypted, copied into a
new database with every clear personal value encrypted (or erased, for a person already
erased), at the same positions, to the same read tables, under a chain that verifies.

The old log is made as the code before encryption wrote it: the world of the erasure tests,
then every personal value in its events opened back to clear text and the keys removed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest

from akashone_es import audit, personal
from akashone_es.errors import ConfigurationError, ConflictError
from akashone_es.personal import MARKER, clear_fields, open_state
from akashone_es.reencrypt import copy_encrypted
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.rebuild import checksums
from tests.conftest import TEST_SETTINGS, fresh_database
from tests.integration.conftest import SUPPLIER
from tests.integration.test_erasure import (
    AGENT,
    IP,
    PRIYA,
    World,
    events_of,
    log_text,
    rows,
)
from tests.integration.test_erasure import world as world  # noqa: PLC0414 - the fixture

RAVI = "ravi@example.in"
SETTINGS = Settings(**{**TEST_SETTINGS, "supplier_gstin": SUPPLIER})  # type: ignore[arg-type]


def as_the_old_code_wrote_it(storage: Storage) -> None:
    """Every personal value in the log back in clear, and no keys, seals or snapshots."""
    with psycopg.connect(storage.dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # past the append-only guard
        for position, topic, state in conn.execute(
                "SELECT notification_id, topic, state FROM akashone_events").fetchall():
            sealed = orjson.loads(bytes(state))
            opened = open_state(storage.keyring, topic, copy.deepcopy(sealed))
            if opened != sealed:
                conn.execute("UPDATE akashone_events SET state = %s WHERE notification_id = %s",
                             (orjson.dumps(opened), position))
        for table in ("akashone_subject_keys", "akashone_chain", "akashone_snapshots"):
            conn.execute(f"DELETE FROM {table}")


@dataclass
class Old:
    storage: Storage  # the old database, reopened (no key cached)
    priya: UUID  # erased before the copy
    ravi: UUID


@pytest.fixture
def old(world: World) -> Iterator[Old]:
    world.storage.get_recent_activities()
    as_the_old_code_wrote_it(world.storage)
    store = open_storage(SETTINGS, dsn=world.storage.dsn)
    try:
        with store.acting_as(system="tests"):
            store.erase_personal_data(world.priya)
            store.get_recent_activities()
            yield Old(store, world.priya, world.ravi)
    finally:
        store.close()


@pytest.fixture
def new_dsn(server_dsn: str) -> Iterator[str]:
    with fresh_database(server_dsn) as url:
        yield url


@pytest.fixture
def new(new_dsn: str) -> Iterator[Storage]:
    store = open_storage(SETTINGS, dsn=new_dsn)
    try:
        with store.acting_as(system="tests"):
            yield store
    finally:
        store.close()


def events(dsn: str) -> list[tuple[Any, ...]]:
    return rows(dsn, "SELECT notification_id, originator_id, originator_version, topic, state"
                     " FROM akashone_events ORDER BY notification_id")


def tables(storage: Storage) -> dict[str, Any]:
    with psycopg.connect(storage.dsn) as conn:
        return {p.name: checksums(conn, p) for p in storage.projections}


class TestTheCopy:
    def test_the_old_log_holds_personal_data_in_clear(self, old: Old) -> None:
        """What the copy is for: the erased person's data is still in the old log."""
        text = log_text(old.storage.dsn)
        for value in (PRIYA[1], PRIYA[3], RAVI, IP, AGENT):
            assert value in text
        assert any(clear_fields(topic, orjson.loads(bytes(state)), oid)
                   for _, oid, _, topic, state in events(old.storage.dsn))

    def test_no_personal_value_is_left_in_clear(self, old: Old, new: Storage) -> None:
        done = copy_encrypted(old.storage, new)
        copied = events(new.dsn)
        assert done.events == len(copied) == len(events(old.storage.dsn))
        assert done.changed > 0
        assert done.sealed > 0
        assert done.erased > 0
        assert not [topic for _, oid, _, topic, state in copied
                    if clear_fields(topic, orjson.loads(bytes(state)), oid)]
        text = log_text(new.dsn)
        for value in (*PRIYA, RAVI, IP, AGENT):
            assert value not in text

    def test_every_event_keeps_its_place(self, old: Old, new: Storage) -> None:
        copy_encrypted(old.storage, new)
        before, after = events(old.storage.dsn), events(new.dsn)
        assert [r[:4] for r in after] == [r[:4] for r in before]
        changed = [b for b, a in zip(before, after, strict=True) if bytes(b[4]) != bytes(a[4])]
        assert changed
        # an event with no personal data is copied byte for byte
        assert len(changed) < len(before)
        # the next append takes the next position
        new.create_permission({"key": "reports.view", "name": "View reports",
                               "category": "reports"})
        assert events(new.dsn)[-1][0] > before[-1][0]

    def test_the_read_tables_are_the_same(self, old: Old, new: Storage) -> None:
        copy_encrypted(old.storage, new)
        assert tables(new) == tables(old.storage)
        assert new.get_user(old.ravi).email == RAVI
        assert new.get_user(old.priya).email == MARKER

    def test_the_erased_person_is_erased_from_the_copy_and_the_other_readable(
            self, old: Old, new: Storage) -> None:
        copy_encrypted(old.storage, new)
        registered, updated = events_of(new, old.priya)[:2]
        assert (registered.username, registered.email) == (MARKER, MARKER)
        assert updated.metadata["ip"] == MARKER
        ravi = events_of(new, old.ravi)[0]
        assert (ravi.username, ravi.email) == ("ravi", RAVI)

    def test_an_erasure_after_the_copy_reaches_the_old_events(self, old: Old, new: Storage
                                                              ) -> None:
        """The point: in the old log ravi's registration could not be erased; in the copy
        it can."""
        copy_encrypted(old.storage, new)
        new.erase_personal_data(old.ravi)
        ravi = events_of(new, old.ravi)[0]
        assert (ravi.username, ravi.email) == (MARKER, MARKER)
        assert new.get_user(old.ravi).email == MARKER
        assert (events_of(old.storage, old.ravi)[0].email) == RAVI  # the old log cannot

    def test_both_chains_verify_and_the_digests_are_given(self, old: Old, new: Storage
                                                        ) -> None:
        done = copy_encrypted(old.storage, new)
        assert done.source is not None
        assert done.target is not None
        assert done.source.position == done.target.position
        assert done.source.hash != done.target.hash  # the copy holds ciphertext
        with psycopg.connect(new.dsn) as conn:
            assert audit.verify(conn, done.target).ok
        with psycopg.connect(old.storage.dsn) as conn:
            assert audit.verify(conn, done.source).ok


class TestRefusals:
    def test_a_target_holding_events_is_refused_and_left_alone(self, old: Old, new: Storage
                                                              ) -> None:
        new.create_permission({"key": "reports.view", "name": "View reports",
                               "category": "reports"})
        before = events(new.dsn)
        with pytest.raises(ConfigurationError, match="already holds 1 event:"):
            copy_encrypted(old.storage, new)
        assert events(new.dsn) == before

    def test_the_same_database_is_refused(self, old: Old) -> None:
        with pytest.raises(ConfigurationError, match="another database"):
            copy_encrypted(old.storage, old.storage)

    def test_writers_wait_while_the_log_is_copied(self, old: Old, new: Storage) -> None:
        """No append can get in while the log is read: the copy and the old digest end at
        the same position."""
        tried: list[str] = []

        def try_to_write(what: str, done: int, total: int) -> None:
            if what == "copy" and not tried:
                with psycopg.connect(old.storage.dsn) as conn, \
                        pytest.raises(psycopg.errors.LockNotAvailable):
                    conn.execute("LOCK TABLE akashone_events IN EXCLUSIVE MODE NOWAIT")
                tried.append(what)

        done = copy_encrypted(old.storage, new, try_to_write)
        assert tried == ["copy"]
        assert done.source is not None
        assert done.source.position == events(new.dsn)[-1][0]
        old.storage.create_permission({"key": "reports.late", "name": "Late",
                                       "category": "late"})  # free again afterwards

    def test_an_event_appended_before_the_copy_is_rebuilt_fails_it(self, old: Old,
                                                                   new: Storage) -> None:
        def write_meanwhile(what: str, done: int, total: int) -> None:
            if what == "identity" and done == total:
                old.storage.create_permission({"key": "reports.late", "name": "Late",
                                               "category": "late"})

        with pytest.raises(ConflictError, match="1 event appended to the source since the "
                                                "copy is not in it"):
            copy_encrypted(old.storage, new, write_meanwhile)


class TestKeysAlreadyMade:
    def test_a_person_with_a_key_and_older_clear_events(
            self, world: World, new: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
        """A person registered before encryption and active since: the clear registration
        is sealed under the key the person already has, even when cached keys expire at
        once (a key is then read again, never while a batch is being written)."""
        dsn = world.storage.dsn
        with psycopg.connect(dsn, autocommit=True) as conn:  # as the old code wrote it
            conn.execute("SET session_replication_role = replica")
            conn.execute("UPDATE akashone_events SET state = convert_to(jsonb_set(convert_from("
                         "state, 'UTF8')::jsonb, '{email}', %s::jsonb)::text, 'UTF8')"
                         " WHERE originator_id = %s AND originator_version = 1",
                         (f'"{RAVI}"', world.ravi))
        keys = rows(dsn, "SELECT subject, sealed_key FROM akashone_subject_keys")
        monkeypatch.setattr(personal, "CACHE_SECONDS", 0.0)
        done = copy_encrypted(world.storage, new)
        assert (done.changed, done.sealed, done.erased) == (1, 1, 0)
        assert rows(new.dsn, "SELECT subject, sealed_key FROM akashone_subject_keys") == keys
        assert RAVI not in log_text(new.dsn)
        assert events_of(new, world.ravi)[0].email == RAVI
        assert new.get_user(world.ravi).email == RAVI
