"""Tenancy holes found in review: each reproduced as the attacker, refused and nothing written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from akashone_es import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Storage,
    ValidationError,
)
from akashone_es.resources import KINDS
from projections import models as m
from tests.conftest import log_size
from tests.integration.access_fixtures import enable_all_features
from tests.integration.resource_samples import make
from tests.integration.test_billing_storage import address, customer, line
from tests.integration.test_tenancy_and_rules import make_user, tenant


def super_admin_of_older_data(storage: Storage, dsn: str, organization: Any) -> m.User:
    """A super admin whose row sits in ``organization``: refused since 2026-12-07, but an
    older database may hold one (its row changed here as such data has it)."""
    root = make_user(storage, "root", account_type="super_admin")
    storage.get_recent_activities(1)  # the activity log knows root now
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, key in (("users", "id"), ("activity_actors", "user_id")):
            conn.execute(f"UPDATE {table} SET organization_id = %s WHERE {key} = %s",
                         (organization, root.id))
    return root


class TestSuperAdminsBelongToNoOrganization:
    def test_a_super_admin_is_made_platform_wide_and_in_no_organization(
            self, storage: Storage, dsn: str) -> None:
        """Found in review: a super admin in A's organization had its cloud resources and
        activity read by A's users as A's. Now it belongs to no organization, and only the
        platform acting platform-wide makes one (not a context acting for A)."""
        a = tenant(storage, "acme")
        before = log_size(dsn)
        with pytest.raises(ValidationError) as caught:
            make_user(storage, "root", account_type="super_admin", organization_id=a.org.id)
        assert caught.value.fields == ["organization_id"]
        with storage.acting_as(system="support", organization_id=a.org.id), \
                pytest.raises(PermissionDeniedError, match="platform-wide"):
            make_user(storage, "root", account_type="super_admin")
        with pytest.raises(ValidationError) as caught:  # promoted, it leaves its organization
            storage.update_user(a.user.id, {"account_type": "super_admin"})
        assert caught.value.fields == ["organization_id"]
        root = make_user(storage, "root", account_type="super_admin")
        with pytest.raises(ValidationError):
            storage.update_user(root.id, {"organization_id": a.org.id})
        assert before + 1 == log_size(dsn)  # root's registration alone
        assert storage.get_user(root.id).organization_id is None  # type: ignore[union-attr]


class TestSuperAdminInsideATenant:
    def test_tenant_cannot_change_a_super_admin_of_its_organization(
            self, storage: Storage, dsn: str) -> None:
        """A super admin whose organization is A is still the platform's account: A's users
        can neither reset its password or email nor demote it (it reads as absent)."""
        a = tenant(storage, "acme")
        root = super_admin_of_older_data(storage, dsn, a.org.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id):
            for change in ({"password": "attacker-pass-1"}, {"email": "evil@a.in"},
                           {"account_type": "customer"}):
                assert storage.update_user(root.id, change) is None
        assert before == log_size(dsn)
        assert storage.verify_password(root.id, "long-enough-1")

    def test_tenant_never_sees_its_secrets_roles_or_password(
            self, storage: Storage, dsn: str) -> None:
        """Found in review: A's users read the super admin's decrypted password hash and TOTP
        secret, checked guesses of its password, and took its roles away. Now it is absent
        to them by every door; to the platform, and to itself, it is there."""
        a = tenant(storage, "acme")
        root = super_admin_of_older_data(storage, dsn, a.org.id)
        storage.update_user(root.id, {"two_factor_secret": "JBSWY3DPEHPK3PXP"})
        admin = storage.get_roles()[0]
        storage.assign_role_to_user(root.id, admin.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id):
            assert storage.get_user(root.id) is None
            assert storage.get_user_by_email(root.email) is None
            assert storage.get_user_by_username(root.username) is None
            assert root.id not in {u.id for u in storage.get_users()}
            assert a.user.id in {u.id for u in storage.get_users()}
            assert storage.verify_password(root.id, "long-enough-1") is False
            assert storage.get_user_roles(root.id) == []
            assert storage.user_has_permission(root.id, "vm.view") is False
            with pytest.raises(NotFoundError):
                storage.remove_role_from_user(root.id, admin.id)
            with pytest.raises(NotFoundError):
                storage.assign_role_to_user(root.id, admin.id)
        assert before == log_size(dsn)
        with storage.acting_as(actor_id=root.id):  # itself
            seen = storage.get_user(root.id)
            assert seen is not None
            assert seen.two_factor_secret == "JBSWY3DPEHPK3PXP"
        assert [admin.id] == [r.id for r in storage.get_user_roles(root.id)]


class TestPlatformRoles:
    def test_tenant_cannot_change_a_role_shared_by_every_tenant(
            self, storage: Storage, dsn: str) -> None:
        """A platform role (no organization, not a system role) is visible to tenants and
        assignable to their users, but only the platform renames, re-permissions or deletes
        it (else A could grant or revoke permissions of B's users)."""
        a, b = tenant(storage, "acme"), tenant(storage, "bharat")
        shared = storage.create_role({"name": "Support"})
        view = storage.get_permission_by_key("vm.view")
        assert view is not None
        storage.assign_role_to_user(b.user.id, shared.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id):
            assert storage.get_role(shared.id) is not None
            for write in (lambda: storage.update_role(shared.id, {"name": "pwned"}),
                          lambda: storage.delete_role(shared.id),
                          lambda: storage.assign_permission_to_role(shared.id, view.id),
                          lambda: storage.remove_permission_from_role(shared.id, view.id)):
                with pytest.raises(PermissionDeniedError, match="platform role"):
                    write()
        assert before == log_size(dsn)
        assert [shared.id] == [r.id for r in storage.get_user_roles(b.user.id)
                               if r.id == shared.id]


class TestUsersWithoutAnOrganization:
    def test_cannot_create_organization_records(self, storage: Storage, dsn: str) -> None:
        """Users without an organization share no pseudo-tenant: one cannot create a plan
        (or role, or user) that another such user would then see."""
        xavier = make_user(storage, "xavier")
        before = log_size(dsn)
        with storage.acting_as(actor_id=xavier.id):
            for write in (lambda: storage.create_service_plan({
                              "name": "Xavier deal", "cpu": 1, "memory": 1, "storage": 1}),
                          lambda: storage.create_role({"name": "Xavier role"})):
                with pytest.raises(PermissionDeniedError, match="without an organization"):
                    write()
            assert xavier.id == storage.get_user(xavier.id).id  # type: ignore[union-attr]
        assert before == log_size(dsn)


class TestTheSupplierIsThePlatform:
    def test_customer_cannot_settle_meter_or_discard_its_own_billing(
            self, issuer: Storage, dsn: str) -> None:
        """A customer tenant reads its invoices and starts payments, but recording a
        successful payment, metering, marking usage billed, discarding a draft or issuing
        a note are the supplier's (the platform's) operations."""
        org = issuer.create_organization({"name": "Acme"})
        user = customer(issuer, "asha", organization_id=org.id)
        where = address(issuer, user, state_code="27")
        draft = issuer.create_invoice({"user_id": user.id, "billing_address_id": where.id,
                                       "billing_period_start": "2026-10-01T00:00:00Z",
                                       "billing_period_end": "2026-11-01T00:00:00Z",
                                       "lines": [line(10_000)]})
        invoice = issuer.issue_invoice(issuer.create_invoice({
            "user_id": user.id, "billing_address_id": where.id,
            "billing_period_start": "2026-10-01T00:00:00Z",
            "billing_period_end": "2026-11-01T00:00:00Z", "lines": [line(10_000)]}).id)
        before = log_size(dsn)
        payment = {"invoice_id": invoice.id, "gateway": "razorpay", "amount": invoice.total_amount}
        with issuer.acting_as(actor_id=user.id):
            assert issuer.get_invoice(invoice.id) is not None
            with pytest.raises(PermissionDeniedError, match="pending"):
                issuer.create_payment_transaction({**payment, "status": "success"})
            for write in (lambda: issuer.delete_invoice(draft.id),
                          lambda: issuer.cancel_invoice(invoice.id, "no"),
                          lambda: issuer.issue_credit_note(invoice.id, 100, "x"),
                          lambda: issuer.mark_usage_records_as_billed([], draft.id),
                          lambda: issuer.create_usage_record({
                              "user_id": user.id, "resource_type": "compute",
                              "resource_id": "vm-1", "resource_name": "vm-1",
                              "metric_type": "runtime", "quantity": "1",
                              "period_start": "2026-10-01T00:00:00Z",
                              "period_end": "2026-10-02T00:00:00Z"})):
                with pytest.raises(PermissionDeniedError, match="platform only"):
                    write()
            assert before == log_size(dsn)
            pending = issuer.create_payment_transaction(payment)
        assert ("pending", "issued") == (pending.status,
                                         issuer.get_invoice(invoice.id).status)  # type: ignore[union-attr]


class TestAccountTermsArePlatforms:
    @pytest.mark.parametrize("change", [
        {"default_discount_percentage": 100}, {"account_type": "reseller"},
        {"email_verified": True}])
    def test_tenant_cannot_set_its_own_terms(self, storage: Storage, dsn: str,
                                             change: dict[str, object]) -> None:
        """A customer cannot grant itself a 100% discount (which invoices would apply),
        promote itself, or mark its email verified; nothing is written."""
        org = storage.create_organization({"name": "Acme"})
        alice = make_user(storage, "alice", organization_id=org.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=alice.id), \
                pytest.raises(PermissionDeniedError, match="only the platform sets"):
            storage.update_user(alice.id, change)
        assert before == log_size(dsn)
        with storage.acting_as(system="customer terms", organization_id=org.id):
            assert storage.update_user(alice.id, change) is not None

    def test_tenant_opens_only_customer_and_team_accounts(self, storage: Storage) -> None:
        """A tenant cannot open a reseller account inside its organization."""
        org = storage.create_organization({"name": "Acme"})
        alice = make_user(storage, "alice", organization_id=org.id)
        with storage.acting_as(actor_id=alice.id):
            with pytest.raises(PermissionDeniedError, match="reseller"):
                make_user(storage, "bob", account_type="reseller")
            assert "customer" == make_user(storage, "carol").account_type


class TestActivityNamesTheRealUser:
    def test_username_of_another_user_is_refused(self, storage: Storage, dsn: str) -> None:
        """An activity about alice cannot be recorded under the name 'root'."""
        org = storage.create_organization({"name": "Acme"})
        alice = make_user(storage, "alice", organization_id=org.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=alice.id):
            with pytest.raises(ValidationError) as caught:
                storage.create_user_activity({"user_id": alice.id, "username": "root",
                                              "action": "auth.login"})
            assert ["username"] == caught.value.fields
            assert before == log_size(dsn)
            row = storage.create_user_activity({"user_id": alice.id, "action": "auth.login"})
        assert "alice" == row.username


class TestPlatformOnBehalf:
    def test_platform_acting_for_a_tenant_writes_no_shared_catalogue(self,
                                                                     storage: Storage) -> None:
        """A context acting for B is confined to B: what every tenant shares (the HSN
        catalogue, the platform's plans) is written platform-wide, never as B's (its
        events would read as done on B's behalf)."""
        b = storage.create_organization({"name": "Bharat"})
        gpu = {"service_type": "gpu", "hsn_code": "9983", "sac_code": "998315",
               "description": "GPU"}
        with storage.acting_as(system="support", organization_id=b.id):
            for write in (lambda: storage.create_hsn_code(gpu),
                          storage.initialize_default_service_plans):
                with pytest.raises(PermissionDeniedError, match="platform-wide"):
                    write()
        assert storage.create_hsn_code(gpu).service_type == "gpu"
        assert 5 == storage.initialize_default_service_plans()

    def test_platform_acting_for_a_tenant_changes_no_shared_role(self, storage: Storage,
                                                                 dsn: str) -> None:
        """Found in review: a role of no organization is every tenant's; acting for B, the
        platform renamed, re-permissioned and deleted it (revoking it from A's users)."""
        a, b = tenant(storage, "acme"), tenant(storage, "bharat")
        shared = storage.create_role({"name": "Support"})
        storage.assign_role_to_user(a.user.id, shared.id)
        view = storage.get_permission_by_key("vm.view")
        assert view is not None
        before = log_size(dsn)
        with storage.acting_as(system="support", organization_id=b.org.id):
            for write in (lambda: storage.update_role(shared.id, {"name": "pwned"}),
                          lambda: storage.assign_permission_to_role(shared.id, view.id),
                          lambda: storage.delete_role(shared.id)):
                with pytest.raises(PermissionDeniedError, match="platform-wide"):
                    write()
        assert before == log_size(dsn)
        assert shared.id in {r.id for r in storage.get_user_roles(a.user.id)}


class TestPlatformActionsInTheActivityLog:
    def test_a_super_admin_of_a_tenant_acting_platform_wide_is_not_logged_there(
            self, storage: Storage, dsn: str) -> None:
        """Found in review: a super admin whose row sits in A, acting platform-wide on B's
        role, put the row in A's activity log (named by B's role), and not in B's. Now a
        platform-wide action is the platform's; acting on B's behalf logs it in B's."""
        a, b = tenant(storage, "acme"), tenant(storage, "bharat")
        root = super_admin_of_older_data(storage, dsn, a.org.id)
        with storage.acting_as(actor_id=root.id):
            storage.update_role(b.role.id, {"name": "bharat-secret-project"})
        with storage.acting_as(actor_id=root.id, organization_id=b.org.id):
            storage.update_role(b.role.id, {"name": "bharat-renamed-for-them"})
        with storage.acting_as(actor_id=a.user.id):
            shown = " ".join(f"{r.action} {r.resource_id} {r.resource_name}"
                             for r in storage.get_recent_activities(1000))
            assert str(b.role.id) not in shown
            assert "bharat" not in shown
            assert str(root.id) not in shown  # its registration is the platform's too
        with storage.acting_as(actor_id=b.user.id):
            updates = [r for r in storage.get_recent_activities(1000)
                       if r.resource_id == str(b.role.id) and r.action == "role.updated"]
            assert [r.user_id for r in updates] == [root.id]  # the one made for them
        platform = [r for r in storage.get_recent_activities(1000)
                    if r.resource_id == str(b.role.id) and r.action == "role.updated"]
        assert sorted(str(r.organization_id) for r in platform) == sorted(["None",
                                                                          str(b.org.id)])


class TestPaymentMethods:
    def test_a_payment_names_only_a_method_of_the_invoices_customer(
            self, issuer: Storage, dsn: str) -> None:
        """Found in review: a pending payment stored any payment method id, another
        tenant's or a made-up one. Now such an id reads as not found; nothing is written."""
        org_a = issuer.create_organization({"name": "Acme"})
        org_b = issuer.create_organization({"name": "Bharat"})
        alice = customer(issuer, "alice", organization_id=org_a.id)
        bob = customer(issuer, "bob", organization_id=org_b.id)
        card = {"gateway": "razorpay", "type": "card", "card_last4": "4242"}
        alices = issuer.create_payment_method({"user_id": alice.id, **card})
        bobs = issuer.create_payment_method({"user_id": bob.id, **card})
        where = address(issuer, alice, state_code="27")
        invoice = issuer.issue_invoice(issuer.create_invoice({
            "user_id": alice.id, "billing_address_id": where.id,
            "billing_period_start": "2026-10-01T00:00:00Z",
            "billing_period_end": "2026-11-01T00:00:00Z", "lines": [line(10_000)]}).id)
        payment = {"invoice_id": invoice.id, "gateway": "razorpay", "amount": 100}
        before = log_size(dsn)
        with issuer.acting_as(actor_id=alice.id):
            for method in (bobs.id, "6f1c2d3e-0000-4000-8000-000000000001"):
                with pytest.raises(NotFoundError) as info:
                    issuer.create_payment_transaction({**payment, "payment_method_id": method})
                assert info.value.field == "payment_method_id"
        with pytest.raises(NotFoundError):  # the platform too: Bob's card is not Alice's
            issuer.create_payment_transaction({**payment, "payment_method_id": bobs.id})
        assert before == log_size(dsn)
        with issuer.acting_as(actor_id=alice.id):
            paid = issuer.create_payment_transaction({**payment,
                                                      "payment_method_id": alices.id})
        assert paid.payment_method_id == alices.id
        issuer.delete_payment_method(alices.id)  # marked removed: it pays nothing more
        with pytest.raises(NotFoundError):
            issuer.create_payment_transaction({**payment, "gateway_transaction_id": "pay_2",
                                               "payment_method_id": alices.id})


class TestUserMoves:
    def test_a_user_with_billing_records_or_roles_stays(self, issuer: Storage,
                                                         dsn: str) -> None:
        """Found in review: moving a user from A to B handed B the user's A-era invoice
        (and A lost it), and B read A's custom role among the user's roles. A user with
        billing records, or holding its organization's roles, is not moved; one with
        neither is."""
        issuer.initialize_default_roles()
        a, b = tenant(issuer, "acme"), tenant(issuer, "bharat")
        billed = customer(issuer, "billed", organization_id=a.org.id)
        where = address(issuer, billed, state_code="27")
        issuer.create_invoice({"user_id": billed.id, "billing_address_id": where.id,
                               "billing_period_start": "2026-10-01T00:00:00Z",
                               "billing_period_end": "2026-11-01T00:00:00Z",
                               "lines": [line(10_000)]})
        before = log_size(dsn)
        with pytest.raises(ConflictError, match="billing record"):
            issuer.update_user(billed.id, {"organization_id": b.org.id})
        with pytest.raises(ConflictError, match="role of its organization"):
            issuer.update_user(a.user.id, {"organization_id": b.org.id})  # holds acme-role
        assert before == log_size(dsn)
        assert issuer.get_user(a.user.id).organization_id == a.org.id  # type: ignore[union-attr]
        issuer.remove_role_from_user(a.user.id, a.role.id)
        moved = issuer.update_user(a.user.id, {"organization_id": b.org.id})
        assert moved is not None
        assert moved.organization_id == b.org.id


class TestPlatformSuspensions:
    def test_only_the_platform_lifts_a_suspension_it_made(self, storage: Storage,
                                                           dsn: str) -> None:
        """Found in review: the platform suspended one of A's users (say, for abuse) and
        another of A's users set it active again. A suspension the platform made, on an
        update or at registration, is the platform's to lift; A's own stay A's."""
        a = tenant(storage, "acme")
        flagged = make_user(storage, "flagged", organization_id=a.org.id)
        storage.update_user(flagged.id, {"status": "suspended"})
        held = make_user(storage, "held", organization_id=a.org.id, status="suspended")
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id):
            for user in (flagged, held):
                for status in ("active", "suspended"):  # a re-suspension would make it A's
                    with pytest.raises(PermissionDeniedError, match="platform suspended"):
                        storage.update_user(user.id, {"status": status})
            assert storage.update_user(flagged.id, {"gst_number": "29AAGCG6253J1Z8"})
            # a suspension A made, A lifts
            own = make_user(storage, "own", organization_id=a.org.id, status="suspended")
            assert storage.update_user(own.id, {"status": "active"}).status == "active"  # type: ignore[union-attr]
        assert before + 3 == log_size(dsn)  # the GSTIN, own's registration and lifting
        assert "suspended" == storage.get_user(flagged.id).status  # type: ignore[union-attr]
        with storage.acting_as(system="support", organization_id=a.org.id):
            assert storage.update_user(flagged.id, {"status": "active"}).status == "active"  # type: ignore[union-attr]
        with storage.acting_as(actor_id=a.user.id):  # lifted, it is A's to manage again
            storage.update_user(flagged.id, {"status": "suspended"})
            storage.update_user(flagged.id, {"status": "active"})


