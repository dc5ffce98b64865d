"""Erasure by key: a person's data encrypted in the log, unreadable everywhere once erased.

A person registers, keeps an address book, logs in from an IP address, changes their email
and is invoiced; a second person is left alone. After ``erase_personal_data`` every place
their data reached reads ``[erased]`` (read tables, history, snapshots, a rebuild), the
log still verifies, and the invoice keeps its buyer details until the year's retention ends.
"""

from __future__ import annotations

import contextvars
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
import time_machine

from akashone_es import audit
from akashone_es.errors import (
    ConfigurationError,
    ConflictError,
    ContextError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from akashone_es.export import Filters, export, verify_export
from akashone_es.gst import financial_year
from akashone_es.personal import MARKER, retention_end
from akashone_es.settings import Settings
from akashone_es.storage import Storage, open_storage
from projections.activity import ActivityProjection
from projections.billing import BillingProjection
from projections.identity import IdentityProjection
from projections.rebuild import checksums, rebuild
from tests.conftest import TEST_SETTINGS
from tests.integration.test_billing_storage import address, draft

IP, AGENT = "203.0.113.9", "Mozilla/5.0 (X11; Linux) Firefox/133.0"
PRIYA = ("priya", "priya@example.in", "priya.new@example.in", "12 MG Road", "411001")


@dataclass
class World:
    storage: Storage
    priya: UUID
    ravi: UUID
    address: UUID
    invoice: UUID


def rows(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def log_text(dsn: str) -> str:
    return "\n".join(r[0] for r in rows(dsn, "SELECT convert_from(state, 'UTF8')"
                                             " FROM akashone_events ORDER BY notification_id"))


@pytest.fixture
def world(issuer: Storage) -> World:
    org = issuer.create_organization({"name": "Sharma Cloud"})
    people = [issuer.create_user({"username": name, "email": f"{name}@example.in",
                                  "password": "long-enough-1", "organization_id": org.id})
              for name in ("priya", "ravi")]
    priya, ravi = people
    for person in people:
        with issuer.acting_as(actor_id=person.id, ip=IP, user_agent=AGENT):
            issuer.create_user_activity({"user_id": person.id, "action": "auth.login",
                                         "ip_address": IP, "user_agent": AGENT})
    with issuer.acting_as(actor_id=priya.id, ip=IP, user_agent=AGENT):
        book = address(issuer, priya, "27", postal_code="411001")
        issuer.update_user(priya.id, {"email": PRIYA[2]})
    invoice = issuer.issue_invoice(draft(issuer, priya, book, 10_000).id)
    issuer.get_recent_activities()  # the async activity log caught up
    return World(issuer, priya.id, ravi.id, book.id, invoice.id)


def events_of(storage: Storage, aggregate: UUID) -> list[Any]:
    return [storage.app.mapper.to_domain_event(s)
            for s in storage.app.recorder.select_events(aggregate)]


class TestEncryptedInTheLog:
    def test_no_personal_value_is_in_the_log_in_clear(self, world: World) -> None:
        text = log_text(world.storage.dsn)
        for value in (*PRIYA, "ravi@example.in", IP, AGENT):
            assert value not in text, value
        assert f"pii:v1:person:{world.priya}:" in text
        assert "pii:v1:fy:" in text  # the invoice's buyer address, under the year's key

    def test_reads_and_history_see_the_clear_values(self, world: World) -> None:
        s = world.storage
        assert s.get_user(world.priya).email == PRIYA[2]
        registered = events_of(s, world.priya)[0]
        assert (registered.username, registered.email) == PRIYA[:2]
        updated = events_of(s, world.priya)[1]
        assert updated.metadata["ip"] == IP


class TestErasure:
    def test_the_person_reads_as_erased_everywhere(self, world: World) -> None:
        s, dsn = world.storage, world.storage.dsn
        report = s.erase_personal_data(world.priya)
        assert report.subjects == [f"person:{world.priya}", f"person:{world.address}"]
        user = s.get_user(world.priya)
        assert (user.username, user.email) == (MARKER, MARKER)
        assert s.get_user_by_email(PRIYA[2]) is None
        assert s.get_user_by_username("priya") is None
        book = s.get_billing_address(world.address)
        assert (book.address_line1, book.postal_code) == (MARKER, MARKER)
        acts = s.get_user_activities(world.priya)
        assert acts
        assert {(a.username, a.ip_address, a.user_agent) for a in acts} == {
            (MARKER, MARKER, MARKER)}
        ravi = s.get_user(world.ravi)
        assert (ravi.username, ravi.email) == ("ravi", "ravi@example.in")
        assert {a.ip_address for a in s.get_user_activities(world.ravi)} == {IP}
        registered, updated = events_of(s, world.priya)[:2]
        assert (registered.username, registered.email) == (MARKER, MARKER)
        assert (updated.changes["email"], updated.metadata["ip"]) == (MARKER, MARKER)
        destroyed = rows(dsn, "SELECT subject FROM akashone_subject_keys"
                              " WHERE sealed_key IS NULL ORDER BY subject")
        assert [r[0] for r in destroyed] == sorted(report.subjects)

    def test_an_erased_person_acts_no_more(self, world: World) -> None:
        """The account is suspended by the platform with the erasure (it acted on, and its
        tenant could not stop it); the suspension is the platform's to lift."""
        s = world.storage
        s.erase_personal_data(world.priya)
        assert s.get_user(world.priya).status == "suspended"
        with pytest.raises(ContextError, match="only active users act"), s.acting_as(
                actor_id=world.priya):
            pass
        with s.acting_as(actor_id=world.ravi), pytest.raises(PermissionDeniedError):
            s.update_user(world.priya, {"status": "active"})
        assert events_of(s, world.priya)[-1].changes == {"status": "suspended"}

    def test_the_erasure_event_names_no_personal_data(self, world: World) -> None:
        s = world.storage
        report = s.erase_personal_data(world.priya, "consent withdrawn")
        [state] = [r[0] for r in rows(s.dsn, "SELECT convert_from(state, 'UTF8')"
                                             " FROM akashone_events WHERE originator_id = %s",
                                      report.erasure_id)]
        for value in (*PRIYA, IP, AGENT):
            assert value not in state
        assert "consent withdrawn" in state

    def test_a_rebuild_gives_the_same_tables(self, world: World) -> None:
        s = world.storage
        s.erase_personal_data(world.priya)
        s.get_recent_activities()
        with psycopg.connect(s.dsn) as conn:
            before = {p.name: checksums(conn, p) for p in s.projections}
        for cls in (IdentityProjection, BillingProjection, ActivityProjection):
            rebuild(s.dsn, cls, s.reader)
        with psycopg.connect(s.dsn) as conn:
            after = {p.name: checksums(conn, p) for p in s.projections}
        assert after == before

    def test_a_proprietors_gstin_and_upi_id_go_with_them(self, world: World) -> None:
        """A GSTIN names its holder's PAN (a proprietor's is personal data), a UPI id its
        holder: both are sealed under the person's (or the record's) key and erased with
        them, on the user, the address and the payment method."""
        s = world.storage
        gstin, upi = "27AAPFU0939F1ZV", "priya.sharma99@okaxis"
        s.update_user(world.priya, {"gst_number": gstin})
        book = s.update_billing_address(world.address, {"gst_number": gstin})
        method = s.create_payment_method({"user_id": world.priya, "gateway": "razorpay",
                                          "type": "upi", "upi_id": upi})
        assert book is not None
        assert (book.gst_number, method.upi_id) == (gstin, upi)
        assert upi not in log_text(s.dsn)
        assert f'"gst_number": "{gstin}"' not in log_text(s.dsn).replace('":"', '": "')
        s.erase_personal_data(world.priya)
        user, book, method = (s.get_user(world.priya), s.get_billing_address(world.address),
                              s.get_payment_method(method.id))
        assert user is not None
        assert book is not None
        assert method is not None
        assert (user.gst_number, book.gst_number, method.upi_id) == (MARKER, MARKER, MARKER)
        with psycopg.connect(s.dsn) as conn:
            before = {p.name: checksums(conn, p) for p in s.projections}
        for cls in (IdentityProjection, BillingProjection):
            rebuild(s.dsn, cls, s.reader)
        with psycopg.connect(s.dsn) as conn:
            assert {p.name: checksums(conn, p) for p in s.projections} == before

    def test_an_actors_ip_on_anothers_activity_goes_with_the_actor(self, world: World
                                                                      ) -> None:
        """Ravi records an activity about Priya with no IP of its own: the row shows the
        request's (Ravi's) IP, under Ravi's key. Erasing Ravi blanks it; erasing Priya
        leaves it; either way the live table is what a rebuild writes."""
        s = world.storage
        other_ip, other_agent = "192.0.2.200", "AdminConsole/9"
        with s.acting_as(actor_id=world.ravi, ip=other_ip, user_agent=other_agent):
            noted = s.create_user_activity({"user_id": world.priya, "action": "note.added"})
        assert (noted.ip_address, noted.user_agent) == (other_ip, other_agent)
        s.erase_personal_data(world.priya)
        row = s.get_user_activity(noted.id)
        assert row is not None
        assert (row.ip_address, row.user_agent) == (other_ip, other_agent)
        s.erase_personal_data(world.ravi)
        row = s.get_user_activity(noted.id)
        assert row is not None
        assert (row.ip_address, row.user_agent) == (MARKER, MARKER)
        with psycopg.connect(s.dsn) as conn:
            before = checksums(conn, ActivityProjection())
        rebuild(s.dsn, ActivityProjection, s.reader)
        with psycopg.connect(s.dsn) as conn:
            assert checksums(conn, ActivityProjection()) == before

    def test_a_system_contexts_ip_is_sealed_under_the_person_it_concerns(
            self, world: World) -> None:
        """A sign-up or a login has no actor yet: the request's IP and user agent are kept
        under the key of the person the event is about, and go with them."""
        s = world.storage
        ip, agent = "198.51.100.88", "SignupBrowser/1"
        with s.acting_as(system="portal signup", ip=ip, user_agent=agent):
            kiran = s.create_user({"username": "kiran", "email": "kiran@example.in",
                                   "password": "long-enough-1"})
            s.create_user_activity({"user_id": kiran.id, "action": "auth.failed_login"})
        assert ip not in log_text(s.dsn)
        assert agent not in log_text(s.dsn)
        s.erase_personal_data(kiran.id)
        with psycopg.connect(s.dsn) as conn:
            out = io.StringIO()
            export(conn, out, Filters(aggregate=kiran.id))
        assert ip not in out.getvalue()
        rows_ = [r for r in s.get_user_activities(kiran.id) if r.ip_address is not None]
        assert rows_
        assert {(r.ip_address, r.user_agent) for r in rows_} == {(MARKER, MARKER)}

    def test_the_chain_still_verifies_and_exports_carry_no_trace(self, world: World) -> None:
        s = world.storage
        with psycopg.connect(s.dsn) as conn:
            taken = audit.digest(conn)
        s.erase_personal_data(world.priya)
        with psycopg.connect(s.dsn) as conn:
            assert audit.verify(conn, taken).ok
            out = io.StringIO()
            summary = export(conn, out, Filters(aggregate=world.priya))
        for value in (*PRIYA, IP, AGENT):
            assert value not in out.getvalue()
        assert verify_export(out.getvalue().splitlines(), summary.digest).ok

    def test_snapshots_show_no_trace(self, world: World) -> None:
        s = world.storage
        s.app.take_snapshot(world.priya)
        s.erase_personal_data(world.priya)
        loaded = s.app.repository.get(world.priya)  # from the snapshot, then the rest
        assert (loaded.username, loaded.email) == (MARKER, MARKER)
        sealed = rows(s.dsn, "SELECT state FROM akashone_snapshots WHERE originator_id = %s",
                      world.priya)
        assert sealed
        for value in PRIYA:
            assert value.encode() not in bytes(sealed[0][0])

    def test_a_later_event_about_an_erased_person_stays_erased(self, world: World) -> None:
        s = world.storage
        s.erase_personal_data(world.priya)
        keys = rows(s.dsn, "SELECT count(*) FROM akashone_subject_keys")
        s.create_user_activity({"user_id": world.priya, "action": "auth.login",
                                "ip_address": "198.51.100.7", "user_agent": "curl"})
        latest = s.get_user_activities(world.priya)[0]
        assert (latest.action, latest.ip_address, latest.user_agent) == (
            "auth.login", MARKER, MARKER)
        assert "198.51.100.7" not in log_text(s.dsn)
        assert rows(s.dsn, "SELECT count(*) FROM akashone_subject_keys") == keys

    def test_a_team_members_invitation_email_is_erased_with_them(
            self, issuer: Storage) -> None:
        org = issuer.create_organization({"name": "Team Org"})
        admin = issuer.create_user({"username": "boss", "email": "boss@example.in",
                                    "password": "long-enough-1", "organization_id": org.id})
        member = issuer.create_team_member({"email": "meera@example.in",
                                            "organization_id": org.id,
                                            "invited_by": admin.id})
        joined = issuer.accept_invitation({"token": member.invitation_token,
                                           "username": "meera", "password": "long-enough-1"})
        report = issuer.erase_personal_data(joined.id)
        assert f"person:{member.id}" in report.subjects
        assert issuer.get_team_member(member.id).email == MARKER
        assert "meera@example.in" not in log_text(issuer.dsn)

    def test_wrong_input_is_refused_and_writes_nothing(self, world: World) -> None:
        s = world.storage
        with pytest.raises(ValidationError, match="reason: must be one of"):
            s.erase_personal_data(world.priya, "she asked nicely")
        with pytest.raises(NotFoundError):
            s.erase_personal_data(UUID(int=7))
        assert s.get_user(world.priya).email == PRIYA[2]


class TestRetention:
    def test_the_retention_end_of_a_year(self) -> None:
        assert retention_end("2026-27") == date(2033, 12, 31)
        assert retention_end("2033-34") == date(2040, 12, 31)

    def test_invoice_buyer_details_outlive_the_persons_erasure_until_the_sweep(
            self, world: World) -> None:
        s = world.storage
        s.erase_personal_data(world.priya)
        drafted = events_of(s, world.invoice)[0]
        assert drafted.buyer["address_line1"] == "12 MG Road"  # kept by law
        with time_machine.travel(datetime(2030, 1, 1, 6, tzinfo=UTC)):
            [year] = s.retention_sweep()
        assert year.state == "kept"
        with time_machine.travel(datetime(2040, 1, 2, 6, tzinfo=UTC)):
            assert [y.state for y in s.retention_sweep(date(2040, 1, 1),
                                                       holds=[year.fy])] == ["held"]
            [swept] = s.retention_sweep(date(2040, 1, 1))
            assert swept.state == "destroyed now"
            assert events_of(s, world.invoice)[0].buyer["address_line1"] == MARKER
            assert [y.state for y in s.retention_sweep()] == ["destroyed earlier"]
        with psycopg.connect(s.dsn) as conn:
            assert audit.verify(conn).ok

    def test_the_buyers_gstin_is_kept_until_the_sweep_then_erased_as_a_rebuild_has_it(
            self, world: World) -> None:
        """A registered buyer's GSTIN on a tax invoice is a buyer detail: kept through the
        person's erasure, erased by the year's sweep, in the log and the tables alike."""
        s = world.storage
        gstin = "29AAGCG6253J1Z8"
        s.update_user(world.ravi, {"gst_number": gstin})
        where = address(s, s.get_user(world.ravi), "29")
        invoice = s.issue_invoice(draft(s, s.get_user(world.ravi), where, 10_000).id)
        pending = draft(s, s.get_user(world.ravi), where, 5_000)
        assert gstin not in log_text(s.dsn)
        s.erase_personal_data(world.ravi)
        for kept in (invoice, pending):
            row = s.get_invoice(kept.id)
            assert row is not None
            assert row.buyer_gstin == gstin  # kept by law
        end = retention_end(financial_year(datetime.now(UTC)))
        with time_machine.travel(datetime(end.year + 1, 1, 2, 6, tzinfo=UTC)):
            assert "destroyed now" in [y.state for y in s.retention_sweep()]
        for swept in (invoice, pending):
            row = s.get_invoice(swept.id)
            assert row is not None
            assert row.buyer_gstin == MARKER
        buyer = s.get_invoice_buyer(invoice.id)
        assert buyer is not None
        assert (buyer["gst_number"], buyer["name"]) == (MARKER, MARKER)
        with psycopg.connect(s.dsn) as conn:
            before = checksums(conn, BillingProjection())
        rebuild(s.dsn, BillingProjection, s.reader)
        with psycopg.connect(s.dsn) as conn:
            assert checksums(conn, BillingProjection()) == before

    def test_a_bad_hold_names_the_field(self, world: World) -> None:
        with pytest.raises(ValidationError, match="holds"):
            world.storage.retention_sweep(date(2026, 1, 1), holds=["FY27"])

    def test_a_sweep_is_never_ahead_of_the_calendar(self, world: World) -> None:
        """A key destroyed is gone for good: a sweep as of a date after today (in India) is
        refused, and nothing is destroyed."""
        s = world.storage
        before = rows(s.dsn, "SELECT count(*) FROM akashone_events")
        with pytest.raises(ValidationError) as caught:
            s.retention_sweep(date(2099, 1, 1))
        assert ["today"] == caught.value.fields
        assert before == rows(s.dsn, "SELECT count(*) FROM akashone_events")
        assert [y.state for y in s.retention_sweep()] == ["kept"]

    def test_a_later_note_keeps_its_invoices_year(self, world: World) -> None:
        """A credit note names its invoice's buyer (under the key of the year the invoice
        was drafted in): the key stays until the note's own year's retention ends."""
        s = world.storage
        drafted_in = financial_year(datetime.now(UTC))
        next_year = f"{int(drafted_in[:4]) + 1}-{(int(drafted_in[:4]) + 2) % 100:02d}"
        with time_machine.travel(datetime(int(drafted_in[:4]) + 1, 6, 1, 6, tzinfo=UTC)):
            note = s.issue_credit_note(world.invoice, 1_000, "credited next year")
        assert next_year == note.fy
        end = retention_end(next_year)
        with time_machine.travel(datetime(end.year, end.month, end.day, 6, tzinfo=UTC)):
            assert [y.state for y in s.retention_sweep()] == ["kept"]
        with time_machine.travel(datetime(end.year + 1, 1, 1, 6, tzinfo=UTC)):
            assert [y.state for y in s.retention_sweep()] == ["destroyed now"]


class TestKeys:
    def test_a_wrong_secret_key_is_refused_at_start(self, world: World) -> None:
        other = {**TEST_SETTINGS, "secret_key": "A" * 43 + "="}
        with pytest.raises(ConfigurationError, match="does not open the keys"):
            open_storage(Settings(**other), dsn=world.storage.dsn)  # type: ignore[arg-type]

    def test_a_restore_without_its_key_writes_no_new_one(self, world: World,
                                                        tmp_path: Any) -> None:
        """Found in review: ``init`` on a restored database, on a host without the key, made
        a new key file (which opens none of the keys) and only then refused. Now it names
        what is missing and writes nothing."""
        keyless = {k: v for k, v in TEST_SETTINGS.items() if k != "secret_key"}
        with pytest.raises(ConfigurationError, match="set AKASHONE_SECRET_KEY to it"):
            open_storage(Settings(**keyless, data_dir=tmp_path),  # type: ignore[arg-type]
                         dsn=world.storage.dsn)
        assert list(tmp_path.iterdir()) == []

    def test_a_tenant_may_not_erase(self, world: World) -> None:
        with world.storage.acting_as(actor_id=world.ravi), pytest.raises(
                PermissionDeniedError, match="platform only"):
            world.storage.erase_personal_data(world.priya)


class TestHostileAndRacingInput:
    def test_a_value_that_looks_sealed_is_sealed_like_any_other(self, world: World) -> None:
        """A user agent that mimics a sealed value is encrypted as every user agent is, and
        reads back as typed; it can neither break reads nor pass as another subject's."""
        s = world.storage
        planted = "pii:v1:fy:2026-27:AAAA"
        with s.acting_as(actor_id=world.ravi, user_agent=planted):
            s.create_user_activity({"user_id": world.ravi, "action": "auth.login",
                                    "user_agent": planted})
        events = events_of(s, world.ravi)
        assert events  # the user's events still load
        [recorded] = [r[0] for r in rows(
            s.dsn, "SELECT convert_from(state, 'UTF8')::jsonb FROM akashone_events WHERE topic"
            " LIKE '%%Activity.Recorded' ORDER BY notification_id DESC LIMIT 1")]
        assert recorded["user_agent"].startswith(f"pii:v1:person:{world.ravi}:")
        assert recorded["metadata"]["user_agent"].startswith(f"pii:v1:person:{world.ravi}:")
        latest = s.get_user_activities(world.ravi)[0]
        assert latest.user_agent == planted

    def test_a_change_to_an_erased_person_stays_erased_in_the_tables(
            self, world: World) -> None:
        s = world.storage
        s.erase_personal_data(world.priya)
        s.update_user(world.priya, {"email": "priya.again@example.in"})
        assert s.get_user(world.priya).email == MARKER
        assert "priya.again" not in log_text(s.dsn)
        assert rows(s.dsn, "SELECT email FROM users WHERE id = %s", world.priya) == [(MARKER,)]

    def test_a_key_made_by_a_save_in_flight_is_not_another_saves(self, world: World) -> None:
        """Two saves making the first key of one subject each make their own; the one that
        does not commit leaves nothing behind."""
        from akashone_es import personal

        ring = world.storage.keyring
        subject = "person:00000000-0000-4000-8000-000000000042"
        seen: dict[str, Any] = {}

        def other() -> None:
            with personal.saving(ring):
                seen["other"] = ring._key(subject, create=True, fresh=True)[1]

        def failing() -> None:
            with personal.saving(ring):
                seen["mine"] = ring._key(subject, create=True, fresh=True)[1]
                thread = threading.Thread(target=other)
                thread.start()
                thread.join()
                raise RuntimeError("this save fails")

        with pytest.raises(RuntimeError, match="this save fails"):
            failing()
        assert seen["other"] is not seen["mine"]
        assert ring._keys[subject][0] is seen["other"]  # the other one committed


class TestErasedOnce:
    """Two erasures of one person at the same moment: both pass the check that the person
    was not erased yet; the database lets one destroy the keys, and the other writes
    nothing (it recorded a second erasure of keys already destroyed)."""

    def test_racing_erasures_record_one(self, world: World) -> None:
        s = world.storage
        subject = f"person:{world.priya}"
        outcomes: list[Any] = []

        def erase() -> None:
            try:
                outcomes.append(s.erase_personal_data(world.priya))
            except ConflictError as exc:
                outcomes.append(exc)

        # the key row held: both erasures pass their check and wait at the destruction
        race(s.dsn, erase, "SELECT 1 FROM akashone_subject_keys WHERE subject = %s"
                           " FOR UPDATE", subject)
        errors = [o for o in outcomes if isinstance(o, ConflictError)]
        assert len(outcomes) == 2, outcomes
        assert len(errors) == 1, outcomes
        assert "erased by another request at the same time" in str(errors[0])
        erasures = rows(s.dsn, "SELECT count(*) FROM akashone_events WHERE topic LIKE"
                               " '%%:Erasure.Recorded' AND convert_from(state, 'UTF8')"
                               " LIKE %s", f"%{subject}%")
        assert erasures == [(1,)]
        assert s.get_user(world.priya).email == MARKER

    def test_a_destroyed_key_cannot_be_written_back(self, world: World) -> None:
        s = world.storage
        s.erase_personal_data(world.priya)
        with psycopg.connect(s.dsn) as conn, pytest.raises(
                psycopg.errors.UniqueViolation, match="is destroyed already"):
            conn.execute("UPDATE akashone_subject_keys SET sealed_key = 'k1:AAAA'"
                         " WHERE subject = %s", (f"person:{world.priya}",))

    def test_a_key_destroyed_behind_the_logs_back_fails_verify(self, world: World) -> None:
        """A key is destroyed only by storing an erasure (in its transaction): a key made
        unreadable any other way (its row set to NULL by whoever may write the table) makes
        the data unreadable with no record of why, and ``audit verify`` says so."""
        s = world.storage
        s.erase_personal_data(world.ravi)  # an erasure the log records: fine
        with psycopg.connect(s.dsn) as conn:
            assert audit.verify(conn).ok
            conn.execute("UPDATE akashone_subject_keys SET sealed_key = NULL"
                         " WHERE subject LIKE 'fy:%%'")
            conn.commit()
            verdict = audit.verify(conn)
        assert not verdict.ok
        assert verdict.problem is not None
        assert "1 key was destroyed with no erasure in the log" in verdict.problem
        assert "fy:" in verdict.problem

    def test_racing_sweeps_destroy_a_year_once(self, world: World) -> None:
        """A sweep that finds the year destroyed by another one says so."""
        s = world.storage
        [year] = [y.fy for y in s.retention_sweep()]
        with time_machine.travel(datetime(2099, 1, 1, 6, tzinfo=UTC)):
            outcomes = sweep_alongside(s, date(2099, 1, 1))
        assert sorted(outcomes) == ["destroyed earlier", "destroyed now"], outcomes
        assert rows(s.dsn, "SELECT count(*) FROM akashone_events WHERE topic LIKE"
                           " '%%:Erasure.Recorded' AND convert_from(state, 'UTF8')"
                           " LIKE %s", f"%fy:{year}%") == [(1,)]


def waiting(dsn: str) -> int:
    """Sessions of this database waiting for a row lock."""
    return rows(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                     " AND wait_event_type = 'Lock'")[0][0]


def sweep_alongside(s: Storage, today: date) -> list[str]:
    """Two retention sweeps at once, the year's key row held until both wait on it."""
    outcomes: list[str] = []

    def sweep() -> None:
        outcomes.extend(y.state for y in s.retention_sweep(today))

    race(s.dsn, sweep, "SELECT 1 FROM akashone_subject_keys WHERE subject LIKE 'fy:%%'"
                       " FOR UPDATE")
    return outcomes


def race(dsn: str, work: Callable[[], None], hold: str, *params: Any) -> None:
    """``work`` in two threads at once (each in a copy of this context: the acting one),
    the rows ``hold`` locks held until both wait on them, then let go."""
    with psycopg.connect(dsn) as holder:
        holder.execute(hold, params)
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work,))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and waiting(dsn) < 2:
            time.sleep(0.02)
        assert waiting(dsn) == 2, "both reach the held rows"
        holder.rollback()
    for thread in threads:
        thread.join(30)
