"""The activity log (``user_activities``): an async projection of every event in the log."""

from __future__ import annotations

import re
from typing import Any
from uuid import NAMESPACE_OID, uuid5

from psycopg.types.json import Jsonb

from akashone_es.domain.identity import Activity, User
from projections.engine import Batch, Projection, Table, handles

USER_ACTIVITIES = Table("user_activities", """
    id uuid PRIMARY KEY, position bigint NOT NULL CONSTRAINT user_activities_position_key UNIQUE,
    user_id uuid, username text NOT NULL, organization_id uuid, action text NOT NULL,
    resource_type text, resource_id varchar, resource_name text,
    ip_address text, user_agent text, metadata jsonb, created_at timestamptz NOT NULL""",
    ["CREATE INDEX IF NOT EXISTS user_activities_user_idx ON {table} (user_id, position DESC)",
     "CREATE INDEX IF NOT EXISTS user_activities_org_idx"
     " ON {table} (organization_id, position DESC)",
     "CREATE INDEX IF NOT EXISTS user_activities_action_idx ON {table} (user_id, action)"],
    order_by="position")

#: the projection's own memory of usernames, so a replay names actors as they were then
ACTIVITY_USERNAMES = Table("activity_usernames", """
    user_id uuid PRIMARY KEY, username text NOT NULL""", order_by="user_id")

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def resource_name(event: Any) -> str | None:
    for attr in ("username", "name", "key", "email"):
        value = getattr(event, attr, None)
        if isinstance(value, str):
            return value
    return None


class ActivityProjection(Projection):
    """One row per event: who (actor), did what (action), to which resource, from where."""

    name = "user_activities"
    mode = "async"
    tables = (USER_ACTIVITIES, ACTIVITY_USERNAMES)
    handles_all = True

    def prepare(self) -> None:
        self.insert = self.q(
            "INSERT INTO {t} (id, position, user_id, username, organization_id, action,"
            " resource_type, resource_id, resource_name, ip_address, user_agent, metadata,"
            " created_at) VALUES (%s, %s, %s,"
            " COALESCE(%s, (SELECT username FROM {u} WHERE user_id = %s), 'system'),"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            t="user_activities", u="activity_usernames")
        self.remember = self.q(
            "INSERT INTO {u} (user_id, username) VALUES (%s, %s)"
            " ON CONFLICT (user_id) DO UPDATE SET username = EXCLUDED.username",
            u="activity_usernames")

    def _row(self, e: Any, position: int, b: Batch, *, action: str, resource_type: str | None,
             resource_id: str | None, name: str | None, user_id: Any = None,
             username: str | None = None, ip: str | None = None, agent: str | None = None,
             details: dict[str, Any] | None = None) -> None:
        meta = e.metadata or {}
        actor = user_id or meta.get("actor_id")
        extra = {"correlation_id": meta.get("correlation_id"),
                 "event": type(e).__qualname__, "version": e.originator_version}
        if details:
            extra["details"] = details
        b.add(self.insert, (
            uuid5(NAMESPACE_OID, f"{e.originator_id}:{e.originator_version}")
            if not isinstance(e, Activity.Recorded) else e.originator_id,
            position, actor, username, actor, meta.get("organization_id"), action,
            resource_type, resource_id, name, ip or meta.get("ip"),
            agent or meta.get("user_agent"), Jsonb(extra), e.timestamp))

    @handles(User.Registered)
    def _registered(self, e: User.Registered, position: int, b: Batch) -> None:
        b.add(self.remember, (e.originator_id, e.username))
        self.fallback(e, position, b)

    @handles(User.Updated)
    def _updated(self, e: User.Updated, position: int, b: Batch) -> None:
        if "username" in e.changes:
            b.add(self.remember, (e.originator_id, e.changes["username"]))
        self.fallback(e, position, b)

    @handles(Activity.Recorded)
    def _recorded(self, e: Activity.Recorded, position: int, b: Batch) -> None:
        self._row(e, position, b, action=e.action, resource_type=e.resource_type,
                  resource_id=e.resource_id, name=e.resource_name, user_id=e.user_id,
                  username=e.username, ip=e.ip_address, agent=e.user_agent, details=e.details)

    def fallback(self, e: Any, position: int, b: Batch) -> None:
        owner = type(e).__qualname__.split(".")
        kind = snake(owner[0]) if len(owner) > 1 else "event"
        action = f"{kind}.{snake(owner[-1])}"
        self._row(e, position, b, action=action, resource_type=kind,
                  resource_id=str(e.originator_id), name=resource_name(e))


