"""The activity log (``user_activities``): an async projection of every event in the log."""

from __future__ import annotations

import re
from typing import Any
from uuid import NAMESPACE_OID, uuid5

from eventsourcing.utils import get_topic
from psycopg.types.json import Jsonb

from akashone_es.domain.identity import Activity, User
from akashone_es.domain.operations import Erasure
from akashone_es.domain.resources import Resource
from akashone_es.personal import MARKER, erased_people, metadata_person
from projections.engine import Batch, Projection, Table, handles

USER_ACTIVITIES = Table("user_activities", """
    id uuid PRIMARY KEY, position bigint NOT NULL CONSTRAINT user_activities_position_key UNIQUE,
    user_id uuid, username text NOT NULL, organization_id uuid, action text NOT NULL,
    resource_type text, resource_id varchar, resource_name text,
    ip_address text, user_agent text, metadata jsonb, created_at timestamptz NOT NULL,
    ip_subject uuid""",
    ["CREATE INDEX IF NOT EXISTS user_activities_user_idx ON {table} (user_id, position DESC)",
     "CREATE INDEX IF NOT EXISTS user_activities_org_idx"
     " ON {table} (organization_id, position DESC)",
     # md5: the action is unbounded text in the log (an event written behind the API may carry
     # kilobytes), and a btree row over ~2.7 kB is refused, which would stop the projection
     "CREATE INDEX IF NOT EXISTS user_activities_action_md5_idx"
     " ON {table} (user_id, md5(action))",
     # the index of earlier versions indexed the text itself: dropped where it still exists
     "DO $$ DECLARE ns text; BEGIN"
     " SELECT n.nspname INTO ns FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
     " WHERE c.oid = '{table}'::regclass;"
     " IF to_regclass(format('%I.user_activities_action_idx', ns)) IS NOT NULL THEN"
     " EXECUTE format('DROP INDEX %I.user_activities_action_idx', ns); END IF; END $$"],
    # whose key seals the row's IP address and user agent (erasing that person blanks them)
    order_by="position", added={"ip_subject": "uuid"})

