"""Quarantining a log position for a projection: the operator's way past an event it cannot apply.

The decision is appended to the log as ``Quarantine.Recorded`` (who, when, why, which position
and projection); catch-up, rebuild and verify then skip that position for that projection.
Because verify skips it too, a quarantine could hide any event: only the platform may record
one, and only for the event the projection is recorded as stopped at.
"""

from __future__ import annotations

from psycopg import sql
from pydantic import Field

from akashone_es import context
from akashone_es.domain.operations import Quarantine, quarantine_id_for
from akashone_es.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.persistence.names import EVENTS_TABLE
from akashone_es.storage import inputs as i
from akashone_es.storage.base import StorageBase
from projections.failures import FAILURES_TABLE

EVENT_AT = sql.SQL("SELECT topic FROM {events} WHERE notification_id = %s").format(
    events=sql.Identifier("public", EVENTS_TABLE))
FAILED_AT = sql.SQL("SELECT position FROM {failures} WHERE projection = %s").format(
    failures=sql.Identifier("public", FAILURES_TABLE))
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
    of the quarantine event. The acting context (``storage.acting_as``) is in its metadata.

    Refused (``PermissionDeniedError``) to a tenant: only the platform decides what the read
    side skips. Refused (``ValidationError`` on ``position``) unless ``position`` is the
    projection's recorded failure (``projections status`` shows it as STOPPED): skipping a
    healthy event would erase its rows at the next rebuild, and verify could not tell.
    """
    if not context.current().is_platform_actor:
        raise PermissionDeniedError("quarantining an event is for the platform only (a super "
                                    "admin or a system context), not a tenant")
    data = i.parse(QuarantineInput, {"projection": projection, "position": position,
                                     "reason": reason, "operator": operator})
    known = sorted(p.name for p in storage.projections)
    if data.projection not in known:
        raise ValidationError.single(
            "projection", f"unknown projection {data.projection!r}; known: {', '.join(known)}")
    if storage._scalar(EVENT_AT, (data.position,)) is None:
        raise NotFoundError("event", data.position, "position")
    _require_recorded_failure(storage, data.projection, data.position)
    if storage._scalar(EXISTS, (quarantine_id_for(data.projection, data.position),)):
        raise ConflictError(f"position {data.position} is quarantined for "
                            f"{data.projection} already")
    with context.command():
        return storage._save(Quarantine(projection=data.projection, position=data.position,
                                        reason=data.reason, operator=data.operator))


def _require_recorded_failure(storage: StorageBase, projection: str, position: int) -> None:
    """Only the event ``projection`` is recorded as stopped at may be quarantined."""
    stopped_at = storage._scalar(FAILED_AT, (projection,))
    if stopped_at is None:
        raise ValidationError.single(
            "position", f"projection {projection} has no recorded failure (it has not stopped:"
            f" projections status shows no STOPPED line for it); only the event a projection"
            f" stopped at can be quarantined")
    if int(stopped_at) != position:
        raise ValidationError.single(
            "position", f"projection {projection} is recorded as stopped at position "
            f"{stopped_at}, not {position}; only the event a projection stopped at can be "
            f"quarantined")
