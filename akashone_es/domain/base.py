"""Pydantic-based aggregate, event and snapshot classes on the eventsourcing library."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
)
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from akashone_es.context import backdating, event_time
from akashone_es.errors import ConflictError, NotFoundError

_datetime = TypeAdapter(datetime)


class DomainEvent(BaseModel):
    """An immutable fact; its fields are its public, versioned JSON format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    #: who acted, for which tenant, under which correlation id (stamped at save time)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create_timestamp(cls) -> datetime:
        """Now, or the time of an ``events_at`` block (history recorded later)."""
        return event_time()


class SnapshotState(BaseModel):
    """An aggregate's attributes as saved in a snapshot."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def __init__(self, **kwargs: Any) -> None:
        for key in ("_created_on", "_modified_on"):
            kwargs[key] = _datetime.validate_python(kwargs[key])
        super().__init__(**kwargs)


class Snapshot(DomainEvent, CanSnapshotAggregate[UUID]):
    """The state of an aggregate at a version, so loading it skips the older events."""

    topic: str
    state: SnapshotState


class Aggregate(BaseAggregate[UUID]):
    """Base aggregate: attributes hold JSON-friendly values only (str ids, lists, dicts)."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """As the library's, but inside ``context.events_at`` an event may not take a time
        before the aggregate's last change (history is replayed in order; clocks of
        different hosts, a few milliseconds apart, are not checked)."""
        moment = kwargs.get("timestamp") or event_class.create_timestamp()
        if backdating() and moment < self.modified_on:
            raise ConflictError(f"{type(self).__name__} {self.id} last changed at "
                                f"{self.modified_on.isoformat()}: an event cannot be "
                                f"recorded at {moment.isoformat()}, before it")
        super().trigger_event(event_class, **{**kwargs, "timestamp": moment})

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str


class EditableRecord(Aggregate):
    """A record changed by ``changes`` and deleted once. Events are triggered as
    ``type(self).X``, so each subclass stores its own topics (``HsnCode.Updated``, ...).
    Subclasses define ``Created`` and ``__init__`` (which sets ``self.deleted = False``)."""

    class Updated(Aggregate.Event):
        changes: dict[str, Any]

    class Deleted(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.deleted = True

    def check_present(self) -> None:
        if getattr(self, "deleted", False):  # set by the subclass's __init__ and Deleted
            raise NotFoundError(type(self).__name__, str(self.id))

    def update(self, changes: dict[str, Any]) -> None:
        self.check_present()
        self.trigger_event(type(self).Updated, changes=changes)

    def delete(self) -> None:
        self.check_present()
        self.trigger_event(type(self).Deleted)


def stamp(event: Any, column: str) -> datetime:
    """The time a projection writes in ``column`` for ``event``: the record's own when it
    came from AkashOne with one (``legacy_event``), else the event's."""
    stamps: dict[str, datetime] = getattr(event, "stamps", None) or {}
    moment: datetime = stamps.get(column, event.timestamp)
    return moment


def legacy_event(aggregate: type[Aggregate], created: type[Any], **fields: Any) -> type[Any]:
    """Give ``aggregate`` an ``Imported`` event: its ``created`` event brought in from
    AkashOne's store (``legacy``), naming the source record (``source``: ``table:id``) and
    any ``fields`` (name -> annotation) of its own. Projections apply it as ``created``
    (``projections/engine.py``), so the record reads as one the API made; ``stamps`` holds
    the record's later times (column -> time: ``updated_at``, ``last_synced``), which the
    projection writes where it would write the event's time."""
    annotations = {"legacy": ClassVar[bool], "source": str, "stamps": dict[str, datetime],
                   **fields}
    namespace: dict[str, Any] = {
        "__module__": aggregate.__module__, "__qualname__": f"{aggregate.__qualname__}.Imported",
        "__annotations__": annotations, "__doc__": f"{created.__qualname__}, brought in from "
        "AkashOne's store: one event per source record.", "legacy": True, "stamps": {}}
    imported = type("Imported", (created,), namespace)
    aggregate.Imported = imported  # type: ignore[attr-defined]
    return imported
