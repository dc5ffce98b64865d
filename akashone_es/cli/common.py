"""Shared CLI pieces: settings state, opening storage, one-line errors, tables that fit.

Exit codes: 0 done; 1 the command ran and failed (not found, a rule refused the change,
``verify`` found a difference); 2 configuration or usage (a setting, the DSN, a database
that is unreachable or missing, a bad argument). Every error is one ``error: ...`` line on
stderr, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from akashone_es.errors import AkashOneError, ConfigurationError

# Commands import what they use when they run: help, and a mistyped option, print without
# loading the storage, the projections, psycopg or pydantic (``docs/benchmarks.md``, startup).
if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.progress import Progress, TaskID

    from akashone_es.settings import Settings
    from akashone_es.storage import Storage
    from projections.overview import HeldBack, ProjectionStatus

EXIT_FAILED = 1
EXIT_USAGE = 2
#: the exit code of a command stopped by Ctrl-C (128 + SIGINT), as a shell reports it
EXIT_INTERRUPTED = 130


def utc(moment: datetime) -> datetime:
    """A time option's value as an aware time (UTC when it named no offset)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def uuid_argument(value: str, hint: str = "AGGREGATE_ID") -> UUID:
    """An id given on the command line; anything else is a usage error naming it."""
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter("must be a UUID", param_hint=hint) from None


def aggregate_reference(value: str, hint: str = "AGGREGATE_ID") -> UUID | str:
    """An aggregate named on the command line: its id, or an invoice's or a credit/debit
    note's number (``INV/2627/000001``), resolved by ``resolve_reference``."""
    try:
        return UUID(value)
    except ValueError:
        pass
    if HEXISH.fullmatch(value):  # a UUID mistyped, not a number
        raise typer.BadParameter("must be a UUID", param_hint=hint)
    if (len(value) <= DOCUMENT_NUMBER_MAX and value.isprintable()
            and any(c.isdigit() for c in value)):  # a document number counts documents
        return value  # AkashOne's own numbers (INV-2025-0001) come with an import
    raise typer.BadParameter("must be a UUID, or an invoice or note number such as "
                             "INV/2627/000001", param_hint=hint)


def resolve_reference(storage: Storage, reference: UUID | str) -> UUID:
    """The id ``reference`` names: itself, or the invoice's or note's with that number."""
    if isinstance(reference, UUID):
        return reference
    invoice = storage.get_invoice_by_number(reference)
    if invoice is not None:
        return invoice.id
    notes = storage.get_adjustment_notes_by_number(reference)
    if len(notes) > 1:
        fail(f"{len(notes)} notes are numbered {reference} (one per supplier GSTIN): name one "
             f"by its id: {', '.join(f'{n.id} ({n.supplier_gstin})' for n in notes)}")
    if not notes:
        fail(f"no invoice {reference} (nor a credit or debit note with that number)")
    return notes[0].id


#: the longest document number taken on the command line (GST allows 16 characters)
DOCUMENT_NUMBER_MAX = 64
#: what a mistyped UUID looks like (hex digits and dashes only, no document number)
HEXISH = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]*")


def as_of_option(text: str | None) -> datetime | int | None:
    """``--as-of``: an aggregate's version (a whole number) or a time (ISO 8601, UTC unless
    it has an offset); a bad value is a usage error naming the option."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise typer.BadParameter("a version number, or a time such as 2026-12-01 or "
                                 "2026-12-01T10:30+05:30", param_hint="--as-of") from None


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(text.split())


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    # typer.echo, not rich: rich wraps long lines at the terminal's width
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def load_settings(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment and options; a bad value exits 2 naming the variable."""
    from akashone_es.settings import load_settings as settings_from_env  # noqa: PLC0415

    try:
        return settings_from_env(**overrides)
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)


