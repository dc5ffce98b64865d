"""The acting context: who acts, for which tenant, and one correlation id per command."""

from __future__ import annotations

from uuid import UUID

from akashone_es.context import (
    SYSTEM_ACTOR,
    acting_as,
    command,
    current,
    event_metadata,
)

ACTOR_ID = UUID("3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b")
ORG_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
CORRELATION_ID = UUID("11111111-2222-4333-8444-555555555555")


class TestActingAs:
    def test_sets_actor_and_organization(self) -> None:
        """Inside acting_as the current context is a user of the given organization."""
        with acting_as(actor_id=ACTOR_ID, organization_id=str(ORG_ID), ip="10.0.0.7"):
            ctx = current()
            assert (ACTOR_ID, "user", ORG_ID, "10.0.0.7") == (
                ctx.actor_id, ctx.actor_kind, ctx.organization_id, ctx.ip)

    def test_restores_previous_context_on_exit(self) -> None:
        """Leaving the block puts back the system actor."""
        with acting_as(actor_id=ACTOR_ID, organization_id=ORG_ID):
            pass
        assert (None, SYSTEM_ACTOR, None) == (
            current().actor_id, current().actor_kind, current().organization_id)

    def test_inner_block_overrides_and_restores_outer(self) -> None:
        """A nested acting_as wins inside and the outer one returns after it."""
        with acting_as(actor_id=ACTOR_ID):
            with acting_as(organization_id=ORG_ID):
                assert (None, ORG_ID) == (current().actor_id, current().organization_id)
            assert (ACTOR_ID, None) == (current().actor_id, current().organization_id)

    def test_metadata_names_the_actor(self) -> None:
        """Event metadata records actor, kind and organization as text."""
        with acting_as(actor_id=ACTOR_ID, organization_id=ORG_ID, user_agent="cli/1.0"):
            meta = event_metadata()
        assert (str(ACTOR_ID), "user", str(ORG_ID), "cli/1.0") == (
            meta["actor_id"], meta["actor_kind"], meta["organization_id"], meta["user_agent"])


class TestTenant:
    def test_system_actor_has_no_tenant(self) -> None:
        """A system actor acts platform-wide even with an organization set."""
        with acting_as(organization_id=ORG_ID) as ctx:
            assert (SYSTEM_ACTOR, None) == (ctx.actor_kind, ctx.tenant_id)

    def test_explicit_system_actor_has_no_tenant(self) -> None:
        """An actor marked as system is not confined to its organization."""
        with acting_as(actor_id=ACTOR_ID, organization_id=ORG_ID, actor_kind=SYSTEM_ACTOR) as ctx:
            assert ctx.tenant_id is None

    def test_user_actor_is_confined_to_organization(self) -> None:
        """A user's tenant is the organization they act for."""
        with acting_as(actor_id=ACTOR_ID, organization_id=ORG_ID) as ctx:
            assert ORG_ID == ctx.tenant_id


class TestCorrelationId:
    def test_same_correlation_id_throughout_a_command(self) -> None:
        """Every event created inside one command shares its correlation id."""
        with command() as meta:
            ids = {event_metadata()["correlation_id"] for _ in range(3)}
        assert {meta["correlation_id"]} == ids

    def test_new_correlation_id_for_each_event_outside_a_command(self) -> None:
        """Outside a command each event gets its own correlation id."""
        ids = {event_metadata()["correlation_id"] for _ in range(3)}
        assert 3 == len(ids)

    def test_separate_commands_get_separate_correlation_ids(self) -> None:
        """Two commands one after the other do not share a correlation id."""
        with command() as first:
            pass
        with command() as second:
            pass
        assert first["correlation_id"] != second["correlation_id"]

    def test_nested_command_reuses_outer(self) -> None:
        """A command called inside another belongs to the outer one."""
        with command() as outer:
            with command() as inner:
                inner_id = event_metadata()["correlation_id"]
            after_inner = event_metadata()["correlation_id"]
        assert (outer["correlation_id"], outer["correlation_id"]) == (inner_id, after_inner)
        assert outer is inner

    def test_given_correlation_id_is_used(self) -> None:
        """A correlation id passed to acting_as is the one the command records."""
        with acting_as(actor_id=ACTOR_ID, correlation_id=str(CORRELATION_ID)), command():
            assert str(CORRELATION_ID) == event_metadata()["correlation_id"]

    def test_command_metadata_is_copied_per_event(self) -> None:
        """Changing one event's metadata does not change the next event's."""
        with command():
            first = event_metadata()
            first["ip"] = "changed"
            assert None is event_metadata()["ip"]
