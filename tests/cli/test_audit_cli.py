"""``akashone-es audit``: digest, verify, and a tampered log's exit code and one line."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.cli.conftest import Cli, run_cli


def test_digest_then_verify_then_tamper(cli: Cli, dsn: str, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    saved = tmp_path / "digest.json"
    made = cli("audit", "digest", "--out", str(saved))
    assert made.returncode == 0, made.stderr
    taken = json.loads(saved.read_text())
    assert taken["position"] > 0
    assert len(taken["hash"]) == 64
    checked = cli("audit", "verify", "--digest", str(saved))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK: ")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE akashone_events SET state = set_byte(state, 29,"
                     " get_byte(state, 29) # 1) WHERE notification_id = 3")
    broken = cli("audit", "verify", "--digest", str(saved))
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines()[-1] == (
        "error: position 3: the event does not match its seal (its content, metadata or "
        "place changed)")


def test_an_unreadable_digest_is_one_line_exit_2(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    result = cli("audit", "verify", "--digest", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot read the digest")


def test_the_follower_seals_the_log_as_the_application(cli: Cli, dsn: str) -> None:
    """``projections catch-up`` (the follower, as the application's role) seals every
    event; ``audit verify`` then finds them all sealed."""
    assert cli("init").returncode == 0
    assert cli("projections", "catch-up").returncode == 0
    with psycopg.connect(dsn) as conn:
        events, seals = conn.execute(
            "SELECT (SELECT count(*) FROM akashone_events),"
            " (SELECT count(*) FROM akashone_chain)").fetchone()
    assert events == seals > 0
    assert cli("audit", "verify").returncode == 0


def test_export_then_verify_it_with_no_database(cli: Cli, dsn: str, tmp_path: Path) -> None:
    """The auditor's round: export with the digest beside it, then check it offline (the
    checker is given a database URL that answers nothing)."""
    assert cli("init").returncode == 0
    out = tmp_path / "slice.jsonl"
    made = cli("export", "--out", str(out), "--kind", "role")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"wrote {out}: ")
    digest = tmp_path / "slice.jsonl.digest.json"
    assert json.loads(digest.read_text())["position"] > 0
    offline = run_cli("audit", "verify-export", str(out), "--digest", str(digest),
                      database_url="postgresql://nobody@127.0.0.1:1/none")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith("OK: ")
    lines = out.read_text().splitlines(keepends=True)
    line = json.loads(lines[1])
    line["state"] = line["state"].replace("a", "b", 1)
    out.write_text("".join([lines[0], json.dumps(line) + "\n", *lines[2:]]))
    broken = cli("audit", "verify-export", str(out), "--digest", str(digest))
    assert broken.returncode == 1
    assert broken.stderr.strip() == (f"error: {out}: position {line['position']}: the line "
                                     "does not match its hash (changed, removed, added or "
                                     "moved)")


def test_export_usage_errors_are_one_line(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").returncode == 0
    bad_tenant = cli("export", "--tenant", "acme")
    assert bad_tenant.returncode == 2
    assert "must be a UUID" in bad_tenant.stderr
    assert len(bad_tenant.stderr.strip().splitlines()) == 1
    unknown = cli("export", "--out", str(tmp_path / "x.jsonl"), "--kind", "spaceship")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        "error: --kind: no aggregate or resource kind 'spaceship' in the log (known kinds: ")
    assert "role" in unknown.stderr
    assert "virtual_machine" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.jsonl").exists()
    missing = cli("audit", "verify-export", str(tmp_path / "none.jsonl"), "--digest",
                  str(tmp_path / "none.json"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read the digest")


def test_verify_says_when_it_sealed_the_tail(cli: Cli, dsn: str) -> None:
    """Events written since the last seal are not checked by this verify: it says so, and
    seals them for the next one."""
    assert cli("init").returncode == 0
    with psycopg.connect(dsn) as conn:
        unsealed = conn.execute("SELECT count(*) FROM akashone_events WHERE notification_id >"
                                " (SELECT coalesce(max(position), 0) FROM akashone_chain)"
                                ).fetchone()[0]
    assert unsealed > 0
    first = cli("audit", "verify")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == (
        f"{unsealed} events written since the last seal were sealed now: the next verify "
        "checks them")
    second = cli("audit", "verify")
    assert second.stdout.startswith(f"OK: {unsealed} events match their seals")
    assert "sealed now" not in second.stdout
