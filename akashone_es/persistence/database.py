"""DSN handling, database creation, the eventsourcing environment and the log's guards."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from akashone_es.errors import ConfigurationError
from akashone_es.persistence.names import EVENTS_TABLE, SNAPSHOTS_TABLE
from akashone_es.persistence.roles import default_role_name

APPEND_ONLY_FUNCTION = "akashone_events_append_only"
SNAPSHOT_CHECK_FUNCTION = "akashone_snapshots_of_recorded_events"

# The log and its snapshots are both append-only: a snapshot rewritten in place would change
# what loading an aggregate returns (a max_uses=1 coupon used twice) without a new event.
APPEND_ONLY_FUNCTION_DDL = sql.SQL(
    """
    CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$;
    """
).format(fn=sql.Identifier(APPEND_ONLY_FUNCTION))
#: per table: UPDATE and DELETE refused row by row, TRUNCATE for the statement
APPEND_ONLY_TRIGGERS = sql.SQL(
    """
    DROP TRIGGER IF EXISTS {no_change} ON {table};
    CREATE TRIGGER {no_change} BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION {fn}();
    DROP TRIGGER IF EXISTS {no_truncate} ON {table};
    CREATE TRIGGER {no_truncate} BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
    """
)
#: the hash chain over the log: one seal per event, in log order (``akashone_es/audit``)
CHAIN_TABLE = "akashone_chain"
CHAIN_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (position bigint PRIMARY KEY, hash bytea NOT NULL,"
    " sealed_at timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(CHAIN_TABLE))

# The log's reading order. Writers append in parallel (no table lock), so notification ids
# are handed out in one order and committed in another: a reader that followed the ids could
# pass an id whose transaction has not committed yet, and never come back for it. Every event
# therefore carries the id of the transaction that wrote it (``akashone_xact()``), and readers
# read in (transaction_id, notification_id) order and only below ``akashone_horizon()``, the
# oldest transaction id still running (``pg_snapshot_xmin``): every transaction below it has
# ended, so nothing can still appear there. Events written before this column existed read 0,
# in their notification-id order, which was their commit order (the append took a table lock).
# Both functions are created once (``rebase_log_order`` may replace them after a restore).
XACT_FUNCTION, HORIZON_FUNCTION = "akashone_xact", "akashone_horizon"
ORDER_INDEX = "akashone_events_order"
LOG_ORDER_DDL = sql.SQL("""DO $$ BEGIN
    IF to_regprocedure({xact_name}) IS NULL THEN
        CREATE FUNCTION {xact}() RETURNS bigint LANGUAGE sql VOLATILE
            AS 'SELECT pg_current_xact_id()::text::bigint';
    END IF;
    IF to_regprocedure({horizon_name}) IS NULL THEN
        CREATE FUNCTION {horizon}() RETURNS bigint LANGUAGE sql STABLE
            AS 'SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = {events_name}::regclass
                   AND attname = 'transaction_id' AND NOT attisdropped) THEN
        ALTER TABLE {events} ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;
        ALTER TABLE {events} ALTER COLUMN transaction_id SET DEFAULT {xact}();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = {chain_name}::regclass
                   AND attname = 'transaction_id' AND NOT attisdropped) THEN
        ALTER TABLE {chain} ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;
    END IF;
    -- only when missing: CREATE INDEX takes a lock that waits for the writers in flight
    IF to_regclass({index_name}) IS NULL THEN
        CREATE INDEX {index} ON {events} (transaction_id, notification_id);
    END IF;
    IF to_regclass({chain_index_name}) IS NULL THEN
        CREATE INDEX {chain_index} ON {chain} (transaction_id, position);
    END IF;
