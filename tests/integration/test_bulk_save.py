"""A large save with no row wanted back (an import's batch) sends its read-table statements
grouped by query across tables, long runs of plain inserts as one COPY each, under a
savepoint (``AkashOneRecorder._insert_bulk``). Where the COPY would not store what the
inserts store (an insert that skips a taken id), it is sent again statement by statement in
the same transaction; where the database refuses a statement, the save fails whole."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import bcrypt
import psycopg
import pytest

from akashone_es.domain import identity as domain
from akashone_es.errors import DuplicateError
from akashone_es.storage import Storage
from projections import apply
from tests.conftest import log_size

COUNT = 80  # past BULK_MIN_STATEMENTS and COPY_MIN_ROWS


def organizations(count: int = COUNT) -> list[Any]:
    when = datetime(2025, 4, 1, tzinfo=UTC)
    return [domain.Organization._create(
        domain.Organization.Imported, id=uuid.uuid4(), name=f"bulk org {n}", kind="customer",
        parent_id=None, source=f"test:{n}", timestamp=when) for n in range(count)]


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches a save sent by the bulk path (a COPY attempted)."""
    sent: list[int] = []
    execute_bulk = apply.execute_bulk

    def counted(cur: Any, batch: Any) -> None:
        sent.append(len(batch))
        execute_bulk(cur, batch)

    monkeypatch.setattr(apply, "execute_bulk", counted)
    return sent


def names(storage: Storage, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with psycopg.connect(storage.dsn) as conn:
        return dict(conn.execute("SELECT id, name FROM organizations WHERE id = ANY(%s)",
                                 (ids,)).fetchall())


def test_a_large_save_goes_by_the_bulk_path(storage: Storage, copies: list[int]) -> None:
    orgs = organizations()
    storage._save(*orgs)
    assert len(copies) == 1
    assert names(storage, [o.id for o in orgs]) == {o.id: o.name for o in orgs}


def test_an_insert_that_skips_a_taken_id_is_sent_again_one_by_one(
        storage: Storage, copies: list[int]) -> None:
    """A row already there (here put behind the API's back) is kept, as the insert's
    ``ON CONFLICT DO NOTHING`` keeps it; the COPY, which would fail on it, is rolled back
    to the savepoint and the statements are sent one by one; the save succeeds whole."""
    orgs = organizations()
    with psycopg.connect(storage.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO organizations (id, name, kind, created_at, updated_at)"
                     " VALUES (%s, 'there before', 'customer', now(), now())", (orgs[40].id,))
    before = log_size(storage.dsn)
    storage._save(*orgs)
    assert len(copies) == 1
    assert log_size(storage.dsn) == before + COUNT
    found = names(storage, [o.id for o in orgs])
    assert found == {o.id: "there before" if o is orgs[40] else o.name for o in orgs}


def test_a_statement_the_database_refuses_fails_the_save_whole(
        storage: Storage, copies: list[int]) -> None:
    """Two users of one name in a save: the unique index refuses the second, the error is
    the project's and names the field, and nothing of the save is written."""
    when = datetime(2025, 4, 1, tzinfo=UTC)
    hashed = storage._password_hash(bcrypt.hashpw(b"long-enough-1", bcrypt.gensalt(4)).decode())
    users = [domain.User._create(
        domain.User.Imported, id=uuid.uuid4(), timestamp=when, username=f"bulk{n % 79}",
        email=f"bulk{n}@example.in", password_hash=hashed, gst_number=None,
        account_type="customer", organization_id=None, status="active", identity_unique=True,
        source=f"test:{n}", extra={}) for n in range(COUNT)]
    before = log_size(storage.dsn)
    with pytest.raises(DuplicateError, match="username"):
        storage._save(*users)
    assert len(copies) == 1
    assert log_size(storage.dsn) == before
    with psycopg.connect(storage.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE username LIKE 'bulk%%'"
                            ).fetchone() == (0,)
