"""The ``akashone-es`` command driven as an operator would: real processes on a real database."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from akashone_es.resources import KINDS
from tests.cli.conftest import run_cli, start_cli

if TYPE_CHECKING:
    from akashone_es.storage import Storage
    from tests.cli.conftest import Cli, Query

GSTIN_MAHARASHTRA = "27AAPFU0939F1ZV"
GSTIN_KARNATAKA = "29AAGCG6253J1Z8"
READ_TABLES = {
    "identity.organizations", "identity.users", "identity.roles", "identity.permissions",
    "identity.role_permissions", "identity.user_roles", "identity.team_members",
    "user_activities.user_activities", "user_activities.activity_actors",
    *(f"billing.{t}" for t in (
        "billing_addresses", "invoices", "invoice_line_items", "adjustment_notes",
        "usage_records", "payment_methods", "payment_transactions",
        "tax_calculations",
        "hsn_codes", "discount_coupons", "service_plans", "document_series",
        "feature_flags")),
    *(f"resources.{kind.table}" for kind in KINDS.values()),
    "resources.resource_meter_segments",
}
VERIFY_LINE = re.compile(r"^(\w+\.\w+): (ok|DIFFERS) rows=(\d+) live=(\w+) replayed=(\w+)"
                         r" \(position (\d+)\)$", re.MULTILINE)


def table_rows(output: str) -> list[list[str]]:
    """Body rows of the rich tables in ``output``; a folded cell's lines are joined."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if rows and cells[0] == "" and len(cells) == len(rows[-1]):
            rows[-1] = [head + tail for head, tail in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def compact(output: str) -> str:
    """``output`` without whitespace and table borders, so folded cells read as one string."""
    return re.sub(r"[\s│]", "", output)


def head(query: Query) -> int:
    """Position of the last event in the log."""
    return int(query("SELECT coalesce(max(notification_id), 0) FROM akashone_events")[0][0])


def status_rows(cli: Cli) -> dict[str, list[str]]:
    """``projections status`` as {projection: [mode, checkpoint, head, lag]}."""
    result = cli("projections", "status")
    assert result.returncode == 0, result.stderr
    return {row[0]: row[1:] for row in table_rows(result.stdout)}


def verify_marks(output: str) -> dict[str, str]:
    """``projections verify`` output as {projection.table: ok | DIFFERS}."""
    return {match[0]: match[1] for match in VERIFY_LINE.findall(output)}


def run_demo(cli: Cli) -> str:
    """Run ``demo``, which must succeed; its output."""
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestHelp:
    def test_help_lists_every_command(self) -> None:
        """``--help`` names the four top-level commands and exits 0."""
        result = run_cli("--help")
        assert result.returncode == 0, result.stderr
        listed = {row[0].split()[0] for row in table_rows(result.stdout) if row[0]}
        assert {"init", "demo", "history", "projections"} <= listed

    def test_projections_help_lists_every_subcommand(self) -> None:
        """``projections --help`` names status, catch-up, run, rebuild and verify."""
        result = run_cli("projections", "--help")
        assert result.returncode == 0, result.stderr
        listed = {row[0].split()[0] for row in table_rows(result.stdout) if row[0]}
        assert {"status", "catch-up", "run", "rebuild", "verify"} <= listed


    def test_help_paragraphs_flow_instead_of_keeping_the_source_line_breaks(self) -> None:
        """A docstring's line breaks are the source's, not the terminal's: each paragraph
        of a command's help is one flowing text."""
        result = run_cli("audit", "verify", "--help")
        assert result.returncode == 0, result.stderr
        assert ("Exit 1 at the first position that does not match. Events written since the "
                "last seal are sealed afterwards, when all is well.") in result.stdout


class TestInit:
    def test_init_creates_schema_and_seeds_permissions_and_roles(self, cli: Cli,
                                                                 query: Query) -> None:
        """On an empty database: tables appear, 22 permissions and 3 system roles are seeded."""
        assert query("SELECT to_regclass('public.users')") == [(None,)]
        result = cli("init")
        assert result.returncode == 0, result.stderr
        assert "schema ready; seeded 22 permissions, 3 roles" in result.stdout
        assert query("SELECT count(*) FROM permissions") == [(22,)]
        roles = query("SELECT r.name, r.is_system, count(rp.id) FROM roles r"
                      " JOIN role_permissions rp ON rp.role_id = r.id GROUP BY r.name, r.is_system"
                      " ORDER BY r.name")
        assert roles == [("Admin", True, 22), ("Editor", True, 18), ("Viewer", True, 8)]

    def test_second_init_seeds_nothing_new(self, cli: Cli, query: Query) -> None:
        """Init is idempotent: a rerun exits 0, reports 0 added and appends no event."""
        assert cli("init").returncode == 0
        events = head(query)
        result = cli("init")
        assert result.returncode == 0, result.stderr
        assert "schema ready; seeded 0 permissions, 0 roles" in result.stdout
        assert head(query) == events
        assert query("SELECT (SELECT count(*) FROM permissions), (SELECT count(*) FROM roles)"
                     ) == [(22, 3)]


class TestDemo:
    def test_demo_shows_reseller_and_invited_team_member(self, cli: Cli, query: Query) -> None:
        """The demo bootstraps root and lists the reseller and the member who accepted."""
        output = run_demo(cli)
        assert "bootstrapped super admin root" in output
        rows = table_rows(output)
        assert ["sharma1", "ops1@sharmacloud.in", "reseller", GSTIN_MAHARASHTRA, "active"] in rows
        assert ["priya1", "priya1@sharmacloud.in", "team_member", GSTIN_KARNATAKA,
                "active"] in rows
        assert query("SELECT username, account_type FROM users ORDER BY username") == [
            ("priya1", "team_member"), ("root", "super_admin"), ("sharma1", "reseller")]

    def test_second_demo_finds_super_admin_from_earlier_run(self, cli: Cli,
                                                            query: Query) -> None:
        """Data survives between processes: run two reuses root and adds a second reseller."""
        run_demo(cli)
        output = run_demo(cli)
        assert ("super admin root found from an earlier run: the data survived the restart"
                in output)
        assert "bootstrapped" not in output
        rows = table_rows(output)
        assert ["sharma2", "ops2@sharmacloud.in", "reseller", GSTIN_MAHARASHTRA, "active"] in rows
        assert not any(row[0] in {"sharma1", "priya1"} for row in rows)  # other tenant's users
        assert query("SELECT count(*) FROM users WHERE username = 'root'") == [(1,)]
        assert query("SELECT count(*) FROM users") == [(5,)]


class TestProjectionsStatus:
    def test_status_shows_checkpoint_head_and_lag_of_each_projection(self, cli: Cli,
                                                                     query: Query) -> None:
        """Inline identity is at the head; the async activity log lags by every seed event."""
        assert cli("init").returncode == 0
        last = head(query)
        assert last > 0
        assert status_rows(cli) == {
            "identity": ["inline", str(last), str(last), "0"],
            "billing": ["inline", str(last), str(last), "0"],
            "resources": ["inline", str(last), str(last), "0"],
            "user_activities": ["async", "0", str(last), str(last)],
        }


class TestProjectionsCatchUp:
    def test_catch_up_brings_activity_lag_to_zero(self, cli: Cli, query: Query) -> None:
        """Catch-up applies every pending event: one activity row each, checkpoint at head."""
        assert cli("init").returncode == 0
        last = head(query)
        result = cli("projections", "catch-up")
        assert result.returncode == 0, result.stderr
        assert "caught up" in result.stdout
        assert status_rows(cli)["user_activities"] == ["async", str(last), str(last), "0"]
        assert query("SELECT count(*) FROM user_activities") == [(last,)]

    def test_catch_up_of_unknown_projection_names_it(self, cli: Cli) -> None:
        """An unknown name is a usage error that names it and lists the known projections."""
        assert cli("init").returncode == 0
        result = cli("projections", "catch-up", "nosuch")
        assert result.returncode == 2
        assert ("unknown projection(s): nosuch; known: billing, identity, resources,"
                " user_activities" in result.stderr)


class TestProjectionsVerify:
    def test_verify_reports_ok_for_every_table(self, cli: Cli, query: Query) -> None:
        """After the demo every read table matches a replay of the log; exit 0."""
        run_demo(cli)
        result = cli("projections", "verify")
        assert result.returncode == 0, result.stdout + result.stderr
        assert verify_marks(result.stdout) == dict.fromkeys(READ_TABLES, "ok")
        users = {m[0]: int(m[2]) for m in VERIFY_LINE.findall(result.stdout)}["identity.users"]
        assert query("SELECT count(*) FROM users") == [(users,)]

    def test_verify_flags_tampered_table_and_exits_1(self, cli: Cli, query: Query) -> None:
        """A read row edited behind the log's back is reported as DIFFERS, and only it."""
        run_demo(cli)
        query("UPDATE users SET email = 'tampered@x.com' WHERE username = 'priya1'")
        result = cli("projections", "verify")
        assert result.returncode == 1
        expected = dict.fromkeys(READ_TABLES, "ok") | {"identity.users": "DIFFERS"}
        assert verify_marks(result.stdout) == expected

    def test_verify_of_one_projection_checks_only_its_tables(self, cli: Cli) -> None:
        """Naming a projection verifies just its tables."""
        run_demo(cli)
        result = cli("projections", "verify", "user_activities")
        assert result.returncode == 0, result.stderr
        assert verify_marks(result.stdout) == {
            "user_activities.user_activities": "ok", "user_activities.activity_actors": "ok"}


class TestProjectionsRebuild:
    def test_rebuild_repairs_tampered_table(self, cli: Cli, query: Query) -> None:
        """Rebuild replays the log over a tampered table: verify passes, the email is back."""
        run_demo(cli)
        query("UPDATE users SET email = 'tampered@x.com' WHERE username = 'priya1'")
        last = head(query)
        result = cli("projections", "rebuild")
        assert result.returncode == 0, result.stderr
        assert f"rebuilt identity to position {last}" in result.stdout
        assert f"rebuilt user_activities to position {last}" in result.stdout
        verified = cli("projections", "verify")
        assert verified.returncode == 0, verified.stdout
        assert query("SELECT email FROM users WHERE username = 'priya1'") == [
            ("priya1@sharmacloud.in",)]

    def test_rebuild_restores_a_dropped_table(self, cli: Cli, query: Query) -> None:
        """A dropped read table is rebuilt from the log, row for row."""
        run_demo(cli)
        before = query("SELECT user_id, role_id, granted_by FROM user_roles ORDER BY user_id")
        query("DROP TABLE user_roles")
        result = cli("projections", "rebuild", "identity")
        assert result.returncode == 0, result.stderr
        assert "rebuilt user_activities" not in result.stdout
        assert query("SELECT user_id, role_id, granted_by FROM user_roles ORDER BY user_id"
                     ) == before
        assert len(before) == 1  # sharma1's Admin role; priya1's was revoked

    def test_rebuild_of_unknown_projection_fails_naming_it(self, cli: Cli) -> None:
        """``rebuild nosuch`` is a usage error naming it; nothing is rebuilt."""
        assert cli("init").returncode == 0
        result = cli("projections", "rebuild", "nosuch", "identity")
        assert result.returncode == 2
        assert ("unknown projection(s): nosuch; known: billing, identity, resources,"
                " user_activities" in result.stderr)
        assert "rebuilt" not in result.stdout


def _wait_for_checkpoint(query: Query, position: int, timeout: float = 30) -> None:
    """Poll until the activity projection's checkpoint reaches ``position``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query("SELECT position FROM akashone_checkpoints WHERE name = 'user_activities'")
        if rows and rows[0][0] >= position:
            return
        time.sleep(0.1)
    raise AssertionError(f"user_activities did not reach position {position}")


@contextmanager
def _following(dsn: str) -> Iterator[subprocess.Popen[str]]:
    """``akashone-es projections run`` on ``dsn``, killed at the end if it is still running."""
    follower = start_cli("projections", "run", database_url=dsn)
    try:
        yield follower
    finally:
        if follower.poll() is None:
            # still running: where it is (every thread's stack, by faulthandler) goes to the
            # test's output, so that a follower that did not stop can be told apart
            follower.send_signal(signal.SIGABRT)
            try:
                _, stderr = follower.communicate(timeout=10)
                print(f"the follower did not stop; its stacks:\n{stderr}")
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.communicate()


class TestProjectionsRun:
    def test_run_follows_the_log_until_interrupted(self, query: Query, storage: Storage,
                                                   dsn: str) -> None:
        """A running follower applies new events as they are appended and stops on Ctrl-C."""
        with _following(dsn) as follower:
            _wait_for_checkpoint(query, head(query))
            storage.create_user({"username": "meera", "email": "meera@example.in",
                                 "password": "long-enough-1"})
            _wait_for_checkpoint(query, head(query))
            assert query("SELECT action, resource_name FROM user_activities"
                         " ORDER BY position DESC LIMIT 1") == [("user.registered", "meera")]
            follower.send_signal(signal.SIGINT)
            follower.communicate(timeout=30)
            assert follower.returncode == 0

    def test_run_stops_cleanly_on_sigterm(self, query: Query, storage: Storage,
                                          dsn: str) -> None:
        """A service manager's SIGTERM: the batch in hand is finished, then exit 0."""
        with _following(dsn) as follower:
            _wait_for_checkpoint(query, head(query))
            follower.send_signal(signal.SIGTERM)
            _, stderr = follower.communicate(timeout=30)
            assert follower.returncode == 0, stderr


class TestHistory:
    def test_history_lists_every_event_with_actor_and_changes(self, cli: Cli,
                                                              query: Query) -> None:
        """Every stored event of the user, in order, with the acting username and the data."""
        demo = run_demo(cli)
        user_id = re.findall(r"try: akashone-es history ([0-9a-f-]{36})", demo)[-1]
        assert query("SELECT id::text FROM users WHERE username = 'priya1'") == [(user_id,)]
        stored = query("SELECT originator_version, topic FROM akashone_events"
                       " WHERE originator_id = %s ORDER BY originator_version", (user_id,))
        role_id = str(query("SELECT id FROM roles WHERE name = 'Billing Operator'")[0][0])
        result = cli("history", user_id)
        assert result.returncode == 0, result.stderr
        assert f"history of {user_id}" in result.stdout
        rows = table_rows(result.stdout)
        assert [(row[0], row[2], row[3]) for row in rows] == [
            (str(version), "sharma1", topic.split(":")[1]) for version, topic in stored]
        assert [row[3] for row in rows] == ["User.Registered", "User.RoleGranted",
                                            "User.RoleRevoked"]
        assert '"email":"priya1@sharmacloud.in"' in rows[0][4]
        assert f'"role_id":"{role_id}"' in rows[1][4]
        assert rows[2][4] == f'{{"role_id":"{role_id}"}}'

    def test_history_never_prints_the_password_hash(self, cli: Cli, query: Query) -> None:
        """The (sealed) bcrypt hash is replaced by a marker in the history."""
        run_demo(cli)
        user_id, password_hash = query("SELECT id::text, password FROM users"
                                       " WHERE username = 'priya1'")[0]
        assert password_hash.startswith("enc:v1:")
        result = cli("history", user_id)
        assert result.returncode == 0, result.stderr
        assert password_hash not in compact(result.stdout + result.stderr)
        assert '"password_hash":"(hidden)"' in compact(result.stdout)

    def test_history_names_system_when_no_user_acted(self, cli: Cli, query: Query) -> None:
        """The bootstrapped super admin registered with no actor: who is ``system``."""
        run_demo(cli)
        root_id = query("SELECT id::text FROM users WHERE username = 'root'")[0][0]
        result = cli("history", root_id)
        assert result.returncode == 0, result.stderr
        assert [row[2:4] for row in table_rows(result.stdout)] == [["system", "User.Registered"]]

    def test_history_rejects_an_id_that_is_not_a_uuid(self, cli: Cli) -> None:
        """A malformed id is a usage error, not a crash."""
        result = cli("history", "not-a-uuid")
        assert result.returncode == 2
        assert "Invalid value for AGGREGATE_ID: must be a UUID" in result.stderr
        assert "Traceback" not in result.stderr

    def test_history_of_unknown_id_says_no_events(self, cli: Cli) -> None:
        """An id with no events exits 1 and says so."""
        unknown = uuid.uuid4()
        assert cli("init").returncode == 0
        result = cli("history", str(unknown))
        assert result.returncode == 1
        assert f"error: no events for {unknown}" in result.stderr
        assert result.stdout == ""


class TestConnection:
    def test_unreachable_database_is_a_message_not_a_traceback(self) -> None:
        """``--database-url`` wins over the environment; a refused connection exits 2."""
        with socket.socket() as probe:  # a port nothing listens on once closed
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/nowhere?connect_timeout=5"
        result = run_cli("--database-url", url, "projections", "status")
        assert result.returncode == 2
        assert "error: cannot connect to PostgreSQL" in result.stderr
        assert "Traceback" not in result.stderr
