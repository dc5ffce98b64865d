"""What an operator's review of the CLI found: each a clear refusal where the CLI said
nothing, did nothing, or said it badly."""

from __future__ import annotations

from pathlib import Path

import pytest

from akashone_es.storage import Storage
from tests.cli.conftest import Cli, run_cli


@pytest.mark.parametrize("command", ["catch-up", "run"])
def test_an_inline_projection_is_not_caught_up_or_run(cli: Cli, storage: Storage,
                                                      command: str) -> None:
    """``projections run identity`` ran (nothing) until killed; ``catch-up identity`` said
    "caught up". An inline projection is kept current by every write."""
    result = cli("projections", command, "identity")
    assert result.returncode == 2
    assert "identity is not async" in result.stderr
    assert "async: user_activities" in result.stderr


def test_an_empty_invoice_number_is_a_usage_error(cli: Cli) -> None:
    result = cli("invoice", "")
    assert result.returncode == 2
    assert "an invoice or note number" in result.stderr


def test_the_way_back_takes_no_out(cli: Cli, tmp_path: Path) -> None:
    """``export --akashone-json B --out X`` wrote B and ignored ``--out``."""
    result = cli("export", "--akashone-json", str(tmp_path / "b.json"),
                 "--out", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2
    assert "takes no --out" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_lut_year_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch,
                                                        dsn: str) -> None:
    """A year that is not '2026-27' silently meant no LUT (and exports taxed)."""
    monkeypatch.setenv("AKASHONE_LUT_FINANCIAL_YEARS", '["2026-27", "2026"]')
    result = run_cli("projections", "status", database_url=dsn)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting AKASHONE_LUT_FINANCIAL_YEARS=['2026-27', '2026']: '2026' is "
        "not a financial year such as '2026-27'"]
