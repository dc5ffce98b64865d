"""Configuration mistakes a new user makes: each is one ``error:`` line naming the setting and
what is wrong in plain words, exit 2, no traceback, no library text, never a password."""

from __future__ import annotations

import socket
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.cli.conftest import ENTRY_POINT, cli_env

UNKNOWN_ID = str(uuid.UUID(int=1))
#: libpq's and psycopg's own wording, which a user must never have to read
LIBRARY_WORDS = ("connection info string", "connection failed", "connection is bad",
                 "Errno", "pydantic", "psycopg")


def run(*args: str, database_url: str | None = None, **env: str | None
        ) -> subprocess.CompletedProcess[str]:
    """``akashone-es ARGS``; ``database_url=None`` leaves DATABASE_URL unset (the embedded
    server's settings), and an ``env`` value of None unsets that variable."""
    environment = cli_env(database_url)
    if database_url is None:
        environment.pop("DATABASE_URL", None)
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run([str(ENTRY_POINT), *args], env=environment, capture_output=True,
                          text=True, timeout=180, check=False)


def error_line(result: subprocess.CompletedProcess[str], setting: str) -> str:
    """The process exited 2 with exactly one ``error:`` line naming ``setting``, in plain
    words; returns that line."""
    assert 2 == result.returncode, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert 1 == len(lines), result.stderr
    assert lines[0].startswith("error: ")
    assert setting in lines[0]
    for words in LIBRARY_WORDS:
        assert words not in lines[0]
    return lines[0]


def refused_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def initialized(dsn: str) -> str:
    """A database whose schema is set up: opening it again logs nothing."""
    done = run("init", database_url=dsn)
    assert 0 == done.returncode, done.stderr
    return dsn


class TestReadUrl:
    @pytest.mark.parametrize("command", ["show", "history"])
    @pytest.mark.parametrize("read_url", ["notaurl", "mysql://u:hunter2@h/db"])
    def test_malformed_read_url_is_said_to_be_no_postgresql_url(
            self, initialized: str, command: str, read_url: str) -> None:
        """A read URL libpq cannot read names AKASHONE_READ_URL and the form expected."""
        line = error_line(run(command, UNKNOWN_ID, database_url=initialized,
                              AKASHONE_READ_URL=read_url), "AKASHONE_READ_URL")
        assert line.startswith("error: AKASHONE_READ_URL is not a PostgreSQL DSN (")
        assert "expected postgresql://user@host:port/dbname" in line
        assert "hunter2" not in line

    @pytest.mark.parametrize("command", ["show", "history"])
    def test_unreachable_read_url_is_refused_at_start_and_says_so(
            self, initialized: str, command: str) -> None:
        """A standby nobody answers at: where, why, and that reads fall back to the primary
        only later, never at start."""
        port = refused_port()
        line = error_line(run(command, UNKNOWN_ID, database_url=initialized,
                              AKASHONE_READ_URL=f"postgresql://postgres:hunter2@127.0.0.1:"
                                                f"{port}/x?connect_timeout=5"),
                          "AKASHONE_READ_URL")
        assert line.startswith(f"error: AKASHONE_READ_URL: cannot connect to the standby at "
                               f"127.0.0.1:{port}: connection refused")
        assert "reads fall back to the primary only when it goes away later" in line
        assert "hunter2" not in line


class TestSettings:
    def test_list_setting_that_is_not_json_names_the_variable_and_the_form(self) -> None:
        """A list is read as JSON: a value that is not JSON says so, with an example."""
        line = error_line(run("projections", "status", database_url="postgresql://x@h/x",
                              AKASHONE_LUT_FINANCIAL_YEARS="notjson"),
                          "AKASHONE_LUT_FINANCIAL_YEARS")
        assert line == ("error: invalid setting AKASHONE_LUT_FINANCIAL_YEARS: not valid JSON "
                        '(expected a list such as ["2025-26"])')

    @pytest.mark.parametrize(("where", "why"), [
        ("a-file", "a file that is not a directory is in the way"),
        ("a-file/below", "a part of the path is a file, not a directory"),
    ])
    def test_data_dir_that_cannot_be_made_names_it_before_any_server_starts(
            self, tmp_path: Path, where: str, why: str) -> None:
        """``--data-dir`` at a file: the embedded server's directory cannot be made."""
        (tmp_path / "a-file").write_text("not a directory\n")
        line = error_line(run("--data-dir", str(tmp_path / where), "projections", "status"),
                          "AKASHONE_DATA_DIR")
        assert line == (f"error: AKASHONE_DATA_DIR {tmp_path / where}: cannot create the "
                        f"embedded server's directory: {why}")

    @pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
    def test_data_dir_the_system_refuses_is_one_line(self) -> None:
        """``AKASHONE_DATA_DIR=/proc/nope``: the system's reason, in its own plain words."""
        line = error_line(run("init", AKASHONE_DATA_DIR="/proc/nope"), "AKASHONE_DATA_DIR")
        assert line.startswith("error: AKASHONE_DATA_DIR /proc/nope: cannot create the "
                               "embedded server's directory: ")

    def test_data_dir_for_the_secret_key_is_checked_with_a_database_url(
            self, initialized: str, tmp_path: Path) -> None:
        """Without AKASHONE_SECRET_KEY the key lives in the data directory: a file there is
        named before the command opens the database."""
        (tmp_path / "a-file").write_text("not a directory\n")
        line = error_line(run("--data-dir", str(tmp_path / "a-file"), "show", UNKNOWN_ID,
                              database_url=initialized, AKASHONE_SECRET_KEY=None),
                          "AKASHONE_DATA_DIR")
        assert "secret.key" in line


