"""Least privilege: the application's login role, its password, and what it may touch.

Two roles use a database. The *owner* (the ``DATABASE_URL`` user, or the embedded server's
superuser) owns every table and only creates and upgrades the schema (``open_storage``'s
set-up, ``init``, rebuild and verify). The *application role* (``AKASHONE_APP_ROLE``) is what the
connection pool logs in as: it may read and append to the event log and the snapshots, read
and write the read tables and checkpoints, and nothing else. It owns nothing, so it cannot
``ALTER TABLE ... DISABLE TRIGGER``, and it is no superuser, so it cannot ``SET
session_replication_role = replica``: the append-only triggers hold against it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from akashone_es.application import EVENTS_TABLE, SNAPSHOTS_TABLE
from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger
from akashone_es.settings import Settings

log = get_logger(__name__)
LOCK_FUNCTION = "akashone_lock_events"
#: ALTER ROLE from processes starting together may meet "tuple concurrently updated"
ROLE_RETRIES = 5

# The library serializes appends with LOCK TABLE ... IN EXCLUSIVE MODE, and PostgreSQL lets
# only a role with UPDATE, DELETE or TRUNCATE on a table take that lock. Rather than grant any
# of those, the owner lends the lock through this function (locks last until the caller's
# transaction ends, whoever took them).
LOCK_FUNCTION_DDL = sql.SQL(
    """
    CREATE OR REPLACE FUNCTION {fn}() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog AS $$
    BEGIN
        LOCK TABLE {events} IN EXCLUSIVE MODE;
    END $$;
    REVOKE ALL ON FUNCTION {fn}() FROM PUBLIC;
    """
).format(fn=sql.Identifier("public", LOCK_FUNCTION),
         events=sql.Identifier("public", EVENTS_TABLE))

LOCK_CALL = sql.SQL("SELECT {fn}()").format(fn=sql.Identifier("public", LOCK_FUNCTION))

# Default privileges first, so read tables the owner creates later (new projections, and the
# shadow tables a rebuild swaps in) are writable by the application too; then the existing
# tables; then the log's two tables are cut back to SELECT and INSERT (run on every set-up,
# so whatever else they were ever given is taken away again).
GRANTS = sql.SQL(
    """
    GRANT CONNECT ON DATABASE {database} TO {role};
    GRANT USAGE ON SCHEMA public TO {role};
    ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
    ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO {role};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
    REVOKE ALL ON {events}, {snapshots} FROM PUBLIC, {role};
    GRANT SELECT, INSERT ON {events}, {snapshots} TO {role};
    GRANT EXECUTE ON FUNCTION {fn}() TO {role};
    """
)


def app_password(settings: Settings, owner_dsn: str) -> str | None:
    """``AKASHONE_APP_PASSWORD``; else derived from the owner's password; else none.

    Derived, every process given the same ``DATABASE_URL`` agrees on it without sharing a
    file, and it tells whoever can read it nothing the owner's password does not already give.
    Without an owner password (trust or peer authentication, the embedded server) the role
    has none either: the server lets it in on the same terms as the owner.
    """
    if settings.app_password is not None:
        return settings.app_password.get_secret_value()
    owner_password = conninfo_to_dict(owner_dsn).get("password")
    if not owner_password:
        return None
    message = f"akashone-es application role {settings.app_role}".encode()
    return hmac.new(str(owner_password).encode(), message, hashlib.sha256).hexdigest()


def app_dsn(owner_dsn: str, settings: Settings) -> str:
    """The owner's DSN with the application role's login (same server and database)."""
    params: dict[str, Any] = conninfo_to_dict(owner_dsn)
    params["user"] = settings.app_role
    params.pop("password", None)
    password = app_password(settings, owner_dsn)
    if password is not None:
        params["password"] = password
    return make_conninfo(**params)


def ensure_app_role(conn: psycopg.Connection[Any], role: str, password: str | None) -> None:
    """Create the login role when missing (roles are cluster-wide: another process, on this
    database or another, may create it at the same moment) and refuse a role with powers."""
    exists = _role_exists(conn, role)
    if not exists:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                                     " NOREPLICATION NOBYPASSRLS").format(sql.Identifier(role)))
            log.info("database.app_role_created", role=role)
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # created by a concurrent set-up: what we wanted
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigurationError(
                f"AKASHONE_APP_ROLE: role {role!r} does not exist and the DATABASE_URL user "
                "may not create roles; create it (LOGIN, no other attribute) or grant "
                "CREATEROLE") from None
    if password is not None:
        _set_password(conn, role, password)
    _refuse_powerful(conn, role)


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _set_password(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                           sql.Literal(password))
    for attempt in range(ROLE_RETRIES):
        try:
            conn.execute(statement)
            return
        except psycopg.errors.InternalError_:
            if attempt == ROLE_RETRIES - 1:
                raise
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigurationError(
                f"AKASHONE_APP_ROLE: the DATABASE_URL user may not set role {role!r}'s "
                "password; set it yourself and give it as AKASHONE_APP_PASSWORD") from None


def _refuse_powerful(conn: psycopg.Connection[Any], role: str) -> None:
    """A role that could bypass the triggers would make the split pointless: refuse it."""
    row = conn.execute(
        "SELECT rolsuper OR rolbypassrls OR rolreplication, rolcanlogin,"
        " pg_has_role(%s, current_user, 'MEMBER')"
        " FROM pg_roles WHERE rolname = %s", (role, role)).fetchone()
    if row is None:
        raise ConfigurationError(f"AKASHONE_APP_ROLE: role {role!r} does not exist")
    powerful, can_login, member_of_owner = row
    if powerful or member_of_owner:
        raise ConfigurationError(
            f"AKASHONE_APP_ROLE: role {role!r} must not be a superuser, bypass row security, "
            "replicate, or be (a member of) the DATABASE_URL user: it would be able to "
            "rewrite the log")
    if not can_login:
        raise ConfigurationError(f"AKASHONE_APP_ROLE: role {role!r} cannot log in (LOGIN)")


def grant_app_privileges(conn: psycopg.Connection[Any], role: str) -> None:
    """Give ``role`` exactly the application's rights in this database (owner, in set-up)."""
    conn.execute(LOCK_FUNCTION_DDL)
    conn.execute(GRANTS.format(
        database=sql.Identifier(str(conn.info.dbname)), role=sql.Identifier(role),
        events=sql.Identifier("public", EVENTS_TABLE),
        snapshots=sql.Identifier("public", SNAPSHOTS_TABLE),
        fn=sql.Identifier("public", LOCK_FUNCTION)))


def lock_through_function(statements: list[Any]) -> list[Any]:
    """The library's lock statements with ``LOCK TABLE`` replaced by the owner's function."""
    return [LOCK_CALL if "LOCK TABLE" in _text(statement) else statement
            for statement in statements]


def _text(statement: Any) -> str:
    if isinstance(statement, sql.Composable):
        return statement.as_string(None)
    return str(statement)