END $$""").format(
    xact=sql.Identifier("public", XACT_FUNCTION),
    horizon=sql.Identifier("public", HORIZON_FUNCTION),
    xact_name=sql.Literal(f"public.{XACT_FUNCTION}()"),
    horizon_name=sql.Literal(f"public.{HORIZON_FUNCTION}()"),
    events=sql.Identifier("public", EVENTS_TABLE),
    events_name=sql.Literal(f"public.{EVENTS_TABLE}"),
    chain=sql.Identifier("public", CHAIN_TABLE), chain_name=sql.Literal(f"public.{CHAIN_TABLE}"),
    index=sql.Identifier(ORDER_INDEX), chain_index=sql.Identifier(f"{CHAIN_TABLE}_order"),
    index_name=sql.Literal(f"public.{ORDER_INDEX}"),
    chain_index_name=sql.Literal(f"public.{CHAIN_TABLE}_order"))

APPEND_ONLY_DDL = sql.Composed([APPEND_ONLY_FUNCTION_DDL, *(
    APPEND_ONLY_TRIGGERS.format(
        table=sql.Identifier(table), fn=sql.Identifier(APPEND_ONLY_FUNCTION),
        no_change=sql.Identifier(f"{table}_no_update_delete"),
        no_truncate=sql.Identifier(f"{table}_no_truncate"))
    for table in (EVENTS_TABLE, SNAPSHOTS_TABLE, CHAIN_TABLE))])

# The library takes a snapshot after the event it is at has been recorded, so an honest
# snapshot always names a recorded (originator_id, originator_version); one that does not
# (say, at version 100 of a coupon with 5 events) could only have been forged.
SNAPSHOT_CHECK_DDL = sql.SQL(
    """
    CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM {events} WHERE originator_id = NEW.originator_id
                       AND originator_version = NEW.originator_version) THEN
            RAISE EXCEPTION 'a snapshot must be at a recorded event: % has no version %',
                NEW.originator_id, NEW.originator_version
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NEW;
    END $$;
    DROP TRIGGER IF EXISTS akashone_snapshots_of_recorded_events ON {snapshots};
    CREATE TRIGGER akashone_snapshots_of_recorded_events BEFORE INSERT ON {snapshots}
        FOR EACH ROW EXECUTE FUNCTION {fn}();
    """
).format(fn=sql.Identifier("public", SNAPSHOT_CHECK_FUNCTION),
         events=sql.Identifier("public", EVENTS_TABLE),
         snapshots=sql.Identifier("public", SNAPSHOTS_TABLE))


def eventsourcing_env(dsn: str, *, pool_size: int, max_overflow: int,
                      lock_timeout: int, create_table: bool = True) -> dict[str, str]:
    """The library's environment for a DSN (the default insert path, no DB functions).

    ``create_table=False`` when ``dsn`` is the application role's: the owner creates the
    library's tables in set-up (``storage.setup.create_library_tables``).
    """
    params = conninfo_to_dict(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(lock_timeout),
        "POSTGRES_PRE_PING": "n",
        "MAPPER_TOPIC": "akashone_es.application:PydanticMapper",
        "TRANSCODER_TOPIC": "akashone_es.application:OrjsonTranscoder",
        "APPLICATION_RECORDER_TOPIC": "akashone_es.persistence.recorder:AkashOneRecorder",
        "CREATE_TABLE": "y" if create_table else "n",
    }


def with_database(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    params: dict[str, Any] = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


#: the form a DSN takes, as every DSN message says it
DSN_FORM = "postgresql://user@host:port/dbname"
#: what libpq's complaints about a DSN's text mean (its own words quote that text, which may
#: hold a password, so they are never shown)
DSN_PROBLEMS = (
    ("percent-encoded", "a %-escape in it is not two hex digits"),
    ('matching "]"', 'an IPv6 host is missing its closing "]"'),
    ("URI query parameter", "its ?query is not name=value pairs"),
    ("unexpected spaces", "it has spaces"),
    ("invalid connection option", "it names an option PostgreSQL does not have"),
)
#: what libpq (and psycopg, which resolves host names itself) say when a connection fails,
#: in plain words; the server's own refusals (an unknown role, a wrong password, a missing
#: database) are plain already and are passed on
CONNECT_PROBLEMS = (
    (r"failed: Connection refused", "connection refused (is the server running and "
                                    "accepting TCP connections there?)"),
    (r"resolve host|translate host name", "the host name is unknown"),
    (r"timeout expired|timed out", "no answer in time"),
    (r'on socket ".*" failed: No such file or directory',
     "no server socket there (is the server running?)"),
    (r"failed: (Network is unreachable|No route to host)",
     "the network cannot reach that host"),
    (r'invalid integer value ".*" for connection option "(\w+)"',
     r"its \1 option is not a number"),
    # libpq checks an option's value before connecting (``?sslmode=bogus``)
    (r"connection is bad: invalid (\w+) value", r"its \1 option has a value PostgreSQL "
                                                r"does not know"),
)


def parse_dsn(dsn: str, variable: str) -> dict[str, Any]:
    """The DSN's parameters; a ``ConfigurationError`` naming ``variable`` and what is wrong,
    in plain words (never the DSN's text, which may hold a password), when it is not one."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"{variable} is not a PostgreSQL DSN ({_dsn_problem(dsn, str(exc))}); "
            f"expected {DSN_FORM}") from None
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            # ``postgresql://user:password/db`` reads the password as the port: a port is
            # quoted only when the DSN names its user apart from it
            shown = f' "{port}"' if params.get("user") and port != params.get(
                "password") else ""
            rule = "is not a number" if not port.isdigit() else "is not 1-65535"
            raise ConfigurationError(f"{variable}: the port{shown} {rule} (expected "
                                     f"{DSN_FORM})")
    return params


