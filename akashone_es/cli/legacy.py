"""``akashone-es import FILE``: AkashOne's in-memory store brought into the log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from akashone_es.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, State, fail, plural
from akashone_es.cli.options import file_to_write

if TYPE_CHECKING:
    from akashone_es.legacy import ImportSummary

SHOWN_SKIPS = 20
#: the tables an error names (of the 37)
SHOWN_TABLES = 5


def import_dump(ctx: typer.Context,
                dump_file: Annotated[Path, typer.Argument(
                    help="a JSON dump of AkashOne's store (its tables, camelCase fields)",
                    metavar="FILE")],
                report: Annotated[Path | None, typer.Option(
                    help="write every skipped record and its reason here (JSON Lines)",
                    callback=file_to_write)]
                = None) -> None:
    """Import a dump of AkashOne's store: one Imported event per record.

    Ids are kept (or derived from AkashOne's own), so a rerun adds nothing. A record that
    breaks a rule is skipped whole, with its reason; the summary counts each table."""
    from rich.table import Table  # noqa: PLC0415

    state: State = ctx.obj
    data = _read_dump(dump_file)
    # the report's file is made before the import, so that it cannot fail once the import
    # is committed; it is removed again when the import does not finish
    made = report is not None and _report_file(report)
    try:
        summary = _run(state, data)
    except BaseException as exc:
        if made and report is not None:
            report.unlink(missing_ok=True)
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C: each batch is its own transaction
            fail("interrupted: the records imported so far are committed; run the same "
                 "import again to finish it (a rerun adds nothing twice)", EXIT_INTERRUPTED)
        raise
    table = Table(title=f"imported from {dump_file.name}", title_justify="left")
    for column in ("table", "imported", "already there", "skipped"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, count in summary.tables.items():
        table.add_row(name, str(count.imported), str(count.already), str(count.skipped))
    state.console.print(table)
    for skipped in summary.skipped[:SHOWN_SKIPS]:
        state.console.print(f"skipped {skipped.table} {skipped.source_id}: {skipped.reason}",
                            highlight=False)
    if len(summary.skipped) > SHOWN_SKIPS:
        state.console.print(f"... and {len(summary.skipped) - SHOWN_SKIPS} more"
                            + ("" if report else " (--report FILE lists them all)"))
    if report is not None:
        lines = [json.dumps(vars(s)) + "\n" for s in summary.skipped]
        try:
            report.write_text("".join(lines))
        except OSError as exc:
            fail(f"cannot write {report}: {exc.strerror}")
        state.console.print(f"{plural(len(lines), 'skipped record')} listed in {report}")
    if summary.not_imported:
        waiting = ", ".join(f"{name} ({n})" for name, n in sorted(summary.not_imported.items()))
        state.console.print(f"not imported yet by this version: {waiting}")


def _run(state: State, data: dict[str, list[Any]]) -> ImportSummary:
    """Import ``data``, with a progress bar on a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    from akashone_es.legacy import Importer  # noqa: PLC0415

    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn())
    with state.storage("import") as storage, Progress(
            *columns, console=state.errors, transient=True,
            disable=not state.errors.is_terminal) as bar:
        task = bar.add_task("import", total=None)
        return Importer(storage, lambda done, total: bar.update(
            task, completed=done, total=total)).run(data)


def _read_dump(dump_file: Path) -> dict[str, list[Any]]:
    """The dump's tables; a file that is not a dump of AkashOne's store is refused (exit 2)
    before anything is imported: not JSON, not an object of lists, or another program's
    JSON, with none of AkashOne's tables (it would import nothing, and say so only as a
    table of zeros)."""
    from akashone_es.legacy import IMPORTED_TABLES, dump_problem  # noqa: PLC0415

    try:
        data = json.loads(dump_file.read_bytes())
    except OSError as exc:
        fail(f"cannot read {dump_file}: {exc.strerror}", EXIT_USAGE)
    except ValueError as exc:  # not JSON, or not UTF-8
        fail(f"{dump_file} is not JSON: {exc}", EXIT_USAGE)
    except RecursionError:  # nested deeper than the parser goes (about a thousand levels)
        fail(f"{dump_file} is nested too deeply to read (no record of AkashOne's nests more "
             "than a few levels)", EXIT_USAGE)
    problem = dump_problem(data)
    if problem is not None:
        fail(f"{dump_file} is not a dump: {problem}", EXIT_USAGE)
    if not set(data) & set(IMPORTED_TABLES):
        found = ", ".join(list(data)[:SHOWN_TABLES]) + (", ..." if len(data) > SHOWN_TABLES
                                                        else "")
        fail(f"{dump_file} is not a dump of AkashOne's store: it has none of its tables "
             f"({', '.join(IMPORTED_TABLES[:SHOWN_TABLES])}, ... {len(IMPORTED_TABLES)} in "
             f"all); it has {found or 'no table'}", EXIT_USAGE)
    return data  # type: ignore[no-any-return]


def _report_file(report: Path) -> bool:
    """Open ``report`` for writing, as its lines will be (nothing in it changes yet); whether
    it was made. A path that cannot be written is refused, one line, exit 2."""
    existed = report.exists()
    try:
        with report.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        fail(f"cannot write {report}: {exc.strerror}", EXIT_USAGE)
    return not existed


def write_sample(ctx: typer.Context,
                 out: Annotated[Path, typer.Argument(help="the JSON file to write",
                                                     metavar="FILE")],
                 users: Annotated[int, typer.Option(
                     min=1, max=100_000, help="AkashOne users in it (the rest scales)")]
                 = 1000) -> None:
    """Write a realistic dump of AkashOne's store to try `import` on: all 37 tables, and
    the defects AkashOne's own code lets in (the import skips them, saying why)."""
    from akashone_es.legacy import sample_dump  # noqa: PLC0415

    state: State = ctx.obj
    data = sample_dump(users)
    try:
        out.write_text(json.dumps(data, indent=1) + "\n")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", EXIT_USAGE)
    records = sum(len(records) for records in data.values())
    state.console.print(f"wrote {plural(records, 'record')} in {len(data)} tables to {out}")

