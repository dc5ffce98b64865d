"""The one-line messages for bad settings, DSNs and connections: plain words, the setting
named, never a password, never a library's own text."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psycopg
import pytest
import typer

from akashone_es.cli.common import EXIT_USAGE, State
from akashone_es.errors import ConfigurationError
from akashone_es.persistence.database import connect_problem, parse_dsn
from akashone_es.settings import Settings, load_settings, make_data_dir

REFUSED = ('connection failed: connection to server at "127.0.0.1", port 5439 failed: '
           "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
           "connections?")


class TestParseDsn:
    @pytest.mark.parametrize(("dsn", "why"), [
        ("notaurl", "neither a postgresql:// URL nor key=value settings"),
        ("mysql://u:hunter2@h/db", '"mysql://" is not a PostgreSQL URL'),
        ("u:hunter2@h://x", "not a postgresql:// URL"),
        ("postgresql://u:hunter%zz2@h/db", "a %-escape in it is not two hex digits"),
        ("postgresql://u:hunter2@[h/db", 'an IPv6 host is missing its closing "]"'),
    ])
    def test_refuses_a_malformed_dsn_naming_the_variable_not_the_text(
            self, dsn: str, why: str) -> None:
        """The variable, what is wrong and the form expected; not libpq's words, which
        quote the text (and so a password)."""
        with pytest.raises(ConfigurationError) as refused:
            parse_dsn(dsn, "AKASHONE_READ_URL")
        assert (f"AKASHONE_READ_URL is not a PostgreSQL DSN ({why}); expected "
                "postgresql://user@host:port/dbname") == str(refused.value)

    @pytest.mark.parametrize(("dsn", "port"), [
        ("postgresql://postgres@127.0.0.1:abc/x", ' "abc" is not a number'),
        ("postgresql://postgres@h1:5432,h2:x1/x", ' "x1" is not a number'),
        ("postgres://u@h/x?port=99999", ' "99999" is not 1-65535'),
        ("postgresql://postgres:hunter2/x", " is not a number"),  # the password as the port
        ("host=h port=hunter2 password=hunter2 user=u", " is not a number"),
    ])
    def test_refuses_a_port_that_is_not_one(self, dsn: str, port: str) -> None:
        """Quoted only when the DSN names its user apart, so it cannot be the password."""
        with pytest.raises(ConfigurationError) as refused:
            parse_dsn(dsn, "DATABASE_URL")
        assert (f"DATABASE_URL: the port{port} (expected postgresql://user@host:port/dbname)"
                == str(refused.value))

    def test_accepts_urls_and_key_value_settings(self) -> None:
        """Both of libpq's forms, several hosts, and an unset port."""
        assert "5433" == parse_dsn("postgresql://u:p@h:5433/x", "DATABASE_URL")["port"]
        assert "h1,h2" == parse_dsn("postgres://h1:5432,h2/x", "DATABASE_URL")["host"]
        assert "x" == parse_dsn("host=h dbname=x", "DATABASE_URL")["dbname"]


class TestConnectProblem:
    @pytest.mark.parametrize(("text", "plain"), [
        (REFUSED, "connection refused (is the server running and accepting TCP connections "
                  "there?)"),
        ("failed to resolve host 'nowhere.invalid': [Errno -2] Name or service not known",
         "the host name is unknown"),
        ('connection failed: connection to server on socket "/none/.s.PGSQL.5432" failed: '
         "No such file or directory", "no server socket there (is the server running?)"),
        ('connection failed: connection to server at "127.0.0.1", port 5432 failed: '
         'FATAL:  role "nobody" does not exist', 'role "nobody" does not exist'),
        ('connection is bad: invalid integer value "hunter2" for connection option "port"',
         "its port option is not a number"),
        ('connection is bad: invalid sslmode value: "bogus"',
         "its sslmode option has a value PostgreSQL does not know"),
        ('connection is bad: something new about "hunter2"', 'something new about "..."'),
    ])
    def test_says_why_in_plain_words(self, text: str, plain: str) -> None:
        """libpq's and psycopg's wording is translated; the server's own refusal is kept."""
        assert plain == connect_problem(psycopg.OperationalError(text))


