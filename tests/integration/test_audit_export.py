"""Exports of the log: a slice an auditor proves offline against a digest.

Two tenants with one record of every kind (the access matrix's world) are exported whole and
in slices; every export is checked by ``verify_export`` and by the stand-alone
``docs/verify_export.py`` run with no site-packages (the standard library only), and every
tampering with the file is caught by both.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from akashone_es import audit
from akashone_es.export import ExportError, Filters, Summary, export, verify_export
from tests.integration.access_fixtures import World, build_world, module_storage

SCRIPT = Path(__file__).parents[2] / "docs" / "verify_export.py"


@pytest.fixture(scope="module")
def world(server_dsn: str) -> Iterator[World]:
    with module_storage(server_dsn) as (store, dsn), psycopg.connect(
            dsn, autocommit=True) as conn:
        yield build_world(store, conn)


def take(world: World, filters: Filters | None = None) -> tuple[list[str], Summary]:
    out = io.StringIO()
    with psycopg.connect(world.storage.dsn) as conn:
        summary = export(conn, out, filters or Filters())
    return out.getvalue().splitlines(keepends=True), summary


def standalone(tmp_path: Path, lines: list[str], digest: audit.Digest,
               *options: str) -> tuple[int, str]:
    """The docs script's verdict, run with the standard library alone (-I -S)."""
    (tmp_path / "x.jsonl").write_text("".join(lines))
    (tmp_path / "d.json").write_text(digest.dumps())
    done = subprocess.run([sys.executable, "-I", "-S", str(SCRIPT), str(tmp_path / "x.jsonl"),
                           str(tmp_path / "d.json"), *options], capture_output=True, text=True,
                          check=False, timeout=60)
    return done.returncode, done.stdout + done.stderr


def both(tmp_path: Path, lines: list[str], digest: audit.Digest, *,
         complete: bool = False) -> tuple[bool, bool]:
    """(package verdict, stand-alone verdict): they must always agree."""
    code, _ = standalone(tmp_path, lines, digest, *(["--complete"] if complete else []))
    return verify_export(lines, digest, complete=complete).ok, code == 0


def shown(lines: list[str]) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, lines[1:]) if "originator_id" in line]


class TestWholeLog:
    def test_the_whole_log_verifies_offline(self, world: World, tmp_path: Path) -> None:
        lines, summary = take(world)
        assert summary.first == 1
        assert summary.shown + summary.withheld == summary.digest.position == len(lines) - 1
        assert both(tmp_path, lines, summary.digest) == (True, True)
        code, said = standalone(tmp_path, lines, summary.digest)
        assert (code, said.strip()) == (0, "OK: the export matches the digest (from after "
                                           f"position 0: {summary.shown} events shown, "
                                           f"{summary.withheld} hidden)")
        assert both(tmp_path, lines, summary.digest, complete=not summary.withheld) == (
            True, True)

    def test_every_line_has_its_position_and_hash(self, world: World) -> None:
        lines, summary = take(world)
        positions = [json.loads(line)["position"] for line in lines[1:]]
        assert positions == list(range(1, summary.digest.position + 1))
        assert all(len(json.loads(line)["hash"]) == 64 for line in lines[1:])

    def test_no_secret_leaves_in_an_export(self, world: World) -> None:
        """Password hashes, TOTP secrets, private and secret keys are sealed in the log; an
        export carries only their ciphertext."""
        text = "".join(take(world)[0])
        assert "$2b$" not in text
        assert "PRIVATE KEY-----" not in text
        for line in shown(take(world)[0]):
            state = json.loads(line["state"])
            for key in ("password_hash", "secret_key", "private_key"):
                value = state.get(key) or state.get("fields", {}).get(key)
                assert value is None or value.startswith("enc:v1:"), (key, line["topic"])


