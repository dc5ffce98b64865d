"""Projection base, statement batches, checkpoints and the inline hook.

A projection is its tables' DDL, one handler per event type and its queries. Handlers do not
talk to the database: they append statements to a ``Batch``, which is executed in pipeline mode
on whatever transaction applies it: the append transaction (inline) or a catch-up or rebuild
transaction (async, rebuild). Each handler must be idempotent: the same event delivered twice
leaves the rows as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

from akashone_es.domain.operations import Quarantine
from projections.failures import FAILURES_DDL, FAILURES_TABLE
from projections.positions import CHECKPOINTS_TABLE, EVENTS, LIVE_SCHEMA
from projections.quarantine import QUARANTINE_INDEX_DDL

#: a statement: composed SQL, or bytes rendered once (psycopg then caches its conversion)
Query = bytes | sql.SQL | sql.Composed
#: the tables (schema-qualified) each statement built by ``Projection.q`` touches: a batch
#: may reorder statements of different tables (``Batch.grouped``)
TOUCHES: dict[bytes, frozenset[str]] = {}

F = TypeVar("F", bound=Callable[..., None])


def handles(*event_classes: type) -> Callable[[F], F]:
    """Mark a projection method as the handler of the given event classes."""

    def decorate(fn: F) -> F:
        fn._handles = event_classes  # type: ignore[attr-defined]
        return fn

    return decorate


RowKey = tuple[str, Any]


def _legacy_subclasses(event_class: type) -> list[type]:
    """The imported-from-AkashOne events that extend ``event_class`` (any depth; the
    library wraps an event class a method is decorated with, so the classes of the same name
    in its MRO are searched too)."""
    found: list[type] = []
    todo = [c for c in event_class.__mro__ if c.__qualname__ == event_class.__qualname__]
    seen = set(todo)
    while todo:
        subclasses: list[type] = todo.pop().__subclasses__()
        for sub in subclasses:
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                below: list[type] = sub.__subclasses__()
                wrapped = any(w.__qualname__ == sub.__qualname__ for w in below)
                if getattr(sub, "legacy", False) and not wrapped:  # the class events have
                    found.append(sub)
    return found


class Batch:
    """Statements collected from handlers, executed in order.

    A statement added with ``returns=(table, id)`` ends in ``RETURNING *``; when the batch runs
    inline, the row it returns is handed back to the command (read-your-write without a
    second query).
    """

    __slots__ = ("guard", "returns", "statements")

    def __init__(self) -> None:
        self.statements: list[tuple[Query, Sequence[Any]]] = []
        self.returns: dict[int, RowKey] = {}
        #: inline: the arguments of the append's lock function (``LOCK_AND_GUARD``): the
        #: writer's inline projections, and whether the events are a quarantine
        self.guard: tuple[list[str], bool] = ([], False)

    @classmethod
    def of(cls, statements: Sequence[tuple[Query, Sequence[Any]]]) -> Batch:
        """A batch of the given statements."""
        batch = cls()
        for query, params in statements:
            batch.add(query, params)
        return batch

    def add(self, query: Query, params: Sequence[Any], *, returns: RowKey | None = None
            ) -> None:
        if returns is not None:
            self.returns[len(self.statements)] = returns
        self.statements.append((query, params))

    def add_row(self, query: Query, row: Sequence[Any]) -> None:
        """Add one row to a set-based statement whose parameters are arrays (``unnest``):
        consecutive rows for the same statement become one statement, e.g. 100 usage
        records billed by one invoice are one UPDATE, not 100."""
        if self.statements and self.statements[-1][0] is query and (
                len(self.statements) - 1) not in self.returns:
            columns = self.statements[-1][1]
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        else:
            self.statements.append((query, [[value] for value in row]))

    def __len__(self) -> int:
        return len(self.statements)

    def execute(self, cur: psycopg.Cursor[Any]) -> None:
        """Send every statement; the caller's pipeline or transaction decides when to sync."""
        send_runs(cur, self.grouped())

    def grouped(self) -> list[tuple[Query, list[Sequence[Any]]]]:
        """The statements as runs of one query each (one ``executemany`` binds a run), each
        joining the last earlier run of its query when no run between touches its tables.

        A replay's batch alternates statements of different tables (a user's row, then its
        role grant, and again): kept in order they are one execute each. Statements of
        different tables commute (read tables have no foreign keys, and their one trigger,
        ``usage_records_billed_once``, reads and writes nothing else), and those of
        one table keep their order, so the tables end the same. A statement whose tables are
        not known (not built by ``Projection.q``: the checkpoint's, say) moves nowhere and
        nothing moves past it; the same one repeated at once is one run.
        """
        runs: list[tuple[Query, frozenset[str] | None, list[Sequence[Any]]]] = []
        for query, params in self.statements:
            tables = TOUCHES.get(query) if isinstance(query, bytes) else None
            if tables is not None:
                for earlier, touched, group in reversed(runs):
                    if earlier is query or earlier == query:
                        group.append(params)
                        break
                    if touched is None or touched & tables:
                        runs.append((query, tables, [params]))
                        break
                else:
                    runs.append((query, tables, [params]))
                continue
            if runs and runs[-1][1] is None and (runs[-1][0] is query or runs[-1][0] == query):
                runs[-1][2].append(params)  # the same query again, in order (new keys, say)
                continue
            runs.append((query, None, [params]))
        return [(query, group) for query, _, group in runs]

    def runs(self, *, returning: bool = False
             ) -> Iterator[tuple[int, Query, list[Sequence[Any]]]]:
        """The statements in order as (index of the first, query, parameters), consecutive
        ones of the same query together (one ``executemany`` binds them without a Python
        round per statement); when ``returning``, a statement whose row is returned stays
        alone (its row is wanted)."""
        statements, count = self.statements, len(self.statements)
        alone = self.returns if returning else {}
        start = 0
        while start < count:
            query = statements[start][0]
            end = start + 1
            if start not in alone:
                while end < count and end not in alone and (
                        statements[end][0] is query or statements[end][0] == query):
                    end += 1
            yield start, query, [params for _, params in statements[start:end]]
            start = end


