"""Snapshot seals: only what the application sealed under its key opens again."""

from __future__ import annotations

from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from akashone_es.persistence.snapshot_seal import seal, seal_key, unseal

KEY = seal_key("kQ0jJ5Q1d1o1QeWl0h5i2m6h8GQe7bq0m0J7r3m3X2Y=")
ID = UUID("3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b")
SNAPSHOT = StoredEvent(originator_id=ID, originator_version=7,
                       topic="akashone_es.domain.base:Snapshot",
                       state=b'{"state":{"fields":{"times_used":1}}}')


def changed(stored: StoredEvent, **fields: object) -> StoredEvent:
    values = {"originator_id": stored.originator_id,
              "originator_version": stored.originator_version, "topic": stored.topic,
              "state": stored.state, **fields}
    return StoredEvent(**values)  # type: ignore[arg-type]


class TestSeal:
    def test_sealed_snapshot_opens_to_its_original_bytes(self) -> None:
        """Sealing then opening gives back exactly the state the mapper wrote."""
        opened = unseal(KEY, seal(KEY, SNAPSHOT))
        assert opened is not None
        assert SNAPSHOT.state == opened.state

    def test_sealed_state_is_still_one_json_object(self) -> None:
        """An auditor still reads a sealed snapshot as JSON."""
        import orjson

        assert "_seal" in orjson.loads(seal(KEY, SNAPSHOT).state)

    @pytest.mark.parametrize("tamper", [
        pytest.param(lambda s: changed(s, state=s.state.replace(b'"times_used":1',
                                                                 b'"times_used":0')),
                     id="state byte"),
        pytest.param(lambda s: changed(s, originator_version=8), id="version"),
        pytest.param(lambda s: changed(s, originator_id=UUID(int=1)), id="aggregate"),
        pytest.param(lambda s: changed(s, topic="other:Snapshot"), id="topic"),
        pytest.param(lambda s: SNAPSHOT, id="no seal"),
    ])
    def test_any_change_breaks_the_seal(self, tamper: object) -> None:
        """A changed state byte, version, aggregate id or topic, or no seal at all: refused."""
        assert unseal(KEY, tamper(seal(KEY, SNAPSHOT))) is None  # type: ignore[operator]

    def test_another_key_cannot_open_it(self) -> None:
        """A snapshot sealed under one application's key does not open under another's."""
        assert unseal(seal_key("another key"), seal(KEY, SNAPSHOT)) is None