class TestInvitations:
    def test_the_inviter_is_of_the_invitations_organization(self, storage: Storage,
                                                             dsn: str) -> None:
        """Found in review: the platform could record B's user as the inviter of an
        invitation into A, whose users then read that user's id. The inviter is a user of
        the organization, or a super admin (the platform's own)."""
        a, b = tenant(storage, "acme"), tenant(storage, "bharat")
        root = make_user(storage, "root", account_type="super_admin")
        before = log_size(dsn)
        with pytest.raises(ValidationError) as caught:
            storage.create_team_member({"email": "new@acme.example", "organization_id": a.org.id,
                                        "invited_by": b.user.id})
        assert caught.value.fields == ["invited_by"]
        assert before == log_size(dsn)
        for inviter in (a.user, root):
            storage.create_team_member({"email": f"by-{inviter.username}@acme.example",
                                        "organization_id": a.org.id, "invited_by": inviter.id})
        assert before + 2 == log_size(dsn)


class TestPlatformWideWork:
    def test_metering_and_the_sweep_refuse_a_context_narrowed_to_one_tenant(
            self, storage: Storage, dsn: str) -> None:
        """Found in review: acting for A (``organization_id=A``), ``meter`` recorded B's
        VM hours and ``retention_sweep`` destroyed the key of B's invoices' buyer details.
        Work over every organization is run platform-wide; narrowed, it is refused."""
        a = tenant(storage, "acme")
        root = make_user(storage, "root", account_type="super_admin")
        before = log_size(dsn)
        for acting in (storage.acting_as(actor_id=root.id, organization_id=a.org.id),
                       storage.acting_as(system="ops", organization_id=a.org.id)):
            with acting:
                for work in (lambda: storage.meter(datetime(2026, 1, 1, tzinfo=UTC)),
                             lambda: storage.retention_sweep(date(2026, 1, 1)),
                             storage.initialize_default_service_plans):
                    with pytest.raises(PermissionDeniedError, match="platform-wide"):
                        work()
        assert before == log_size(dsn)
        with storage.acting_as(actor_id=root.id):
            assert storage.meter(datetime(2026, 1, 1, tzinfo=UTC)).windows == 0