def send_runs(cur: psycopg.Cursor[Any], runs: Iterable[tuple[Query, list[Sequence[Any]]]]
              ) -> None:
    """Send runs of one query each (``Batch.grouped``): a run of several as one
    ``executemany``."""
    for query, params in runs:
        if len(params) == 1:
            cur.execute(query, params[0], prepare=True)
        else:
            cur.executemany(query, params)


class Table:
    """One read table: its name, columns DDL and extra index DDL (``{table}`` placeholders)."""

    def __init__(self, name: str, columns: str, indexes: Sequence[str] = (),
                 order_by: str = "id", added: Mapping[str, str] | None = None,
                 fillfactor: int | None = None) -> None:
        self.name = name
        self.columns = columns
        self.indexes = tuple(indexes)
        self.order_by = order_by
        #: the share of each page an insert fills (PostgreSQL's default: 100); the rest is
        #: left for the new versions of updated rows, so an update that changes no indexed
        #: column is HOT (no index entry written)
        self.fillfactor = fillfactor
        #: columns added after the table first shipped (name -> type): an older live table
        #: gets them (empty, nullable) so its new indexes can be created, and set-up then
        #: rebuilds the projection to fill them (``setup.missing_tables``)
        self.added = dict(added or {})

    def ddl(self, schema: str) -> list[Query]:
        table = sql.Identifier(schema, self.name)
        storage = (sql.SQL("") if self.fillfactor is None else
                   sql.SQL(" WITH (fillfactor = {})").format(sql.Literal(self.fillfactor)))
        statements: list[Query] = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {table} (" + self.columns + "){storage}").format(
                table=table, storage=storage)
        ]
        if self.fillfactor is not None:  # a table made before it: only new pages are affected
            option = sql.Literal(f"fillfactor={self.fillfactor}")
            statements.append(sql.SQL(
                "DO $$ BEGIN IF NOT {option} = ANY(coalesce((SELECT reloptions FROM pg_class"
                " WHERE oid = {qualified}::regclass), '{{}}')) THEN"
                " ALTER TABLE {table} SET (fillfactor = {value}); END IF; END $$"
            ).format(option=option, qualified=sql.Literal(table.as_string(None)), table=table,
                     value=sql.Literal(self.fillfactor)))
        # only when missing: ALTER TABLE locks the table (readers too) even with IF NOT EXISTS
        statements += [
            sql.SQL("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_attribute"
                    " WHERE attrelid = {qualified}::regclass AND attname = {column_name}"
                    " AND NOT attisdropped) THEN"
                    " ALTER TABLE {table} ADD COLUMN {column} " + kind + "; END IF; END $$"
                    ).format(qualified=sql.Literal(table.as_string(None)),
                             column_name=sql.Literal(column), table=table,
                             column=sql.Identifier(column))
            for column, kind in self.added.items()
        ]
        statements += [sql.SQL(ix).format(table=table) for ix in self.indexes]
        return statements

    def checksum_query(self, schema: str) -> Query:
        """md5 over every row's text, in a stable order: equal content, equal checksum."""
        return sql.SQL(
            "SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY "
            + self.order_by + "), '')) AS checksum FROM {table} t"
        ).format(table=sql.Identifier(schema, self.name))


