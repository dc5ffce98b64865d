"""Snapshots of long-lived aggregates: taken at the interval, and loading uses them."""

from __future__ import annotations

import psycopg

from akashone_es import Settings, open_storage
from akashone_es.domain.identity import User
from tests.conftest import TEST_SETTINGS


class TestSnapshots:
    def test_user_is_snapshotted_every_interval_and_loads_the_same(self, dsn: str) -> None:
        """With an interval of 3, a user with 7 events has snapshots at versions 3 and 6,
        and loading it (from the latest snapshot plus one event) gives the same state."""
        settings = Settings(**{**TEST_SETTINGS, "snapshot_interval": 3})  # type: ignore[arg-type]
        storage = open_storage(settings, dsn=dsn)
        try:
            with storage.acting_as(system="tests"):
                user = storage.create_user({"username": "snap", "email": "snap@example.com",
                                            "password": "password-s1"})
                for status in ("suspended", "active", "suspended", "active", "suspended", "active"):
                    storage.update_user(user.id, {"status": status})
                with psycopg.connect(dsn) as conn:
                    versions = [row[0] for row in conn.execute(
                        "SELECT originator_version FROM akashone_snapshots WHERE originator_id = %s"
                        " ORDER BY originator_version", (user.id,))]
                assert [3, 6] == versions
                loaded = storage.app.repository.get(user.id)
                assert isinstance(loaded, User)
                assert (7, "active", "snap") == (loaded.version, loaded.status, loaded.username)
        finally:
            storage.close()