class TestMovedUsers:
    def test_a_user_moved_out_reads_none_of_its_old_organizations_activity(
            self, storage: Storage) -> None:
        """Found in review: a user moved from A to B still read its activities recorded in
        A (A's resource names and details) through "a user sees its own rows"; that rule
        is for a user in no organization, whose rows are in none."""
        a, b = tenant(storage, "acme"), tenant(storage, "beta")
        mover = make_user(storage, "mover", organization_id=a.org.id)
        with storage.acting_as(actor_id=mover.id):
            old = storage.create_user_activity({"user_id": mover.id, "action": "vm.create",
                                                "resource_name": "A salaries Q4"})
        storage.update_user(mover.id, {"organization_id": b.org.id})
        with storage.acting_as(actor_id=mover.id):
            assert storage.get_user_activity(old.id) is None
            assert storage.get_user_activities(mover.id) == []
            assert storage.get_user_activities_by_action(mover.id, "vm.create") == []
        loner = make_user(storage, "loner")
        with storage.acting_as(actor_id=loner.id):  # in no organization: its own rows
            mine = storage.create_user_activity({"user_id": loner.id, "action": "auth.login"})
            assert [r.id for r in storage.get_user_activities(loner.id)] == [mine.id]


class TestWhatIsBilledIsThePlatforms:
    def test_a_tenant_cannot_set_what_metering_bills(self, storage: Storage, dsn: str) -> None:
        """Found in review: a tenant stopped its own running cluster and database in the
        record (their meters closed), shrank its volume to 1 GB and set its VM Stopped,
        while they ran on. What metering reads is the platform's to set; a tenant's
        update of anything else goes through."""
        enable_all_features(storage)
        a = tenant(storage, "acme")
        owner = a.user.id
        with storage.acting_as(system="provisioning", organization_id=a.org.id):
            made = {name: make(storage, KINDS[name], "t", owner) for name in (
                "virtual_machine", "volume", "kubernetes_cluster", "database")}
            storage.update_virtual_machine(made["virtual_machine"].id, {"state": "Running"})
            storage.update_kubernetes_cluster(made["kubernetes_cluster"].id,
                                              {"status": "running"})
            storage.update_database(made["database"].id, {"status": "running"})
            snapshot = make(storage, KINDS["vm_snapshot"], "s", owner)
        tries = [("virtual_machine", {"state": "Stopped"}, "state"),
                 ("volume", {"size": 1}, "size"),
                 ("kubernetes_cluster", {"status": "stopped"}, "status"),
                 ("kubernetes_cluster", {"worker_nodes": 1, "name": "x"}, "worker_nodes"),
                 ("database", {"storage": 10}, "storage")]
        before = log_size(dsn)
        with storage.acting_as(actor_id=owner):
            for name, change, field in tries:
                with pytest.raises(PermissionDeniedError, match=f"{field}: billed by"):
                    getattr(storage, f"update_{name}")(made[name].id, change)
            with pytest.raises(PermissionDeniedError):
                storage.restore_vm_snapshot(snapshot.id)
            assert log_size(dsn) == before
            renamed = storage.update_volume(made["volume"].id, {"display_name": "data"})
            assert (renamed.display_name, renamed.size) == ("data", made["volume"].size)
        with storage.acting_as(system="provisioning", organization_id=a.org.id):
            assert storage.update_volume(made["volume"].id, {"size": 80}).size == 80


