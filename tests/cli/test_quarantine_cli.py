"""``akashone-es projections`` with a poison event in the log: one clear line, then quarantine."""

from __future__ import annotations

import psycopg

from akashone_es.storage import Storage
from tests.cli.conftest import Cli, Query
from tests.integration.test_poison_events import RECORDED_TOPIC
from tests.integration.test_poison_events import poison_activity as insert_poison


def poison_activity(storage: Storage, query: Query) -> int:
    """An Activity.Recorded whose details hold a NUL, inserted behind the API (the storage's
    own database: the ``query`` fixture's)."""
    return insert_poison(storage, storage.dsn)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


class TestAStoppedProjection:
    def test_catch_up_exits_non_zero_with_one_line_naming_the_position(
            self, storage: Storage, cli: Cli, query: Query) -> None:
        """No traceback: one ``error:`` line with the position, the event type and the way out."""
        poison = poison_activity(storage, query)

        result = cli("projections", "catch-up")

        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        [line] = error_lines(result.stderr)
        assert f"stopped at position {poison}:" in line
        assert RECORDED_TOPIC in line
        assert f"projections quarantine user_activities {poison}" in line

    def test_status_shows_it_and_verify_and_rebuild_fail(self, storage: Storage, cli: Cli,
                                                         query: Query) -> None:
        """``status`` prints the stop; ``verify`` and ``rebuild`` exit 1 naming it."""
        poison = poison_activity(storage, query)
        cli("projections", "catch-up")

        shown = cli("projections", "status")
        verified = cli("projections", "verify", "user_activities")
        rebuilt = cli("projections", "rebuild")

        assert shown.returncode == 0
        assert f"STOPPED projection user_activities stopped at position {poison}:" in (
            shown.stdout)
        assert verified.returncode == 1
        assert f"user_activities: NOT OK projection user_activities stopped at position " \
               f"{poison}:" in verified.stdout
        assert rebuilt.returncode == 1
        assert "rebuilt billing to position" in rebuilt.stdout  # the others were rebuilt
        [line] = error_lines(rebuilt.stderr)
        assert f"rebuild of projection user_activities stopped at position {poison}:" in line

    def test_quarantine_resolves_it(self, storage: Storage, cli: Cli, query: Query) -> None:
        """After ``quarantine``, catch-up and verify succeed; the decision is in the log."""
        poison = poison_activity(storage, query)
        cli("projections", "catch-up")

        quarantined = cli("projections", "quarantine", "user_activities", str(poison),
                          "--reason", "NUL in details (issue 6)", "--operator", "asha")
        caught_up = cli("projections", "catch-up")
        verified = cli("projections", "verify", "user_activities")
        rebuilt = cli("projections", "rebuild", "user_activities")

        assert quarantined.returncode == 0, quarantined.stderr
        assert f"quarantined position {poison} for user_activities" in quarantined.stdout
        assert caught_up.returncode == 0, caught_up.stderr
        assert verified.returncode == 0, verified.stdout
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "STOPPED" not in cli("projections", "status").stdout
        [(reason, operator, by)] = query(
            "SELECT s->>'reason', s->>'operator', s->'metadata'->>'reason' FROM"
            " (SELECT convert_from(state, 'UTF8')::jsonb AS s FROM akashone_events"
            "  WHERE topic = 'akashone_es.domain.operations:Quarantine.Recorded') q")
        assert ("NUL in details (issue 6)", "asha") == (reason, operator)
        assert by is not None
        assert "quarantine" in by

    def test_quarantine_refuses_an_unknown_projection_in_one_line(
            self, storage: Storage, cli: Cli) -> None:
        """A bad argument is one ``error:`` line naming the field, and nothing is written."""
        result = cli("projections", "quarantine", "nope", "1", "--reason", "because")
        assert result.returncode == 2  # a bad argument
        [line] = error_lines(result.stderr)
        assert "projection" in line
        assert "unknown projection 'nope'" in line

    def test_quarantine_refuses_a_position_that_is_not_the_stop(
            self, storage: Storage, cli: Cli, query: Query) -> None:
        """Only the recorded stop may be skipped: one ``error:`` line naming it, nothing
        written."""
        poison = poison_activity(storage, query)
        cli("projections", "catch-up")
        [(before,)] = query("SELECT max(notification_id) FROM akashone_events")

        result = cli("projections", "quarantine", "user_activities", str(poison - 1),
                     "--reason", "hide it")

        assert result.returncode == 1
        [line] = error_lines(result.stderr)
        assert f"stopped at position {poison}, not {poison - 1}" in line
        assert [(before,)] == query("SELECT max(notification_id) FROM akashone_events")


class TestAnUndecodableEvent:
    def test_history_shows_it_as_such_and_the_rest(self, storage: Storage, cli: Cli,
                                                   query: Query) -> None:
        """Found in review: ``history`` of the aggregate a stop names ended in a traceback.
        It shows the event as not decoding, with why, beside the ones that do."""
        with storage.acting_as(system="tests"):
            user = storage.create_user({"username": "zed", "email": "zed@example.in",
                                        "password": "long-enough-1"})
        with psycopg.connect(storage.dsn) as conn:
            conn.execute(
                "INSERT INTO akashone_events (originator_id, originator_version, topic, state)"
                " VALUES (%s, 2, %s, %s)",
                (user.id, "akashone_es.domain.identity:User.Updated", b'{"changes": 1}'))

        for args in ((), ("--json",)):
            result = cli("history", str(user.id), *args)
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
            assert "does not decode" in result.stdout or "does_not_decode" in result.stdout
            assert "Registered" in result.stdout
