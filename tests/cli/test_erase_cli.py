"""``akashone-es erase`` and ``audit retention-sweep``: one line each, exit codes."""

from __future__ import annotations

import json

import psycopg
from psycopg.conninfo import conninfo_to_dict

from akashone_es.persistence.database import drop_database, with_database
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.cli.conftest import Cli, run_cli
from tests.conftest import TEST_SETTINGS


def a_person(dsn: str) -> str:
    storage = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # type: ignore[arg-type]
    try:
        with storage.acting_as(system="tests"):
            user = storage.create_user({"username": "priya", "email": "priya@example.in",
                                        "password": "long-enough-1"})
    finally:
        storage.close()
    return str(user.id)


def test_erase_then_show(cli: Cli, dsn: str) -> None:
    user = a_person(dsn)
    erased = cli("erase", user, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.startswith("erased: 1 key destroyed (erasure ")
    shown = json.loads(cli("show", user, "--json").stdout)
    assert (shown["username"], shown["email"]) == ("[erased]", "[erased]")
    history = cli("history", user, "--json")
    assert "priya" not in history.stdout
    assert cli("audit", "verify").returncode == 0


def test_erase_asks_first_and_refuses_bad_input(cli: Cli, dsn: str) -> None:
    user = a_person(dsn)
    unconfirmed = cli("erase", user)  # no stdin: the confirmation is not given
    assert unconfirmed.returncode == 1
    assert "priya" in cli("show", user, "--json").stdout
    bad = cli("erase", user, "--yes", "--reason", "because")
    assert bad.returncode == 2  # a bad argument
    assert bad.stderr.strip().startswith(
        "error: Invalid value for '--reason': 'because' is not one of: data principal")
    missing = cli("erase", "00000000-0000-0000-0000-000000000001", "--yes")
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1


def test_retention_sweep(cli: Cli, dsn: str) -> None:
    a_person(dsn)
    swept = cli("audit", "retention-sweep", "--today", "2026-01-01")
    assert swept.returncode == 0, swept.stderr
    assert swept.stdout.strip() == "no financial year holds buyer details yet"
    bad = cli("audit", "retention-sweep", "--hold", "FY27")
    assert (bad.returncode, bad.stderr.strip()) == (
        2, "error: --hold: 'FY27' is not a financial year such as 2026-27")


def test_personal_data_in_clear_is_reported(cli: Cli, dsn: str) -> None:
    """Events written before personal data was encrypted are counted by field; new ones
    are not."""
    a_person(dsn)
    clean = cli("audit", "personal-data")
    assert (clean.returncode, clean.stdout.strip()) == (
        0, "no event holds personal data in clear")
    with psycopg.connect(dsn, autocommit=True) as conn:  # a registration as the old code wrote it
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE akashone_events SET state = convert_to(jsonb_set(convert_from("
                     "state, 'UTF8')::jsonb, '{email}', '\"old@example.in\"')::text, 'UTF8')"
                     " WHERE topic = 'akashone_es.domain.identity:User.Registered'")
    found = cli("audit", "personal-data")
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines() == ["1 event holds personal data in clear:",
                                         "  User.Registered email: 1"]


def test_reencrypt_copies_the_log_into_a_new_database(cli: Cli, dsn: str) -> None:
    """The old log's clear email is encrypted in the copy; the copy's log verifies; a
    second copy into the same database, or one into the database itself, is one line."""
    user = a_person(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:  # a registration as the old code wrote it
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE akashone_events SET state = convert_to(jsonb_set(convert_from("
                     "state, 'UTF8')::jsonb, '{email}', '\"old@example.in\"')::text, 'UTF8')"
                     " WHERE topic = 'akashone_es.domain.identity:User.Registered'")
    name = f"{conninfo_to_dict(dsn)['dbname']}_copy"
    target = with_database(dsn, str(name))
    try:
        copied = cli("audit", "reencrypt", "--into", str(name))
        assert copied.returncode == 0, copied.stderr
        lines = copied.stdout.splitlines()
        assert lines[:2] == ["copied 1 event and 1 key; 1 held personal data in clear",
                             "  1 value encrypted, 0 erased (their person's key was destroyed)"]
        assert [line.split()[:3] for line in lines[2:4]] == [
            ["old", "log:", "position"], ["new", "log:", "position"]]
        with psycopg.connect(target) as conn:
            state = conn.execute("SELECT convert_from(state, 'UTF8') FROM akashone_events"
                                 ).fetchone()
        assert state is not None
        assert "old@example.in" not in state[0]
        assert "priya" not in state[0]
        assert run_cli("audit", "verify", database_url=target).returncode == 0
        shown = json.loads(run_cli("show", user, "--json", database_url=target).stdout)
        assert shown["email"] == "old@example.in"  # the read table, rebuilt from the copy
        again = cli("audit", "reencrypt", "--into", str(name))
        assert (again.returncode, again.stderr.splitlines()[-1]) == (
            2, "error: the target database already holds 1 event: the copy goes into an "
               "empty database (drop it, or name a new one)")
        itself = cli("audit", "reencrypt", "--into", dsn)
        assert (itself.returncode, itself.stderr.strip()) == (
            2, "error: --into: names the database being copied; name a new, empty one")
    finally:
        drop_database(target)
