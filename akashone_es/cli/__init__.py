"""The ``akashone-es`` command: operators' and auditors' entry point (typer + rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from akashone_es.cli import billing, demo, history, projections
from akashone_es.cli.common import State, render_status
from akashone_es.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Event-sourced persistence for AkashOne: schema, demo, projections, "
                       "history.")
app.add_typer(projections.app, name="projections")
app.command("demo")(demo.demo)
app.command("history")(history.history)
app.command("invoice")(billing.invoice)


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
    ctx.obj = State(Settings(**overrides))  # type: ignore[arg-type]


@app.command()
def init(ctx: typer.Context) -> None:
    """Create or upgrade the schema and seed the permissions and system roles."""
    state: State = ctx.obj
    with state.storage() as storage:
        permissions = storage.initialize_default_permissions()
        roles = storage.initialize_default_roles()
        state.console.print(f"schema ready; seeded {permissions} permissions, {roles} roles")
        render_status(state.console, storage)


def main() -> None:
    app()
