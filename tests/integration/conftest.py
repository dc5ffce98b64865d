"""Integration fixtures shared by the billing and resource tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from akashone_es import Storage
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.conftest import TEST_SETTINGS

SUPPLIER = "27AAPFU0939F1ZV"  # a supplier registered in Maharashtra


@pytest.fixture
def issuer(dsn: str) -> Iterator[Storage]:
    """Storage of a supplier registered in Maharashtra (GSTIN state code 27)."""
    store = open_storage(Settings(**{**TEST_SETTINGS, "supplier_gstin": SUPPLIER}), dsn=dsn)
    try:
        with store.acting_as(system="tests"):
            yield store
    finally:
        store.close()


@pytest.fixture
def world(storage: Storage) -> dict[str, Any]:
    """Two organizations with an admin each ("alpha", "bravo"), every feature switched on
    (the resource tests' world; the access matrix builds its own)."""
    from tests.integration.access_fixtures import enable_all_features

    enable_all_features(storage)
    people = {}
    for name in ("alpha", "bravo"):
        org = storage.create_organization({"name": f"{name} org"})
        people[name] = storage.create_user({
            "username": f"{name}-admin", "email": f"admin@{name}.example",
            "password": "password-long-1", "organization_id": org.id})
    return people
