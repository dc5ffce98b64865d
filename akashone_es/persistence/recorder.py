"""The application recorder: the library's insert path plus inline projections in its transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow

#: called inside the insert transaction with the cursor, the domain events and their positions
InlineHook = Callable[[Cursor[DictRow], Sequence[Any], Sequence[int]], None]


class AkashOneRecorder(PostgresApplicationRecorder):
    """Keeps the default insert path (EXCLUSIVE table lock: insert order = commit order).

    After the library has inserted the events and knows their notification ids, the inline
    hook updates the read tables and their checkpoints on the same cursor, so rows, checkpoint
    and events commit or roll back together.
    """

    inline_hook: InlineHook | None = None

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        domain_events = kwargs.get("inline_events")
        if self.inline_hook is not None and domain_events and ids:
            # A nested pipeline block syncs on exit, so a unique violation in a read
            # table surfaces here, before the commit, and rolls the events back.
            with curs.connection.pipeline():
                self.inline_hook(curs, domain_events, ids)
        return ids