class Projection:
    """Base class: subclasses declare ``name``, ``mode``, ``tables`` and ``@handles`` methods."""

    name: ClassVar[str]
    mode: ClassVar[Literal["inline", "async"]] = "inline"
    tables: ClassVar[Sequence[Table]] = ()
    #: unique constraint name -> (kind, field), to turn a violation into a DuplicateError
    unique_constraints: ClassVar[dict[str, tuple[str, str]]] = {}
    #: None = every event; else only these event classes are read when catching up
    _handlers: ClassVar[dict[type, str]]
    handles_all: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_class in getattr(value, "_handles", ()):
                    found[event_class] = attr
        # an event imported from AkashOne (``legacy``) is applied as the event it extends,
        # unless a handler of its own is declared
        for event_class, attr in list(found.items()):
            for sub in _legacy_subclasses(event_class):
                found.setdefault(sub, attr)
        cls._handlers = found

    def __init__(self, schema: str = LIVE_SCHEMA) -> None:
        self.schema = schema
        self._bound: dict[type, Callable[[Any, int, Batch], None]] = {
            cls: getattr(self, attr) for cls, attr in self._handlers.items()
        }
        self.prepare()

    def prepare(self) -> None:
        """Build this instance's statements once (override to add them)."""

    def t(self, name: str) -> sql.Identifier:
        """A table of this projection, in this instance's schema."""
        return sql.Identifier(self.schema, name)

    def q(self, text: str, **tables: str) -> bytes:
        """A statement with ``{name}`` placeholders bound to this schema's tables, rendered
        to bytes once: composing SQL per execute costs more than the execute itself.

        Name every table the statement reads or writes as a placeholder: they are recorded
        (``TOUCHES``), and a replay lets statements of other tables pass this one."""
        query = sql.SQL(text).format(**{k: self.t(v) for k, v in tables.items()}
                                     ).as_bytes(None)
        TOUCHES[query] = frozenset(f"{self.schema}.{v}" for v in tables.values())
        return query

    def topics(self) -> list[str] | None:
        """Topics this projection reads; None when it reads every event."""
        if self.handles_all:
            return None
        return sorted(get_topic(cls) for cls in self._handlers)

    def ddl(self) -> list[Query]:
        statements: list[Query] = []
        for table in self.tables:
            statements += table.ddl(self.schema)
        return statements

    def handle(self, event: Any, position: int, batch: Batch) -> None:
        """Append the statements for one event (ignored when no handler matches)."""
        handler = self._bound.get(type(event))
        if handler is None:
            handler = self.fallback
        handler(event, position, batch)

    def handler_name(self, event: Any) -> str:
        """The handler that applies ``event``, as named in errors (``Class.method``)."""
        attr = self._handlers.get(type(event), "fallback")
        return f"{type(self).__name__}.{attr}"

    def fallback(self, event: Any, position: int, batch: Batch) -> None:
        """Called for events without a handler; ignore by default."""

    def apply(self, events: Iterable[tuple[Any, int]], batch: Batch) -> None:
        for event, position in events:
            self.handle(event, position, batch)


#: A projection's checkpoint is the key (``projections.log.Key``) of the last event it
#: applied. An inline projection is applied by every append, in the append's transaction, so
#: once current it stays current: it is marked ``live`` (under the events table's EXCLUSIVE
#: lock, at the head) and its checkpoint reads as the head from then on, with no checkpoint
#: write per append.
#:
#: Every append calls the owner's function below first. It takes the events table's ROW
#: EXCLUSIVE lock (what an INSERT takes: writers do not wait for each other, but a rebuild's
#: swap, which takes the EXCLUSIVE lock, waits for them and they for it), then checks the
#: writer's inline projections, and refuses the append (rolling back its events too) when one
#: of them is not live or has a recorded failure (stopped: its tables may lack rows, and
#: uniqueness is decided by their indexes), or when a live projection is one the writer does
#: not apply (run by another version of the code: it would fall behind unseen). The
#: operator's quarantine (``quarantine`` true) is let through a stopped projection: it is how
#: one gets unstuck, by the next start-up or ``projections rebuild``. Its queries take no
#: parameters, so PL/pgSQL plans them once per session.
LOCK_FUNCTION = "akashone_lock_events"
LOCK_FUNCTION_SIGNATURE = sql.SQL("{fn}(text[], boolean)").format(
    fn=sql.Identifier(LIVE_SCHEMA, LOCK_FUNCTION))

