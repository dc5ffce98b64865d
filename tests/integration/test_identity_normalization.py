"""Look-alike identities on PostgreSQL: one account per normalized username and email, and
passwords bcrypt can hash whole; each refusal writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from akashone_es import DuplicateError, Storage, ValidationError, context
from akashone_es.domain import identity as domain
from akashone_es.settings import Settings
from akashone_es.storage import open_storage
from projections import models as m
from projections.identity import IdentityProjection
from projections.rebuild import rebuild, verify
from tests.conftest import log_size
from tests.integration.projection_helpers import collect, project, project_twice

CYRILLIC_A = "\u0430"
FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # alice in fullwidth letters
RUPEE = "\u20b9"  # three bytes in UTF-8
PASSWORD = "long-enough-1"

#: registers ``username`` once ``go`` exists; prints created or DuplicateError
RACER = """
import os, sys, time
from akashone_es import DuplicateError, Settings, open_storage
dsn, go, username, email = sys.argv[1:5]
storage = open_storage(Settings(bcrypt_rounds=4, pool_size=1, pool_max_overflow=1), dsn=dsn)
acting = storage.acting_as(system="racing look-alike registration")
acting.__enter__()
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.0005)
try:
    storage.create_user({"username": username, "email": email, "password": "long-enough-1"})
    print("created", flush=True)
except DuplicateError as exc:
    print("DuplicateError", exc.field, flush=True)
finally:
    storage.close()
