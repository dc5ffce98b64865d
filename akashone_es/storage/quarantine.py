"""Quarantining a log position for a projection: the operator's way past an event it cannot apply.

The decision is appended to the log as ``Quarantine.Recorded`` (who, when, why, which position
and projection); catch-up, rebuild and verify then skip that position for that projection.
"""

from __future__ import annotations

from psycopg import sql
from pydantic import Field

from akashone_es import context
from akashone_es.application import EVENTS_TABLE
from akashone_es.domain.operations import Quarantine, quarantine_id_for
from akashone_es.errors import DuplicateError, NotFoundError, ValidationError
from akashone_es.storage import inputs as i
from akashone_es.storage.base import StorageBase

EVENT_AT = sql.SQL("SELECT topic FROM {events} WHERE notification_id = %s").format(
    events=sql.Identifier("public", EVENTS_TABLE))
EXISTS = sql.SQL("SELECT 1 FROM {events} WHERE originator_id = %s LIMIT 1").format(
    events=sql.Identifier("public", EVENTS_TABLE))


class QuarantineInput(i.Input):
    """What an operator gives: the projection, the position and why."""

    projection: str = Field(min_length=1, max_length=100)
    position: int = Field(ge=1, le=2**63 - 1)  # a bigint notification id
    reason: str = Field(min_length=3, max_length=500)
    operator: str | None = Field(default=None, max_length=100)


def quarantine_position(storage: StorageBase, *, projection: str, position: int, reason: str,
                        operator: str | None = None) -> int:
    """Record that ``projection`` skips the event at ``position``; returns the log position
    of the quarantine event. The acting context (``storage.acting_as``) is in its metadata."""
    data = i.parse(QuarantineInput, {"projection": projection, "position": position,
                                     "reason": reason, "operator": operator})
    known = sorted(p.name for p in storage.projections)
    if data.projection not in known:
        raise ValidationError.single(
            "projection", f"unknown projection {data.projection!r}; known: {', '.join(known)}")
    if storage._scalar(EVENT_AT, (data.position,)) is None:
        raise NotFoundError("event", data.position, "position")
    if storage._scalar(EXISTS, (quarantine_id_for(data.projection, data.position),)):
        raise DuplicateError("quarantine", "projection and position",
                             f"{data.projection} {data.position}")
    with context.command():
        return storage._save(Quarantine(projection=data.projection, position=data.position,
                                        reason=data.reason, operator=data.operator))