#: the engine's own tables (checkpoints, failures), the quarantine lookup's index and the
#: append's lock function, as one multi-statement string (no parameters), run at set-up
CHECKPOINTS_DDL = sql.SQL("; ").join([
    sql.SQL(
        "CREATE TABLE IF NOT EXISTS {table} ("
        " name text PRIMARY KEY, position bigint NOT NULL DEFAULT 0,"
        " updated_at timestamptz NOT NULL DEFAULT now(), live boolean NOT NULL DEFAULT false)"
    ).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE)),
    # a database from before ``live``; checked first: ALTER TABLE locks out every append
    sql.SQL("""DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {schema}
                       AND table_name = {table_name} AND column_name = 'live') THEN
            ALTER TABLE {table} ADD COLUMN live boolean NOT NULL DEFAULT false;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = {schema}
                       AND table_name = {table_name} AND column_name = 'transaction_id') THEN
            ALTER TABLE {table} ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;
        END IF;
    END $$""").format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE),
                      schema=sql.Literal(LIVE_SCHEMA), table_name=sql.Literal(CHECKPOINTS_TABLE)),
    FAILURES_DDL,
    QUARANTINE_INDEX_DDL,
    sql.SQL("DROP FUNCTION IF EXISTS {fn}()").format(  # before inline projections went live
        fn=sql.Identifier(LIVE_SCHEMA, LOCK_FUNCTION)),
    sql.SQL("""CREATE OR REPLACE FUNCTION {signature} RETURNS void LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = pg_catalog AS $$
    DECLARE
        inline ALIAS FOR $1;
        quarantine ALIAS FOR $2;
        live text[];
        failed text[];
    BEGIN
        LOCK TABLE {events} IN ROW EXCLUSIVE MODE;
        SELECT coalesce(array_agg(c.name), '{{}}') INTO live FROM {table} c WHERE c.live;
        SELECT coalesce(array_agg(f.projection), '{{}}') INTO failed FROM {failures} f;
        IF NOT (live <@ inline AND (quarantine OR (inline <@ live AND NOT inline && failed)))
        THEN
            RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
                TABLE = {table_name}, MESSAGE = format(
                    'inline projections not current: this writer applies %s, live are %s,'
                    ' stopped are %s', inline, live, failed);
        END IF;
    END $$""").format(signature=LOCK_FUNCTION_SIGNATURE, events=EVENTS,
                      table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE),
                      failures=sql.Identifier(LIVE_SCHEMA, FAILURES_TABLE),
                      table_name=sql.Literal(CHECKPOINTS_TABLE)),
    sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(LOCK_FUNCTION_SIGNATURE),
])

#: the append's lock and guard; parameters: the writer's inline projections, and whether the
#: append is an operator's quarantine
LOCK_AND_GUARD = sql.SQL("SELECT {fn}(%s, %s)").format(
    fn=sql.Identifier(LIVE_SCHEMA, LOCK_FUNCTION)).as_bytes(None)


def inline_stopped(exc: BaseException | None) -> bool:
    """Whether a refused append was refused by the inline guard."""
    diag = getattr(exc, "diag", None)
    return (isinstance(exc, psycopg.errors.IntegrityConstraintViolation)
            and getattr(diag, "table_name", None) == CHECKPOINTS_TABLE)


SET_CHECKPOINTS = sql.SQL(
    "UPDATE {table} SET transaction_id = %s, position = %s, updated_at = now()"
    " WHERE name = ANY(%s)"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

REGISTER_CHECKPOINT = sql.SQL(
    "INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

LOCK_CHECKPOINT = sql.SQL(
    "SELECT transaction_id, position FROM {table} WHERE name = %s FOR UPDATE"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

#: an inline projection at the head goes live (the caller holds the events table's lock)
MARK_LIVE = sql.SQL(
    "UPDATE {table} SET transaction_id = %s, position = %s, live = true, updated_at = now()"
    " WHERE name = %s"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

_LAST_KEY = sql.SQL(
    "(SELECT (e.transaction_id, e.notification_id) FROM {events} e"
    " ORDER BY e.transaction_id DESC, e.notification_id DESC LIMIT 1)").format(events=EVENTS)

#: whether an inline projection's checkpoint is at the head and no failure is recorded for it
#: (the caller holds the events table's EXCLUSIVE lock)
AT_HEAD = sql.SQL(
    "SELECT (c.transaction_id, c.position) = coalesce({last}, (0::bigint, 0::bigint))"
    " AND NOT EXISTS (SELECT 1 FROM {failures} f WHERE f.projection = c.name)"
    " FROM {table} c WHERE c.name = %s"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE), last=_LAST_KEY,
         failures=sql.Identifier(LIVE_SCHEMA, FAILURES_TABLE))

NOT_LIVE = sql.SQL("UPDATE {table} SET live = false WHERE name = %s").format(
    table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

class InlineProjections:
    """The inline projections, applied inside the append transaction (the recorder's hook)."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.projections = list(projections)
        self.names = [p.name for p in self.projections]

    def __call__(self, events: Sequence[Any]) -> Batch:
        """The statements for ``events``, and the arguments of the append's guard."""
        batch = Batch()
        batch.guard = (self.names,
                       all(isinstance(event, Quarantine.Recorded) for event in events))
        pairs = [(event, 0) for event in events]  # inline handlers do not use positions
        for projection in self.projections:
            projection.apply(pairs, batch)
        return batch
