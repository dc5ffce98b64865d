"""Every mutation in ``scripts/mutations.py`` still finds the code it breaks: a refactor that
moves that code must move the mutation too, or the claim goes undefended unnoticed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_mutation_edits_text_that_occurs_once_where_it_points() -> None:
    spec = importlib.util.spec_from_file_location("mutations", ROOT / "scripts" / "mutations.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutations", module)  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    stale = [(m.name, search[:60]) for m in module.MUTATIONS for search, _ in m.edits
             if (ROOT / m.path).read_text().count(search) != 1]
    assert stale == []
    for mutation in module.MUTATIONS:
        for test in mutation.tests:
            assert (ROOT / test.split("::")[0]).exists(), (mutation.name, test)