class TestLoadSettings:
    def test_list_that_is_not_json_names_the_variable_and_an_example(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """pydantic-settings' SettingsError becomes one ConfigurationError."""
        monkeypatch.setenv("AKASHONE_LUT_FINANCIAL_YEARS", "notjson")
        with pytest.raises(ConfigurationError) as refused:
            load_settings()
        assert ("invalid setting AKASHONE_LUT_FINANCIAL_YEARS: not valid JSON (expected a "
                'list such as ["2025-26"])') == str(refused.value)

    def test_list_given_as_json_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The form the message asks for is the form that works."""
        monkeypatch.setenv("AKASHONE_LUT_FINANCIAL_YEARS", '["2025-26"]')
        assert ["2025-26"] == load_settings().lut_financial_years


class TestMakeDataDir:
    def test_creates_a_missing_directory(self, tmp_path: Path) -> None:
        """Parents too; an existing directory is fine."""
        made = make_data_dir(tmp_path / "a" / "b", "the embedded server's directory")
        assert made.is_dir()
        assert made == make_data_dir(tmp_path / "a" / "b", "the embedded server's directory")

    def test_refuses_a_file_in_the_way_naming_the_variable_and_path(self, tmp_path: Path
                                                                     ) -> None:
        """FileExistsError becomes a ConfigurationError naming AKASHONE_DATA_DIR."""
        (tmp_path / "f").write_text("")
        with pytest.raises(ConfigurationError) as refused:
            make_data_dir(tmp_path / "f", "the embedded server's directory")
        assert (f"AKASHONE_DATA_DIR {tmp_path / 'f'}: cannot create the embedded server's "
                "directory: a file that is not a directory is in the way"
                ) == str(refused.value)


class TestStorageErrors:
    def test_a_ctrl_c_hidden_by_the_database_error_it_caused_stays_a_ctrl_c(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Ctrl-C while psycopg leaves pipeline mode: its "cannot exit pipeline mode while
        busy" must not replace the interrupt that the command reports as such."""
        class Opened:
            def acting_as(self, **_: object) -> contextlib.AbstractContextManager[None]:
                return contextlib.nullcontext()

            def close(self) -> None:
                pass

        monkeypatch.setattr("akashone_es.storage.open_storage", lambda *_, **__: Opened())
        def interrupted_while_leaving_a_pipeline() -> None:
            try:
                raise KeyboardInterrupt
            finally:
                raise psycopg.OperationalError("cannot exit pipeline mode while busy")

        with pytest.raises(KeyboardInterrupt), State(Settings()).storage():
            interrupted_while_leaving_a_pipeline()

    def test_error_hidden_by_the_cleanup_after_it_is_the_one_shown(
            self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> None:
        """A set-up that failed stops the embedded server under its own connection: the
        connection's error must not replace the configuration error that caused it."""
        def open_storage(*_: object, **__: object) -> None:
            try:
                raise ConfigurationError("AKASHONE_READ_URL is not a PostgreSQL DSN")
            except ConfigurationError:
                raise psycopg.errors.AdminShutdown(
                    "terminating connection due to administrator command") from None

        monkeypatch.setattr("akashone_es.storage.open_storage", open_storage)
        with pytest.raises(typer.Exit) as exited, State(Settings()).storage():
            pass
        assert EXIT_USAGE == exited.value.exit_code
        assert "error: AKASHONE_READ_URL is not a PostgreSQL DSN\n" == capsys.readouterr().err

    def test_a_database_error_alone_is_said_in_plain_words(
            self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
            ) -> None:
        """No project error behind it: the database's reason, without libpq's wording."""
        def open_storage(*_: object, **__: object) -> None:
            raise psycopg.OperationalError(REFUSED)

        monkeypatch.setattr("akashone_es.storage.open_storage", open_storage)
        with pytest.raises(typer.Exit) as exited, State(Settings()).storage():
            pass
        assert EXIT_USAGE == exited.value.exit_code
        assert ("error: database: connection refused (is the server running and accepting "
                "TCP connections there?)\n") == capsys.readouterr().err
