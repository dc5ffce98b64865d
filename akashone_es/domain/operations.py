"""Operators' decisions about the read side, recorded in the log like every other change."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from akashone_es.domain.base import Aggregate


def quarantine_id_for(projection: str, position: int) -> UUID:
    """One quarantine per projection and log position: quarantining it again is a duplicate."""
    return uuid5(NAMESPACE_URL, f"akashone:quarantine:{projection}:{position}")


class Quarantine(Aggregate):
    """An operator's decision that ``projection`` skips the event at log ``position``
    (an event it cannot apply), and why."""

    class Recorded(Aggregate.Created):
        projection: str
        position: int
        reason: str
        operator: str | None = None

    @staticmethod
    def create_id(projection: str, position: int, **_: Any) -> UUID:
        return quarantine_id_for(projection, position)

    @event(Recorded)
    def __init__(self, projection: str, position: int, reason: str,
                 operator: str | None = None) -> None:
        self.projection = projection
        self.position = position
        self.reason = reason
        self.operator = operator


class Erasure(Aggregate):
    """Personal data erased by destroying its keys: a person's on request, or a financial
    year's buyer details once its GST retention ended. Names the subjects (ids, years),
    never the data."""

    class Recorded(Aggregate.Created):
        kind: str  #: "request" or "retention"
        subjects: list[str]  #: ``person:<id>`` and ``fy:<year>`` key subjects
        reason: str

    @event(Recorded)
    def __init__(self, kind: str, subjects: list[str], reason: str) -> None:
        self.kind = kind
        self.subjects = subjects
        self.reason = reason