class State:
    """What every command gets: settings and consoles."""

    def __init__(self, settings: Settings, command: str = "cli") -> None:
        self.settings = settings
        self.command = command
        # data is printed, never read as markup (a tenant's ``[bold]`` in a name, the
        # ``[erased]`` marker): the CLI's own emphasis opts in with ``markup=True`` or a style
        self.console = Console(markup=False)
        self.errors = Console(stderr=True, markup=False)

    @contextmanager
    def storage(self, command: str | None = None, *, create: bool = False,
                dsn: str | None = None) -> Iterator[Storage]:
        """Open storage for one command, acting as the CLI; errors become one line.

        ``command`` names the reason recorded for the platform context (``cli <command>``).
        Only ``init``, ``demo`` and the target of ``audit reencrypt`` pass ``create=True``:
        every other command refuses a missing database rather than create an empty one under
        a mistyped name. ``dsn``: a database other than the settings' one.
        """
        import psycopg  # noqa: PLC0415 - loaded by the commands that open storage

        from akashone_es.storage import open_storage  # noqa: PLC0415

        try:
            storage = open_storage(self.settings, dsn=dsn, create_database=create)
        except (AkashOneError, psycopg.Error) as exc:
            # A set-up that failed releases the embedded server, which ends the owner's
            # connection before set-up lets go of it: that connection's error then hides
            # the one that said what is wrong, and this names that one.
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, AkashOneError):
                cause = cause.__context__
            if isinstance(cause, ConfigurationError):
                fail(str(cause), EXIT_USAGE)
            if cause is not None:
                fail(str(cause))
            from akashone_es.persistence.database import connect_problem  # noqa: PLC0415

            # e.g. the role may not create the schema
            reason = connect_problem(exc) if isinstance(exc, psycopg.Error) else str(exc)
            fail(f"database: {reason}", EXIT_USAGE)
        try:
            with storage.acting_as(system=f"cli {command or self.command}"):
                yield storage
        except ConfigurationError as exc:
            fail(str(exc), EXIT_USAGE)
        except AkashOneError as exc:
            fail(str(exc))
        except psycopg.Error as exc:  # the server went away mid-command
            interrupt = _interrupt_behind(exc)
            if interrupt is not None:  # the command's own Ctrl-C handling says what it left
                raise interrupt from None
            fail(f"database: {exc}")
        finally:
            storage.close()


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C a database error was raised while handling, if any: psycopg leaving
    pipeline mode mid-flight raises "cannot exit pipeline mode while busy" over it."""
    cause = exc.__context__
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__context__
    return cause


class Bars:
    """A rich progress bar fed by (projection, position, target) callbacks."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, name: str, position: int, target: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=target)
        self.progress.update(self.tasks[name], completed=position, total=target)


