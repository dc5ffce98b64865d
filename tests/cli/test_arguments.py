"""Bad arguments: exit 2 with one ``error:`` line naming what is wrong, before any work;
a command that ran and found nothing exits 1; help shows types a reader can use."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import ENTRY_POINT, cli_env, run_cli
from tests.conftest import fresh_database, log_size

FUTURE = "2999-01-01"
NOBODY = "00000000-0000-0000-0000-000000000000"
#: a dump with one record that imports (a permission)
ONE_PERMISSION = {"permissions": [{"id": "perm-1", "key": "reports.read", "name": "Read reports",
                                   "category": "reports",
                                   "createdAt": "2025-01-01T00:00:00Z"}]}


@pytest.fixture(scope="module")
def ready(server_dsn: str) -> Iterator[str]:
    """One database with the schema, shared by this module's tests (they change nothing)."""
    with fresh_database(server_dsn) as url:
        assert run_cli("init", database_url=url).returncode == 0
        yield url


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints: ``error: ...``, no traceback, nothing else."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


class TestUsageErrors:
    @pytest.mark.parametrize(("args", "expected"), [
        (["projections", "rebuild", "identity", "--batch-size", "-1"],
         "Invalid value for '--batch-size'"),
        (["projections", "catch-up", "--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["projections", "quarantine", "nosuch", "5", "--reason", "because"],
         "unknown projection 'nosuch'; known: billing, identity"),
        (["projections", "quarantine", "identity", "5", "--reason", "x"],
         "Invalid value for '--reason': say why, in 3 to 500 characters"),
        (["meter", "--until", FUTURE], "minutes ago yet"),
        (["meter", "--until", "garbage"], "Invalid value for '--until': not a time: 'garbage' "
                                          "(give 2026-12-01 or 2026-12-01T10:30+05:30)"),
        (["export", "--out", "{tmp}/x.jsonl", "--since", "yesterday"],
         "Invalid value for '--since': not a time: 'yesterday'"),
        (["export", "--out", "{tmp}/x.jsonl", "--since", "2027-01-01", "--until", "2026-01-01"],
         "is not before --until"),
        (["erase", NOBODY, "--yes", "--reason", "whim"],
         "'whim' is not one of: data principal request, consent withdrawn, purpose served, "
         "retention ended"),
        (["erase", "nope", "--yes"], "Invalid value for 'user_id': must be a UUID"),
        (["audit", "retention-sweep", "--today", "someday"], "not a date: 'someday'"),
    ])
    def test_a_bad_argument_exits_2_with_one_line_naming_it(
            self, ready: str, tmp_path: Path, args: list[str], expected: str) -> None:
        """Out of range, not a time, a name that means nothing: a usage error, never exit 1
        or 0, and never a library's text."""
        result = run_cli(*[a.format(tmp=tmp_path) for a in args], database_url=ready)
        assert (result.returncode, expected in the_error(result)) == (2, True), result.stderr

    def test_export_refuses_a_kind_that_names_nothing(self, ready: str,
                                                      tmp_path: Path) -> None:
        """An unknown ``--kind`` is a bad argument, and no export file is left behind."""
        out = tmp_path / "x.jsonl"
        result = run_cli("export", "--out", str(out), "--kind", "nosuch", database_url=ready)
        assert result.returncode == 2
        assert the_error(result).startswith(
            "error: --kind: no aggregate or resource kind 'nosuch' in the log (known kinds: ")
        assert not out.exists()

    @pytest.mark.parametrize(("args", "path"), [(["nosuch"], "akashone-es"),
                                                (["projections", "nosuch"],
                                                 "akashone-es projections")])
    def test_an_unknown_command_points_to_the_list(self, args: list[str], path: str) -> None:
        result = run_cli(*args)
        assert (result.returncode, result.stderr.strip()) == (
            2, f"error: No such command 'nosuch'. (the commands: {path} --help)")

    @pytest.mark.parametrize("command", [["export"], ["audit", "digest"]])
    def test_an_output_file_in_no_directory_is_refused_before_the_work(
            self, ready: str, tmp_path: Path, command: list[str]) -> None:
        """``--out`` in a directory that does not exist: exit 2, naming it."""
        out = tmp_path / "missing" / "x.json"
        result = run_cli(*command, "--out", str(out), database_url=ready)
        assert (result.returncode, the_error(result)) == (
            2, f"error: Invalid value for '--out': {out}: there is no directory {out.parent}")

    def test_a_digest_saved_to_a_directory_is_a_usage_error(self, ready: str,
                                                            tmp_path: Path) -> None:
        result = run_cli("audit", "digest", "--out", str(tmp_path), database_url=ready)
        assert (result.returncode, the_error(result)) == (
            2, f"error: Invalid value for '--out': {tmp_path} is a directory; name a file")

    def test_a_digest_without_its_fields_names_them(self, ready: str, tmp_path: Path) -> None:
        saved = tmp_path / "digest.json"
        saved.write_text('{"hash": "ab"}')
        result = run_cli("audit", "verify", "--digest", str(saved), database_url=ready)
        assert (result.returncode, the_error(result)) == (
            2, f"error: cannot read the digest {saved}: it lacks 'position', 'at' (a digest "
               "has position, hash, at)")


class TestExportTenant:
    def test_an_unknown_organization_is_not_an_empty_export(self, ready: str,
                                                            tmp_path: Path) -> None:
        """A tenant that does not exist exits 1 (the command ran and found nothing)."""
        out = tmp_path / "x.jsonl"
        result = run_cli("export", "--out", str(out), "--tenant", NOBODY, database_url=ready)
        assert (result.returncode, the_error(result)) == (
            1, f"error: no organization {NOBODY} (--tenant takes an organization's id)")
        assert not out.exists()


class TestImportArguments:
    @pytest.mark.parametrize(("content", "expected"), [
        ('{"users": {"a": 1}}', "is not a dump: table 'users' is an object, not a list of "
                                "records"),
        ("{not json", "is not JSON: "),
    ])
    def test_a_file_that_is_not_a_dump_is_a_usage_error(
            self, ready: str, tmp_path: Path, content: str, expected: str) -> None:
        """Refused before anything is imported, naming what is wrong."""
        dump = tmp_path / "dump.json"
        dump.write_text(content)
        result = run_cli("import", str(dump), database_url=ready)
        assert (result.returncode, expected in the_error(result)) == (2, True), result.stderr

    def test_a_report_that_cannot_be_written_is_refused_before_importing(
            self, ready: str, tmp_path: Path) -> None:
        dump = tmp_path / "dump.json"
        dump.write_text(json.dumps(ONE_PERMISSION))
        report = tmp_path / "missing" / "skipped.jsonl"
        before = log_size(ready)
        result = run_cli("import", str(dump), "--report", str(report), database_url=ready)
        assert (result.returncode, the_error(result)) == (
            2, f"error: Invalid value for '--report': {report}: there is no directory "
               f"{report.parent}")
        assert log_size(ready) == before

    def test_an_id_that_is_not_a_string_is_skipped_saying_so(self, ready: str,
                                                             tmp_path: Path) -> None:
        """An id is present but a number: the reason says what it must be, not that it is
        missing."""
        dump = tmp_path / "dump.json"
        dump.write_text('{"users": [{"id": 5}]}')
        result = run_cli("import", str(dump), database_url=ready)
        assert result.returncode == 0, result.stderr
        assert ("skipped users 5: id: must be a string such as 'vm-1a2b3c4d' or a UUID, not "
                "a number (5)") in " ".join(result.stdout.split())


def narrow_help(*args: str) -> str:
    """``akashone-es ARGS --help`` in an 80-column terminal."""
    env = {**cli_env(), "COLUMNS": "80"}
    result = subprocess.run([str(ENTRY_POINT), *args, "--help"], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestHelp:
    def test_time_options_show_a_metavar_and_flags_no_type(self) -> None:
        """``--since``/``--until`` show TIME and the forms they take, not strftime formats
        cut mid-token; a flag takes no value, so it shows no ``<bool>``."""
        shown = narrow_help("export")
        assert "%Y" not in shown
        assert "<bool>" not in shown
        assert "--since                TIME" in shown

    def test_docstring_literals_show_without_double_backticks(self) -> None:
        shown = narrow_help("history")
        assert "``" not in shown
        assert "'akashone-es show ID --as-of' shows its state" in shown