class TestTheWrongPlace:
    """A command that only reads, pointed at the wrong database or directory, changes
    nothing there and says where it looked (found by trying it as a new user: ``projections
    status`` installed the schema and a role into any database it was given, and run from
    another directory started a new, empty embedded server and sealed with a new key)."""

    def test_a_database_without_the_log_is_refused_and_left_as_it_was(self, dsn: str
                                                                      ) -> None:
        line = error_line(run("projections", "status", database_url=dsn), "DATABASE_URL")
        assert "holds no akashone-es event log" in line
        assert "akashone-es init" in line
        with psycopg.connect(dsn) as conn:
            tables = conn.execute("SELECT count(*) FROM information_schema.tables"
                                  " WHERE table_schema = 'public'").fetchone()
            roles = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                                 (f"{conn.info.dbname}_app",)).fetchone()
        assert (tables, roles) == ((0,), (0,))

    def test_a_directory_without_an_embedded_database_is_refused_untouched(
            self, tmp_path: Path) -> None:
        place = tmp_path / "elsewhere"
        place.mkdir()
        line = error_line(run("projections", "status", AKASHONE_DATA_DIR=str(place),
                              AKASHONE_SECRET_KEY=None), "AKASHONE_DATA_DIR")
        assert line.startswith(f"error: no embedded database in {place}: ")
        assert list(place.iterdir()) == []  # no server started there, no key made

    def test_no_key_is_made_by_a_command_that_reads(self, initialized: str,
                                                    tmp_path: Path) -> None:
        line = error_line(run("show", UNKNOWN_ID, database_url=initialized,
                              AKASHONE_SECRET_KEY=None, AKASHONE_DATA_DIR=str(tmp_path)),
                          "AKASHONE_SECRET_KEY")
        assert str(tmp_path / "secret.key") in line
        assert list(tmp_path.iterdir()) == []

    def test_a_key_that_does_not_open_the_data_names_where_it_came_from(
            self, initialized: str, tmp_path: Path) -> None:
        from cryptography.fernet import Fernet

        from tests.cli.test_erase_cli import a_person

        user = a_person(initialized)
        (tmp_path / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
        line = error_line(run("history", user, database_url=initialized,
                              AKASHONE_SECRET_KEY=None, AKASHONE_DATA_DIR=str(tmp_path)),
                          str(tmp_path / "secret.key"))
        assert "does not open the keys of personal data" in line
        assert "AKASHONE_SECRET_KEY is unset" in line


class TestDatabaseUrl:
    @pytest.mark.parametrize(("url", "why"), [
        ("notaurl", "neither a postgresql:// URL nor key=value settings"),
        ("mysql://x", '"mysql://" is not a PostgreSQL URL'),
        ("mysql://u:hunter2@h/db", '"mysql://" is not a PostgreSQL URL'),
        ("postgresql://u:hunter%zz2@h/db", "a %-escape in it is not two hex digits"),
    ])
    def test_malformed_url_says_why_in_plain_words(self, url: str, why: str) -> None:
        """What is wrong, and the form expected, without libpq's text or the URL's."""
        line = error_line(run("projections", "status", database_url=url), "DATABASE_URL")
        assert line == (f"error: DATABASE_URL is not a PostgreSQL DSN ({why}); expected "
                        "postgresql://user@host:port/dbname")

    def test_port_that_is_not_a_number_is_named(self) -> None:
        """``host:abc``: the port, quoted, is not a number; nothing is tried."""
        line = error_line(run("projections", "status",
                              database_url="postgresql://postgres:hunter2@127.0.0.1:abc/x"),
                          "DATABASE_URL")
        assert line == ('error: DATABASE_URL: the port "abc" is not a number (expected '
                        "postgresql://user@host:port/dbname)")

    def test_password_read_as_the_port_is_not_quoted(self) -> None:
        """``postgresql://user:password/db`` (no ``@host``) makes the password the port."""
        line = error_line(run("projections", "status",
                              database_url="postgresql://postgres:hunter2/x"), "DATABASE_URL")
        assert "the port is not a number" in line
        assert "hunter2" not in line

    @pytest.mark.parametrize(("url", "why"), [
        ("postgresql://postgres:hunter2@127.0.0.1:{port}/x?connect_timeout=5",
         "connection refused"),
        ("postgresql://postgres:hunter2@no-such-host.invalid/x?connect_timeout=5",
         "the host name is unknown"),
        ("postgresql://postgres:hunter2@127.0.0.1:{port}/x?sslmode=bogus",
         "its sslmode option has a value PostgreSQL does not know"),
    ])
    def test_connection_failure_says_why_in_plain_words(self, url: str, why: str) -> None:
        """Where it tried and why, in words a user reads without knowing libpq."""
        line = error_line(run("projections", "status",
                              database_url=url.format(port=refused_port())), "PostgreSQL")
        assert line.startswith("error: cannot connect to PostgreSQL at ")
        assert why in line
        assert "hunter2" not in line
