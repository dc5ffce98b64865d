"""``history`` hides every secret-bearing field: TOTP secrets, invitation token hashes."""

from __future__ import annotations

import re

from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from tests.cli.conftest import Cli, Query
from tests.conftest import TEST_SETTINGS
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import KINDS, fresh_input, method

#: what a private key given with an SSH key looks like (not checked: kept sealed)
SSH_PRIVATE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU"
                   "\n-----END OPENSSH PRIVATE KEY-----\n")


def compact(text: str) -> str:
    """Output without the whitespace rich adds when it wraps or pretty-prints JSON."""
    return re.sub(r"\s+", "", text)


def secret_bearing_records(dsn: str) -> tuple[str, str]:
    """A user with a TOTP secret and an invitation; returns (user id, team member id)."""
    storage = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # type: ignore[arg-type]
    try:
        with storage.acting_as(system="tests"):
            org = storage.create_organization({"name": "Secret Traders", "kind": "customer"})
            user = storage.create_user({"username": "totp", "email": "totp@example.com",
                                        "password": "long-enough-1",
                                        "organization_id": org.id})
            storage.update_user(user.id, {"two_factor_secret": "JBSWY3DPEHPK3PXP",
                                          "two_factor_enabled": True})
            member = storage.create_team_member({"email": "new@example.com",
                                                 "organization_id": org.id,
                                                 "invited_by": user.id})
    finally:
        storage.close()
    return str(user.id), str(member.id)


class TestHistoryHidesSecrets:
    def test_history_never_prints_the_totp_secret_even_sealed(self, cli: Cli, dsn: str,
                                                              query: Query) -> None:
        """Neither the table nor ``--json`` shows the sealed TOTP secret: a marker does."""
        user_id, _ = secret_bearing_records(dsn)
        [(sealed,)] = query("SELECT two_factor_secret FROM users WHERE id = %s", (user_id,))
        assert sealed
        assert sealed != "JBSWY3DPEHPK3PXP"

        for args in (("history", user_id), ("history", user_id, "--json")):
            result = cli(*args)
            assert result.returncode == 0, result.stderr
            output = compact(result.stdout + result.stderr)
            assert sealed not in output
            assert "JBSWY3DPEHPK3PXP" not in output
            assert '"two_factor_secret":"(hidden)"' in output

    def test_history_never_prints_the_invitation_token_hash(self, cli: Cli, dsn: str,
                                                            query: Query) -> None:
        """An invitation's token hash is in the log, never in its history."""
        _, member_id = secret_bearing_records(dsn)
        [(token_hash,)] = query(
            "SELECT convert_from(state, 'UTF8')::jsonb->>'token_hash' FROM akashone_events"
            " WHERE originator_id = %s AND originator_version = 1", (member_id,))
        assert token_hash

        for args in (("history", member_id), ("history", member_id, "--json")):
            result = cli(*args)
            assert result.returncode == 0, result.stderr
            output = compact(result.stdout + result.stderr)
            assert token_hash not in output
            assert '"token_hash":"(hidden)"' in output


def resources_with_secrets(dsn: str) -> dict[str, tuple[str, str]]:
    """An SSH key with its private key, a certificate with its key and a bucket (its
    secret key generated): kind -> (id, the secret in clear)."""
    storage = open_storage(Settings(**TEST_SETTINGS), dsn=dsn)  # type: ignore[arg-type]
    found = {}
    try:
        with storage.acting_as(system="tests"):
            enable_all_features(storage)
            org = storage.create_organization({"name": "Keyed Traders", "kind": "customer"})
            owner = storage.create_user({"username": "keyed", "email": "keyed@example.com",
                                         "password": "long-enough-1",
                                         "organization_id": org.id})
            for name, secret in (("ssh_key", "private_key"), ("ssl_certificate", "private_key"),
                                 ("object_storage_bucket", "secret_key")):
                kind = KINDS[name]
                data = fresh_input(storage, kind, "s", owner.id)
                if name == "ssh_key":
                    data["private_key"] = SSH_PRIVATE_KEY
                made = method(storage, kind, "create")(data)
                found[name] = (str(made.id), getattr(made, secret))
    finally:
        storage.close()
    return found


class TestHistoryHidesResourceSecrets:
    def test_private_keys_and_a_buckets_secret_key_are_hidden(self, cli: Cli, dsn: str,
                                                               query: Query) -> None:
        """Found untested by a spec review: the history of a resource shows its secrets'
        fields as hidden, never the key nor its sealed form, in the table or as JSON."""
        for name, (resource_id, secret) in resources_with_secrets(dsn).items():
            column = "secret_key" if name == "object_storage_bucket" else "private_key"
            [(sealed,)] = query(f"SELECT {column} FROM {KINDS[name].table} WHERE id = %s",
                                (resource_id,))
            assert secret
            assert sealed
            assert sealed != secret
            for args in (("history", resource_id), ("history", resource_id, "--json")):
                result = cli(*args)
                assert result.returncode == 0, result.stderr
                output = compact(result.stdout + result.stderr)
                assert compact(secret) not in output, name
                assert compact(sealed) not in output, name
                assert "(hidden)" in output, name