def _dsn_problem(dsn: str, libpq: str) -> str:
    """What is wrong with a DSN libpq refused, without quoting it."""
    scheme, separator, _ = dsn.partition("://")
    if separator and scheme.lower() not in ("postgresql", "postgres"):
        if scheme.isalnum() and len(scheme) <= 20:  # a scheme's word, not a secret's
            return f'"{scheme}://" is not a PostgreSQL URL'
        return "not a postgresql:// URL"
    if not separator and "=" not in dsn:
        return "neither a postgresql:// URL nor key=value settings"
    for words, meaning in DSN_PROBLEMS:
        if words in libpq:
            return meaning
    return "libpq cannot read it"


def server_of(params: dict[str, Any]) -> str:
    """Where a DSN's parameters point: ``host:port`` (libpq's defaults when unset)."""
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


def connect_problem(exc: psycopg.Error) -> str:
    """Why a connection failed, as one line in plain words (no libpq or psycopg wording)."""
    text = "; ".join(" ".join(line.split()) for line in str(exc).splitlines() if line.strip())
    for pattern, meaning in CONNECT_PROBLEMS:
        if found := re.search(pattern, text):
            return found.expand(meaning)
    if text.startswith("connection is bad: "):  # libpq's own check: it may quote a value
        return re.sub(r'"[^"]*"', '"..."', text.removeprefix("connection is bad: "))
    # "connection failed: connection to server at "h", port 5432 failed: FATAL: ..."
    return re.sub(r"^.* failed: (FATAL: )?", "", text) or type(exc).__name__


def ensure_database(dsn: str, *, create: bool = True) -> None:
    """Check the DSN's database answers; create it when missing and ``create`` is set.

    Every failure is a one-line ``ConfigurationError`` naming what to fix (the DSN's form,
    the server, the role, the database), never the DSN itself (it may hold a password).
    """
    params = parse_dsn(dsn, "DATABASE_URL")
    if not params.get("dbname") or str(params["dbname"]).startswith("template"):
        # libpq would fall back to the user's name (often the maintenance database)
        raise ConfigurationError(f"DATABASE_URL names no application database; expected "
                                 f"{DSN_FORM}")
    dbname = str(params["dbname"])
    where = server_of(params)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            if not create and _holds_no_log(conn):
                # a command that only reads, pointed at the wrong database, must not
                # install the schema there (nor make it look like an empty system)
                raise ConfigurationError(
                    f'database "{dbname}" on {where} holds no akashone-es event log (check '
                    "DATABASE_URL, or run akashone-es init to set one up there)")
        return
    except psycopg.OperationalError as exc:
        # libpq gives no SQLSTATE for a refused login: the server's text is all there is,
        # and a missing database must never be confused with a missing role
        if f'database "{dbname}" does not exist' not in " ".join(str(exc).split()):
            raise ConfigurationError(f"cannot connect to PostgreSQL at {where}: "
                                     f"{connect_problem(exc)}") from None
    if not create:
        raise ConfigurationError(f'database "{dbname}" does not exist on {where} '
                                 "(run akashone-es init to create it)")
    try:
        with psycopg.connect(with_database(dsn, "postgres"), autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        pass  # another process created it first: what we wanted
    except psycopg.Error as exc:
        reason = connect_problem(exc) if isinstance(exc, psycopg.OperationalError) else (
            " ".join(str(exc).split()))
        raise ConfigurationError(f'cannot create database "{dbname}" on {where}: {reason}'
                                 ) from None


def _holds_no_log(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"public.{EVENTS_TABLE}",)).fetchone()
    return row is None or row[0] is None


