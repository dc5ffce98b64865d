"""``akashone-es resources <user>``: a user's cloud resources by kind, run as a user runs it."""

from __future__ import annotations

import subprocess

from tests.cli.conftest import ENTRY_POINT, Cli, Query, cli_env


def test_resources_lists_the_demo_customers_vm_and_volume(dsn: str, cli: Cli,
                                                         query: Query) -> None:
    """The demo's cloud story (told with a supplier GSTIN set) leaves a stopped VM and its
    volume with the customer."""
    env = cli_env(dsn) | {"AKASHONE_SUPPLIER_GSTIN": "27AAPFU0939F1ZV"}
    demo = subprocess.run([str(ENTRY_POINT), "demo"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert demo.returncode == 0, demo.stderr
    [(username, vm, volume)] = query(
        "SELECT u.username, v.name, d.name FROM users u JOIN virtual_machines v"
        " ON v.user_id = u.id JOIN volumes d ON d.user_id = u.id")
    result = cli("resources", username)
    assert result.returncode == 0, result.stderr
    assert "virtual machines (1)" in result.stdout
    assert "volumes (1)" in result.stdout
    assert vm in result.stdout
    assert volume in result.stdout
    assert "Stopped" in result.stdout
    [vm_id] = query("SELECT id::text FROM virtual_machines")
    narrow = subprocess.run([str(ENTRY_POINT), "resources", username],
                            env=cli_env(dsn) | {"COLUMNS": "80"}, capture_output=True,
                            text=True, timeout=300, check=False)
    assert narrow.returncode == 0, narrow.stderr
    assert vm_id[0] in narrow.stdout  # at 80 columns the id stays: show and history take it
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_resources_of_an_unknown_user_is_one_line(cli: Cli) -> None:
    assert cli("init").returncode == 0
    result = cli("resources", "nobody")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no user 'nobody' (give a username, an email or an id)"]