class TestColleaguesCredentials:
    def test_a_tenant_reads_no_colleagues_hash_or_totp_secret(self, storage: Storage) -> None:
        """Found in review: a reseller's customer (in the reseller's organization) read the
        reseller's bcrypt hash and TOTP secret in clear. A tenant reads its own; of another
        user only that credentials exist."""
        a = tenant(storage, "acme")
        colleague = make_user(storage, "colleague", organization_id=a.org.id)
        storage.update_user(a.user.id, {"two_factor_secret": "JBSWY3DPEHPK3PXP",
                                        "two_factor_enabled": True})
        with storage.acting_as(actor_id=colleague.id):
            seen = storage.get_user(a.user.id)
            assert seen is not None
            assert (seen.password, seen.two_factor_secret, seen.two_factor_enabled) == (
                "[hidden]", None, True)
            for listed in (storage.get_users(), [storage.get_user_by_email(a.user.email)]):
                mine = next(u for u in listed if u is not None and u.id == a.user.id)
                assert (mine.password, mine.two_factor_secret) == ("[hidden]", None)
            assert not storage.verify_password(a.user.id, "long-enough-1")
            assert storage.get_user(colleague.id).password.startswith("$2")  # its own
        with storage.acting_as(actor_id=a.user.id):
            assert storage.get_user(a.user.id).two_factor_secret == "JBSWY3DPEHPK3PXP"
            assert storage.verify_password(a.user.id, "long-enough-1")
        assert storage.get_user(a.user.id).password.startswith("$2")  # the platform