def bars(state: State) -> Progress:
    """Progress bars on stderr, one per task, with counts and time taken."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=state.errors, transient=False)


def fits(console: Console, table: Table) -> bool:
    """Whether ``table`` fits the console without cutting a ``no_wrap`` cell or breaking a
    word in another (rich would squeeze it to fit, ellipsis and all). A column whose
    overflow is ``fold`` may break anywhere: it needs only its ``min_width``."""
    from rich.measure import Measurement  # noqa: PLC0415

    wide = console.options.update_width(10_000)
    needed = len(table.columns) * 3 + 1  # the default box: a border and two spaces a column
    for column in table.columns:
        widest = 0
        for renderable in () if column.overflow == "fold" else (column.header, *column.cells):
            measured = Measurement.get(console, wide, renderable)
            widest = max(widest, measured.maximum if column.no_wrap else measured.minimum)
        needed += max(widest, column.min_width or 0)
    return needed <= console.width


def model_table(console: Console, title: str, rows: Sequence[BaseModel],
                columns: Sequence[str]) -> Table:
    """A table of some columns of read models, never wrapping a value; the title and the
    values are plain text (a title may name a tenant's record), never markup.

    Columns are given most important first; when the terminal is too narrow the last ones
    are left out, and the caption says which.
    """
    shown = list(columns)
    while True:
        table = Table(title=Text(title, style="table.title"), title_justify="left",
                      caption_justify="left")
        for column in shown:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(*[cell(getattr(row, column)) for column in shown])
        hidden = [c for c in columns if c not in shown]
        if hidden:
            table.caption = f"(too narrow for {', '.join(hidden)})"
        if len(shown) == 1 or fits(console, table):
            return table
        shown.pop()


def cell(value: Any) -> Text:
    """A value as a table shows it: times in UTC to the minute, ``-`` for none; as plain
    text, never markup (``[erased]``, or a tenant's ``[bold]`` in a name, print as is)."""
    if value is None:
        return Text("-")
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return Text(moment.strftime("%Y-%m-%d %H:%M"))
    return Text(str(value))


def plural(count: int, noun: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def catch_up_async(storage: Storage) -> None:
    """Apply every pending event to the async projections (what ``projections catch-up``
    does), so a status printed next shows no lag."""
    from projections.runner import Runner  # noqa: PLC0415

    chosen = [p for p in storage.projections if p.mode == "async"]
    if chosen:
        Runner(storage.dsn, chosen, storage.reader,
               batch_size=storage.settings.batch_size).run(once=True)


def render_status(console: Console, storage: Storage) -> None:
    """Head, checkpoint and lag of every projection."""
    from projections.overview import held_back, status  # noqa: PLC0415

    with storage._datastore.get_connection() as conn:
        render_status_rows(console, status(conn, storage.projections), held_back(conn))


def quick_status(state: State) -> tuple[list[ProjectionStatus] | None, str | None,
                                        HeldBack | None]:
    """The status read straight from the server named by ``DATABASE_URL``, without opening
    the storage (no set-up, no application loaded: a quick start, and a status that changes
    nothing); on the embedded server too, which it starts when no one runs it. None when that
    is not enough: a database that is missing or unreachable, or a schema older than this
    code (set-up upgrades it); the caller then opens the storage, which says what is wrong
    or fixes it. Also the DSN it read (the primary a standby is compared with)."""
    import psycopg  # noqa: PLC0415

    from projections.overview import LISTED, held_back, status  # noqa: PLC0415

    server = None
    dsn = state.settings.database_url
    if not dsn:
        from akashone_es.logging import configure_logging  # noqa: PLC0415
        from akashone_es.persistence.embedded import (  # noqa: PLC0415
            EmbeddedServer,
            embedded_exists,
        )

        configure_logging(state.settings.log_format, state.settings.log_level)
        try:
            embedded_exists(state.settings.data_dir)  # else a new, empty one would start
            server = EmbeddedServer(state.settings.data_dir)  # started if no one runs it
        except ConfigurationError as exc:  # e.g. a data directory that cannot be made
            fail(str(exc), EXIT_USAGE)
        dsn = server.dsn(EMBEDDED_DATABASE)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            if conn.execute(SCHEMA_CURRENT).fetchone() != (True,):
                return None, dsn, None
            return status(conn, LISTED), dsn, held_back(conn)
    except psycopg.Error:
        return None, dsn, None
    finally:
        if server is not None:
            server.stop()


#: the embedded server's database (``akashone_es.storage.EMBEDDED_DATABASE``, which this
#: module does not import: it would load the whole storage)
EMBEDDED_DATABASE = "akashone"
#: whether the schema has what this code reads (set-up adds it to an older one)
SCHEMA_CURRENT = ("SELECT to_regprocedure('public.akashone_horizon()') IS NOT NULL AND EXISTS"
                  " (SELECT 1 FROM pg_attribute WHERE attrelid ="
                  " to_regclass('public.akashone_checkpoints') AND attname = 'transaction_id')")


def render_status_rows(console: Console, rows: Sequence[ProjectionStatus],
                       held: HeldBack | None = None) -> None:
    """The status table (head: the last event followers may read now), and what holds
    followers back when committed events are not readable yet."""
    table = Table(title="projections", title_justify="left")
    for column in ("projection", "mode", "checkpoint", "head", "lag"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(row.name, row.mode, str(row.position), str(row.head), str(row.lag))
    console.print(table)
    if held is not None:
        console.print(held.describe(), style="yellow", markup=False)
