"""The application role's DSN and password, derived from the owner's DSN and the settings."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from akashone_es.persistence.roles import app_dsn, app_password
from akashone_es.settings import Settings

OWNER = "postgresql://postgres:s3cret@db.example.in:5433/akashone?sslmode=require"


class TestAppDsn:
    def test_keeps_server_and_database_and_logs_in_as_the_role(self) -> None:
        """Same host, port, database and options; the role's user and a password that is
        not the owner's."""
        params = conninfo_to_dict(app_dsn(OWNER, Settings()))
        assert ("akashone_app", "db.example.in", "5433", "akashone", "require") == (
            params["user"], params["host"], params["port"], params["dbname"],
            params["sslmode"])
        assert params["password"] not in ("", "s3cret")

    def test_derived_password_is_stable_and_per_role(self) -> None:
        """Every process with the same owner URL derives the same password; another role or
        another owner password gives another."""
        first = app_password(Settings(), OWNER)
        assert first == app_password(Settings(), OWNER)
        assert first != app_password(Settings(app_role="other_app"), OWNER)
        assert first != app_password(Settings(), OWNER.replace("s3cret", "other"))

    def test_configured_password_wins(self) -> None:
        """AKASHONE_APP_PASSWORD is used as given."""
        settings = Settings(app_password="given-pw")  # type: ignore[arg-type]
        assert "given-pw" == conninfo_to_dict(app_dsn(OWNER, settings))["password"]

    def test_no_owner_password_means_none(self) -> None:
        """Trust or peer authentication (the embedded server): no password is invented."""
        dsn = app_dsn("postgresql://postgres@/akashone?host=/run/akashone-pg", Settings())
        params = conninfo_to_dict(dsn)
        assert "password" not in params
        assert ("akashone_app", "/run/akashone-pg") == (params["user"], params["host"])
