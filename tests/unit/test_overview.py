"""The projections a quick status names are the storage's, in its order."""

from __future__ import annotations

from akashone_es.cli import common
from akashone_es.storage import EMBEDDED_DATABASE, PROJECTIONS
from projections.overview import LISTED


def test_the_listed_projections_are_the_storages() -> None:
    assert [(p.name, p.mode) for p in LISTED] == [(p.name, p.mode) for p in PROJECTIONS]


def test_the_quick_status_reads_the_embedded_servers_own_database() -> None:
    assert common.EMBEDDED_DATABASE == EMBEDDED_DATABASE
