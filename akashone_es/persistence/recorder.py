"""The application recorder: the library's locked insert plus inline projections, one round trip."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import sql
from psycopg.abc import Transformer as AdaptTransformer
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result
from psycopg.generators import execute
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from projections.apply import execute_batch
from projections.engine import LOCK_AND_GUARD, Batch, RowKey

#: builds the inline projections' statements for the events being appended
InlineHook = Callable[[Sequence[Any]], Batch]


#: saves with more events than this go through the pipelined path
SMALL_SAVE_EVENTS = 20
#: a save goes as one simple-query message (values quoted client-side: one round trip, the
#: least client CPU) when its read-table statements are at most this many plain ``INSERT ...
#: VALUES``, which the server plans for next to nothing. Any other save goes pipelined, as
#: prepared statements the server plans once per connection rather than from the text on
#: every save: a VM's creation (its meter segment is an ``INSERT ... SELECT``) and an invoice
#: (an UPDATE of its usage, eleven statements) were 15% and 12% slower as one message
ONE_MESSAGE_STATEMENTS = 3
#: saves with at least this many statements and no row wanted back go by the bulk path
#: (statements grouped across tables, long runs of inserts as a COPY)
BULK_MIN_STATEMENTS = 64
#: psycopg caches the parse of a query text up to this long and with at most this many
#: parameters (its ``MAX_CACHED_STATEMENT_LENGTH`` and ``_PARAMS``); another is parsed afresh
#: on every mogrify
CACHED_QUERY_MAX, CACHED_PARAMS_MAX = 4096, 50

@dataclass
class Captured:
    """The read-table row wanted back from a save: the last row its inline projections
    wrote under ``key`` with ``RETURNING *`` (None when they wrote none)."""

    key: RowKey
    row: dict[str, Any] | None = None


_captured: ContextVar[Captured | None] = ContextVar("akashone_captured_row", default=None)


@contextmanager
def capture_row(key: RowKey) -> Iterator[Captured]:
    """Collect the read-table row under ``key`` written by the saves in the block."""
    captured = Captured(key)
    token = _captured.set(captured)
    try:
        yield captured
    finally:
        _captured.reset(token)


class AkashOneRecorder(PostgresApplicationRecorder):
    """The library's insert path without its table lock, sent as one simple-query message.

    ``SET LOCAL lock_timeout``, the owner's guard function, the INSERT, then the inline
    projections' statements, between BEGIN and COMMIT. The library locks the events table
    (EXCLUSIVE) so insert order = commit order and sends ``NOTIFY``; both serialize every
    commit (NOTIFY holds a database-wide lock through the commit). Writers here run in
    parallel: each event records its transaction's id, and readers follow the log in that
    order below the oldest running transaction (``persistence.database.LOG_ORDER_DDL``);
    followers poll. The guard refuses the append when the inline projections are not current
    (``projections.engine.LOCK_AND_GUARD``). Parameters are bound client-side (psycopg's
    ClientCursor quoting), so the whole save is one message and one round trip; the library's
    pipeline syncs three times per save. A unique violation in a read table, or a stale
    version in the events table, aborts the transaction, events included.
    """

    inline_hook: InlineHook | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._preambles: dict[tuple[tuple[str, ...], bool], bytes] = {}
        #: as the library sets it before its lock: a writer waits that long for the lock
        self._lock_timeout = b"SET LOCAL lock_timeout = '%ds'" % int(self.datastore.lock_timeout)
        self._insert_queries: dict[int, bytes] = {}
        self._unnest_insert = sql.SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id").format(
                schema=sql.Identifier(self.datastore.schema),
                table=sql.Identifier(self.events_table_name)).as_bytes(None)
        self.insert_values_statement = sql.SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " VALUES {values} RETURNING notification_id")

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any
                      ) -> Sequence[int] | None:
        if not stored_events:
            return []
        inline_events = kwargs.get("inline_events")
        key_work = kwargs.get("key_work")
        if key_work is not None and key_work.redacted and inline_events:
            # a destroyed key blanked a personal value in the log: the read tables get what
            # the log holds, not the value the command was given
            inline_events = [kwargs["decode"](stored) for stored in stored_events]
        batch = (self.inline_hook(inline_events)
                 if self.inline_hook is not None and inline_events else Batch())
        for query, params in key_work.statements if key_work is not None else ():
            batch.add(query, params)  # subject keys made and destroyed, in this transaction
        with self.datastore.get_connection() as conn:
            try:
                if len(stored_events) > SMALL_SAVE_EVENTS or not one_message(batch):
                    return self._insert_pipelined(conn, stored_events, batch)
                return self._insert_one_message(conn, stored_events, batch)
            except BaseException:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise

    def _insert_one_message(self, conn: psycopg.Connection[Any],
                            stored_events: Sequence[StoredEvent], batch: Batch) -> list[int]:
        """Saves of a few plain inserts (``one_message``): the whole transaction as one
        simple-query message (one round trip, parameters bound client-side)."""
        cur = adapting(conn).quoting
        preamble = self._preamble(cur, batch)
        queries = [self._insert_query(len(stored_events))]
        params: list[Sequence[Any]] = [[value for e in stored_events for value in
                                        (e.originator_id, e.originator_version, e.topic,
                                         e.state)]]
        for query, query_params in batch.statements:
            queries.append(query if isinstance(query, bytes) else query.as_bytes(conn))
            params.append(query_params)
        joined = b";\n".join(queries)
        values = [value for group in params for value in group]
        if len(joined) <= CACHED_QUERY_MAX and len(values) <= CACHED_PARAMS_MAX:
            # one mogrify: the joined text is the same for every save of the same shape, so
            # psycopg's conversion cache hits
            body = cur.mogrify(joined, values).encode()
        else:  # psycopg would parse the joined text afresh: each statement's parse is cached
            body = b";\n".join(cur.mogrify(query, group).encode()
                                for query, group in zip(queries, params, strict=True))
        results = exchange(conn, b";\n".join([preamble, body, b"COMMIT"]))
        # BEGIN, the lock timeout, the guard, the events' INSERT, the batch's, COMMIT
        inserted = results[3]
        ids = [int(inserted.get_value(row, 0) or 0) for row in range(inserted.ntuples)]
        self._capture(conn, results[4:], batch)
        return ids

    def _insert_pipelined(self, conn: psycopg.Connection[Any],
                          stored_events: Sequence[StoredEvent], batch: Batch) -> list[int]:
        """Other saves: the same statements in one pipeline with binary parameters (quoting
        thousands of values client-side costs more than the pipeline), BEGIN and COMMIT
        included, synced once; neighbouring statements of the same query as one
        ``executemany``. One of many statements with no row wanted back (an import batch)
        goes by ``_insert_bulk``."""
        insert = conn.cursor()
        captured = _captured.get()  # the row wanted back, if any
        wanted = _returning(batch, captured)
        if not wanted and len(batch) >= BULK_MIN_STATEMENTS:
            return self._insert_bulk(conn, insert, stored_events, batch)
        with conn.pipeline():
            self._begin(conn, insert, stored_events, batch)
            shared = conn.cursor()
            returning: list[psycopg.Cursor[Any]] = []
            for index, query, params in batch.runs(returning=bool(wanted)):
                if len(params) > 1:
                    shared.executemany(query, params)
                    continue
                cursor = shared
                if index in wanted:
                    cursor = conn.cursor()
                    returning.append(cursor)
                cursor.execute(query, params[0], prepare=True)
            conn.execute(b"COMMIT")
        ids = [row["notification_id"] for row in insert.fetchall()]
        for cursor in returning:
            row = cursor.fetchone()
            if row is not None and captured is not None:
                captured.row = dict(row)
        return ids

    def _begin(self, conn: psycopg.Connection[Any], insert: psycopg.Cursor[Any],
               stored_events: Sequence[StoredEvent], batch: Batch) -> None:
        """BEGIN, the lock timeout, the guard and the events' INSERT, in the caller's
        pipeline."""
        conn.execute(b"BEGIN")
        conn.execute(self._lock_timeout)
        conn.execute(LOCK_AND_GUARD, batch.guard)
        insert.execute(self._unnest_insert, (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events]))

    def _insert_bulk(self, conn: psycopg.Connection[Any], insert: psycopg.Cursor[Any],
                     stored_events: Sequence[StoredEvent], batch: Batch) -> list[int]:
        """Large saves with no row wanted back (an import batch): the events as in the
        pipelined path, then the read-table statements grouped by query across tables and
        long runs of plain inserts as one COPY each, under a savepoint; when the database
        refuses any of it, the statements one by one (``projections.apply.execute_batch``,
        as a replay does), so the error raised is the one the statement itself raises (a
        taken name, say), and the save fails as it would have."""
        with conn.pipeline():
            self._begin(conn, insert, stored_events, batch)
        ids = [row["notification_id"] for row in insert.fetchall()]
        execute_batch(conn, batch, bulk=True)
        conn.execute(b"COMMIT")
        return ids

    def _preamble(self, cur: psycopg.ClientCursor[Any], batch: Batch) -> bytes:
        """BEGIN, the lock timeout and the guard: rendered once per guard."""
        names, quarantine = batch.guard
        key = (tuple(names), quarantine)
        preamble = self._preambles.get(key)
        if preamble is None:
            preamble = self._preambles[key] = b";\n".join([
                b"BEGIN", self._lock_timeout, cur.mogrify(LOCK_AND_GUARD, batch.guard).encode()])
        return preamble

    def _insert_query(self, count: int) -> bytes:
        """``INSERT ... VALUES (...) x count RETURNING notification_id``, rendered once."""
        query = self._insert_queries.get(count)
        if query is None:
            values = sql.SQL(", ").join([sql.SQL("(%s, %s, %s, %s)")] * count)
            query = self.insert_values_statement.format(
                schema=sql.Identifier(self.datastore.schema),
                table=sql.Identifier(self.events_table_name), values=values).as_bytes(None)
            if len(self._insert_queries) < 256:
                self._insert_queries[count] = query
        return query

    @staticmethod
    def _capture(conn: psycopg.Connection[Any], results: Sequence[PGresult],
                 batch: Batch) -> None:
        """Hand the row wanted by ``capture_row()`` to it, from the batch's results (one per
        statement, in order)."""
        captured = _captured.get()
        for index in _returning(batch, captured):
            result = results[index]
            if result.ntuples and captured is not None:
                captured.row = first_row(conn, result)


def exchange(conn: psycopg.Connection[Any], message: bytes) -> list[PGresult]:
    """Send one simple-query message (its statements separated by semicolons) and return
    its results, one per statement; the first error is raised as psycopg raises it (the
    statements after it did not run). A cursor does the same, but builds its row loaders
    for every result passed over: ~0.05-0.1 ms of client CPU a save."""
    pgconn = conn.pgconn
    with conn.lock:
        pgconn.send_query(message)
        results: list[PGresult] = conn.wait(execute(pgconn))
    for result in results:
        if result.status == ExecStatus.FATAL_ERROR:
            raise error_from_result(result, encoding=conn.info.encoding)
    return results


@dataclass(frozen=True)
class Adapting:
    """A connection's quoting cursor and row loaders, made once: each made anew cost ~2-3%
    of a ``create_user``'s client CPU (a new Transformer looks up every column's loader)."""

    quoting: psycopg.ClientCursor[Any]
    loading: AdaptTransformer


#: by connection. Both hold their connection (a timestamp is read in the session's time
#: zone), so the entries of closed connections are dropped whenever one is added: the pool
#: replaces a connection it closes.
_ADAPTING: dict[psycopg.Connection[Any], Adapting] = {}


def adapting(conn: psycopg.Connection[Any]) -> Adapting:
    found = _ADAPTING.get(conn)
    if found is None:
        for closed in [c for c in list(_ADAPTING) if c.closed]:  # list(): atomic
            _ADAPTING.pop(closed, None)
        found = _ADAPTING[conn] = Adapting(psycopg.ClientCursor(conn),
                                           Transformer.from_context(conn))
    return found


def first_row(conn: psycopg.Connection[Any], result: PGresult) -> dict[str, Any]:
    """A result's first row as a dict of Python values, loaded as a cursor would."""
    transformer = adapting(conn).loading
    transformer.set_pgresult(result)
    names = [(result.fname(col) or b"").decode() for col in range(result.nfields)]
    return transformer.load_row(0, lambda values: dict(zip(names, values, strict=True)))


def one_message(batch: Batch) -> bool:
    """Whether a save's statements go best as one simple-query message: a few plain
    ``INSERT ... VALUES`` (``ONE_MESSAGE_STATEMENTS``)."""
    return len(batch) <= ONE_MESSAGE_STATEMENTS and all(
        _plain_insert(query) for query, _ in batch.statements)


def _plain_insert(query: Any) -> bool:
    """An ``INSERT ... VALUES`` reading no table (an ``ON CONFLICT`` clause allowed)."""
    found = _PLAIN.get(query) if isinstance(query, bytes) else False
    if found is None:
        found = query.startswith(b"INSERT INTO ") and b"SELECT" not in query.upper()
        if len(_PLAIN) < 4096:
            _PLAIN[query] = found
    return found


#: ``_plain_insert`` of each statement text seen (they are a fixed set: ``Projection.q``)
_PLAIN: dict[bytes, bool] = {}


def _returning(batch: Batch, captured: Captured | None) -> list[int]:
    """The indexes, in order, of the batch's statements that return the captured key's row
    (the last row found is the one kept: an issue's UPDATE supersedes the draft's INSERT)."""
    if captured is None:
        return []
    return sorted(index for index, key in batch.returns.items() if key == captured.key)
