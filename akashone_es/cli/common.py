"""Shared CLI pieces: settings state, opening storage, rendering tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from akashone_es.errors import AkashOneError
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.rebuild import status


class State:
    """What every command gets: settings and consoles."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.console = Console()
        self.errors = Console(stderr=True)

    @contextmanager
    def storage(self) -> Iterator[Storage]:
        """Open storage for one command; domain errors become a message and exit code 1."""
        try:
            storage = open_storage(self.settings)
        except AkashOneError as exc:
            self.errors.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        try:
            yield storage
        except AkashOneError as exc:
            self.errors.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        finally:
            storage.close()


def model_table(title: str, rows: Sequence[BaseModel], columns: Sequence[str]) -> Table:
    """A rich table of some columns of read models."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(getattr(row, column)) for column in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def render_status(console: Console, storage: Storage) -> None:
    """Head, checkpoint and lag of every projection."""
    with storage._datastore.get_connection() as conn:
        rows = status(conn, storage.projections)
    table = Table(title="projections", title_justify="left")
    for column in ("projection", "mode", "checkpoint", "head", "lag"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, row.mode, str(row.position), str(row.head), str(row.lag))
    console.print(table)
