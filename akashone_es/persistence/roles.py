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

import base64
import getpass
import hashlib
import hmac
import os
import re
import unicodedata
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from akashone_es.errors import ConfigurationError
from akashone_es.logging import get_logger
from akashone_es.persistence.names import EVENTS_TABLE, SNAPSHOTS_TABLE
from akashone_es.settings import Settings
from projections.billing_tables import BILLED_ONCE_FUNCTION
from projections.engine import LOCK_FUNCTION_SIGNATURE

log = get_logger(__name__)
#: ALTER ROLE from processes starting together may meet "tuple concurrently updated"
ROLE_RETRIES = 5
#: the longest PostgreSQL identifier, in bytes
NAME_MAX = 63
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
SCRAM_VERIFIER = re.compile(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)")
#: attributes that let a role get round the grants (CREATEROLE: on PostgreSQL <= 15 it can
#: GRANT itself any non-superuser role, the owner included; CREATEDB: databases it owns)
POWERS = ("rolsuper", "rolbypassrls", "rolreplication", "rolcreaterole", "rolcreatedb")
#: predefined roles that reach the server's files or shell, hence the data directory
POWERFUL_PREDEFINED = ("pg_execute_server_program", "pg_write_server_files")

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
    GRANT EXECUTE ON FUNCTION {fn} TO {role};
    GRANT EXECUTE ON FUNCTION {billed_once} TO {role};
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
    message = f"akashone-es application role {app_role_name(settings, owner_dsn)}".encode()
    return hmac.new(str(owner_password).encode(), message, hashlib.sha256).hexdigest()


def app_role_name(settings: Settings, owner_dsn: str) -> str:
    """``AKASHONE_APP_ROLE``; else one role per database: ``<database>_app``."""
    if settings.app_role is not None:
        return settings.app_role
    return default_role_name(database_name(owner_dsn))


def database_name(dsn: str) -> str:
    """The database a DSN connects to, with libpq's defaults (``PGDATABASE``, the user)."""
    params = conninfo_to_dict(dsn)
    return str(params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user")
               or os.environ.get("PGUSER") or getpass.getuser())


def default_role_name(dbname: str) -> str:
    """``<dbname>_app``; a name that is no plain lower-case identifier, or too long, is
    cleaned and cut, with a hash of the whole name so that two databases still differ."""
    name = f"{dbname}_app"
    if ROLE_NAME.fullmatch(name) and len(name) <= NAME_MAX:
        return name
    clean = re.sub(r"[^a-z0-9_]", "_", dbname.lower())
    if not ROLE_NAME.match(clean):
        clean = f"_{clean}"
    digest = hashlib.sha256(dbname.encode()).hexdigest()[:8]
    return f"{clean[:NAME_MAX - 13]}_{digest}_app"


def app_dsn(owner_dsn: str, settings: Settings) -> str:
    """The owner's DSN with the application role's login (same server and database)."""
    params: dict[str, Any] = conninfo_to_dict(owner_dsn)
    params["user"] = app_role_name(settings, owner_dsn)
    params.pop("password", None)
    password = app_password(settings, owner_dsn)
    if password is not None:
        params["password"] = password
    return make_conninfo(**params)


def ensure_app_role(conn: psycopg.Connection[Any], role: str, password: str | None) -> None:
    """Create the login role when missing (roles are cluster-wide: another process, on this
    database or another, may create it at the same moment), refuse a role with powers or one
    another database already uses, then make ``password`` its password if it is not yet.

    The checks come first: nothing is changed on a role that is refused.
    """
    if not _role_exists(conn, role):
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
    _refuse_powerful(conn, role)
    _refuse_shared(conn, role)
    if password is not None and not _password_works(conn, role, password):
        _set_password(conn, role, password)


