"""Where each projection stands: its checkpoint, the head and its lag, and where it stopped.
It imports no domain code (the projections are named, not loaded), so ``projections
status`` starts without loading the application."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import psycopg

from projections.failures import Failure, read_failures
from projections.positions import START, head, pending, read_checkpoints


class Named(Protocol):
    """A projection, or just its name and mode."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str: ...


class Listed(NamedTuple):
    name: str
    mode: str


#: the storage's projections by name, in its order (``storage.PROJECTIONS`` holds the classes;
#: a unit test keeps the two equal), for a status read without loading them
LISTED = (Listed("identity", "inline"), Listed("billing", "inline"),
          Listed("resources", "inline"), Listed("user_activities", "async"))


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    mode: str
    #: the position of the last event applied, and of the last a reader may read now
    position: int
    head: int
    #: how many events of the log it has still to read
    lag: int
    #: the event it stopped at, when it stopped
    failure: Failure | None = None


def status(conn: psycopg.Connection[Any], projections: Sequence[Named]
           ) -> list[ProjectionStatus]:
    """Head position, checkpoint, lag and stop (if any) of each projection."""
    last = head(conn)
    positions = read_checkpoints(conn)
    failures = read_failures(conn)
    result = []
    for p in projections:
        position = positions.get(p.name, START)
        result.append(ProjectionStatus(p.name, p.mode, position.position, last.position,
                                       pending(conn, position, last), failures.get(p.name)))
    return result
