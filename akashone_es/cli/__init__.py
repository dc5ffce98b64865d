"""The ``akashone-es`` command: operators' and auditors' entry point (typer + rich)."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main

from akashone_es.cli import (
    audit,
    billing,
    demo,
    erase,
    export,
    history,
    legacy,
    projections,
    resources,
    show,
)
from akashone_es.cli.common import EXIT_USAGE, State, load_settings, one_line, render_status

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Event-sourced persistence for AkashOne: schema, demo, projections, "
                       "history. Exit codes: 0 done, 1 the command failed, 2 configuration "
                       "or usage error.")
app.add_typer(projections.app, name="projections")
app.add_typer(audit.app, name="audit")
app.command("demo")(demo.demo)
app.command("history")(history.history)
app.command("show")(show.show)
app.command("erase")(erase.erase)
app.command("import")(legacy.import_dump)
app.command("sample-dump")(legacy.write_sample)
app.command("invoice")(billing.invoice)
app.command("resources")(resources.resources)
app.command("meter")(resources.meter)
app.command("export")(export.export)


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option(
        envvar="DATABASE_URL", help="PostgreSQL DSN; unset starts the embedded server")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        envvar="AKASHONE_DATA_DIR", help="embedded PostgreSQL data directory")] = None,
) -> None:
    """Build settings once for every command (the CLI's composition root)."""
    overrides: dict[str, object] = {}
    if database_url:
        overrides["database_url"] = database_url
    if data_dir:
        overrides["data_dir"] = data_dir
    ctx.obj = State(load_settings(overrides), command=ctx.invoked_subcommand or "cli")


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database if needed, create or upgrade the schema, seed permissions and roles."""
    state: State = ctx.obj
    with state.storage("init", create=True) as storage:
        permissions = storage.initialize_default_permissions()
        roles = storage.initialize_default_roles()
        state.console.print(f"schema ready; seeded {permissions} permissions, {roles} roles")
        render_status(state.console, storage)


#: a docstring's literal (reStructuredText's double backticks)
LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def _reflowed(command: Any) -> Any:
    """Help as a terminal shows it well, for ``command`` and its subcommands.

    Each help paragraph is one flowing text: typer keeps a docstring's line breaks, which
    then fall mid-sentence in a terminal narrower than the source. A docstring's ``literal``
    shows as 'literal'. A flag shows no type: typer's rich help gives every one ``<bool>``,
    though a flag takes no value."""
    if command.help:
        paragraphs = inspect.cleandoc(LITERAL.sub(r"'\1'", command.help)).split("\n\n")
        command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for param in [*command.params, command.get_help_option(typer.Context(command))]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # shown instead of the type
    for sub in getattr(command, "commands", {}).values():
        _reflowed(sub)
    return command


def main() -> None:
    """Run the CLI; a usage error is one ``error:`` line and exit 2, like any other error."""
    try:
        code = _reflowed(typer.main.get_command(app))(standalone_mode=False)
    except typer.TyperException as exc:  # typer's usage errors: a bad or missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare command: its help, as a hint
            typer.echo(exc.format_message(), err=True)
        else:
            message = one_line(exc.format_message())
            ctx = getattr(exc, "ctx", None)
            if message.startswith("No such command") and ctx is not None:
                message += f" (the commands: {ctx.command_path} --help)"
            typer.echo(f"error: {message}", err=True)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except typer.Abort:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
