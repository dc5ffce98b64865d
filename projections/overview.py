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


@dataclass(frozen=True)
class HeldBack:
    """Events committed that no follower may read yet, and the transaction that holds them
    back: a reader reads only below the oldest transaction still running (it could still
    add an event before them), on this server, in any database."""

    events: int
    pid: int | None = None
    database: str | None = None
    seconds: int | None = None

    def describe(self) -> str:
        holder = ("a transaction still running" if self.pid is None else
                  f"transaction of pid {self.pid} (database {self.database}, open "
                  f"{self.seconds} s)")
        return (f"{self.events} event{'s' if self.events != 1 else ''} written but not "
                f"readable yet: {holder} could still precede "
                f"{'them' if self.events != 1 else 'it'}; followers read on once it ends")


#: the oldest transaction holding an id (what the readers' horizon waits for); shown when the
#: role may see it (its own sessions, or all with pg_read_all_stats)
OLDEST_WRITER = ("SELECT pid, datname, extract(epoch FROM now() - xact_start)::bigint"
                 " FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                 " ORDER BY age(backend_xid) DESC LIMIT 1")


def held_back(conn: psycopg.Connection[Any]) -> HeldBack | None:
    """What the horizon holds back, or None when every committed event is readable."""
    readable, written = head(conn), head(conn, final=True)
    waiting = pending(conn, readable, written)
    if not waiting:
        return None
    row = conn.execute(OLDEST_WRITER).fetchone()
    if row is None:
        return HeldBack(waiting)
    pid, database, seconds = tuple(row.values()) if isinstance(row, dict) else row
    return HeldBack(waiting, int(pid), str(database), int(seconds or 0))

