"""The one eventsourcing Application: the event log, its JSON mapper and snapshots."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    Mapper,
    ProgrammingError,
    Recording,
    StoredEvent,
    Transcoder,
    Transcoding,
)
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from akashone_es import personal
from akashone_es.context import event_metadata
from akashone_es.domain.base import Aggregate, DomainEvent, Snapshot
from akashone_es.persistence.snapshot_seal import SealedSnapshotStore

APP_NAME = "AkashOne"


class OrjsonTranscoder(Transcoder):
    """Bytes <-> JSON with orjson; pydantic owns the types."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)

    def register(self, _: Transcoding) -> None:  # pragma: no cover - pydantic owns types
        msg = "types are declared with pydantic, not transcodings"
        raise ProgrammingError(msg)


class PydanticMapper(Mapper[UUID]):
    """Events as readable JSON (``convert_from(state, 'UTF8')::jsonb``), upcast on read;
    personal data encrypted under its subject's key (``akashone_es.personal``)."""

    #: set by the storage: without it, personal data is stored (and read) as it is
    keyring: personal.KeyRing | None = None

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        event = cast("BaseModel", domain_event)
        state = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
        class_version = getattr(type(event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        topic = get_topic(type(event))
        if self.keyring is not None:
            personal.seal_state(self.keyring, topic, domain_event.originator_id,
                                domain_event.originator_version, state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic,
            state=self.transcoder.encode(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        return self.decode(stored_event.topic, stored_event.originator_id,
                           stored_event.originator_version, stored_event.state)

    def decode(self, topic: str, originator_id: UUID | str, originator_version: int,
               state: bytes) -> DomainEventProtocol[UUID]:
        """Build an event from its stored columns, upcasting older class versions."""
        cls = resolve_topic(topic)
        data: dict[str, Any] = self.transcoder.decode(state)
        if self.keyring is not None and personal.PREFIX_BYTES in state:
            personal.open_state(self.keyring, topic, data)
        from_version = data.pop("class_version", 1)
        class_version = getattr(cls, "class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(data)
            from_version += 1
        data["originator_id"] = originator_id
        data["originator_version"] = originator_version
        return cast("DomainEventProtocol[UUID]", cls.model_validate(data))


class AkashOneApplication(Application[UUID]):
    """One application, one events table, one total order for the whole platform."""

    name = APP_NAME
    is_snapshotting_enabled = True
    snapshot_class = Snapshot

    def construct_snapshot_store(self) -> SealedSnapshotStore:
        """Snapshots sealed under the secret key (the key is set by ``open_storage``)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return SealedSnapshotStore(mapper=self.mapper, recorder=recorder)

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Stamp the acting context on new events, then record them in one transaction.

        The domain events travel as ``inline_events`` to the recorder, whose inline
        projections write the read tables inside the same transaction.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):  # the library's Protocol check costs ~20 us each
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        meta = event_metadata()
        processing_event.events = [
            e if cast("DomainEvent", e).metadata else cast("DomainEvent", e).model_copy(
                update={"metadata": meta})
            for e in processing_event.events
        ]
        processing_event.saved_kwargs["inline_events"] = processing_event.events
        keyring = cast("PydanticMapper", self.mapper).keyring
        with personal.saving(keyring) as key_work:
            processing_event.saved_kwargs["key_work"] = key_work
            processing_event.saved_kwargs["decode"] = self.mapper.to_domain_event
            recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings
