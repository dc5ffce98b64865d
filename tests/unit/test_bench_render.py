"""``scripts/bench --render``: every results file kept in docs/bench renders, each result as at
least one row of the table (a suite the renderer did not know printed an empty table). The
files of 2026-11-27 are left out: an earlier method, with other fields (docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = sorted(p for p in (ROOT / "docs" / "bench").glob("*.json")
                 if "results" in json.loads(p.read_text()) and not p.name.startswith("2026-11"))


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench as module  # a script, imported from its directory
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return module


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_result_is_a_row(bench: Any, path: Path) -> None:
    data = json.loads(path.read_text())
    table = bench.render_markdown(data)
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # no header
    assert len(rows) >= len(data["results"]), table


def test_the_2026_12_06_files_are_among_them() -> None:
    assert {"2026-12-06-concurrency-s5.json", "2026-12-06-replica.json"} <= {
        p.name for p in RESULTS}
