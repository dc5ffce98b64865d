"""The acting context: validated, bounded, fail closed, one correlation id per command."""

from __future__ import annotations

from uuid import UUID

import pydantic
import pytest

from akashone_es.context import (
    MAX_USER_AGENT,
    NO_ORGANIZATION,
    ActingContext,
    command,
    current,
    current_or_none,
    entered,
    event_metadata,
)
from akashone_es.errors import ContextError

ACTOR_ID = UUID("3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b")
ORG_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")


def tenant_user(**extra: object) -> ActingContext:
    return ActingContext(actor_id=ACTOR_ID, actor_kind="user", tenant_id=ORG_ID, **extra)  # type: ignore[arg-type]


class TestFailClosed:
    def test_no_context_is_refused(self) -> None:
        """Without a context in force, asking for it raises ContextError."""
        assert current_or_none() is None
        with pytest.raises(ContextError, match="no acting context"):
            current()

    def test_no_context_refuses_event_metadata(self) -> None:
        """An event cannot be stamped without a context: nothing is written anonymously."""
        with pytest.raises(ContextError):
            event_metadata()

    def test_entered_context_is_restored_on_exit(self) -> None:
        """Leaving the block puts back what was in force (here: nothing)."""
        with entered(tenant_user()):
            assert ORG_ID == current().tenant_id
        assert current_or_none() is None

    def test_inner_context_wins_and_outer_returns(self) -> None:
        """A nested context wins inside its block; the outer one is back after it."""
        with entered(tenant_user()):
            with entered(ActingContext(actor_kind="system", reason="nightly")):
                assert current().is_platform
            assert not current().is_platform


class TestScope:
    def test_user_without_organization_is_confined_to_no_organization(self) -> None:
        """The no-organization scope is a tenant scope (not platform) naming no organization."""
        ctx = ActingContext(actor_id=ACTOR_ID, actor_kind="user", tenant_id=NO_ORGANIZATION)
        assert (False, None) == (ctx.is_platform, ctx.organization_id)

    def test_system_context_records_its_reason(self) -> None:
        """A system context's reason lands in the metadata; an on-behalf one names the org."""
        ctx = ActingContext(actor_kind="system", reason="overdue run", tenant_id=ORG_ID,
                            on_behalf_of=ORG_ID)
        meta = ctx.metadata(ACTOR_ID)
        assert ("system", "overdue run", str(ORG_ID), str(ORG_ID)) == (
            meta["actor_kind"], meta["reason"], meta["on_behalf_of"], meta["organization_id"])

    def test_metadata_of_a_tenant_user_has_no_platform_keys(self) -> None:
        """A tenant user's metadata names actor and organization, and no reason."""
        meta = tenant_user(ip="10.0.0.7", user_agent="cli/1.0").metadata(ACTOR_ID)
        assert {"actor_id", "actor_kind", "organization_id", "correlation_id", "ip",
                "user_agent"} == set(meta)


class TestBounds:
    @pytest.mark.parametrize(("field", "value"), [
        ("ip", "not an ip"), ("ip", "10.0.0.1\x00"), ("ip", "fe80::1%\x00evil"),
        ("ip", "fe80::1%eth0"), ("ip", "1" * 46), ("user_agent", "a\x00b"),
        ("user_agent", "x" * (MAX_USER_AGENT + 1)), ("user_agent", "bad\ud800"),
        ("user_agent", "line\nbreak"), ("reason", "r" * 201), ("actor_kind", "User"),
    ])
    def test_refuses_values_no_projection_could_store(self, field: str, value: str) -> None:
        """NUL, control characters, lone surrogates, oversized text and unknown kinds."""
        fields: dict[str, object] = {"actor_kind": "system", "reason": "r", field: value}
        with pytest.raises(pydantic.ValidationError) as caught:
            ActingContext(**fields)  # type: ignore[arg-type]
        assert field == caught.value.errors()[0]["loc"][0]

    def test_ip_is_normalized(self) -> None:
        """An IPv6 address is kept in its canonical form."""
        assert "2001:db8::1" == tenant_user(ip="2001:0db8:0:0:0:0:0:1").ip


class TestCommand:
    def test_one_correlation_id_per_command(self) -> None:
        """Events of one command share the correlation id; the next command gets another."""
        with entered(tenant_user()):
            with command():
                first, second = event_metadata(), event_metadata()
            with command():
                third = event_metadata()
        assert first["correlation_id"] == second["correlation_id"] != third["correlation_id"]

    def test_given_correlation_id_is_used(self) -> None:
        """A caller's correlation id (a request id) is carried into the metadata."""
        with entered(tenant_user(correlation_id=ORG_ID)), command() as meta:
            assert str(ORG_ID) == meta["correlation_id"]
