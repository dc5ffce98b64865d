"""The log's hash chain: every kind of tampering is caught at its position.

Each test seals a log, then changes it as the database superuser with the append-only
triggers switched off (``session_replication_role = replica``), as an insider could, and
verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from akashone_es import audit
from akashone_es.storage import Storage
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import KINDS, make


@pytest.fixture
def sealed(storage: Storage) -> Iterator[tuple[psycopg.Connection[Any], audit.Digest]]:
    """A log with users and resources, sealed; a digest taken; a superuser connection."""
    enable_all_features(storage)
    for n in range(5):
        owner = storage.create_user({"username": f"u{n}", "email": f"u{n}@example.in",
                                     "password": "password-long-1"})
        make(storage, KINDS["virtual_machine"], f"vm{n}", owner.id)
    with psycopg.connect(storage.dsn) as conn:
        taken = audit.digest(conn)
        conn.commit()
        assert audit.verify(conn, taken).ok
        conn.rollback()
        conn.execute("SET session_replication_role = replica")
        yield conn, taken


def tamper(conn: psycopg.Connection[Any], statement: str, *params: Any) -> None:
    conn.execute(statement, params)
    conn.commit()


def verdict(conn: psycopg.Connection[Any], digest: audit.Digest | None = None
            ) -> audit.Verdict:
    found = audit.verify(conn, digest)
    conn.rollback()
    return found


def middle(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY"
                            " notification_id) FROM akashone_events").fetchone()[0])


class TestTampering:
    def test_an_untouched_log_verifies_against_its_digest(self, sealed: Any) -> None:
        conn, taken = sealed
        found = verdict(conn, taken)
        assert found.ok
        assert found.events == taken.position

    def test_a_changed_byte_in_the_state(self, sealed: Any) -> None:
        conn, _ = sealed
        at = middle(conn)
        tamper(conn, "UPDATE akashone_events SET state = set_byte(state, 29,"
                     " get_byte(state, 29) # 1) WHERE notification_id = %s", at)
        found = verdict(conn)
        assert (found.ok, found.position) == (False, at)
        assert "does not match its seal" in str(found.problem)

    def test_changed_metadata(self, sealed: Any) -> None:
        conn, _ = sealed
        at = middle(conn)
        tamper(conn, "UPDATE akashone_events SET state = convert_to(jsonb_set(convert_from("
                     "state, 'UTF8')::jsonb, '{metadata,reason}', '\"forged\"')::text, 'UTF8')"
                     " WHERE notification_id = %s", at)
        assert verdict(conn).position == at

    def test_a_deleted_event(self, sealed: Any) -> None:
        conn, _ = sealed
        at = middle(conn)
        tamper(conn, "DELETE FROM akashone_events WHERE notification_id = %s", at)
        found = verdict(conn)
        assert (found.position, found.problem) == (at, "a sealed event is missing (deleted)")

    def test_an_inserted_event(self, sealed: Any) -> None:
        conn, _ = sealed
        at = middle(conn)
        # placed where the deleted event was in the reading order (its neighbour's
        # transaction id); left to the default, it would sit after the sealed head, and the
        # seal after the gap would fail instead
        copy = ("INSERT INTO akashone_events (notification_id, originator_id,"
                " originator_version, topic, state, transaction_id) SELECT %s,"
                " gen_random_uuid(), 1, topic, state, transaction_id FROM akashone_events"
                " WHERE notification_id = %s")
        tamper(conn, "DELETE FROM akashone_chain WHERE position = %s", at)  # a rollback gap
        tamper(conn, "DELETE FROM akashone_events WHERE notification_id = %s", at)
        tamper(conn, copy, at, at - 1)
        found = verdict(conn)
        assert found.position == at
        assert "without a seal" in str(found.problem)

    def test_two_events_swapped(self, sealed: Any) -> None:
        conn, _ = sealed
        at = middle(conn)
        tamper(conn, "UPDATE akashone_events SET notification_id = -1"
                     " WHERE notification_id = %s", at)
        tamper(conn, "UPDATE akashone_events SET notification_id = %s"
                     " WHERE notification_id = %s", at, at + 1)
        tamper(conn, "UPDATE akashone_events SET notification_id = %s"
                     " WHERE notification_id = -1", at + 1)
        assert verdict(conn).position == at

    def test_a_rewritten_tail_is_caught_by_the_digest(self, sealed: Any) -> None:
        """Change an event and re-seal everything after it: the chain agrees with itself,
        only the digest kept outside tells."""
        conn, taken = sealed
        at = middle(conn)
        tamper(conn, "UPDATE akashone_events SET state = set_byte(state, 29,"
                     " get_byte(state, 29) # 1) WHERE notification_id = %s", at)
        tamper(conn, "DELETE FROM akashone_chain WHERE position >= %s", at)
        conn.execute("SET session_replication_role = origin")
        audit.seal(conn)
        conn.commit()
        assert verdict(conn).ok
        found = verdict(conn, taken)
        assert (found.ok, found.position) == (False, taken.position)
        assert "rewritten" in str(found.problem)

    def test_a_removed_tail_is_caught_by_the_digest(self, sealed: Any) -> None:
        conn, taken = sealed
        tamper(conn, "DELETE FROM akashone_events WHERE notification_id > %s",
               taken.position - 3)
        tamper(conn, "DELETE FROM akashone_chain WHERE position > %s", taken.position - 3)
        assert verdict(conn).ok
        found = verdict(conn, taken)
        assert "no longer reaches" in str(found.problem)


class TestARestoredDatabase:
    """A dump taken before the last events were sealed, restored elsewhere: the digest
    (taken on the old server) vouches for events this database has not sealed yet."""

    def test_the_digest_vouches_for_events_sealed_after_the_dump(self, sealed: Any) -> None:
        conn, taken = sealed
        tamper(conn, "DELETE FROM akashone_chain WHERE position > %s", taken.position - 3)
        found = verdict(conn, taken)
        assert found.ok, found.problem
        assert found.events == taken.position

    def test_a_changed_unsealed_event_still_fails_the_digest(self, sealed: Any) -> None:
        conn, taken = sealed
        tamper(conn, "DELETE FROM akashone_chain WHERE position > %s", taken.position - 3)
        tamper(conn, "UPDATE akashone_events SET state = state || ' '::bytea"
                     " WHERE notification_id = %s", taken.position - 1)
        assert verdict(conn).ok  # nothing sealed was touched
        found = verdict(conn, taken)
        assert (found.ok, found.position) == (False, taken.position)
        assert "differs from the digest" in str(found.problem)


class TestSealing:
    def test_the_chain_is_append_only_and_new_events_are_sealed_in_order(
            self, storage: Storage) -> None:
        storage.create_user({"username": "a", "email": "a@example.in",
                             "password": "password-long-1"})
        with psycopg.connect(storage.dsn) as conn:
            first, _ = audit.seal(conn)
            conn.commit()
            storage.create_user({"username": "b", "email": "b@example.in",
                                 "password": "password-long-1"})
            second, head = audit.seal(conn)
            conn.commit()
            assert second > first
            assert audit.verify(conn, audit.Digest(second, head.hex(), "")).ok
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute("UPDATE akashone_chain SET hash = '\\x00' WHERE position = %s",
                             (first,))
