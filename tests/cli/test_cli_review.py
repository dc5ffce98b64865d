"""A new user's review of the CLI: JSON Lines, confirmations, one-line errors that come
before the work, consistent ``--as-of``, Ctrl-C that says where things stand, honest bars."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from akashone_es.legacy import sample_dump
from tests.cli.conftest import ENTRY_POINT, Cli, Query, cli_env, start_cli
from tests.cli.test_show_as_of import granted_user
from tests.conftest import log_size

NOT_CONFIRMED = ("error: not confirmed: nothing erased (pass --yes to erase without the "
                 "question)")


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The process failed with ``code``, and stderr is exactly one ``error:`` line (no blank
    line, no traceback)."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def erase_answering(dsn: str, user: str, answer: str | None
                    ) -> subprocess.CompletedProcess[str]:
    """``erase USER`` with ``answer`` piped in (None: stdin is /dev/null)."""
    return subprocess.run(
        [str(ENTRY_POINT), "erase", user], env=cli_env(dsn), capture_output=True, text=True,
        timeout=120, check=False, input=answer,
        stdin=subprocess.DEVNULL if answer is None else None)


# 1. history --json


def test_history_json_is_one_compact_line_per_event_naming_it(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    result = cli("history", user, "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout  # registered, then granted: a line each
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["User.Registered", "User.RoleGranted"]
    assert events[1]["topic"].endswith(":User.RoleGranted")
    assert [e["originator_version"] for e in events] == [1, 2]
    assert all("timestamp" in e for e in events)
    assert events[0]["password_hash"] == "(hidden)"  # still redacted
    assert "role_id" in events[1]


# 2. erase: no confirmation is one error line; the answer y leaves no stray space


@pytest.mark.parametrize("answer", [None, "", "n\n"], ids=["devnull", "eof", "no"])
def test_erase_unconfirmed_says_so_in_one_line(dsn: str, answer: str | None) -> None:
    user = granted_user(dsn)
    result = erase_answering(dsn, user, answer)
    assert one_error_line(result, 1) == NOT_CONFIRMED
    assert result.stdout == ""


def test_erase_confirmed_prints_no_leading_space(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    result = erase_answering(dsn, user, "y\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("erased: 1 key destroyed (erasure "), repr(result.stdout)
    assert "[erased]" in cli("show", user, "--json").stdout


# 3. catch-up of an unknown projection: one line, no blank line before it


def test_catch_up_of_an_unknown_projection_is_one_line(cli: Cli) -> None:
    assert cli("init").returncode == 0
    result = cli("projections", "catch-up", "nosuch")
    assert result.stderr == ("error: Invalid value: unknown projection(s): nosuch; known: "
                             "billing, identity, resources, user_activities\n")
    assert result.returncode == 2


# 4. history and show refuse a version past the last alike


def test_history_and_show_refuse_a_version_past_the_last_alike(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    expected = f"error: {user} has no version 99; akashone-es history {user} lists them"
    assert one_error_line(cli("history", user, "--as-of", "99"), 1) == expected
    assert one_error_line(cli("show", user, "--as-of", "99"), 1) == expected
    last = cli("history", user, "--as-of", "2", "--json")  # the last version is still fine
    assert (last.returncode, len(last.stdout.splitlines())) == (0, 2)


# 5. a report that cannot be written is refused before anything is imported


def test_an_unwritable_report_is_refused_before_the_import(cli: Cli, dsn: str,
                                                          tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps({"permissions": [
        {"id": "p-1", "name": "vm.create", "description": "create VMs"}]}))
    before = log_size(dsn)
    result = cli("import", str(dump), "--report", "/proc/r.jsonl")
    error = one_error_line(result, 2)
    assert error.startswith("error: cannot write /proc/r.jsonl: ")
    assert log_size(dsn) == before  # nothing was imported
    report = tmp_path / "skipped.jsonl"
    written = cli("import", str(dump), "--report", str(report))
    assert written.returncode == 0, written.stderr
    assert report.exists()


# 6. export of an aggregate with no events


def test_export_of_an_aggregate_not_in_the_log_is_refused(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    nobody = uuid.uuid4()
    out = tmp_path / "x.jsonl"
    result = cli("export", "--out", str(out), "--aggregate", str(nobody))
    assert one_error_line(result, 1) == f"error: no events of aggregate {nobody} in the log"
    assert not out.exists()


# 7. JSON with none of AkashOne's tables


def test_json_with_none_of_akashones_tables_is_not_a_dump(cli: Cli, dsn: str,
                                                          tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    before = log_size(dsn)
    dump = tmp_path / "other.json"
    dump.write_text('{"foo": []}')
    error = one_error_line(cli("import", str(dump)), 2)
    assert error.startswith(f"error: {dump} is not a dump of AkashOne's store: it has none "
                            "of its tables (users, permissions, ")
    assert error.endswith("37 in all); it has foo")
    assert log_size(dsn) == before


# 8. Ctrl-C says where things stand, and exits 130


def interrupt(args: list[str], dsn: str, ready: Callable[[], bool]
              ) -> subprocess.CompletedProcess[str]:
    """Run ``akashone-es ARGS``, send SIGINT (as Ctrl-C does) once ``ready()``, and wait."""
    process = start_cli(*args, database_url=dsn)
    deadline = time.monotonic() + 120
    while process.poll() is None and not ready():
        assert time.monotonic() < deadline, "the command never got going"
        time.sleep(0.02)
    assert process.poll() is None, "the command finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 130, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[-1]


def test_ctrl_c_says_what_state_things_are_in(cli: Cli, dsn: str, query: Query,
                                              tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    dump = tmp_path / "akashone.json"
    data = sample_dump(3000)
    del data["invoices"]  # they need a supplier GSTIN
    dump.write_text(json.dumps(data))

    def imported() -> int:
        return int(query("SELECT count(*) FROM akashone_events"
                         " WHERE topic LIKE '%%Imported'")[0][0])

    stopped = interrupt(["import", str(dump)], dsn, lambda: imported() > 0)
    assert last_line(stopped) == (
        "error: interrupted: the records imported so far are committed; run the same import "
        "again to finish it (a rerun adds nothing twice)")
    assert imported() > 0
    finished = cli("import", str(dump))
    assert finished.returncode == 0, finished.stderr

    out = tmp_path / "export.jsonl"
    digest = tmp_path / "export.jsonl.digest.json"
    digest.write_text("{}")  # an earlier export's: it does not prove the one interrupted
    stopped = interrupt(["export", "--out", str(out)], dsn,
                        lambda: out.exists() and out.stat().st_size > 0)
    assert last_line(stopped) == (f"error: interrupted: the export was not finished; removed "
                                  f"{out} and {digest}")
    assert not out.exists()
    assert not digest.exists()

    def checkpoint() -> int:
        return int(query("SELECT position FROM akashone_checkpoints"
                         " WHERE name = 'user_activities'")[0][0])

    stopped = interrupt(["projections", "catch-up", "user_activities", "--batch-size", "20"],
                        dsn, lambda: checkpoint() > 0)
    assert last_line(stopped) == (
        "error: interrupted: each projection's checkpoint keeps the events applied so far; "
        "catch-up again applies the rest")
    assert checkpoint() > 0

    def rebuilding() -> bool:
        return bool(query("SELECT count(*) FROM pg_namespace"
                          " WHERE nspname = 'akashone_rebuild'")[0][0])

    stopped = interrupt(["projections", "rebuild", "identity", "--batch-size", "20"], dsn,
                        rebuilding)
    assert last_line(stopped) == ("error: interrupted: the rebuild of identity was abandoned "
                                  "and its live tables are unchanged")


# 9. rebuild's bars count what was replayed


def test_rebuild_shows_no_empty_bars(cli: Cli) -> None:
    """On a fresh schema only identity (the seeded permissions and roles) has events."""
    assert cli("init").returncode == 0
    result = cli("projections", "rebuild")
    assert result.returncode == 0, result.stderr
    assert "0/0" not in result.stderr
    bars = [line for line in result.stderr.splitlines() if "━" in line]
    assert [line.split()[0] for line in bars] == ["identity", "user_activities"], bars
    for line in bars:
        done, total = line.split()[-2].split("/")
        assert done == total != "0", line
    assert "rebuilt billing to position " in result.stdout
    assert "(no events of its own to replay)" in result.stdout
    assert "rebuilt identity to position " in result.stdout
