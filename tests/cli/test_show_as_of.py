"""``show <id> [--as-of]`` and ``history <id> --as-of``: an aggregate now and then."""

from __future__ import annotations

import json

from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.cli.conftest import Cli
from tests.conftest import TEST_SETTINGS


def granted_user(dsn: str) -> str:
    """A user (version 1) then granted the Admin role (version 2); returns its id."""
    storage = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # type: ignore[arg-type]
    try:
        with storage.acting_as(system="tests"):
            storage.initialize_default_permissions()
            storage.initialize_default_roles()
            user = storage.create_user({"username": "asha", "email": "asha@example.com",
                                        "password": "long-enough-1"})
            admin = next(r for r in storage.get_roles() if r.name == "Admin")
            storage.assign_role_to_user(user.id, admin.id)
    finally:
        storage.close()
    return str(user.id)


def test_a_user_before_and_after_a_role_grant(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    then = cli("show", user, "--as-of", "1")
    assert then.returncode == 0, then.stderr
    assert then.stdout.startswith(f"user {user} as of version 1")
    assert "roles: none" in then.stdout
    now = cli("show", user)
    assert now.returncode == 0, now.stderr
    assert "roles (1)" in now.stdout
    assert "Admin" in now.stdout
    assert "roles: none" not in now.stdout


def test_show_as_json_hides_the_password_hash(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    shown = cli("show", user, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert (data["username"], data["password"]) == ("asha", "(hidden)")


def test_history_as_of_a_version_or_a_time(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    first = cli("history", user, "--as-of", "1")
    assert first.returncode == 0, first.stderr
    assert "User.Registered" in first.stdout
    assert "User.RoleGranted" not in first.stdout
    before = cli("history", user, "--as-of", "2020-01-01")
    assert (before.returncode, before.stderr.strip()) == (
        1, f"error: {user} has no events as of 2020-01-01 00:00:00+00:00: it did not exist yet")


def test_wrong_moments_are_one_line(cli: Cli, dsn: str) -> None:
    user = granted_user(dsn)
    bad = cli("show", user, "--as-of", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: Invalid value for --as-of: a version number, or a "
                                  "time such as 2026-12-01 or 2026-12-01T10:30+05:30")
    missing = cli("show", user, "--as-of", "9")
    assert missing.returncode == 1
    assert f"has no version 9; akashone-es history {user} lists them" in missing.stderr
    unknown = cli("show", "00000000-0000-0000-0000-000000000001")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1, "error: no events for 00000000-0000-0000-0000-000000000001")


def an_invoice_with_a_note(dsn: str) -> tuple[str, str, str]:
    """An issued invoice and a credit note against it: (invoice id, its number, the note's)."""
    settings = Settings(**{**TEST_SETTINGS, "supplier_gstin": "27AAPFU0939F1ZV"})  # type: ignore[arg-type]
    storage = open_storage(settings, dsn=dsn)
    try:
        with storage.acting_as(system="tests"):
            user = storage.create_user({"username": "meera", "email": "meera@example.com",
                                        "password": "long-enough-1"})
            address = storage.create_billing_address({
                "user_id": user.id, "address_line1": "12 MG Road", "city": "Pune",
                "postal_code": "411001", "state_code": "27"})
            invoice = storage.issue_invoice(storage.create_invoice({
                "user_id": user.id, "billing_address_id": address.id,
                "billing_period_start": "2026-10-01T00:00:00Z",
                "billing_period_end": "2026-11-01T00:00:00Z",
                "lines": [{"resource_type": "compute", "resource_name": "vm-1",
                           "description": "hours", "quantity": 1, "unit": "hours",
                           "unit_price": 10_000}]}).id)
            note = storage.issue_credit_note(invoice.id, 500, "goodwill")
    finally:
        storage.close()
    return str(invoice.id), str(invoice.invoice_number), str(note.note_number)


def test_an_invoice_or_note_is_named_by_its_number(cli: Cli, dsn: str) -> None:
    """Found by a new user: ``invoice INV/...`` never prints the id, and show and history
    took only ids. Both take an invoice's or a note's number too."""
    invoice_id, number, note_number = an_invoice_with_a_note(dsn)
    shown = cli("show", number)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"invoice {invoice_id}")
    # amounts read in rupees beside the paise kept (10,000 paise of taxable value)
    assert "₹100.00 (10000 paise)" in shown.stdout
    history = cli("history", number.lower())  # GST numbers are case-insensitive
    assert history.returncode == 0, history.stderr
    assert "Invoice.Issued" in history.stdout
    note = cli("history", note_number)
    assert note.returncode == 0, note.stderr
    title = note.stdout.splitlines()[0]
    assert title.startswith("history of ")  # the note's own, not its invoice's
    assert invoice_id not in title
    unknown = cli("show", "INV/9999/999999")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1, "error: no invoice INV/9999/999999 (nor a credit or debit note with that number)")
    bad = cli("history", "nope")
    assert bad.returncode == 2
    assert "must be a UUID, or an invoice or note number" in bad.stderr


def test_a_reference_is_an_id_or_any_document_number() -> None:
    """AkashOne's own numbers (INV-2025-0001) come with an import; a mistyped UUID is said
    to be one."""
    from uuid import UUID

    import pytest
    import typer

    from akashone_es.cli.common import aggregate_reference

    assert aggregate_reference("INV-2025-0001") == "INV-2025-0001"
    assert aggregate_reference("CN/2627/000002") == "CN/2627/000002"
    some = "3f2b8c1e-1111-4aaa-8bbb-000000000001"
    assert aggregate_reference(some) == UUID(some)
    for bad, why in (("3f2b8c1e-1111-4aaa", "must be a UUID"), ("", "or an invoice"),
                     ("not-a-uuid", "or an invoice"), ("1" * 65, "or an invoice")):
        with pytest.raises(typer.BadParameter, match=why):
            aggregate_reference(bad)
