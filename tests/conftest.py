"""Fixtures: a PostgreSQL server (DATABASE_URL, else embedded) and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from akashone_es.persistence.database import drop_database, ensure_database, with_database
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage

TEST_SETTINGS = {"bcrypt_rounds": 4, "pool_size": 2, "pool_max_overflow": 4,
                 "secret_key": "kQ0jJ5Q1d1o1QeWl0h5i2m6h8GQe7bq0m0J7r3m3X2Y="}


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of the server under test: ``DATABASE_URL`` when set, else an embedded server."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from akashone_es.persistence.embedded import EmbeddedServer

    base = Path(os.environ.get("AKASHONE_TEST_DATA_DIR") or tmp_path_factory.mktemp("pg"))
    server = EmbeddedServer(base)
    os.environ["AKASHONE_TEST_SERVER_DSN"] = server.dsn()
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()


@pytest.fixture
def dsn(server_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"akashone_test_{uuid.uuid4().hex[:12]}"
    url = with_database(server_dsn, name)
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def settings() -> Settings:
    return Settings(**TEST_SETTINGS)  # type: ignore[arg-type]


@pytest.fixture
def storage(dsn: str, settings: Settings) -> Iterator[Storage]:
    """Storage on a fresh database with the schema created and the default roles seeded."""
    store = open_storage(settings, dsn=dsn)
    store.initialize_default_roles()
    try:
        yield store
    finally:
        store.close()