def _role_exists(conn: psycopg.Connection[Any], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def _password_works(conn: psycopg.Connection[Any], role: str, password: str) -> bool:
    """Whether ``role`` already has ``password``: from its stored verifier when the owner may
    read ``pg_authid`` (a superuser), else by logging in as the role with it."""
    readable = conn.execute(
        "SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()
    if readable is not None and readable[0]:
        row = conn.execute("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s",
                           (role,)).fetchone()
        return row is not None and row[0] is not None and scram_matches(str(row[0]), password)
    params = conn.info.get_parameters()
    params.update(user=role, password=password)
    try:
        psycopg.connect(make_conninfo(**params), connect_timeout=10).close()
    except psycopg.OperationalError:
        return False  # refused (or not let in yet): set it
    return True


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a stored ``SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`` verifier is of
    ``password`` (RFC 5802: StoredKey = H(HMAC(PBKDF2(password, salt, i), "Client Key")));
    an MD5 or clear stored password does not match, so it is replaced by a verifier."""
    match = SCRAM_VERIFIER.fullmatch(verifier)
    if match is None:
        return False
    # libpq SASLprep's the password before hashing; NFKC is that for every ordinary password
    # (a rarer one that differs is merely set again at each start, still as a verifier)
    prepared = unicodedata.normalize("NFKC", password).encode()
    salted = hashlib.pbkdf2_hmac("sha256", prepared, base64.b64decode(match[2]),
                                 int(match[1]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(),
                               base64.b64decode(match[3]))


def _set_password(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    """Send a SCRAM verifier computed here, never the password: ``ALTER ROLE`` is DDL, and
    the server logs DDL statements with ``log_statement = ddl``."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(),
                                            b"scram-sha-256").decode()
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                           sql.Literal(verifier))
    for attempt in range(ROLE_RETRIES):
        try:
            conn.execute(statement)
            log.info("database.app_role_password_set", role=role)
            return
        except psycopg.errors.InternalError_:
            if attempt == ROLE_RETRIES - 1:
                raise
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigurationError(
                f"AKASHONE_APP_ROLE: the DATABASE_URL user may not set role {role!r}'s "
                "password; set it yourself and give it as AKASHONE_APP_PASSWORD") from None


def _refuse_powerful(conn: psycopg.Connection[Any], role: str) -> None:
    """A role that could bypass the triggers or the grants, itself or through a role it may
    become, would make the split pointless: refuse it."""
    powers = " OR ".join(f"p.{power}" for power in POWERS)
    row = conn.execute(
        f"SELECT {', '.join(f'r.{power}' for power in POWERS)}, r.rolcanlogin,"
        " pg_has_role(r.oid, current_user, 'MEMBER'),"
        " ARRAY(SELECT p.rolname FROM pg_roles p WHERE p.oid <> r.oid"
        f"       AND ({powers} OR p.rolname = ANY(%s))"
        "       AND pg_has_role(r.oid, p.oid, 'MEMBER') ORDER BY p.rolname)"
        " FROM pg_roles r WHERE r.rolname = %s",
        (list(POWERFUL_PREDEFINED), role)).fetchone()
    if row is None:
        raise ConfigurationError(f"AKASHONE_APP_ROLE: role {role!r} does not exist")
    *attributes, can_login, member_of_owner, powerful_roles = row
    held = [power[3:].upper() for power, on in zip(POWERS, attributes, strict=True) if on]
    if held:
        raise ConfigurationError(
            f"AKASHONE_APP_ROLE: role {role!r} must have no {', '.join(held)} attribute: it "
            "could get round the grants and rewrite the log; use a plain LOGIN role")
    if member_of_owner or powerful_roles:
        through = "the DATABASE_URL user" if member_of_owner else ", ".join(powerful_roles)
        raise ConfigurationError(
            f"AKASHONE_APP_ROLE: role {role!r} must not be a member of {through}: it could "
            "SET ROLE to it and rewrite the log")
    if not can_login:
        raise ConfigurationError(f"AKASHONE_APP_ROLE: role {role!r} cannot log in (LOGIN)")


# Privileges, default privileges and ownerships are recorded in pg_shdepend with the database
# they are in (a database's own ACL, e.g. CONNECT, as the database object itself, dbid 0).
OTHER_DATABASES = """
    SELECT DISTINCT d.datname FROM pg_catalog.pg_shdepend s
    JOIN pg_catalog.pg_database d ON d.oid = CASE
        WHEN s.dbid = 0 AND s.classid = 'pg_catalog.pg_database'::regclass THEN s.objid
        ELSE s.dbid END
    WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass
      AND s.refobjid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s)
      AND d.datname <> current_database()
    ORDER BY 1
"""


def _refuse_shared(conn: psycopg.Connection[Any], role: str) -> None:
    """A role another database (deployment) already uses would have its password reset at
    each start of either, and write both deployments' read tables: refuse it."""
    others = [str(row[0]) for row in conn.execute(OTHER_DATABASES, (role,)).fetchall()]
    if others:
        raise ConfigurationError(
            f"AKASHONE_APP_ROLE: role {role!r} already has privileges in database(s) "
            f"{', '.join(others)} of this server; each deployment needs its own role: set "
            f"AKASHONE_APP_ROLE to a role of this database only (unset, it is "
            f"'<database>_app')")


def grant_app_privileges(conn: psycopg.Connection[Any], role: str) -> None:
    """Give ``role`` exactly the application's rights in this database (owner, in set-up)."""
    conn.execute(GRANTS.format(
        database=sql.Identifier(str(conn.info.dbname)), role=sql.Identifier(role),
        events=sql.Identifier("public", EVENTS_TABLE),
        snapshots=sql.Identifier("public", SNAPSHOTS_TABLE),
        fn=LOCK_FUNCTION_SIGNATURE,
        billed_once=sql.SQL("{}()").format(sql.Identifier("public", BILLED_ONCE_FUNCTION))))
