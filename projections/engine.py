"""Projection base, statement batches, checkpoints and the inline hook.

A projection is its tables' DDL, one handler per event type and its queries. Handlers do not
talk to the database: they append statements to a ``Batch``, which is executed in pipeline mode
on whatever transaction applies it: the append transaction (inline) or a catch-up or rebuild
transaction (async, rebuild). Each handler must be idempotent: the same event delivered twice
leaves the rows as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

from akashone_es.domain.operations import Quarantine
from projections.failures import FAILURES_DDL, FAILURES_TABLE
from projections.quarantine import QUARANTINE_INDEX_DDL

#: a statement: composed SQL, or bytes rendered once (psycopg then caches its conversion)
Query = bytes | sql.SQL | sql.Composed
CHECKPOINTS_TABLE = "akashone_checkpoints"
#: the events table's notification id sequence (bigserial's default name)
EVENTS_SEQUENCE = "public.akashone_events_notification_id_seq"
LIVE_SCHEMA = "public"

F = TypeVar("F", bound=Callable[..., None])


def handles(*event_classes: type) -> Callable[[F], F]:
    """Mark a projection method as the handler of the given event classes."""

    def decorate(fn: F) -> F:
        fn._handles = event_classes  # type: ignore[attr-defined]
        return fn

    return decorate


RowKey = tuple[str, Any]


class Batch:
    """Statements collected from handlers, executed in order.

    A statement added with ``returns=(table, id)`` ends in ``RETURNING *``; when the batch runs
    inline, the row it returns is handed back to the command (read-your-write without a
    second query).
    """

    __slots__ = ("returns", "statements")

    def __init__(self) -> None:
        self.statements: list[tuple[Query, Sequence[Any]]] = []
        self.returns: dict[int, RowKey] = {}

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
        for query, params in self.statements:
            cur.execute(query, params, prepare=True)


class Table:
    """One read table: its name, columns DDL and extra index DDL (``{table}`` placeholders)."""

    def __init__(self, name: str, columns: str, indexes: Sequence[str] = (),
                 order_by: str = "id", added: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.columns = columns
        self.indexes = tuple(indexes)
        self.order_by = order_by
        #: columns added after the table first shipped (name -> type): an older live table
        #: gets them (empty, nullable) so its new indexes can be created, and set-up then
        #: rebuilds the projection to fill them (``setup.missing_tables``)
        self.added = dict(added or {})

    def ddl(self, schema: str) -> list[Query]:
        table = sql.Identifier(schema, self.name)
        statements: list[Query] = [
            sql.SQL("CREATE TABLE IF NOT EXISTS {table} (" + self.columns + ")").format(
                table=table)
        ]
        # only when missing: ALTER TABLE locks the table (readers too) even with IF NOT EXISTS
        statements += [
            sql.SQL("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns"
                    " WHERE table_schema = {schema} AND table_name = {name}"
                    " AND column_name = {column_name}) THEN"
                    " ALTER TABLE {table} ADD COLUMN {column} " + kind + "; END IF; END $$"
                    ).format(schema=sql.Literal(schema), name=sql.Literal(self.name),
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
        to bytes once: composing SQL per execute costs more than the execute itself."""
        return sql.SQL(text).format(**{k: self.t(v) for k, v in tables.items()}).as_bytes(None)

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


#: the engine's own tables (checkpoints, failures) and the quarantine lookup's index, as one
#: multi-statement string (no parameters), so the schema setup runs them in one call
CHECKPOINTS_DDL = sql.SQL("; ").join([
    sql.SQL(
        "CREATE TABLE IF NOT EXISTS {table} ("
        " name text PRIMARY KEY, position bigint NOT NULL DEFAULT 0,"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    ).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE)),
    FAILURES_DDL,
    QUARANTINE_INDEX_DDL,
])

#: inside the append transaction, which holds the events table's lock: our last id is currval.
#: An inline projection with a recorded failure is stopped (its start-up rebuild failed, so
#: its tables may be empty or behind): moving its checkpoint to the head would lose those rows
#: for good, so the update sets NULL instead, the NOT NULL column refuses it, and the whole
#: append (events included) is rolled back; the storage turns that into ``ProjectionError``
#: (``inline_stopped``). The check costs no round trip: it is part of the append's message.
def _checkpoint_update(text: str) -> bytes:
    """An UPDATE of the live checkpoints with ``{table}``, ``{failures}``, ``{sequence}``."""
    return sql.SQL(text).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE),
                                failures=sql.Identifier(LIVE_SCHEMA, FAILURES_TABLE),
                                sequence=sql.Literal(EVENTS_SEQUENCE)).as_bytes(None)


STOPPED = "EXISTS (SELECT 1 FROM {failures} f WHERE f.projection = c.name)"
SET_CHECKPOINTS_TO_CURRENT = _checkpoint_update(
    "UPDATE {table} c SET position = CASE WHEN " + STOPPED + " THEN NULL"
    " ELSE currval({sequence}) END, updated_at = now() WHERE name = ANY(%s)")

#: the operator's quarantine is appended while an inline projection is stopped (it is how it
#: gets unstuck): a stopped projection's checkpoint is held back, so the next start-up (or
#: ``projections rebuild``) rebuilds it past the quarantined event
SET_CHECKPOINTS_TO_CURRENT_UNLESS_STOPPED = _checkpoint_update(
    "UPDATE {table} c SET position = currval({sequence}), updated_at = now()"
    " WHERE name = ANY(%s) AND NOT " + STOPPED)


def inline_stopped(exc: BaseException | None) -> bool:
    """Whether a refused append was refused because an inline projection is stopped."""
    diag = getattr(exc, "diag", None)
    return (isinstance(exc, psycopg.errors.NotNullViolation)
            and getattr(diag, "table_name", None) == CHECKPOINTS_TABLE)

SET_CHECKPOINTS = sql.SQL(
    "UPDATE {table} SET position = %s, updated_at = now() WHERE name = ANY(%s)"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

REGISTER_CHECKPOINT = sql.SQL(
    "INSERT INTO {table} (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

LOCK_CHECKPOINT = sql.SQL(
    "SELECT position FROM {table} WHERE name = %s FOR UPDATE"
).format(table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))

READ_CHECKPOINTS = sql.SQL("SELECT name, position FROM {table}").format(
    table=sql.Identifier(LIVE_SCHEMA, CHECKPOINTS_TABLE))


def read_checkpoints(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Every projection's checkpoint (last applied notification id)."""
    with conn.cursor() as cur:
        cur.execute(READ_CHECKPOINTS)
        return {row[0] if isinstance(row, tuple) else row["name"]:
                row[1] if isinstance(row, tuple) else row["position"] for row in cur}


class InlineProjections:
    """The inline projections, applied inside the append transaction (the recorder's hook)."""

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.projections = list(projections)
        self.names = [p.name for p in self.projections]

    def __call__(self, events: Sequence[Any]) -> Batch:
        """The statements for ``events`` plus the checkpoint update (set server-side)."""
        batch = Batch()
        pairs = [(event, 0) for event in events]  # inline handlers do not use positions
        for projection in self.projections:
            projection.apply(pairs, batch)
        if all(isinstance(event, Quarantine.Recorded) for event in events):
            batch.add(SET_CHECKPOINTS_TO_CURRENT_UNLESS_STOPPED, (self.names,))
        else:
            batch.add(SET_CHECKPOINTS_TO_CURRENT, (self.names,))
        return batch
