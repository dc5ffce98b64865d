"""PydanticMapper with orjson: events stored as readable JSON, older versions upcast on read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from akashone_es.application import OrjsonTranscoder, PydanticMapper
from akashone_es.domain.identity import Role, User

USER_ID = UUID("0b7c6f55-1c55-4c8e-9a67-2f4a3c3a1d10")
REGISTERED_TOPIC = "akashone_es.domain.identity:User.Registered"


@pytest.fixture
def mapper() -> PydanticMapper:
    return PydanticMapper(transcoder=OrjsonTranscoder())


@pytest.fixture
def registered() -> User.Registered:
    user = User(username="alice", email="alice@example.com", password_hash="$2b$04$hash",
                gst_number="29AAGCG6253J1Z8", account_type="reseller",
                organization_id="6f1c1a52-7d0e-4a34-9a3f-3f0b3b7f3e21", status="invited")
    (event,) = user.collect_events()
    assert isinstance(event, User.Registered)
    return event.model_copy(update={"metadata": {"actor_kind": "system", "ip": "10.0.0.1"}})


class TestTopic:
    def test_registered_topic_is_module_and_qualified_name(self) -> None:
        """User.Registered is stored under its module path and nested class name."""
        assert REGISTERED_TOPIC == get_topic(User.Registered)


class TestRoundTrip:
    def test_registered_event_survives_round_trip(self, mapper: PydanticMapper,
                                                  registered: User.Registered) -> None:
        """Storing and reading back a Registered event gives an equal event."""
        stored = mapper.to_stored_event(registered)
        assert registered == mapper.to_domain_event(stored)

    def test_stored_columns_hold_id_version_and_topic(self, mapper: PydanticMapper,
                                                      registered: User.Registered) -> None:
        """The originator id, version and topic go to their own columns."""
        stored = mapper.to_stored_event(registered)
        assert (registered.originator_id, 1, REGISTERED_TOPIC) == (
            stored.originator_id, stored.originator_version, stored.topic)

    def test_role_event_survives_round_trip(self, mapper: PydanticMapper) -> None:
        """A later event of another aggregate round-trips too."""
        role = Role(name="operators", description=None, is_system=False, organization_id=None)
        role.assign(UUID("5c0ad4b0-6a4e-4f0e-8b7b-0e5a3f1f4d2c"))
        assigned = role.collect_events()[-1]
        assert assigned == mapper.to_domain_event(mapper.to_stored_event(assigned))


class TestStoredJson:
    def test_state_is_readable_json(self, mapper: PydanticMapper,
                                    registered: User.Registered) -> None:
        """The state column is plain JSON with the event's fields by name."""
        state = orjson.loads(mapper.to_stored_event(registered).state)
        expected = ("alice", "29AAGCG6253J1Z8", "invited",
                    {"actor_kind": "system", "ip": "10.0.0.1"})
        assert expected == (state["username"], state["gst_number"], state["status"],
                            state["metadata"])

    def test_state_records_class_version_two(self, mapper: PydanticMapper,
                                             registered: User.Registered) -> None:
        """User.Registered is stored with class_version 2."""
        state = orjson.loads(mapper.to_stored_event(registered).state)
        assert 2 == state["class_version"]

    def test_state_omits_columns_stored_elsewhere(self, mapper: PydanticMapper,
                                                  registered: User.Registered) -> None:
        """Originator id and version are not repeated inside the JSON."""
        state = orjson.loads(mapper.to_stored_event(registered).state)
        assert set() == {"originator_id", "originator_version"} & state.keys()

    def test_version_one_event_has_no_class_version(self, mapper: PydanticMapper) -> None:
        """Events still at version 1 do not carry a class_version key."""
        role = Role(name="operators", description=None, is_system=False, organization_id=None)
        state = orjson.loads(mapper.to_stored_event(role.collect_events()[0]).state)
        assert "class_version" not in state


class TestUpcasting:
    def v1_state(self) -> dict[str, Any]:
        """A User.Registered payload as written before status and organization_id existed."""
        return {
            "timestamp": "2024-01-15T09:30:00Z",
            "originator_topic": "akashone_es.domain.identity:User",
            "metadata": {},
            "username": "legacy",
            "email": "legacy@example.com",
            "password_hash": "$2b$04$hash",
            "gst_number": None,
            "account_type": "customer",
        }

    def test_upcasts_v1_registered_to_active_untenanted(self, mapper: PydanticMapper) -> None:
        """A v1 Registered event reads as an active user with no organization."""
        stored = StoredEvent(originator_id=USER_ID, originator_version=1,
                             topic=REGISTERED_TOPIC, state=orjson.dumps(self.v1_state()))
        event = mapper.to_domain_event(stored)
        assert isinstance(event, User.Registered)
        assert ("active", None) == (event.status, event.organization_id)

    def test_upcast_keeps_v1_fields(self, mapper: PydanticMapper) -> None:
        """Upcasting keeps the fields the v1 event already had."""
        stored = StoredEvent(originator_id=USER_ID, originator_version=1,
                             topic=REGISTERED_TOPIC, state=orjson.dumps(self.v1_state()))
        event = mapper.to_domain_event(stored)
        assert isinstance(event, User.Registered)
        assert (USER_ID, 1, "legacy", "legacy@example.com",
                datetime(2024, 1, 15, 9, 30, tzinfo=UTC)) == (
            event.originator_id, event.originator_version, event.username, event.email,
            event.timestamp)

    def test_v1_user_reconstructs_aggregate(self, mapper: PydanticMapper) -> None:
        """An aggregate rebuilt from an upcast v1 event is active and untenanted."""
        stored = StoredEvent(originator_id=USER_ID, originator_version=1,
                             topic=REGISTERED_TOPIC, state=orjson.dumps(self.v1_state()))
        event = mapper.to_domain_event(stored)
        assert isinstance(event, User.Registered)
        user = event.mutate(None)
        assert isinstance(user, User)
        assert (USER_ID, "legacy", "active", None) == (
            user.id, user.username, user.status, user.organization_id)
