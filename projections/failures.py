"""Events a projection could not apply: the durable record behind ``status`` and ``verify``.

A projection that meets an event it cannot apply (undecodable, a handler raised, or the
database refused its rows) stops just before it. The failure is written in the same transaction
as the checkpoint, so the record, the rows and the checkpoint always agree; it is cleared by
the first batch that gets past the failed position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from akashone_es.persistence.names import EVENTS_TABLE
from projections.positions import Key

FAILURES_TABLE = "akashone_projection_failures"
_TABLE = sql.Identifier("public", FAILURES_TABLE)
#: stored error texts are cut here: enough for the database's first line and a hint
MAX_ERROR = 500

FAILURES_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {table} ("
    " projection text PRIMARY KEY, position bigint NOT NULL, originator_id text NOT NULL,"
    " originator_version bigint NOT NULL, topic text NOT NULL, handler text NOT NULL,"
    " error text NOT NULL, failed_at timestamptz NOT NULL DEFAULT now())"
).format(table=_TABLE)

RECORD = sql.SQL(
    "INSERT INTO {table} (projection, position, originator_id, originator_version, topic,"
    " handler, error) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (projection) DO UPDATE"
    " SET position = excluded.position, originator_id = excluded.originator_id,"
    " originator_version = excluded.originator_version, topic = excluded.topic,"
    " handler = excluded.handler, error = excluded.error, failed_at = now()"
).format(table=_TABLE)

#: run with every batch that applies: a failure at or below the new checkpoint is resolved
CLEAR = sql.SQL(
    "DELETE FROM {table} f WHERE f.projection = %s AND EXISTS (SELECT 1 FROM {events} e"
    " WHERE e.notification_id = f.position"
    " AND (e.transaction_id, e.notification_id) <= (%s, %s))"
).format(table=_TABLE, events=sql.Identifier("public", EVENTS_TABLE)).as_bytes(None)

READ = sql.SQL(
    "SELECT projection, position, originator_id, originator_version, topic, handler, error"
    " FROM {table} ORDER BY projection"
).format(table=_TABLE)


def printable(text: str) -> str:
    """``text`` on one line, control characters escaped (an error may quote the bad value,
    NUL included, and must itself be storable and printable), at most ``MAX_ERROR`` chars."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return shown if len(shown) <= MAX_ERROR else shown[:MAX_ERROR - 3] + "..."


@dataclass(frozen=True)
class Failure:
    """The event at ``position`` that ``projection`` could not apply, and why."""

    projection: str
    position: int
    originator_id: str
    originator_version: int
    topic: str
    handler: str
    error: str
    #: the writing transaction's id (its place in the reading order; 0 when read back)
    transaction_id: int = field(default=0, compare=False)

    @classmethod
    def of(cls, projection: str, row: tuple[int, Any, int, str, Any, int], handler: str,
           exc: BaseException) -> Failure:
        """The failure of a stored event row ``(position, id, version, topic, state, tx)``."""
        position, originator_id, version, topic, _, transaction_id = row
        first = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
        detail = getattr(getattr(exc, "diag", None), "message_detail", None)
        if detail:  # the database's detail names the value, e.g. "\u0000 cannot be ..."
            error += f" ({detail})"
        return cls(projection, int(position), str(originator_id), int(version),
                   printable(topic), handler, printable(error), int(transaction_id))

    @property
    def key(self) -> Key:
        """The failed event's place in the reading order."""
        return Key(self.transaction_id, self.position)

    def message(self, what: str = "projection") -> str:
        """One line naming the position, aggregate, event type and handler, and the way out."""
        return (f"{what} {self.projection} stopped at position {self.position}: "
                f"{self.handler} cannot apply {self.topic} of aggregate {self.originator_id} "
                f"(version {self.originator_version}): {self.error}. Fix the cause and retry, "
                f"or skip the event with: akashone-es projections quarantine "
                f"{self.projection} {self.position} --reason '...'")


def writes_refused(failures: list[Failure]) -> str:
    """Why an append was refused: the stopped inline projections, and the way out."""
    if not failures:  # resolved between the refusal and this read: a retry will go through
        return "an inline projection was stopped; it has been resolved since: retry"
    stops = "; ".join(f.message() for f in failures)
    names = " ".join(f.projection for f in failures)
    return (f"writes are refused while an inline projection is stopped (its tables may be "
            f"missing rows): {stops}; after the quarantine run: akashone-es projections "
            f"rebuild {names}")


def record_failure(conn: psycopg.Connection[Any], failure: Failure) -> None:
    """Write (or refresh) the failure of ``failure.projection``; in the caller's transaction."""
    conn.execute(RECORD, (failure.projection, failure.position, failure.originator_id,
                          failure.originator_version, failure.topic, failure.handler,
                          failure.error))


def read_failures(conn: psycopg.Connection[Any]) -> dict[str, Failure]:
    """The recorded failure of each stopped projection."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        cur.execute(READ)
        return {row[0]: Failure(row[0], int(row[1]), row[2], int(row[3]), row[4], row[5],
                                row[6]) for row in cur}