#: the projection's own memory of users (name, tenant), so a replay names actors and places
#: rows in organizations as they were at the time
ACTIVITY_ACTORS = Table("activity_actors", """
    user_id uuid PRIMARY KEY, username text NOT NULL, organization_id uuid""",
    order_by="user_id")

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
    tables = (USER_ACTIVITIES, ACTIVITY_ACTORS)
    handles_all = True

    def prepare(self) -> None:
        self.insert = self.q(
            "INSERT INTO {t} (id, position, user_id, username, organization_id, action,"
            " resource_type, resource_id, resource_name, ip_address, user_agent, metadata,"
            " created_at, ip_subject) VALUES (%s, %s, %s,"
            " COALESCE(%s, (SELECT username FROM {u} WHERE user_id = %s), 'system'),"
            " COALESCE(%s::uuid, (SELECT organization_id FROM {u} WHERE user_id = %s), %s::uuid),"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            t="user_activities", u="activity_actors")
        self.remember = self.q(
            "INSERT INTO {u} (user_id, username, organization_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO NOTHING", u="activity_actors")
        self.rename = self.q("UPDATE {u} SET username = %s WHERE user_id = %s",
                             u="activity_actors")
        self.move = self.q("UPDATE {u} SET organization_id = %s WHERE user_id = %s",
                           u="activity_actors")
        self.erase_where = self.q(
            "UPDATE {t} SET ip_address = CASE WHEN ip_address IS NULL THEN NULL ELSE %s END,"
            " user_agent = CASE WHEN user_agent IS NULL THEN NULL ELSE %s END"
            " WHERE ip_subject = ANY(%s::uuid[])", t="user_activities")
        self.erase_who = self.q("UPDATE {t} SET username = %s WHERE user_id = ANY(%s::uuid[])",
                                t="user_activities")
        self.erase_named = self.q(
            "UPDATE {t} SET resource_name = %s WHERE resource_type IN ('user', 'team_member')"
            " AND resource_name IS NOT NULL AND resource_id = ANY(%s::text[])",
            t="user_activities")
        self.erase_actor = self.q(
            "UPDATE {u} SET username = %s WHERE user_id = ANY(%s::uuid[])", u="activity_actors")

    def _row(self, e: Any, position: int, b: Batch, *, action: str, resource_type: str | None,
             resource_id: str | None, name: str | None, user_id: Any = None,
             username: str | None = None, ip: str | None = None, agent: str | None = None,
             details: dict[str, Any] | None = None) -> None:
        meta = e.metadata or {}
        actor = user_id or meta.get("actor_id")
        if isinstance(e, Activity.Recorded):  # the subject user's tenant, else the actor's
            tenant, fallback_tenant, member = None, meta.get("organization_id"), actor
        else:
            # the record's tenant, else the one acted in (or for); a platform-wide action
            # is the platform's (a super admin's own organization is not where it acted)
            tenant = getattr(e, "organization_id", None) or meta.get("organization_id")
            if getattr(e, "account_type", None) == "super_admin":  # the platform's account,
                tenant = meta.get("organization_id")  # wherever its row sits
            fallback_tenant, member = None, None
        if ip is None and agent is None:  # the request's, sealed under its person's key
            ip, agent = meta.get("ip"), meta.get("user_agent")
            whose = metadata_person(get_topic(type(e)), e.originator_id,
                                    lambda name: getattr(e, name, None))
        else:  # the activity's own, sealed under its user's key
            whose = getattr(e, "user_id", None)
        extra = {"correlation_id": meta.get("correlation_id"),
                 "event": type(e).__qualname__, "version": e.originator_version}
        if details:
            extra["details"] = details
        b.add(self.insert, (
            uuid5(NAMESPACE_OID, f"{e.originator_id}:{e.originator_version}")
            if not isinstance(e, Activity.Recorded) else e.originator_id,
            position, actor, username, actor, tenant, member, fallback_tenant, action,
            resource_type, resource_id, name, ip, agent, Jsonb(extra), e.timestamp,
            whose if ip is not None or agent is not None else None))

    @handles(User.Registered)
    def _registered(self, e: User.Registered, position: int, b: Batch) -> None:
        b.add(self.remember, (e.originator_id, e.username, e.organization_id))
        self.fallback(e, position, b)

    @handles(User.Updated)
    def _updated(self, e: User.Updated, position: int, b: Batch) -> None:
        if "username" in e.changes:
            b.add(self.rename, (e.changes["username"], e.originator_id))
        if "organization_id" in e.changes:
            b.add(self.move, (e.changes["organization_id"], e.originator_id))
        self.fallback(e, position, b)

    @handles(Erasure.Recorded)
    def _erased(self, e: Erasure.Recorded, position: int, b: Batch) -> None:
        """Where erased people acted or were named: their name, IP address, user agent and
        invitation email read as the marker (as their events now decrypt)."""
        people = erased_people(e.subjects)
        if people:
            b.add(self.erase_where, (MARKER, MARKER, people))
            b.add(self.erase_who, (MARKER, people))
            b.add(self.erase_named, (MARKER, people))
            b.add(self.erase_actor, (MARKER, people))
        self.fallback(e, position, b)

    @handles(Activity.Recorded)
    def _recorded(self, e: Activity.Recorded, position: int, b: Batch) -> None:
        self._row(e, position, b, action=e.action, resource_type=e.resource_type,
                  resource_id=e.resource_id, name=e.resource_name, user_id=e.user_id,
                  username=e.username, ip=e.ip_address, agent=e.user_agent, details=e.details)

    @handles(Resource.Created, Resource.Updated, Resource.Transitioned, Resource.Observed,
             Resource.Deleted, Resource.Linked)
    def _resource(self, e: Any, position: int, b: Batch) -> None:
        """A cloud resource's event, named by its kind: ``virtual_machine.created``,
        ``volume.attach``, ``virtual_machine.observed``; no field values are copied (a
        resource's fields may hold sealed secrets)."""
        step = e.action if isinstance(e, Resource.Transitioned) else e.link if isinstance(
            e, Resource.Linked) else snake(type(e).__qualname__.split(".")[-1])
        name = e.fields.get("name") if isinstance(e, Resource.Created) else None
        self._row(e, position, b, action=f"{e.kind}.{step}", resource_type=e.kind,
                  resource_id=str(e.originator_id),
                  name=name if isinstance(name, str) else None)

    def fallback(self, e: Any, position: int, b: Batch) -> None:
        owner = type(e).__qualname__.split(".")
        kind = snake(owner[0]) if len(owner) > 1 else "event"
        action = f"{kind}.{snake(owner[-1])}"
        self._row(e, position, b, action=action, resource_type=kind,
                  resource_id=str(e.originator_id), name=resource_name(e))


