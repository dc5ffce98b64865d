"""Data prints as written, never as rich markup; a person is erased once.

A tenant names its records: ``[bold]`` or ``[/x]`` in a name must print literally and never
crash an operator's CLI, and the ``[erased]`` marker must show where it stands.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from akashone_es.cli.common import cell, model_table
from akashone_es.errors import ConflictError
from akashone_es.storage import Storage
from tests.cli.conftest import Cli, Query
from tests.conftest import log_size

NAME = "Acme [/x] [bold]Ltd"
ROLE = "[bold]Ops[/bold] [red]on call [/y]"
KEYS = "SELECT subject, destroyed_at, reason FROM akashone_subject_keys ORDER BY subject"


def plain(renderable: object) -> str:
    """What a console without colour prints for ``renderable``."""
    console = Console(width=200, no_color=True, record=True, file=None)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def a_person(storage: Storage) -> str:
    user = storage.create_user({"username": "priya", "email": "priya@example.in",
                                "password": "long-enough-1"})
    return str(user.id)


class TestCell:
    def test_brackets_are_text_not_markup(self) -> None:
        """A value that looks like markup, or is the erasure marker, prints as is."""
        for value in ("[erased]", NAME, ROLE, "ends in a backslash\\"):
            assert value + "\n" == plain(cell(value))

    def test_none_and_times(self) -> None:
        """None is ``-``; a time is UTC to the minute."""
        assert "-" == cell(None).plain
        moment = datetime(2026, 12, 1, 10, 30, 59, tzinfo=UTC)
        assert "2026-12-01 10:30" == cell(moment).plain

    def test_a_model_tables_title_and_cells_are_text(self, storage: Storage) -> None:
        """The title (it may name a tenant's record) and the cells print literally."""
        org = storage.create_organization({"name": NAME})
        table = model_table(Console(width=200), f"users of {org.name}", [org], ["name"])
        printed = plain(table)
        assert " ".join(printed.split()).startswith(f"users of {NAME} ")  # wraps at its width
        assert f"│ {NAME} │" in printed


class TestShowPrintsDataLiterally:
    def test_an_organization_named_with_markup_shows_as_named(self, cli: Cli,
                                                              storage: Storage) -> None:
        """``show`` of an organization named ``Acme [/x] [bold]Ltd``: exit 0, the name."""
        org = storage.create_organization({"name": NAME})
        shown = cli("show", str(org.id))
        assert (shown.returncode, shown.stderr) == (0, "")
        assert f"│ name       │ {NAME} " in shown.stdout

    def test_a_role_named_with_markup_shows_in_a_users_roles(self, cli: Cli,
                                                             storage: Storage) -> None:
        """The role's name, listed under the user it is granted to, prints as named."""
        user = a_person(storage)
        role = storage.create_role({"name": ROLE, "description": "[link=x]pager[/link]"})
        storage.assign_role_to_user(user, role.id)
        shown = cli("show", user)
        assert (shown.returncode, shown.stderr) == (0, "")
        assert f"│ {ROLE} │" in shown.stdout
        assert "│ [link=x]pager[/link] │" in shown.stdout

    def test_history_shows_a_change_with_markup_as_made(self, cli: Cli,
                                                        storage: Storage) -> None:
        """``history`` prints the event's data literally (it crashed on ``[/x]``)."""
        org = storage.create_organization({"name": NAME})
        history = cli("history", str(org.id))
        assert (history.returncode, history.stderr) == (0, "")
        assert f'{{"name":"{NAME}"' in history.stdout

    def test_an_erased_persons_name_and_email_show_the_marker(self, cli: Cli,
                                                              storage: Storage) -> None:
        """After ``erase``, the table reads ``[erased]`` (it printed blank cells)."""
        user = a_person(storage)
        assert cli("erase", user, "--yes").returncode == 0
        shown = cli("show", user)
        assert shown.returncode == 0, shown.stderr
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                for line in shown.stdout.splitlines() if line.count("│") == 3}
        assert ("[erased]", "[erased]") == (rows["username"], rows["email"])

    def test_verify_right_after_an_erasure_is_ok(self, cli: Cli, storage: Storage) -> None:
        """Found in review: ``projections verify`` said DIFFERS for the activity log right
        after ``erase`` (its replay decrypts with today's keys, the live rows were behind
        the erasure). Verify catches an async projection up first."""
        user = a_person(storage)
        with storage.acting_as(actor_id=user, ip="203.0.113.9", user_agent="agent"):
            storage.create_user_activity({"user_id": user, "action": "auth.login"})
            storage.get_user_activities(user)  # the activity log has the row in clear
        assert cli("erase", user, "--yes").returncode == 0
        verified = cli("projections", "verify", "user_activities")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "DIFFERS" not in verified.stdout


class TestEraseOnce:
    def test_a_second_erasure_is_refused_and_writes_nothing(self, cli: Cli, dsn: str,
                                                            storage: Storage,
                                                            query: Query) -> None:
        """The second ``erase`` is one error line naming the day, exit 1; no event, and
        the key's destruction keeps its first time and reason."""
        user = a_person(storage)
        assert cli("erase", user, "--yes").returncode == 0
        events, keys = log_size(dsn), query(KEYS)
        again = cli("erase", user, "--yes", "--reason", "consent withdrawn")
        day = keys[0][1].astimezone(UTC).date().isoformat()
        assert (again.returncode, again.stdout, again.stderr) == (
            1, "", f"error: {user}'s personal data is already erased (on {day})\n")
        assert events == log_size(dsn)
        assert keys == query(KEYS)

    def test_the_storage_refuses_with_a_conflict(self, dsn: str, storage: Storage) -> None:
        """``erase_personal_data`` twice: the second raises ``ConflictError``."""
        user = a_person(storage)
        storage.erase_personal_data(user)
        events = log_size(dsn)
        with pytest.raises(ConflictError, match="personal data is already erased"):
            storage.erase_personal_data(user)
        assert events == log_size(dsn)

    def test_a_record_made_since_is_erased_alone(self, storage: Storage) -> None:
        """An address added after the erasure has a key of its own: erasing again destroys
        that key only."""
        user = a_person(storage)
        storage.erase_personal_data(user)
        book = storage.create_billing_address({
            "user_id": user, "address_line1": "4 FC Road", "city": "Pune",
            "state_code": "27", "postal_code": "411004"})
        assert "4 FC Road" == book.address_line1
        report = storage.erase_personal_data(user)
        assert [f"person:{book.id}"] == report.subjects
        erased = storage.get_billing_address(book.id)
        assert erased is not None
        assert "[erased]" == erased.address_line1
