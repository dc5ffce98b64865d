"""Who is acting: actor, tenant scope, correlation id, ip and user agent, in a contextvar.

A context is never taken on the caller's word: ``Storage.acting_as`` resolves it (the tenant
comes from the actor's own row) and enters it here. Without a context nothing may be read or
written (fail closed); platform scope is a super admin actor or a named system context whose
reason is recorded in every event's metadata.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from akashone_es.errors import ContextError, ValidationError

ActorKind = Literal["user", "system"]
#: the tenant scope of a user who belongs to no organization: matches no organization's rows
NO_ORGANIZATION = uuid.UUID(int=0)
#: bounds of the free-text context fields, which are copied into every event's metadata
MAX_USER_AGENT = 512
MAX_REASON = 200
#: the longest textual IPv6 address (with an embedded IPv4)
MAX_IP = 45


def check_text(value: str | None, *, limit: int) -> str | None:
    """A context text: printable, valid Unicode, at most ``limit`` characters."""
    if value is None:
        return None
    if len(value) > limit:
        raise ValueError(f"at most {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


class ActingContext(BaseModel):
    """The acting party of a command, as resolved and vouched for; copied into metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor_id: uuid.UUID | None = None
    actor_kind: ActorKind
    #: the organization whose records this context is confined to; None = platform-wide
    tenant_id: uuid.UUID | None = None
    #: the platform (super admin or system) acting for this tenant
    on_behalf_of: uuid.UUID | None = None
    #: why a system context acts (required for system contexts)
    reason: str | None = None
    correlation_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # a scoped IPv6 address ("fe80::1%eth0") takes any text after the %, NUL included
        if len(value) > MAX_IP or "%" in value:
            raise ValueError("must be an IPv4 or IPv6 address (no zone id)")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IPv4 or IPv6 address (no zone id)") from None

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str | None) -> str | None:
        return check_text(value, limit=MAX_USER_AGENT)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return check_text(value, limit=MAX_REASON)

    @property
    def is_platform(self) -> bool:
        """Platform-wide: a super admin or a system context not acting for a tenant."""
        return self.tenant_id is None

    @property
    def is_platform_actor(self) -> bool:
        """The platform acts (a super admin or a system context), platform-wide or on a
        tenant's behalf: platform-only operations are open to it, scoped as it is."""
        return self.tenant_id is None or self.on_behalf_of is not None

    @property
    def organization_id(self) -> uuid.UUID | None:
        """The organization acted in (the tenant scope), None for platform-wide work."""
        return None if self.tenant_id == NO_ORGANIZATION else self.tenant_id

    def metadata(self, correlation_id: uuid.UUID) -> dict[str, Any]:
        """Event metadata for one command."""
        meta: dict[str, Any] = {
            "actor_id": str(self.actor_id) if self.actor_id else None,
            "actor_kind": self.actor_kind,
            "organization_id": str(self.organization_id) if self.organization_id else None,
            "correlation_id": str(correlation_id),
            "ip": self.ip,
            "user_agent": self.user_agent,
        }
        if self.reason is not None:
            meta["reason"] = self.reason
        if self.on_behalf_of is not None:
            meta["on_behalf_of"] = str(self.on_behalf_of)
        if _event_time.get() is not None:  # replayed history: when it was really recorded
            meta["recorded_at"] = datetime.now(UTC).isoformat()
        return meta


_current: ContextVar[ActingContext | None] = ContextVar("akashone_acting", default=None)
_command: ContextVar[dict[str, Any] | None] = ContextVar("akashone_command", default=None)

NO_CONTEXT = ("no acting context: wrap the call in storage.acting_as(actor_id=...) or "
              "storage.acting_as(system='<reason>')")


def current() -> ActingContext:
    """The acting context in force; refused when there is none (fail closed)."""
    ctx = _current.get()
    if ctx is None:
        raise ContextError(NO_CONTEXT)
    return ctx


def current_or_none() -> ActingContext | None:
    """The acting context in force, or None (for code that only reports it)."""
    return _current.get()


@contextmanager
def entered(ctx: ActingContext) -> Iterator[ActingContext]:
    """Put a resolved context in force for the block (``Storage.acting_as`` resolves it)."""
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


#: the earliest time an event may be stamped with, and the UTC offsets in use (-12:00 to
#: +14:00; PostgreSQL refuses beyond 15:59): the bounds of an input's moments too
EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
OFFSET_MAX = timedelta(hours=14)
_event_time: ContextVar[datetime | None] = ContextVar("akashone_event_time", default=None)


@contextmanager
def events_at(moment: datetime) -> Iterator[None]:
    """Stamp the events made in the block with ``moment`` instead of now: for history that
    happened elsewhere and is recorded later (the demo's yesterday, an import). Only the
    platform may; ``moment`` must be aware and not in the future; each event's metadata keeps
    the real time it was recorded (``recorded_at``). Enter it inside ``acting_as``."""
    if not current().is_platform_actor:
        raise ContextError("only the platform records events at another time than now")
    offset = moment.utcoffset() if isinstance(moment, datetime) else None
    if (offset is None or abs(offset) > OFFSET_MAX
            or not EARLIEST_EVENT <= moment <= datetime.now(UTC)):
        raise ValidationError.single("moment", "events_at needs an aware time (UTC offset "
                                               "within +-14:00) from 1970 on and not in the "
                                               "future")
    token = _event_time.set(moment)
    try:
        yield
    finally:
        _event_time.reset(token)


def backdating() -> bool:
    """Whether an ``events_at`` block is in force."""
    return _event_time.get() is not None


def event_time() -> datetime:
    """The timestamp of an event created now: now, or the ``events_at`` block's time (for a
    platform context only: a tenant context entered inside the block is refused)."""
    moment = _event_time.get()
    if moment is None:
        return datetime.now(UTC)
    ctx = _current.get()
    if ctx is None or not ctx.is_platform_actor:
        raise ContextError("only the platform records events at another time than now")
    return moment


def event_metadata() -> dict[str, Any]:
    """Metadata for an event being created now (inside or outside a command)."""
    meta = _command.get()
    if meta is not None:
        return dict(meta)
    ctx = current()
    return ctx.metadata(ctx.correlation_id or uuid.uuid4())
