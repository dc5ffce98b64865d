"""Fixtures: a PostgreSQL server (DATABASE_URL, else embedded) and a fresh database per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage

TEST_SETTINGS = {"bcrypt_rounds": 4, "pool_size": 2, "pool_max_overflow": 4,
                 "secret_key": "kQ0jJ5Q1d1o1QeWl0h5i2m6h8GQe7bq0m0J7r3m3X2Y="}


@contextmanager
def private_data_dir(purpose: str) -> Iterator[Path]:
    """A fresh directory for an embedded server's data, removed afterwards.

    Never under pytest's temp dir: every pytest run resets ``/tmp/pytest-of-<user>`` to 0700,
    and as root the server runs as another user (pgserver's), so a second run would cut a
    first run's server off its own files. This lives under the user's cache directory, which
    no test run changes.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "akashone-es"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / f"{purpose}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of the server under test: ``DATABASE_URL`` when set, else an embedded server
    (in ``AKASHONE_TEST_DATA_DIR`` when set, kept for the next run; else a private
    directory removed at the end)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from akashone_es.persistence.embedded import EmbeddedServer

    with ExitStack() as stack:
        configured = os.environ.get("AKASHONE_TEST_DATA_DIR")
        base = Path(configured) if configured else stack.enter_context(private_data_dir("pg"))
        server = EmbeddedServer(base)
        stack.callback(server.stop)  # before the directory goes
        os.environ["AKASHONE_TEST_SERVER_DSN"] = server.dsn()
        yield server.dsn("postgres")


@contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards (with its role)."""
    url = with_database(server_dsn, f"akashone_test_{uuid.uuid4().hex[:12]}")
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def dsn(server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    with fresh_database(server_dsn) as url:
        yield url


def log_size(dsn: str) -> int:
    """How many events the log of ``dsn`` holds (tests check that refusals write none)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM akashone_events").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_SETTINGS)  # type: ignore[arg-type]


@pytest.fixture
def storage(dsn: str, settings: Settings) -> Iterator[Storage]:
    """Storage on a fresh database with the schema created and the default roles seeded."""
    store = open_storage(settings, dsn=dsn)
    try:
        # platform work is explicit: the test body acts as a named system context, and
        # tests of tenancy open their own ``acting_as`` blocks inside it
        with store.acting_as(system="tests"):
            store.initialize_default_roles()
            yield store
    finally:
        store.close()
