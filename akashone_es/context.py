"""Who is acting: actor, tenant, correlation id, ip and user agent, carried in a contextvar."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ConfigDict

SYSTEM_ACTOR = "system"


class ActingContext(BaseModel):
    """The acting party of a command; copied into every event's metadata."""

    model_config = ConfigDict(frozen=True)

    actor_id: uuid.UUID | None = None
    actor_kind: str = SYSTEM_ACTOR  # "system" | "user"
    organization_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None

    @property
    def tenant_id(self) -> uuid.UUID | None:
        """The organization a tenant user is confined to; None means platform-wide."""
        return self.organization_id if self.actor_kind == "user" else None

    def metadata(self, correlation_id: uuid.UUID) -> dict[str, Any]:
        """Event metadata for one command."""
        return {
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "actor_kind": self.actor_kind,
            "organization_id": str(self.organization_id) if self.organization_id else None,
            "correlation_id": str(correlation_id),
            "ip": self.ip,
            "user_agent": self.user_agent,
        }


_SYSTEM = ActingContext()
_current: ContextVar[ActingContext] = ContextVar("akashone_acting", default=_SYSTEM)
_command: ContextVar[dict[str, Any] | None] = ContextVar("akashone_command", default=None)


def current() -> ActingContext:
    """The acting context in force."""
    return _current.get()


@contextmanager
def acting_as(
    *,
    actor_id: uuid.UUID | str | None = None,
    organization_id: uuid.UUID | str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    actor_kind: str | None = None,
    correlation_id: uuid.UUID | str | None = None,
) -> Iterator[ActingContext]:
    """Act as someone for the duration of the block."""
    ctx = ActingContext(
        actor_id=uuid.UUID(str(actor_id)) if actor_id else None,
        actor_kind=actor_kind or ("user" if actor_id else SYSTEM_ACTOR),
        organization_id=uuid.UUID(str(organization_id)) if organization_id else None,
        correlation_id=uuid.UUID(str(correlation_id)) if correlation_id else None,
        ip=ip,
        user_agent=user_agent,
    )
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextmanager
def command() -> Iterator[dict[str, Any]]:
    """Open one command: fixes its correlation id so all its events share the metadata."""
    outer = _command.get()
    if outer is not None:  # nested command calls belong to the outer command
        yield outer
        return
    ctx = current()
    meta = ctx.metadata(ctx.correlation_id or uuid.uuid4())
    token = _command.set(meta)
    try:
        yield meta
    finally:
        _command.reset(token)


def event_metadata() -> dict[str, Any]:
    """Metadata for an event being created now (inside or outside a command)."""
    meta = _command.get()
    if meta is not None:
        return dict(meta)
    ctx = current()
    return ctx.metadata(ctx.correlation_id or uuid.uuid4())
