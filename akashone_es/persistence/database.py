"""DSN handling, database creation, the eventsourcing environment and the log's guards."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from akashone_es.application import EVENTS_TABLE
from akashone_es.errors import ConfigurationError

APPEND_ONLY_FUNCTION = "akashone_events_append_only"

APPEND_ONLY_DDL = sql.SQL(
    """
    CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the event log is append-only: % on % is not allowed',
            TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END $$;
    DROP TRIGGER IF EXISTS akashone_events_no_update_delete ON {events};
    CREATE TRIGGER akashone_events_no_update_delete BEFORE UPDATE OR DELETE ON {events}
        FOR EACH ROW EXECUTE FUNCTION {fn}();
    DROP TRIGGER IF EXISTS akashone_events_no_truncate ON {events};
    CREATE TRIGGER akashone_events_no_truncate BEFORE TRUNCATE ON {events}
        FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
    """
).format(fn=sql.Identifier(APPEND_ONLY_FUNCTION), events=sql.Identifier(EVENTS_TABLE))


def eventsourcing_env(dsn: str, *, pool_size: int, max_overflow: int,
                      lock_timeout: int) -> dict[str, str]:
    """The library's environment for a DSN (the default insert path, no DB functions)."""
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
        "CREATE_TABLE": "y",
    }


def with_database(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    params: dict[str, Any] = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it does not exist yet."""
    try:
        psycopg.connect(dsn, connect_timeout=10).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from None
    dbname = conninfo_to_dict(dsn).get("dbname", "postgres")
    with psycopg.connect(with_database(dsn, "postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not found:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))


def drop_database(dsn: str) -> None:
    """Drop the DSN's database (tests and benchmarks only)."""
    dbname = conninfo_to_dict(dsn).get("dbname")
    with psycopg.connect(with_database(dsn, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(str(dbname))))


def install_append_only_guard(conn: psycopg.Connection[Any]) -> None:
    """Make UPDATE, DELETE and TRUNCATE on the events table fail in the database."""
    conn.execute(APPEND_ONLY_DDL)
