"""Tenancy holes found in review: each reproduced as the attacker, refused and nothing written."""

from __future__ import annotations

import pytest

from akashone_es import PermissionDeniedError, Storage, ValidationError
from tests.conftest import log_size
from tests.integration.test_billing_storage import address, customer, line
from tests.integration.test_tenancy_and_rules import make_user, tenant


class TestSuperAdminInsideATenant:
    def test_tenant_cannot_change_a_super_admin_of_its_organization(
            self, storage: Storage, dsn: str) -> None:
        """A super admin whose organization is A is still the platform's account: A's users
        can neither reset its password or email nor demote it."""
        a = tenant(storage, "acme")
        root = make_user(storage, "root", account_type="super_admin",
                         organization_id=a.org.id)
        before = log_size(dsn)
        with storage.acting_as(actor_id=a.user.id):
            assert storage.get_user(root.id) is not None  # visible, but not theirs to change
            for change in ({"password": "attacker-pass-1"}, {"email": "evil@a.in"},
                           {"account_type": "customer"}):
                with pytest.raises(PermissionDeniedError, match="super admin"):
                    storage.update_user(root.id, change)
        assert before == log_size(dsn)
        assert storage.verify_password(root.id, "long-enough-1")


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
    def test_platform_acting_for_a_tenant_keeps_catalogue_writes(self,
                                                                 storage: Storage) -> None:
        """A system context acting for B may still change the platform catalogue, but the
        platform's plans are seeded platform-wide, never as B's."""
        b = storage.create_organization({"name": "Bharat"})
        with storage.acting_as(system="support", organization_id=b.id):
            code = storage.create_hsn_code({"service_type": "gpu", "hsn_code": "9983",
                                            "sac_code": "998315", "description": "GPU"})
            assert code.service_type == "gpu"
            with pytest.raises(PermissionDeniedError, match="platform-wide"):
                storage.initialize_default_service_plans()
        assert 5 == storage.initialize_default_service_plans()
