"""``akashone-es export``: a slice of the log, with the digest that proves it, for auditors."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer

from akashone_es.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    State,
    fail,
    plural,
    uuid_argument,
)
from akashone_es.cli.options import TIME, TIME_HELP, file_to_write, time_value

if TYPE_CHECKING:
    from akashone_es.export import Filters, Summary


def _uuid(value: str | None, option: str) -> UUID | None:
    return None if value is None else uuid_argument(value, option)


def export(ctx: typer.Context,
           out: Annotated[Path, typer.Option(help="the JSON Lines file to write",
                                             callback=file_to_write)]
           = Path("akashone-export.jsonl"),
           since: Annotated[datetime | None, typer.Option(
               help=f"events at or after this time: {TIME_HELP}", metavar=TIME,
               parser=time_value)] = None,
           until: Annotated[datetime | None, typer.Option(
               help=f"events before this time: {TIME_HELP}", metavar=TIME,
               parser=time_value)] = None,
           aggregate: Annotated[str | None, typer.Option(help="one aggregate's id")] = None,
           kind: Annotated[str | None, typer.Option(
               help="an aggregate kind (user, invoice, ...) or a resource kind "
                    "(virtual_machine, ...)")] = None,
           tenant: Annotated[str | None, typer.Option(
               help="an organization's id: its records and what was done in it")] = None,
           akashone_json: Annotated[Path | None, typer.Option(
               "--akashone-json", help="instead: write the current state as AkashOne's store "
                                       "holds it (the migration's way back)",
               callback=file_to_write)] = None,
           ) -> None:
    """Write a slice of the log that an auditor checks offline against its digest.

    The digest is saved beside it (OUT.digest.json): akashone-es audit verify-export OUT
    --digest OUT.digest.json. Events the filters leave out appear as hashes only; secrets
    never appear."""
    from akashone_es.export import Filters  # noqa: PLC0415

    state: State = ctx.obj
    if akashone_json is not None:
        if any(v is not None for v in (since, until, aggregate, kind, tenant)):
            fail("--akashone-json writes the whole current state: it takes no filters",
                 EXIT_USAGE)
        source = ctx.get_parameter_source("out")  # click's ParameterSource (typer's own)
        if getattr(source, "name", "DEFAULT") != "DEFAULT":
            fail("--akashone-json names the file it writes: it takes no --out", EXIT_USAGE)
        _way_back(state, akashone_json)
        return
    if since is not None and until is not None and since >= until:
        raise typer.BadParameter(f"{since.isoformat()} is not before --until "
                                 f"{until.isoformat()}: the slice would be empty",
                                 param_hint="'--since'")
    filters = Filters(since=since, until=until, aggregate=_uuid(aggregate, "--aggregate"),
                      kind=kind, tenant=_uuid(tenant, "--tenant"))
    digest_file = out.with_name(out.name + ".digest.json")
    touched: list[Path] = []
    try:
        summary = _write(state, out, digest_file, filters, touched)
    except KeyboardInterrupt:  # Ctrl-C: a part of the slice proves nothing, and is removed
        removed = [path for path in touched if path.exists()]
        for path in removed:
            path.unlink(missing_ok=True)
        fail(f"interrupted: the export was not finished; {_removed(removed)}",
             EXIT_INTERRUPTED)
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.kinds.items()))
    state.console.print(f"wrote {out}: {plural(summary.shown, 'event')} shown"
                        + (f", {summary.withheld} withheld (secrets in clear)"
                           if summary.withheld else "")
                        + f", {plural(summary.leaves, 'other')} as hashes only")
    if kinds:
        state.console.print(f"  by kind: {kinds}")
    state.console.print(f"digest (position {summary.digest.position}) saved to {digest_file}; "
                        "keep a copy apart from the export")


def _write(state: State, out: Path, digest_file: Path, filters: Filters,
           touched: list[Path]) -> Summary:
    """Write the slice to ``out`` and its digest beside it; ``touched`` gets the files this
    changed (``out`` once it is opened, and the digest of an earlier export there, which
    no longer proves it)."""
    import psycopg  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn  # noqa: PLC0415

    from akashone_es.export import ExportError, FilterError  # noqa: PLC0415
    from akashone_es.export import export as write_export  # noqa: PLC0415

    with state.storage("export") as storage, psycopg.connect(storage.dsn) as conn:
        if filters.tenant is not None and storage.get_organization(filters.tenant) is None:
            fail(f"no organization {filters.tenant} (--tenant takes an organization's id)")
        if filters.aggregate is not None and not storage.app.recorder.select_events(
                filters.aggregate, limit=1):
            fail(f"no events of aggregate {filters.aggregate} in the log")
        try:
            handle = out.open("w", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        touched += [out, digest_file]
        columns = (TextColumn("exporting"), BarColumn(), TaskProgressColumn())
        with handle, Progress(*columns, console=state.errors, transient=True,
                              disable=not state.errors.is_terminal) as bar:
            task = bar.add_task("export", total=None)
            try:
                summary = write_export(conn, handle, filters, lambda done, total: bar.update(
                    task, completed=done, total=total))
            except ExportError as exc:
                handle.close()
                out.unlink(missing_ok=True)
                # a filter that names nothing is a bad argument; a log that does not
                # match its seals names a position
                fail(str(exc), EXIT_USAGE if isinstance(exc, FilterError) else EXIT_FAILED)
    try:
        digest_file.write_text(summary.digest.dumps())
    except OSError as exc:
        fail(f"cannot write {digest_file}: {exc.strerror}")
    return summary


def _removed(paths: list[Path]) -> str:
    """What an interrupted export removed."""
    if not paths:
        return "nothing was written"
    return f"removed {' and '.join(str(path) for path in paths)}"


def _way_back(state: State, out: Path) -> None:
    """The current users, tenancy and RBAC tables in AkashOne's dump shape."""
    from akashone_es.legacy import export_dump  # noqa: PLC0415

    with state.storage("export --akashone-json") as storage:
        dump = export_dump(storage)
    try:  # secrets in clear: readable by its owner only
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(dump, indent=1) + "\n")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    counts = ", ".join(f"{name} {len(rows)}" for name, rows in dump.items())
    state.console.print(f"wrote {out} (AkashOne's shape; it holds secrets in clear, as "
                        f"AkashOne does: keep it safe): {counts}")