"""


def legacy_user(username: str, email: str) -> domain.User:
    """A registration as recorded before look-alikes were refused."""
    return domain.User(username=username, email=email, password_hash="$2b$04$" + "." * 53,
                       gst_number=None, account_type="customer", organization_id=None,
                       status="active", identity_unique=False)


def make_user(storage: Storage, username: str, email: str, **extra: Any) -> m.User:
    return storage.create_user({"username": username, "email": email, "password": PASSWORD,
                                **extra})


@pytest.fixture
def alice(storage: Storage) -> m.User:
    return make_user(storage, "alice", "alice@a.in")


def kumar_traders(storage: Storage) -> tuple[m.Organization, m.User]:
    """An organization and its user who invites (an inviter is of the organization)."""
    org = storage.create_organization({"name": "Kumar Traders"})
    return org, make_user(storage, "kumar", "kumar@x.in", organization_id=org.id)


class TestConfusableRegistration:
    @pytest.mark.parametrize("email", [FULLWIDTH_ALICE + "@a.in", "ALICE@A.IN",
                                       "alice@\uff41.in"])
    def test_email_differing_in_case_or_width_is_a_duplicate(
            self, storage: Storage, dsn: str, alice: m.User, email: str) -> None:
        """A case or fullwidth variant of a registered email is refused; nothing is written."""
        before = log_size(dsn)
        with pytest.raises(DuplicateError) as info:
            make_user(storage, "alice2", email)
        assert ("user", "email") == (info.value.kind, info.value.field)
        assert before == log_size(dsn)

    def test_email_with_a_cyrillic_letter_is_refused(self, storage: Storage, dsn: str,
                                                     alice: m.User) -> None:
        """alice with a Cyrillic a is refused by rule, naming the email field."""
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            make_user(storage, "alice2", CYRILLIC_A + "lice@a.in")
        assert ["email"] == info.value.fields
        assert "mixes CYRILLIC, LATIN" in str(info.value)
        assert before == log_size(dsn)

    def test_whole_cyrillic_local_part_registers(self, storage: Storage,
                                                 alice: m.User) -> None:
        """A Cyrillic-only local part is a distinct account, kept as given."""
        email = "\u0430\u043d\u043d\u0430@a.in"
        assert email == make_user(storage, "anna", email).email

    @pytest.mark.parametrize("username", ["Alice", "ALICE"])
    def test_username_differing_in_case_is_a_duplicate(
            self, storage: Storage, dsn: str, alice: m.User, username: str) -> None:
        """Alice and alice are one username; the second registration writes nothing."""
        before = log_size(dsn)
        with pytest.raises(DuplicateError) as info:
            make_user(storage, username, "other@a.in")
        assert ("user", "username") == (info.value.kind, info.value.field)
        assert before == log_size(dsn)

    def test_display_forms_are_kept_as_given(self, storage: Storage) -> None:
        """Uniqueness uses the keys; the row keeps the username and email as typed."""
        user = make_user(storage, "Ravi.K", "Ravi.Kumar@Example.COM")
        assert ("Ravi.K", "Ravi.Kumar@example.com") == (user.username, user.email)


class TestConcurrentLookalikes:
    def test_two_processes_racing_for_look_alike_names_leave_one_user(
            self, storage: Storage, dsn: str, tmp_path: Path) -> None:
        """meera and MEERA registered at once: the unique key index lets one through."""
        go = tmp_path / "go"
        env = {**os.environ, "DATABASE_URL": dsn, "AKASHONE_LOG_LEVEL": "warning"}
        racers = [subprocess.Popen([sys.executable, "-c", RACER, dsn, str(go), name, email],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
                  for name, email in (("meera", "meera@one.in"), ("MEERA", "meera@two.in"))]
        try:
            for racer in racers:
                assert racer.stdout is not None
                assert "ready" == racer.stdout.readline().strip()
            go.touch()
            outputs = [racer.communicate(timeout=60) for racer in racers]
        finally:
            for racer in racers:
                if racer.poll() is None:
                    racer.kill()
                    racer.wait()

        assert ["DuplicateError username", "created"] == sorted(
            out.strip() for out, _ in outputs), outputs
        assert 1 == len([u for u in storage.get_users() if u.username.lower() == "meera"])


class TestNormalizedLookups:
    @pytest.mark.parametrize("email", ["ALICE@A.IN", FULLWIDTH_ALICE + "@a.in", "Alice@a.in"])
    def test_email_lookup_finds_case_and_width_variants(self, storage: Storage,
                                                        alice: m.User, email: str) -> None:
        """get_user_by_email finds alice by any case or width of her address."""
        assert alice == storage.get_user_by_email(email)

    @pytest.mark.parametrize("username", ["ALICE", FULLWIDTH_ALICE, "aLiCe"])
    def test_username_lookup_finds_case_and_width_variants(
            self, storage: Storage, alice: m.User, username: str) -> None:
        """get_user_by_username finds alice by any case or width of her name."""
        assert alice == storage.get_user_by_username(username)

    def test_cyrillic_lookalike_finds_nobody(self, storage: Storage, alice: m.User) -> None:
        """Normalization does not fold scripts: the Cyrillic look-alike is not alice."""
        assert storage.get_user_by_email(CYRILLIC_A + "lice@a.in") is None


class TestConfusableUpdates:
    def test_renaming_to_another_users_name_in_other_case_is_a_duplicate(
            self, storage: Storage, dsn: str, alice: m.User) -> None:
        """bob cannot become ALICE, nor take her email in fullwidth."""
        bob = make_user(storage, "bob", "bob@a.in")
        before = log_size(dsn)
        for change, field in (({"username": "ALICE"}, "username"),
                              ({"email": FULLWIDTH_ALICE + "@a.in"}, "email")):
            with pytest.raises(DuplicateError) as info:
                storage.update_user(bob.id, change)
            assert field == info.value.field
        assert before == log_size(dsn)

    def test_changing_the_case_of_ones_own_name_is_allowed_and_found(
            self, storage: Storage, alice: m.User) -> None:
        """alice may display as Alice; she is then found as alice and keeps her key."""
        updated = storage.update_user(alice.id, {"username": "Alice",
                                                 "email": "Alice@a.in"})
        assert updated is not None
        assert ("Alice", "Alice@a.in") == (updated.username, updated.email)
        assert updated == storage.get_user_by_username("alice")
        assert updated == storage.get_user_by_email("alice@a.in")

    def test_null_email_is_refused_not_stored_as_text(self, storage: Storage, dsn: str,
                                                      alice: m.User) -> None:
        """update_user(email=None) is a ValidationError, not an email 'None'."""
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            storage.update_user(alice.id, {"email": None})
        assert ["email"] == info.value.fields
        assert before == log_size(dsn)
        assert "alice@a.in" == storage.get_user(alice.id).email  # type: ignore[union-attr]


class TestTeamMemberEmails:
    def test_invitation_in_other_case_or_width_is_a_duplicate(self, storage: Storage,
                                                              alice: m.User) -> None:
        """One organization cannot invite ravi@x.in twice under case or width variants."""
        org, kumar = kumar_traders(storage)
        invite = {"organization_id": org.id, "invited_by": kumar.id}
        member = storage.create_team_member({"email": "Ravi@X.in", **invite})
        for email in ("RAVI@x.in", "\uff52\uff41\uff56\uff49@x.in"):
            with pytest.raises(DuplicateError) as info:
                storage.create_team_member({"email": email, **invite})
            assert ("team_member", "email") == (info.value.kind, info.value.field)
        found = storage.get_team_member_by_email("\uff52avi@X.IN", org.id)
        assert found is not None
        assert (member.id, "Ravi@x.in") == (found.id, found.email)

    def test_member_email_update_moves_its_key(self, storage: Storage, alice: m.User) -> None:
        """After an email change the member is found by the new address, not the old."""
        org, kumar = kumar_traders(storage)
        member = storage.create_team_member({"email": "ravi@x.in", "organization_id": org.id,
                                             "invited_by": kumar.id})
        storage.update_team_member(member.id, {"email": "Meera@x.in"})
        assert storage.get_team_member_by_email("ravi@x.in", org.id) is None
        assert member.id == storage.get_team_member_by_email(  # type: ignore[union-attr]
            "MEERA@X.IN", org.id).id


class TestPasswordLength:
    @pytest.mark.parametrize("password", ["x" * 73, RUPEE * 25, "y" * 200])
    def test_password_over_72_bytes_is_refused(self, storage: Storage, dsn: str,
                                               password: str) -> None:
        """A password bcrypt cannot hash whole is a ValidationError on password."""
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            make_user(storage, "bob", "bob@a.in", password=password)
        assert ["password"] == info.value.fields
        assert "at most 72 bytes in UTF-8" in str(info.value)
        assert before == log_size(dsn)

    def test_72_byte_password_registers_and_verifies(self, storage: Storage) -> None:
        """24 rupee signs (72 bytes) hash whole: the password verifies, one sign less not."""
        user = make_user(storage, "bob", "bob@a.in", password=RUPEE * 24)
        assert storage.verify_password(user.id, RUPEE * 24)
        assert not storage.verify_password(user.id, RUPEE * 23)

    def test_verifying_an_over_long_password_is_false(self, storage: Storage,
                                                      alice: m.User) -> None:
        """A password longer than any that could be set simply does not match."""
        assert storage.verify_password(alice.id, PASSWORD + "x" * 100) is False

    def test_over_long_password_on_update_and_invitation_is_refused(
            self, storage: Storage, alice: m.User) -> None:
        """update_user and accept_invitation apply the same 72-byte rule."""
        org, kumar = kumar_traders(storage)
        member = storage.create_team_member({"email": "ravi@x.in", "organization_id": org.id,
                                             "invited_by": kumar.id})
        calls = [lambda: storage.update_user(alice.id, {"password": "z" * 73}),
                 lambda: storage.accept_invitation({"token": member.invitation_token,
                                                    "username": "ravi",
                                                    "password": "z" * 73})]
        for call in calls:
            with pytest.raises(ValidationError) as info:
                call()
            assert ["password"] == info.value.fields

    def test_unreadable_stored_hash_verifies_nothing(self, storage: Storage) -> None:
        """A hash bcrypt cannot read (a legacy import with cost 99) matches no password."""
        with context.command():
            user = domain.User(username="legacy", email="legacy@a.in",
                               password_hash="$2b$99$" + "." * 53, gst_number=None,
                               account_type="customer", organization_id=None, status="active")
            storage._save(user)
        assert storage.verify_password(user.id, PASSWORD) is False


class TestRoleNameNull:
    def test_update_role_with_null_name_is_refused(self, storage: Storage, dsn: str) -> None:
        """update_role(name=None) names the field and the rule, and writes nothing."""
        role = storage.create_role({"name": "Operators"})
        before = log_size(dsn)
        with pytest.raises(ValidationError) as info:
            storage.update_role(role.id, {"name": None})
        assert [{"field": "name", "rule": "must not be null; omit the field to keep the"
                 " current name"}] == info.value.errors
        assert before == log_size(dsn)


class TestRebuildAndUpgrade:
    def test_rebuild_gives_the_same_keys(self, storage: Storage, dsn: str,
                                         alice: m.User) -> None:
        """Rebuilt identity tables, keys included, match the live ones."""
        make_user(storage, "Ravi.K", "Ravi@Example.com")
        storage.update_user(alice.id, {"email": "Alice.B@A.in"})
        rebuild(dsn, IdentityProjection, storage.reader)
        assert verify(dsn, IdentityProjection, storage.reader).ok
        assert alice.id == storage.get_user_by_email("alice.b@a.in").id  # type: ignore[union-attr]

    def test_tables_without_key_columns_are_rebuilt_when_storage_opens(
            self, storage: Storage, dsn: str, settings: Settings, alice: m.User) -> None:
        """A database from before the keys gets them filled from the log on open."""
        org, kumar = kumar_traders(storage)
        storage.create_team_member({"email": "Ravi@x.in", "organization_id": org.id,
                                    "invited_by": kumar.id})
        with psycopg.connect(dsn) as conn:  # the old shape: keys absent, old unique indexes
            conn.execute("ALTER TABLE users DROP COLUMN username_key, DROP COLUMN email_key")
            conn.execute("ALTER TABLE team_members DROP COLUMN email_key")
            conn.execute("CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))")

        reopened = open_storage(settings, dsn=dsn)
        try:
            with reopened.acting_as(system="tests"):
                assert alice == reopened.get_user_by_username("ALICE")
                assert reopened.get_team_member_by_email("RAVI@X.IN", org.id) is not None
                with pytest.raises(DuplicateError):
                    make_user(reopened, "alice2", FULLWIDTH_ALICE + "@a.in")
        finally:
            reopened.close()


class TestLookalikesRecordedBeforeTheRule:
    """Logs may hold look-alike accounts registered before they were refused: a rebuild
    keeps every one, and new look-alikes of them are still refused."""

    def test_later_lookalike_gets_a_key_suffixed_with_its_id(self, dsn: str) -> None:
        """The first keeps the plain keys; a later look-alike's keys carry its id; delivered
        twice, the rows are the same."""
        first, later = legacy_user("alice", "alice@a.in"), legacy_user("Alice", "ALICE@a.in")
        renamed = legacy_user("bob", "bob@a.in")
        renamed.update({"username": "ALICE"}, identity_unique=False)
        events = collect(first, later, renamed)

        rows = project(dsn, IdentityProjection, events, "users")

        keys = {(r["username"], r["username_key"], r["email_key"]) for r in rows}
        assert {("alice", "alice", "alice@a.in"),
                ("Alice", f"alice {later.id}", f"alice@a.in {later.id}"),
                ("ALICE", f"alice {renamed.id}", "bob@a.in")} == keys
        assert sorted(rows, key=str) == sorted(
            project_twice(dsn, IdentityProjection, events, "users"), key=str)

    def test_lookalike_invitations_in_one_organization_are_kept(self, dsn: str) -> None:
        """Two old invitations of one address in one organization both stay, as do the
        same address's invitations elsewhere with the plain key."""
        org, other = str(uuid4()), str(uuid4())
        invites = [domain.TeamMember(email=email, organization_id=o, invited_by=str(uuid4()),
                                     token_hash="sha256:00", identity_unique=False)
                   for email, o in (("ravi@x.in", org), ("RAVI@x.in", org),
                                    ("Ravi@x.in", other))]
        rows = project(dsn, IdentityProjection, collect(*invites), "team_members")
        assert {(str(r["organization_id"]), r["email_key"]) for r in rows} == {
            (org, "ravi@x.in"), (org, f"ravi@x.in {invites[1].id}"), (other, "ravi@x.in")}

    def test_new_lookalike_of_an_old_account_is_refused_and_rebuild_matches(
            self, storage: Storage, dsn: str) -> None:
        """With old look-alikes in the log, a new ALICE is a duplicate, the rebuilt tables
        match the live ones, and lookups find the first registrant."""
        first, later = legacy_user("alice", "alice@a.in"), legacy_user("Alice", "alice2@a.in")
        with context.command():
            storage._save(first, later)
        with pytest.raises(DuplicateError):
            make_user(storage, "ALICE", "new@a.in")

        rebuild(dsn, IdentityProjection, storage.reader)

        assert verify(dsn, IdentityProjection, storage.reader).ok
        assert first.id == storage.get_user_by_username("ALICE").id  # type: ignore[union-attr]
        assert later.id == storage.get_user_by_email("Alice2@a.in").id  # type: ignore[union-attr]
