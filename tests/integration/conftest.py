"""Integration fixtures shared by the billing tests."""

from __future__ import annotations

from collections.abc import Iterator

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
