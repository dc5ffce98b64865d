"""``akashone-es import FILE`` and ``export --akashone-json``: summary, reruns, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from akashone_es.legacy import sample_dump
from tests.cli.conftest import ENTRY_POINT, Cli, Query, cli_env


def table_row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if f" {name} " in line)
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def test_import_twice_then_the_way_back(cli: Cli, tmp_path: Path) -> None:
    dump = tmp_path / "akashone.json"
    # (invoices need a supplier GSTIN: this test's settings have none)
    data = {**sample_dump(120), "auditTrail": [{"id": "a-1"}]}
    del data["invoices"]
    dump.write_text(json.dumps(data))
    report = tmp_path / "skipped.jsonl"
    assert cli("init").returncode == 0
    first = cli("import", str(dump), "--report", str(report))
    assert first.returncode == 0, first.stderr
    assert table_row(first.stdout, "users") == ["users", "119", "0", "4"]
    assert "skipped users " in first.stdout
    assert "not imported yet by this version: auditTrail (1)" in first.stdout
    skipped = [json.loads(line) for line in report.read_text().splitlines()]
    assert {s["table"] for s in skipped} >= {"users", "rolePermissions", "userRoles",
                                             "virtualMachines", "usageRecords"}
    again = cli("import", str(dump))
    assert again.returncode == 0, again.stderr
    assert table_row(again.stdout, "users") == ["users", "0", "119", "4"]
    back = tmp_path / "back.json"
    written = cli("export", "--akashone-json", str(back))
    assert written.returncode == 0, written.stderr
    assert len(json.loads(back.read_text())["users"]) == 119


def test_a_file_that_is_not_a_dump_is_one_line(cli: Cli, tmp_path: Path) -> None:
    missing = cli("import", str(tmp_path / "none.json"))
    assert (missing.returncode, missing.stderr.startswith("error: cannot read")) == (2, True)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert cli("import", str(garbage)).returncode == 2  # a bad argument, as a missing file
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    result = cli("import", str(listed))
    assert (result.returncode, result.stderr.strip()) == (
        2, f"error: {listed} is not a dump: expected one JSON object of tables")
    filtered = cli("export", "--akashone-json", str(tmp_path / "x.json"), "--kind", "user")
    assert filtered.returncode == 2
    assert "takes no filters" in filtered.stderr


def test_invoices_without_a_supplier_gstin_import_nothing(cli: Cli, query: Query,
                                                          tmp_path: Path) -> None:
    dump = tmp_path / "akashone.json"
    dump.write_text(json.dumps(sample_dump(20)))
    assert cli("init").returncode == 0
    result = cli("import", str(dump))
    assert result.returncode == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: the dump has ")
    assert "set AKASHONE_SUPPLIER_GSTIN" in error
    assert query("SELECT count(*) FROM akashone_events WHERE topic LIKE '%%Imported'") == [(0,)]


def test_a_sample_dump_to_try_the_import_on(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "sample.json"
    written = cli("sample-dump", str(out), "--users", "30")
    assert written.returncode == 0, written.stderr
    data = json.loads(out.read_text())
    assert len(data) == 37
    assert f"in 37 tables to {out}" in written.stdout
    again = json.loads(json.dumps(sample_dump(30)))  # the sample: the same but for the keys
    certificates = [c["id"] for c in data.pop("sslCertificates")]
    assert certificates == [c["id"] for c in again.pop("sslCertificates")]
    assert data == again
    refused = cli("sample-dump", str(tmp_path / "missing" / "x.json"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: cannot write")



def test_an_imported_invoice_shows_its_lines_without_an_invented_tax(
        dsn: str, query: Query, tmp_path: Path) -> None:
    """AkashOne kept tax per invoice only: the lines show '-' and say so, never 0.00; they
    are numbered from 1."""
    dump = tmp_path / "akashone.json"
    dump.write_text(json.dumps(sample_dump(40)))
    # the sample's invoices were issued from Karnataka
    env = cli_env(dsn) | {"AKASHONE_SUPPLIER_GSTIN": "29AAPFU0939F1ZR"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ENTRY_POINT), *args], env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    assert run("init").returncode == 0
    assert run("import", str(dump)).returncode == 0
    [(number, lines)] = query(
        "SELECT i.invoice_number, count(l.id) FROM invoices i JOIN invoice_line_items l"
        " ON l.invoice_id = i.id WHERE i.taxable_amount > 0 GROUP BY i.id"
        " HAVING sum(l.taxable_amount) = 0 ORDER BY i.invoice_number LIMIT 1")
    shown = run("invoice", str(number))
    assert shown.returncode == 0, shown.stderr
    assert "tax recorded for the invoice as a whole, not per line" in shown.stdout
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows[:lines]] == [
        str(n) for n in range(1, lines + 1)]
    assert "0.00" not in "".join(row.split("│")[7] for row in rows[:lines])