class TestSlices:
    def test_a_tenant_slice_shows_its_records_and_hides_the_others(
            self, world: World, tmp_path: Path) -> None:
        lines, summary = take(world, Filters(tenant=world.a.org))
        ids = {UUID(line["originator_id"]) for line in shown(lines)}
        assert world.a.aggregates <= ids
        assert not ids & world.b.aggregates
        visible = "".join(line["state"] for line in shown(lines)).lower()
        leaked = [token for token in world.b.tokens if token in visible]
        assert leaked == []
        assert summary.leaves > 0
        assert both(tmp_path, lines, summary.digest) == (True, True)

    def test_an_aggregate_slice(self, world: World, tmp_path: Path) -> None:
        lines, summary = take(world, Filters(aggregate=world.a.invoice))
        assert {UUID(line["originator_id"]) for line in shown(lines)} == {world.a.invoice}
        assert [line["version"] for line in shown(lines)] == list(
            range(1, len(shown(lines)) + 1))
        assert both(tmp_path, lines, summary.digest) == (True, True)

    def test_a_kind_slice_by_aggregate_or_resource_kind(self, world: World) -> None:
        roles = shown(take(world, Filters(kind="role"))[0])
        assert roles
        assert {line["topic"].split(":")[1].split(".")[0] for line in roles} == {"Role"}
        vms = shown(take(world, Filters(kind="virtual_machine"))[0])
        assert {UUID(line["originator_id"]) for line in vms} == {
            world.a.resources["virtual_machine"], world.b.resources["virtual_machine"]}

    def test_an_unknown_kind_is_refused(self, world: World) -> None:
        with pytest.raises(ExportError, match="no aggregate or resource kind 'spaceship'"):
            take(world, Filters(kind="spaceship"))

    def test_a_time_range(self, world: World, tmp_path: Path) -> None:
        everything = shown(take(world)[0])
        moments = sorted(datetime.fromisoformat(json.loads(e["state"])["timestamp"])
                         for e in everything)
        middle = moments[len(moments) // 2]
        lines, summary = take(world, Filters(since=middle))
        got = shown(lines)
        assert len(got) == sum(1 for m in moments if m >= middle)
        later = take(world, Filters(since=datetime.now(UTC) + timedelta(days=1)))
        assert shown(later[0]) == []  # a header anchored at the digest: still verifiable
        assert both(tmp_path, later[0], later[1].digest) == (True, True)
        assert both(tmp_path, lines, summary.digest) == (True, True)


class TestWhatAnExportProves:
    """Both checkers prove the events shown unaltered and in place; that a filtered export
    left nothing out is the exporter's word, which --complete refuses to take (found by the
    audit review: front truncation and hidden events passed as OK)."""

    def test_a_slice_cut_at_the_front_is_not_complete(self, world: World,
                                                      tmp_path: Path) -> None:
        lines, summary = take(world)
        cut = 5  # drop the first events: anchor at the last dropped line's own hash
        header = json.loads(lines[0])
        header.update(anchor=json.loads(lines[cut])["hash"],
                      anchor_position=json.loads(lines[cut])["position"])
        front_cut = [json.dumps(header) + "\n", *lines[cut + 1:]]
        assert both(tmp_path, front_cut, summary.digest) == (True, True)
        verdict = verify_export(front_cut, summary.digest)
        assert (verdict.anchor, verdict.shown) == (json.loads(lines[cut])["position"],
                                                   summary.shown - cut)
        assert both(tmp_path, front_cut, summary.digest, complete=True) == (False, False)
        assert "not complete" in str(verify_export(front_cut, summary.digest,
                                                   complete=True).problem)

    def test_hidden_events_are_counted_and_fail_complete(self, world: World,
                                                         tmp_path: Path) -> None:
        lines, summary = take(world, Filters(tenant=world.a.org))
        verdict = verify_export(lines, summary.digest)
        assert verdict.ok
        assert verdict.hidden == summary.leaves + summary.withheld > 0
        assert both(tmp_path, lines, summary.digest, complete=True) == (False, False)

    @pytest.mark.parametrize("mangle", [
        lambda header, line: (header, {**line, "version": str(line["version"])}),
        lambda header, line: ([header], line),
        lambda header, line: ({**header, "anchor_position": "0"}, line),
        lambda header, line: (header, {**line, "position": "not a position"}),
    ], ids=["version-as-text", "header-not-an-object", "anchor-as-text", "position-as-text"])
    def test_malformed_lines_are_refused_by_both(self, world: World, tmp_path: Path,
                                                 mangle: Any) -> None:
        lines, summary = take(world)
        header, line = mangle(json.loads(lines[0]), json.loads(lines[1]))
        mangled = [json.dumps(header) + "\n", json.dumps(line) + "\n", *lines[2:]]
        assert both(tmp_path, mangled, summary.digest) == (False, False)


class TestTamperedExports:
    """Each change to an export file is caught by both checkers."""

    @pytest.fixture
    def taken(self, world: World) -> tuple[list[str], audit.Digest]:
        lines, summary = take(world, Filters(tenant=world.a.org))
        return lines, summary.digest

    def change(self, lines: list[str], at: int, **fields: Any) -> list[str]:
        line = json.loads(lines[at])
        line.update(fields)
        return [*lines[:at], json.dumps(line) + "\n", *lines[at + 1:]]

    def first_shown(self, lines: list[str]) -> int:
        return next(n for n, line in enumerate(lines) if n and '"state"' in line)

    def test_a_changed_state(self, taken: Any, tmp_path: Path) -> None:
        lines, digest = taken
        at = self.first_shown(lines)
        state = json.loads(lines[at])["state"].replace("alpha", "alphA", 1)
        changed = self.change(lines, at, state=state)
        assert both(tmp_path, changed, digest) == (False, False)
        assert f"position {json.loads(lines[at])['position']}" in str(
            verify_export(changed, digest).problem)

    def test_a_removed_line(self, taken: Any, tmp_path: Path) -> None:
        lines, digest = taken
        at = self.first_shown(lines) + 1
        assert both(tmp_path, [*lines[:at], *lines[at + 1:]], digest) == (False, False)

    def test_two_lines_swapped(self, taken: Any, tmp_path: Path) -> None:
        lines, digest = taken
        at = self.first_shown(lines)
        swapped = [*lines[:at], lines[at + 1], lines[at], *lines[at + 2:]]
        assert both(tmp_path, swapped, digest) == (False, False)

    def test_a_hidden_event_shown_differently(self, taken: Any, tmp_path: Path) -> None:
        """A leaf cannot be swapped for made-up content."""
        lines, digest = taken
        at = next(n for n, line in enumerate(lines) if n and '"leaf"' in line
                  and '"withheld"' not in line)
        forged = self.change(lines, at, leaf="00" * 32)
        assert both(tmp_path, forged, digest) == (False, False)

    def test_a_rewritten_export_does_not_reach_the_kept_digest(
            self, taken: Any, tmp_path: Path) -> None:
        """Change a line and recompute every hash after it, as a forger would: each line
        agrees with the one before, but the chain no longer reaches the digest kept apart."""
        lines, digest = taken
        at = self.first_shown(lines)
        header = json.loads(lines[0])
        rewritten = [lines[0]]
        previous = bytes.fromhex(header["anchor"])
        for n, text in enumerate(lines[1:], start=1):
            line = json.loads(text)
            if n == at:
                line["state"] = line["state"].replace("alpha", "alphA", 1)
            leaf = (audit.leaf(line["position"], UUID(line["originator_id"]), line["version"],
                               line["topic"], line["state"].encode()) if "state" in line
                    else bytes.fromhex(line["leaf"]))
            previous = audit.chain(previous, leaf)
            line["hash"] = previous.hex()
            rewritten.append(json.dumps(line) + "\n")
        assert both(tmp_path, rewritten, digest) == (False, False)
        assert "differs from the digest" in str(verify_export(rewritten, digest).problem)
        assert verify_export(rewritten, audit.Digest(digest.position, previous.hex(), "")).ok

    def test_a_cut_export_does_not_reach_the_digest(self, taken: Any, tmp_path: Path) -> None:
        lines, digest = taken
        assert both(tmp_path, lines[:-2], digest) == (False, False)
        assert "does not reach" in str(verify_export(lines[:-2], digest).problem)

    def test_nothing_past_the_digest_is_taken_as_proven(
            self, taken: Any, tmp_path: Path) -> None:
        """A line appended after the digest's position (with a hash of its own making), or
        an export checked against an older digest: refused, not counted as proven."""
        lines, digest = taken
        last = json.loads(lines[-1])
        state = json.dumps({"timestamp": "2026-01-01T00:00:00Z", "forged": True})
        leaf = audit.leaf(last["position"] + 1, UUID(int=1), 1, "x:Forged", state.encode())
        forged = {"position": last["position"] + 1, "originator_id": str(UUID(int=1)),
                  "version": 1, "topic": "x:Forged", "state": state,
                  "hash": audit.chain(bytes.fromhex(last["hash"]), leaf).hex()}
        appended = [*lines, json.dumps(forged) + "\n"]
        assert both(tmp_path, appended, digest) == (False, False)
        assert "past the digest's position" in str(verify_export(appended, digest).problem)
        middle = json.loads(lines[len(lines) // 2])
        older = audit.Digest(middle["position"], middle["hash"], "")
        assert both(tmp_path, lines, older) == (False, False)
        upto = [line for line in lines if json.loads(line).get("position", 0) <= older.position]
        assert both(tmp_path, upto, older) == (True, True)

    def test_garbage_is_one_clear_problem(self, taken: Any, tmp_path: Path) -> None:
        _, digest = taken
        assert verify_export([], digest).problem == "the export is empty"
        assert "not an export header" in str(verify_export(["[1, 2]\n"], digest).problem)
        assert "line 2: malformed" in str(verify_export(
            [json.dumps({"format": "akashone-export/1", "anchor": "00" * 32, "first": 1})
             + "\n", "{not json\n"], digest).problem)


class TestLogAlteredBeforeExport:
    def test_an_altered_log_is_not_exported(self, server_dsn: str) -> None:
        """Exporting a log that no longer matches its seals would carry the change away."""
        with module_storage(server_dsn) as (store, dsn):
            with store.acting_as(system="tests"):
                store.initialize_default_permissions()
            with psycopg.connect(dsn, autocommit=True) as conn:
                audit.seal(conn)
                conn.execute("SET session_replication_role = replica")
                conn.execute("UPDATE akashone_events SET state = set_byte(state, 29,"
                             " get_byte(state, 29) # 1) WHERE notification_id = 2")
            with psycopg.connect(dsn) as conn, pytest.raises(
                    ExportError, match="position 2: the event does not match its seal"):
                export(conn, io.StringIO(), Filters())


class TestLegacySecrets:
    def test_an_event_with_a_clear_password_hash_is_withheld(self, server_dsn: str,
                                                             tmp_path: Path) -> None:
        """A user registered before password hashes were sealed: the export says the event
        is withheld and gives its leaf; the chain still verifies through it."""
        with module_storage(server_dsn) as (store, dsn):
            with store.acting_as(system="tests"):
                user = store.create_user({"username": "old", "email": "old@example.in",
                                          "password": "password-long-1"})
            with psycopg.connect(dsn, autocommit=True) as conn:  # as the old code wrote it
                conn.execute("SET session_replication_role = replica")
                conn.execute(
                    "UPDATE akashone_events SET state = convert_to(jsonb_set(convert_from("
                    "state, 'UTF8')::jsonb, '{password_hash}', to_jsonb(%s::text))::text,"
                    " 'UTF8') WHERE originator_id = %s",
                    ("$2b$04$abcdefghijklmnopqrstuu5cKjHKZ6xAGHmsLXg2ckWfYeYm9C3bO", user.id))
            with psycopg.connect(dsn) as conn:
                out = io.StringIO()
                summary = export(conn, out, Filters())
            lines = out.getvalue().splitlines(keepends=True)
            assert summary.withheld == 1
            assert "$2b$" not in out.getvalue()
            [line] = [json.loads(x) for x in lines[1:] if '"withheld"' in x]
            assert (line["originator_id"], "state" in line) == (str(user.id), False)
            assert both(tmp_path, lines, summary.digest) == (True, True)
