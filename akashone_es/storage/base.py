"""The storage facade's base: saving aggregates, loading them, reading rows, tenant scope."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import DataError, IntegrityError
from psycopg import sql
from psycopg.rows import tuple_row
from pydantic import BaseModel

from akashone_es import context
from akashone_es.application import AkashOneApplication
from akashone_es.domain.base import Aggregate, DomainEvent
from akashone_es.errors import (
    ConcurrentWriteError,
    ConfigurationError,
    DuplicateError,
    NotFoundError,
    PermissionDeniedError,
    ProjectionError,
    ValidationError,
    first_line,
)
from akashone_es.logging import get_logger
from akashone_es.persistence import replica
from akashone_es.persistence.names import EVENTS_TABLE
from akashone_es.persistence.recorder import capture_row
from akashone_es.persistence.replica import Standby
from akashone_es.persistence.snapshot_seal import SealedSnapshotStore, seal_key
from akashone_es.personal import KEYS_TABLE, KeyRing
from akashone_es.secrets import KEY_FILE, SecretBox, key_source, load_key
from akashone_es.settings import Settings
from akashone_es.storage import tenancy
from akashone_es.storage.policy import UNAVAILABLE, reconnecting
from projections.engine import Projection, Query, RowKey, inline_stopped
from projections.failures import read_failures, writes_refused
from projections.log import LogReader
from projections.positions import head
from projections.runner import catch_up

#: which of some aggregate ids the log holds
IDS_IN_LOG = sql.SQL(f"SELECT DISTINCT originator_id FROM {EVENTS_TABLE}"
                      " WHERE originator_id = ANY(%s::uuid[])")

A = TypeVar("A", bound=Aggregate)
log = get_logger(__name__)
#: how long a read of an async projection waits for older writers to end (read-your-writes)
READ_YOUR_WRITES_WAIT = 5.0
R = TypeVar("R", bound=BaseModel)


class StorageBase:
    """Holds the application, the projections and the settings; used by the context mixins."""

    def __init__(self, app: AkashOneApplication, settings: Settings, dsn: str,
                 projections: Sequence[Projection], on_close: Any = None) -> None:
        self.app = app
        self.settings = settings
        self.dsn = dsn
        self.projections = list(projections)
        self.reader = LogReader(app.mapper)  # type: ignore[arg-type]
        self._datastore = app.recorder.datastore  # type: ignore[attr-defined]
        self._unique: dict[str, tuple[str, str]] = {}
        for projection in self.projections:
            self._unique.update(projection.unique_constraints)
        self._on_close = on_close
        #: the hot standby reads may go to (AKASHONE_READ_URL); None: all on the primary
        self._standby: Standby | None = None
        if not settings.secret_key and not (settings.data_dir.expanduser() / KEY_FILE).exists(
                ) and self._holds_keys():
            app.close()  # a new key would open none of them: never write one here
            raise ConfigurationError(
                f"this database holds personal data's keys, sealed under a key that is not "
                f"here: set AKASHONE_SECRET_KEY to it (or AKASHONE_DATA_DIR to the directory "
                f"with its {KEY_FILE}; a restore needs the key as well as the dump)")
        key = load_key(settings.secret_key, settings.data_dir)
        self.secrets = SecretBox(key)
        #: personal data's keys (the mapper encrypts and decrypts with them)
        self.keyring = KeyRing(key, self._datastore.get_connection,
                               key_source(settings.secret_key, settings.data_dir))
        app.mapper.keyring = self.keyring  # type: ignore[attr-defined]
        if isinstance(app.snapshots, SealedSnapshotStore):  # loads trust only what we sealed
            app.snapshots.key = seal_key(key)

    def _holds_keys(self) -> bool:
        """Whether the database already keeps sealed keys of personal data."""
        with self._datastore.get_connection() as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS t",
                                 (f"public.{KEYS_TABLE}",)).fetchone()
            if not found or not found["t"]:
                return False
            row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM public.{}) AS k").format(
                sql.Identifier(KEYS_TABLE))).fetchone()
        return bool(row and row["k"])

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the pool (and release the embedded server when this storage started it)."""
        self.app.close()
        if self._standby is not None:
            self._standby.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> StorageBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acting_as(self, actor_id: UUID | str | None = None, *, system: str | None = None,
                  organization_id: UUID | str | None = None, ip: str | None = None,
                  user_agent: str | None = None, correlation_id: UUID | str | None = None,
                  actor_kind: str | None = None,
                  ) -> AbstractContextManager[context.ActingContext]:
        """Act inside the block as a user (``actor_id``: its tenant comes from its own row) or
        as a named platform job (``system="nightly overdue run"``).

        Malformed arguments raise ``ValidationError`` at once. Entering the block resolves
        the actor: unknown actors, users who are not active and a tenant user naming another
        organization raise ``ContextError``; a super admin or a system context may name an
        ``organization_id`` to act on its behalf (recorded in the metadata).
        """
        asked = tenancy.request(actor_id=actor_id, system=system,
                                organization_id=organization_id, actor_kind=actor_kind,
                                ip=ip, user_agent=user_agent, correlation_id=correlation_id)
        return self._enter(asked)

    @contextmanager
    def _enter(self, asked: tenancy.Request) -> Iterator[context.ActingContext]:
        def resolve() -> context.ActingContext:
            with self._datastore.get_connection() as conn:
                return tenancy.resolve(conn, asked)

        ctx = reconnecting(self, "acting_as", 2, resolve)  # a read: retried once
        with context.entered(ctx) as entered:
            yield entered

    @property
    def tenant_id(self) -> UUID | None:
        """The organization the acting context is confined to (None: platform-wide)."""
        return context.current().tenant_id

    def _tenant_acting(self) -> bool:
        """A tenant acts (not the platform, even on a tenant's behalf)."""
        return not context.current().is_platform_actor

    def _own_organization(self) -> UUID | None:
        """The organization a tenant's new records belong to (None for the platform). A user
        without an organization owns no organization's records: refused."""
        ctx = context.current()
        if ctx.tenant_id is not None and ctx.organization_id is None:
            raise PermissionDeniedError("a user without an organization cannot create "
                                        "records of an organization")
        return ctx.organization_id

    def _visible(self, organization_id: UUID | str | None, *, shared: bool = False) -> bool:
        """Whether a record of ``organization_id`` is visible to the acting party."""
        tenant = self.tenant_id
        if tenant is None:
            return True
        if organization_id is None:
            return shared
        return str(organization_id) == str(tenant)

    def _visible_row(self, organization_id: UUID | str | None, user_id: UUID | str | None
                     ) -> bool:
        """A row of an organization, or about a user: visible in scope, or the actor's own
        in no organization (a user who belongs to none still sees itself and its own
        records; one moved out of an organization no longer reads that one's)."""
        if self._visible(organization_id):
            return True
        actor = context.current().actor_id
        return (actor is not None and user_id is not None and organization_id is None
                and str(user_id) == str(actor))

    # -- write side ---------------------------------------------------------------------
    def _save(self, *aggregates: Aggregate | DomainEvent) -> int:
        """Append the aggregates' pending events in one transaction; returns the position."""
        try:
            recordings = self.app.save(*aggregates)
        except IntegrityError as exc:
            raise self._integrity_error(exc) from None
        except DataError as exc:  # a value the column cannot hold (range, encoding)
            raise ValidationError.single("input", first_line(exc)) from None
        except (TypeError, OverflowError) as exc:  # the event encoder refused a value
            raise ValidationError.single("input", f"cannot be stored: {exc}") from None
        finally:
            replica.written()  # whatever the outcome: a failed commit may still have landed
        return max((r.notification.id for r in recordings), default=0)

    def _save_returning(self, model: type[R], key: RowKey, *aggregates: Aggregate | DomainEvent
                        ) -> R | None:
        """Save, and return the read-table row the inline projection wrote under ``key``
        (None when it wrote none, e.g. an idempotent replay)."""
        with capture_row(key) as captured:
            self._save(*aggregates)
        row = captured.row
        return model.model_validate(row) if row is not None else None

    def _integrity_error(self, exc: IntegrityError) -> Exception:
        cause = exc.__cause__
        if inline_stopped(cause):  # the append's inline guard refused it
            return self._inline_stopped(cause)
        diag = getattr(cause, "diag", None)
        constraint = getattr(diag, "constraint_name", None) or ""
        if constraint in self._unique:
            kind, field = self._unique[constraint]
            return DuplicateError(kind, field)
        if isinstance(cause, psycopg.errors.CheckViolation):
            return ValidationError.single(constraint or "input", first_line(cause))
        if isinstance(cause, psycopg.errors.NotNullViolation):
            column = getattr(diag, "column_name", None) or "input"
            return ValidationError.single(column, "is required")
        if not isinstance(cause, psycopg.errors.UniqueViolation):
            return ValidationError.single("input", first_line(cause or exc))
        return ConcurrentWriteError(f"a concurrent write changed the record first "
                                    f"({constraint})")

    def _inline_stopped(self, cause: BaseException | None) -> ProjectionError:
        """The error of an append refused because an inline projection is stopped (or,
        without a recorded failure, not current: another version of the code runs)."""
        inline = {p.name for p in self.projections if p.mode == "inline"}
        with self._datastore.get_connection() as conn:
            failures = [f for name, f in read_failures(conn).items() if name in inline]
        if failures:
            return ProjectionError(writes_refused(failures))
        reason = first_line(cause) if cause is not None else "unknown"
        return ProjectionError(f"writes are refused: {reason}; reopen the storage to bring "
                               f"them current, or run the same version of the code everywhere")

    def _load(self, cls: type[A], aggregate_id: UUID, kind: str) -> A:
        try:
            aggregate: Any = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(kind, aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise NotFoundError(kind, aggregate_id)
        return aggregate

    # -- read side ----------------------------------------------------------------------
    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            with self._read_connection() as conn, conn.cursor() as cur:
                yield cur
        except (DataError, psycopg.DataError) as exc:  # e.g. a NUL or out-of-range value
            raise ValidationError.single("input", first_line(exc)) from None

    @contextmanager
    def _read_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The standby's connection for a read call when one is set and has replayed the
        session's writes; otherwise the primary's."""
        standby = self._standby
        if standby is None or not replica.reading():
            with self._datastore.get_connection() as conn:
                yield conn
            return
        with standby.connection(self._session()) as conn:
            if conn is not None:
                try:
                    yield conn
                except UNAVAILABLE as exc:  # the read is retried once: on the primary
                    standby.down(exc)
                    raise
                return
        with self._datastore.get_connection() as conn:
            yield conn

    def _session(self) -> str:
        """Who reads its own writes: the acting user, or the named system context."""
        ctx = context.current()
        return f"{ctx.actor_kind}:{ctx.actor_id or ctx.reason}"

    def _after_write(self) -> None:
        """A command has written: its session's reads wait for the standby to replay it."""
        if self._standby is not None:
            self._standby.wrote(self._session())

    def _one(self, model: type[R], query: Query, params: Sequence[Any]) -> R | None:
        with self._cursor() as cur:
            cur.execute(query, params, prepare=True)
            row = cur.fetchone()
        return model.model_validate(row) if row else None

    def _read_together(self, reads: Sequence[tuple[Query, Sequence[Any]]], *,
                       as_tuples: Sequence[int] = ()) -> list[list[Any]]:
        """The rows of each read, the reads sent together on one connection and answered in
        one round trip (a pipeline), in order; as dicts, except the reads at ``as_tuples``
        (plain tuples cost less when the rows are many)."""
        with self._cursor() as first, ExitStack() as others:
            conn = first.connection
            cursors = [first, *(others.enter_context(conn.cursor()) for _ in reads[1:])]
            for index in as_tuples:
                cursors[index].row_factory = tuple_row
            with conn.pipeline():
                for cur, (query, params) in zip(cursors, reads, strict=True):
                    cur.execute(query, params, prepare=True)
            return [list(cur.fetchall()) for cur in cursors]

    def _all(self, model: type[R], query: Query, params: Sequence[Any]) -> list[R]:
        with self._cursor() as cur:
            cur.execute(query, params, prepare=True)
            rows = cur.fetchall()
        return [model.model_validate(row) for row in rows]

    def _rows(self, query: Query, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Every row, as dicts."""
        with self._cursor() as cur:
            cur.execute(query, params, prepare=True)
            return list(cur.fetchall())

    def _column(self, query: Query, params: Sequence[Any]) -> list[Any]:
        """The first column of every row."""
        with self._cursor() as cur:
            cur.execute(query, params, prepare=True)
            return [next(iter(row.values())) for row in cur.fetchall()]

    def _ids_in_log(self, ids: Sequence[UUID]) -> set[UUID]:
        """Which of ``ids`` name an aggregate the log holds (deleted or not)."""
        return set(self._column(IDS_IN_LOG, (list(ids),)))

    def _scalar(self, query: Query, params: Sequence[Any]) -> Any:
        with self._cursor() as cur:
            cur.execute(query, params, prepare=True)
            row = cur.fetchone()
        return None if row is None else next(iter(row.values()))

    def _catch_up(self, name: str) -> None:
        """Read-your-writes for an async projection: apply what is pending before reading.

        A projection stopped at an event it cannot apply raises ``ProjectionError`` naming
        it: silently serving an audit trail that ends early (or not finding the row just
        written) would mislead more than an error that says what to do.

        Readers follow the log only below the oldest running transaction, so an event this
        caller committed can sit above that mark while an older writer is still in flight:
        the catch-up goes on (briefly waiting) until every event committed before this read
        is applied, for at most ``READ_YOUR_WRITES_WAIT`` seconds (a transaction left open
        that long is logged, and the read goes on with what is applied).
        """
        replica.on_primary()  # the caught-up rows are read where they were written
        projection = next(p for p in self.projections if p.name == name)
        with self._datastore.get_connection() as conn:
            target = head(conn, final=True)  # every event committed before this read
            deadline = time.monotonic() + READ_YOUR_WRITES_WAIT
            while catch_up(conn, projection, self.reader,
                           batch_size=self.settings.batch_size) < target:
                if time.monotonic() > deadline:
                    log.warning("projection.held_back", projection=name,
                                position=target.position, waited=READ_YOUR_WRITES_WAIT,
                                reason="a transaction older than the events to read is "
                                       "still running")
                    return
                time.sleep(0.005)
