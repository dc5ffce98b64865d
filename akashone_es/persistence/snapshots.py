"""Check snapshots against the log: each aggregate's latest snapshot must equal a replay.

Loading an aggregate starts from its latest snapshot and skips the events before it, so a
snapshot that disagrees with those events changes what the application decides (a coupon's
``times_used`` reset lets it be redeemed again) while the events, and projection ``verify``,
still look right. The triggers stop anyone but the owner from rewriting a snapshot; this check
finds one that was written wrong anyway (inserted behind the API's back, or taken by older
code), by replaying the events up to the snapshot's version without it and comparing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import orjson
import psycopg
from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import StoredEvent
from psycopg import sql

from akashone_es.persistence.names import SNAPSHOTS_TABLE
from akashone_es.persistence.snapshot_seal import unseal
from akashone_es.personal import open_state

#: each aggregate's latest snapshot (the one loading uses)
LATEST_SNAPSHOTS = sql.SQL(
    "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state"
    " FROM {snapshots} ORDER BY originator_id, originator_version DESC"
).format(snapshots=sql.Identifier("public", SNAPSHOTS_TABLE))


class HasApplication(Protocol):
    """What the check needs of a Storage: its application (mapper, event store)."""

    @property
    def app(self) -> Application[UUID]: ...


@dataclass(frozen=True)
class SnapshotMismatch:
    """A snapshot that loading would use but that the events do not produce."""

    aggregate_id: UUID
    version: int
    topic: str
    reason: str

    def __str__(self) -> str:
        return f"snapshot of {self.aggregate_id} at version {self.version}: {self.reason}"


def check_snapshots(storage: HasApplication) -> list[SnapshotMismatch]:
    """Every aggregate whose latest snapshot differs from a replay of its events (empty: ok)."""
    app = storage.app
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.get_connection() as conn:
        return [mismatch for stored in _latest(conn)
                if (mismatch := _compare(app, stored)) is not None]


def _latest(conn: psycopg.Connection[Any]) -> Iterator[StoredEvent]:
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        cur.execute(LATEST_SNAPSHOTS)
        for originator_id, version, topic, state in cur.fetchall():
            yield StoredEvent(originator_id=originator_id, originator_version=version,
                              topic=topic, state=bytes(state))


def _compare(app: Application[UUID], stored: StoredEvent) -> SnapshotMismatch | None:
    """A finding about one snapshot, or None. An unsealed snapshot (taken before sealing, or
    under another key) is ignored when loading: it is a finding only when its content also
    differs from the events (a forgery), so an upgrade does not turn verify red."""
    key = getattr(app.snapshots, "key", None)
    opened = unseal(key, stored) if key is not None else stored
    problem = _content_problem(app, opened or stored)
    if problem is None:
        return None
    if opened is None:
        problem = ("not sealed by this application's secret key (loading ignores it) and "
                   + problem)
    return SnapshotMismatch(UUID(str(stored.originator_id)), stored.originator_version,
                            stored.topic, problem)


def _content_problem(app: Application[UUID], stored: StoredEvent) -> str | None:
    """How a snapshot's content differs from a replay of its aggregate's events."""
    try:
        stored_state = orjson.loads(stored.state)
        app.mapper.to_domain_event(stored)
    except Exception as exc:  # noqa: BLE001 - any unreadable snapshot is a finding, not a crash
        return f"unreadable ({type(exc).__name__})"
    aggregate_id = UUID(str(stored.originator_id))
    replayed: Any = project_aggregate(None, app.events.get(aggregate_id,
                                                           lte=stored.originator_version))
    if replayed is None:
        return "no events for this aggregate"
    if replayed.version != stored.originator_version:
        return f"the log has this aggregate only up to version {replayed.version}"
    snapshot_class: Any = app.snapshot_class
    expected = app.mapper.to_stored_event(snapshot_class.take(replayed))
    if expected.topic != stored.topic:
        return f"topic {stored.topic!r}, the events give {expected.topic!r}"
    expected_state = orjson.loads(expected.state)
    keyring = getattr(app.mapper, "keyring", None)
    if keyring is not None:  # personal data is compared in clear: each sealing is unique
        open_state(keyring, expected.topic, expected_state)
        open_state(keyring, stored.topic, stored_state)
    differs = _differing_fields(expected_state, stored_state)
    return "differs from the events in " + ", ".join(differs) if differs else None


def _differing_fields(expected: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """Top-level and aggregate-attribute keys whose values differ (the snapshot's own
    timestamp and metadata say when it was taken, not what it holds: ignored)."""
    ignored = {"timestamp", "metadata"}
    keys = sorted((expected.keys() | stored.keys()) - ignored)
    differs = []
    for key in keys:
        if key == "state" and isinstance(expected.get(key), dict) \
                and isinstance(stored.get(key), dict):
            differs += [f"state.{name}" for name in
                        sorted(expected[key].keys() | stored[key].keys())
                        if expected[key].get(name) != stored[key].get(name)]
        elif expected.get(key) != stored.get(key):
            differs.append(key)
    return differs