class TestDnsZones:
    def test_a_zone_is_made_active_by_the_platform_and_once_per_name(
            self, storage: Storage, dsn: str) -> None:
        """Found in review: tenant A created B's active domain and set it active itself:
        two active zones for one name. Activation is the platform's (it verifies who holds
        the domain), and a name has one active zone."""
        enable_all_features(storage)
        a, b = tenant(storage, "acme"), tenant(storage, "beta")
        name = "shop.example.com"
        with storage.acting_as(actor_id=b.user.id):
            theirs = storage.create_dns_domain({"user_id": b.user.id, "name": name})
        with storage.acting_as(system="dns verification", organization_id=b.org.id):
            assert storage.update_dns_domain(theirs.id, {"status": "active"}).status == "active"
        with storage.acting_as(actor_id=a.user.id):
            mine = storage.create_dns_domain({"user_id": a.user.id, "name": name})
            before = log_size(dsn)
            with pytest.raises(PermissionDeniedError, match="status: set by the platform"):
                storage.update_dns_domain(mine.id, {"status": "active"})
            assert log_size(dsn) == before
            assert storage.update_dns_domain(mine.id, {"dnssec": True}).dnssec
        with storage.acting_as(system="dns verification", organization_id=a.org.id), \
                pytest.raises(ConflictError, match="a name has one active zone"):
            storage.update_dns_domain(mine.id, {"status": "active"})
