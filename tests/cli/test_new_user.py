"""The CLI as a new user meets it: one-line errors, no stray databases, 80-column output."""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from typing import TYPE_CHECKING

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from akashone_es.errors import ConfigurationError
from akashone_es.money import format_inr
from akashone_es.persistence.database import drop_database, with_database
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.cli.conftest import ENTRY_POINT, cli_env

if TYPE_CHECKING:
    from tests.cli.conftest import Query

SUPPLIER_GSTIN = "27AAPFU0939F1ZV"


def run(*args: str, database_url: str | None = None, columns: int = 200,
        **env: str) -> subprocess.CompletedProcess[str]:
    """``akashone-es ARGS`` with extra environment variables and a terminal width."""
    environment = cli_env(database_url)
    environment.pop("AKASHONE_SUPPLIER_GSTIN", None)
    environment.update(COLUMNS=str(columns), **env)
    return subprocess.run([str(ENTRY_POINT), *args], env=environment, capture_output=True,
                          text=True, timeout=300, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The process failed with ``code`` and said why in exactly one ``error:`` line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def database_exists(server: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(with_database(server, "postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() is not None


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo(dsn: str, columns: int = 200) -> str:
    result = run("demo", database_url=dsn, columns=columns,
                 AKASHONE_SUPPLIER_GSTIN=SUPPLIER_GSTIN)
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestConfigurationMistakes:
    def test_dsn_that_is_not_a_dsn_is_one_line(self) -> None:
        """``--database-url 'not a url'`` names DATABASE_URL and the expected form; exit 2."""
        line = assert_one_line_error(run("--database-url", "not a url", "projections",
                                         "status"))
        assert "DATABASE_URL is not a PostgreSQL DSN" in line
        assert "postgresql://user@host:port/dbname" in line

    def test_dsn_error_never_echoes_the_password(self) -> None:
        """A malformed URL's text (which may hold a password) is not repeated."""
        line = assert_one_line_error(run("--database-url", "mysql://u:hunter2@h/db",
                                         "projections", "status"))
        assert "hunter2" not in line

    @pytest.mark.parametrize(("variable", "value", "rule"), [
        ("AKASHONE_LOG_LEVEL", "bogus", "'debug', 'info', 'warning' or 'error'"),
        ("AKASHONE_POOL_SIZE", "abc", "valid integer"),
        ("AKASHONE_POOL_SIZE", "0", "greater than or equal to 1"),
    ])
    def test_bad_setting_names_variable_value_and_rule(self, dsn: str, variable: str,
                                                       value: str, rule: str) -> None:
        """A setting pydantic refuses is one line naming the variable, the value and why."""
        line = assert_one_line_error(run("projections", "status", database_url=dsn,
                                         **{variable: value}))
        assert line.startswith(f"error: invalid setting {variable}='{value}'")
        assert rule in line

    @pytest.mark.parametrize("variable", ["DATABASE_URL", "AKASHONE_READ_URL"])
    def test_an_overlong_url_is_one_line_without_its_text(self, dsn: str, variable: str
                                                          ) -> None:
        """A connection string has a bound; its text (a password?) is not repeated."""
        overlong = "postgresql://u:hunter2@h/" + "d" * 5000
        line = assert_one_line_error(run("projections", "status", database_url=dsn,
                                         **{variable: overlong}))
        assert line.startswith(f"error: invalid setting {variable}: ")
        assert "at most 4096 characters" in line
        assert "hunter2" not in line

    def test_unknown_role_is_not_taken_for_a_missing_database(self, server_dsn: str) -> None:
        """A role the server does not know is reported as such; nothing is created."""
        name = f"akashone_test_{uuid.uuid4().hex[:12]}"
        params = conninfo_to_dict(with_database(server_dsn, name))
        params["user"] = "akashone_no_such_role"
        line = assert_one_line_error(run("init", database_url=make_conninfo(**params)))
        assert line.startswith("error: cannot connect to PostgreSQL at ")  # no create tried
        assert 'role "akashone_no_such_role" does not exist' in line
        assert not database_exists(server_dsn, name)

    def test_refused_connection_names_host_and_port(self) -> None:
        """Nothing listening: one line with where it tried, exit 2."""
        port = refused_port()
        line = assert_one_line_error(run(
            "projections", "status",
            database_url=f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=5"))
        assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}" in line

    def test_bad_argument_is_one_line(self, dsn: str) -> None:
        """Typer's usage errors follow the same rule: one line, exit 2."""
        line = assert_one_line_error(run("history", "not-a-uuid", database_url=dsn))
        assert "must be a UUID" in line


class TestMissingDatabase:
    @pytest.mark.parametrize("command", [
        ("projections", "status"), ("projections", "verify"), ("projections", "catch-up"),
        ("history", str(uuid.UUID(int=1))), ("invoice", "INV/2627/000001")])
    def test_commands_other_than_init_and_demo_never_create_it(
            self, server_dsn: str, command: tuple[str, ...]) -> None:
        """A mistyped name is an error that says how to create it, not an empty system."""
        name = f"akashone_test_{uuid.uuid4().hex[:12]}"
        line = assert_one_line_error(run(*command,
                                         database_url=with_database(server_dsn, name)))
        assert line.startswith(f'error: database "{name}" does not exist')
        assert "run akashone-es init to create it" in line
        assert not database_exists(server_dsn, name)

    def test_init_creates_it(self, server_dsn: str) -> None:
        """``init`` is the command that creates a database."""
        url = with_database(server_dsn, f"akashone_test_{uuid.uuid4().hex[:12]}")
        try:
            result = run("init", database_url=url)
            assert result.returncode == 0, result.stderr
            assert database_exists(server_dsn, conninfo_to_dict(url)["dbname"])
        finally:
            drop_database(url)


class TestLibraryConfigurationErrors:
    def test_open_storage_refuses_a_malformed_dsn(self) -> None:
        """Used as a library, a bad DSN is the project's ConfigurationError, not psycopg's."""
        with pytest.raises(ConfigurationError, match="not a PostgreSQL DSN"):
            open_storage(Settings(database_url="not a url"))

    def test_open_storage_without_create_refuses_a_missing_database(self,
                                                                     server_dsn: str) -> None:
        """``create_database=False`` raises and leaves the server as it was."""
        name = f"akashone_test_{uuid.uuid4().hex[:12]}"
        with pytest.raises(ConfigurationError, match=f'database "{name}" does not exist'):
            open_storage(Settings(database_url=with_database(server_dsn, name)),
                         create_database=False)
        assert not database_exists(server_dsn, name)


class TestEightyColumns:
    def test_invoice_shows_every_amount_in_full(self, dsn: str, query: Query) -> None:
        """At 80 columns no amount is cut and no line is wider than the terminal."""
        demo(dsn)
        number, total, taxable = query(
            "SELECT invoice_number, total_amount, taxable_amount FROM invoices"
            " ORDER BY invoice_number")[0]
        result = run("invoice", number, database_url=dsn, columns=80)
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        for amount, igst, line_taxable in query(
                "SELECT l.amount, l.igst_amount, l.taxable_amount FROM invoice_line_items l"
                " JOIN invoices i ON i.id = l.invoice_id WHERE i.invoice_number = %s",
                (number,)):
            for paise in (amount, igst, line_taxable):
                assert re.search(rf"(?<![\d,]){re.escape(format_inr(paise))}(?![\d])",
                                 result.stdout), format_inr(paise)
        assert format_inr(total) in result.stdout
        assert format_inr(taxable) in result.stdout

    def test_demo_never_cuts_or_breaks_a_value(self, dsn: str) -> None:
        """The demo's tables fit 80 columns whole: no ellipsis, emails and times intact."""
        output = demo(dsn, columns=80)
        assert "…" not in output
        assert max(len(line) for line in output.splitlines()) <= 80
        assert "ops1@sharmacloud.in" in output
        assert "priya1@sharmacloud.in" in output
        assert re.search(r"│ \d{4}-\d\d-\d\d \d\d:\d\d │", output)

    def test_history_wraps_between_fields_only(self, dsn: str, query: Query) -> None:
        """At 80 columns each event is a heading with its changes below, not a squeezed
        table."""
        demo(dsn)
        user_id = query("SELECT id::text FROM users WHERE username = 'priya1'")[0][0]
        result = run("history", user_id, database_url=dsn, columns=80)
        assert result.returncode == 0, result.stderr
        assert "…" not in result.stdout
        assert f"history of {user_id} (3 events)" in result.stdout
        assert re.search(r"^1  \S+  sharma1  User\.Registered$", result.stdout, re.MULTILINE)
        assert '"email": "priya1@sharmacloud.in"' in result.stdout


class TestDemoReadsRight:
    def test_lines_count_records_in_proper_english(self, dsn: str) -> None:
        """One usage record is ``(1 record)``; two are ``(2 records)``."""
        output = demo(dsn)
        assert "(1 record)" in output
        assert "(2 records)" in output
        assert "(1 records)" not in output

    def test_demo_ends_with_no_projection_lag(self, dsn: str) -> None:
        """The async activity projection is caught up before the status table."""
        output = demo(dsn)
        status = output[output.rindex("projections"):]
        lags = re.findall(r"│ (\w+)\s+│ (inline|async)\s+│ (\d+)\s+│ (\d+)\s+│ (\d+)\s+│",
                          status)
        assert {name for name, *_ in lags} >= {"identity", "billing", "user_activities"}
        assert all(lag == "0" for *_, lag in lags), lags


class TestInvoiceByNoteNumber:
    def test_credit_note_number_shows_the_note_and_its_invoice(self, dsn: str,
                                                               query: Query) -> None:
        """``invoice CN/...`` (any case) prints the note, then the invoice it adjusts."""
        demo(dsn)
        note, invoice, total = query(
            "SELECT note_number, invoice_number, total_amount FROM adjustment_notes")[0]
        result = run("invoice", note.lower(), database_url=dsn)
        assert result.returncode == 0, result.stderr
        assert f"CREDIT NOTE {note}  for invoice {invoice}" in result.stdout
        assert f"TAX INVOICE {invoice}" in result.stdout
        assert format_inr(total) in result.stdout

    def test_unknown_note_number_is_one_line_exit_1(self, dsn: str) -> None:
        """A number that is neither an invoice nor a note: exit 1, naming it."""
        demo(dsn)
        line = assert_one_line_error(run("invoice", "CN/2627/999999", database_url=dsn),
                                     code=1)
        assert "no invoice CN/2627/999999" in line
