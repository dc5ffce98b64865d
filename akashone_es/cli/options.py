"""Option values several commands share (times, files to write), checked as they are parsed:
a bad one is a usage error (exit 2) before the command does any work."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import typer

from akashone_es.cli.common import utc

#: how a time option shows in help
TIME = "TIME"
#: what a time option accepts, for its help
TIME_HELP = "2026-12-01 or 2026-12-01T10:30+05:30 (UTC unless it has an offset)"


def time_value(text: str) -> datetime:
    """A time option's value (ISO 8601, UTC unless it names an offset)."""
    try:
        return utc(datetime.fromisoformat(text))
    except ValueError:
        raise typer.BadParameter(f"not a time: {text!r} (give 2026-12-01 or "
                                 "2026-12-01T10:30+05:30)") from None


def date_value(text: str) -> date:
    """A date option's value (ISO 8601: 2026-12-01)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not a date: {text!r} (give 2026-12-01)") from None


def file_to_write(path: Path | None) -> Path | None:
    """``path`` when a file can be written there: not a directory, in a directory that
    exists and may be written. Checked before the command works, not after."""
    if path is None:
        return None
    folder = path.parent
    if path.is_dir():
        problem = f"{path} is a directory; name a file"
    elif not folder.is_dir():
        problem = f"{path}: there is no directory {folder}"
    elif not os.access(path if path.exists() else folder, os.W_OK):
        problem = f"{path}: permission denied"
    else:
        return path
    raise typer.BadParameter(problem)
