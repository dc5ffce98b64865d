"""CLI fixtures: run the installed ``akashone-es`` as a subprocess against the test's database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest

from tests.conftest import TEST_SETTINGS

ENTRY_POINT = Path(sys.executable).with_name("akashone-es")
#: variables that would make rich colour its output or point the CLI at another database
UNSET = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "AKASHONE_DATABASE_URL")

Cli = Callable[..., subprocess.CompletedProcess[str]]
Query = Callable[..., list[tuple[Any, ...]]]


def cli_env(database_url: str | None = None) -> dict[str, str]:
    """The environment of a CLI process: wide plain output, cheap bcrypt, the given database."""
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    # the key the tests' own storages seal with: what they seal, the CLI can open
    env.update(COLUMNS="200", AKASHONE_BCRYPT_ROUNDS="4",
               AKASHONE_SECRET_KEY=str(TEST_SETTINGS["secret_key"]))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def start_cli(*args: str, database_url: str, **env: str) -> subprocess.Popen[str]:
    """A long-running CLI process (``projections run``), stopped by the test with SIGINT.

    SIGINT as a terminal delivers it: a suite started in the background of a shell without
    job control inherits SIGINT ignored, and so would the process (Python keeps an ignored
    SIGINT ignored), which would then never stop. ``PYTHONFAULTHANDLER``: SIGABRT prints
    every thread's stack, for a process that did not stop."""
    return subprocess.Popen(
        [str(ENTRY_POINT), *args], env={**cli_env(database_url), "PYTHONFAULTHANDLER": "1", **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509


def run_cli(*args: str, database_url: str | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``akashone-es ARGS`` run to completion as a user runs it."""
    return subprocess.run([str(ENTRY_POINT), *args], env=cli_env(database_url),
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def cli(dsn: str) -> Cli:
    """Run ``akashone-es ARGS`` with ``DATABASE_URL`` set to this test's fresh database."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, database_url=dsn)

    return run


@pytest.fixture
def query(dsn: str) -> Query:
    """All rows of one SQL statement on this test's database (autocommit)."""

    def fetch(statement: LiteralString, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    return fetch