def drop_database(dsn: str) -> None:
    """Drop the DSN's database and its default application role (tests and benchmarks only).

    Roles are server-wide: without the role, every test database would leave one behind.
    """
    dbname = str(conninfo_to_dict(dsn).get("dbname"))
    with psycopg.connect(with_database(dsn, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(dbname)))
        # also given rights in another database: not this database's alone to drop
        with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                sql.Identifier(default_role_name(dbname))))


#: the functions with an offset: their transaction ids continue above the log's (a restore)
REBASED_FUNCTIONS = sql.SQL("""
    CREATE OR REPLACE FUNCTION {xact}() RETURNS bigint LANGUAGE sql VOLATILE
        AS 'SELECT pg_current_xact_id()::text::bigint + {offset}';
    CREATE OR REPLACE FUNCTION {horizon}() RETURNS bigint LANGUAGE sql STABLE
        AS 'SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint + {offset}'""")


#: the log's last transaction id, and the next one a writer would record (no id is taken)
NEXT_XACT = sql.SQL(
    "SELECT (SELECT transaction_id FROM {events} ORDER BY transaction_id DESC LIMIT 1),"
    " public.akashone_horizon() - pg_snapshot_xmin(s)::text::bigint"
    " + pg_snapshot_xmax(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint"
    " FROM pg_current_snapshot() s").format(events=sql.Identifier("public", EVENTS_TABLE))


def rebase_log_order(conn: psycopg.Connection[Any]) -> int | None:
    """After a restore into another server (``pg_dump``/``pg_restore``), that server's
    transaction ids start below the ones the log recorded: new events would sort before old
    ones and followers would never read them. When the next transaction id a writer would
    record is not above the log's last, the order functions get an offset so that new ids
    continue above it; returns the offset set, or None when none was needed (a cheap check,
    with no lock, on every start). Rebasing holds the events table's EXCLUSIVE lock, so no
    writer in flight still uses the old functions. Runs its own transaction."""
    row = conn.execute(NEXT_XACT).fetchone()
    conn.commit()
    if row is None or row[0] is None or row[0] < row[1]:
        return None
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
            sql.Identifier("public", EVENTS_TABLE)))
        last, following, raw = conn.execute(NEXT_XACT).fetchone()  # type: ignore[misc]
        if last < following:
            return None
        offset = int(last) - int(raw) + 1  # the next id taken, plus it, is above ``last``
        conn.execute(REBASED_FUNCTIONS.format(
            xact=sql.Identifier("public", XACT_FUNCTION),
            horizon=sql.Identifier("public", HORIZON_FUNCTION), offset=sql.SQL(str(offset))))
    return offset


def install_append_only_guard(conn: psycopg.Connection[Any]) -> None:
    """Make UPDATE, DELETE and TRUNCATE on the events and snapshots tables fail in the
    database, and a snapshot of no recorded event fail to insert; give the log (and its
    chain) the reading order's column."""
    conn.execute(CHAIN_DDL)
    conn.execute(APPEND_ONLY_DDL)
    conn.execute(SNAPSHOT_CHECK_DDL)
    conn.execute(LOG_ORDER_DDL)
