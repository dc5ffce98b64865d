"""The application role's DSN and password, derived from the owner's DSN and the settings."""

from __future__ import annotations

import re

import pytest
from psycopg.conninfo import conninfo_to_dict

from akashone_es.persistence.roles import app_dsn, app_password, default_role_name
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


class TestDefaultRoleName:
    def test_one_role_per_database(self) -> None:
        """Roles are server-wide: the default names the database, so two deployments on one
        server never share a role; AKASHONE_APP_ROLE still wins."""
        other = OWNER.replace("/akashone?", "/akashone_staging?")
        assert "akashone_staging_app" == conninfo_to_dict(app_dsn(other, Settings()))["user"]
        assert app_password(Settings(), OWNER) != app_password(Settings(), other)
        given = Settings(app_role="shop_app")
        assert "shop_app" == conninfo_to_dict(app_dsn(other, given))["user"]

    @pytest.mark.parametrize(("dbname", "lookalike"), [
        ("Shop-Prod", "shop_prod"), ("1shop", "_1shop"), ("x" * 63, "x" * 62),
        ("dé", "d_"), ("shop prod", "shop_prod")])
    def test_any_database_name_gives_a_valid_distinct_role(self, dbname: str,
                                                            lookalike: str) -> None:
        """Upper case, a leading digit, odd characters or a long name still give a plain
        identifier of at most 63 bytes, different from a look-alike database's."""
        name = default_role_name(dbname)
        assert re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name)
        assert name.endswith("_app")
        assert name != default_role_name(lookalike)
