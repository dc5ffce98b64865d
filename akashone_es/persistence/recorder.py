"""The application recorder: the library's locked insert, plus inline projections, in one trip."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

BEGIN, COMMIT, ROLLBACK = sql.SQL("BEGIN"), sql.SQL("COMMIT"), sql.SQL("ROLLBACK")

#: called inside the insert transaction, after the INSERT, with a cursor and the domain events
InlineHook = Callable[[Cursor[DictRow], Sequence[Any]], None]


class AkashOneRecorder(PostgresApplicationRecorder):
    """The library's insert path (EXCLUSIVE table lock, so insert order = commit order, and
    NOTIFY), sent as one pipeline: BEGIN, lock, notify, insert, inline projection statements
    and their checkpoints, COMMIT, with a single sync.

    The library's own version syncs three times per save; a client-side round trip is the cost
    that matters for one-command-per-transaction writers. Semantics are unchanged: the lock is
    taken before the insert, and a unique violation in a read table (or a stale version in
    the events table) aborts the whole transaction, events included.
    """

    inline_hook: InlineHook | None = None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        if not stored_events:
            return []
        inline_events = kwargs.get("inline_events")
        with self.datastore.get_connection() as conn:
            insert, curs = conn.cursor(), conn.cursor()
            try:
                # BEGIN and COMMIT are pipelined statements, not conn.transaction(), which
                # would sync before COMMIT: this way the whole save costs one round trip.
                with conn.pipeline():
                    curs.execute(BEGIN)
                    self._lock_table(curs)
                    self._notify_channel(curs)
                    PostgresAggregateRecorder._insert_stored_events(
                        self, insert, stored_events)
                    if self.inline_hook is not None and inline_events:
                        self.inline_hook(curs, inline_events)
                    curs.execute(COMMIT)
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute(ROLLBACK)
                raise
            return [row["notification_id"] for row in insert.fetchall()]
