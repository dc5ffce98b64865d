"""Resolving an acting context: the tenant comes from the actor's own row, never the caller."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pydantic
from psycopg import sql

from akashone_es.context import NO_ORGANIZATION, ActingContext
from akashone_es.errors import ContextError, ValidationError

ACTOR = sql.SQL("SELECT account_type, organization_id, status FROM users WHERE id = %s")
ORGANIZATION = sql.SQL("SELECT 1 FROM organizations WHERE id = %s")
ACTOR_KINDS = ("user", "system")


def _uuid(value: Any, field: str) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ValidationError.single(field, "must be a UUID")


def _check_kind(actor_kind: Any, actor_id: uuid.UUID | None, system: Any) -> None:
    if actor_kind is not None and actor_kind not in ACTOR_KINDS:
        raise ValidationError.single("actor_kind", "must be 'user' or 'system'")
    if actor_id is not None and system is not None:
        raise ValidationError.single("system", "give actor_id or system, not both")
    if actor_id is None and system is None:
        raise ValidationError.single(
            "actor_id", "name the acting user (actor_id=...) or a platform job "
                        "(system='<reason>')")
    if actor_kind == "system" and system is None:
        raise ValidationError.single("system", "a system context needs its reason")
    if actor_kind == "user" and actor_id is None:
        raise ValidationError.single("actor_id", "a user context needs the user's id")
    if system is not None and (not isinstance(system, str) or not system.strip()):
        raise ValidationError.single("system", "must be a non-empty reason")


def _build(**fields: Any) -> ActingContext:
    try:
        return ActingContext(**fields)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "context"
        raise ValidationError.single(field, error["msg"].removeprefix("Value error, ")) from None


@dataclass(frozen=True)
class Request:
    """What a caller asked for, checked for form (no database yet)."""

    actor_id: uuid.UUID | None
    system: str | None
    organization_id: uuid.UUID | None
    common: dict[str, Any]


def request(*, actor_id: Any = None, system: Any = None, organization_id: Any = None,
            actor_kind: Any = None, ip: Any = None, user_agent: Any = None,
            correlation_id: Any = None) -> Request:
    """Check the form of an ``acting_as`` call: ValidationError naming the field, at once."""
    actor = _uuid(actor_id, "actor_id")
    org = _uuid(organization_id, "organization_id")
    _check_kind(actor_kind, actor, system)
    common = {"correlation_id": _uuid(correlation_id, "correlation_id"), "ip": ip,
              "user_agent": user_agent}
    # the form of every field (ip, user agent, the reason) is checked now, not on entering
    probe = _build(actor_kind="system", reason=system.strip() if system else "probe", **common)
    common.update(ip=probe.ip)
    return Request(actor, system.strip() if isinstance(system, str) else None, org, common)


def resolve(conn: psycopg.Connection[Any], asked: Request) -> ActingContext:
    """The context a caller may act in, or ContextError.

    A user actor is confined to its own organization (a user without one sees no
    organization's records); naming another organization is refused, never widened. Only
    active users act. A super admin, or a system context with a reason, is platform-wide,
    or acts on behalf of the organization it names (recorded as ``on_behalf_of``).
    """
    actor, org, common = asked.actor_id, asked.organization_id, asked.common
    if org is not None and conn.execute(ORGANIZATION, (org,)).fetchone() is None:
        raise ContextError(f"no organization {org}: cannot act for it")
    if asked.system is not None:
        return _build(actor_kind="system", reason=asked.system, tenant_id=org,
                      on_behalf_of=org, **common)
    row = conn.execute(ACTOR, (actor,)).fetchone()
    if row is None:
        raise ContextError(f"unknown actor: no user {actor}")
    account_type, own_org, status = _fields(row)
    if status != "active":
        raise ContextError(f"actor {actor} is {status}: only active users act")
    if account_type == "super_admin":
        return _build(actor_id=actor, actor_kind="user", tenant_id=org, on_behalf_of=org,
                      **common)
    own = own_org or NO_ORGANIZATION
    if org is not None and org != own:
        raise ContextError(f"actor {actor} does not belong to organization {org}")
    return _build(actor_id=actor, actor_kind="user", tenant_id=own, **common)


def _fields(row: Any) -> tuple[str, uuid.UUID | None, str]:
    if isinstance(row, dict):
        return row["account_type"], row["organization_id"], row["status"]
    return row[0], row[1], row[2]
