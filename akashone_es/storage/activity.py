"""The activity log on the storage facade (IStorage group "activity log", 5 methods)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.domain.identity import Activity
from akashone_es.errors import ValidationError
from akashone_es.storage import inputs as i
from akashone_es.storage.users import UsersStorage
from projections import models as m
from projections.activity import ActivityProjection

BY_ID = sql.SQL("SELECT * FROM user_activities WHERE id = %s")
RECENT = sql.SQL("SELECT * FROM user_activities ORDER BY position DESC LIMIT %s")
RECENT_OF_ORG = sql.SQL("SELECT * FROM user_activities WHERE organization_id = %s"
                        " ORDER BY position DESC LIMIT %s")
OF_USER = sql.SQL("SELECT * FROM user_activities WHERE user_id = %s"
                  " ORDER BY position DESC LIMIT %s")
#: md5(action) matches the index (user_id, md5(action)); action itself settles collisions
OF_USER_ACTION = sql.SQL("SELECT * FROM user_activities WHERE user_id = %s"
                         " AND md5(action) = md5(%s) AND action = %s ORDER BY position DESC")
NO_LIMIT = 2**62


class ActivityStorage(UsersStorage):
    """Reads catch the async projection up first, so a caller reads its own writes."""

    def _activities(self) -> None:
        self._catch_up(ActivityProjection.name)

    def get_user_activities(self, user_id: UUID | str | None = None,
                            limit: int | None = None) -> list[m.UserActivity]:
        """Newest first; every user's (the tenant's) when no user is given."""
        self._activities()
        if user_id is None:
            return self._recent(limit or NO_LIMIT)
        rows = self._all(m.UserActivity, OF_USER, (i.parse_id(user_id, "user_id"),
                                                   limit or NO_LIMIT))
        return [r for r in rows if self._visible_row(r.organization_id, r.user_id)]

    def get_user_activity(self, activity_id: UUID | str) -> m.UserActivity | None:
        self._activities()
        row = self._one(m.UserActivity, BY_ID, (i.parse_id(activity_id, "activity_id"),))
        return row if row and self._visible_row(row.organization_id, row.user_id) else None

    def create_user_activity(self, data: i.InsertUserActivity | dict[str, Any]
                             ) -> m.UserActivity:
        """Record an activity the application saw (a login, say) as an event in the log."""
        activity = i.parse(i.InsertUserActivity, data)
        username = activity.username
        if activity.user_id is not None:
            subject = self._require_user(activity.user_id)  # another tenant's: not found
            if username is not None and username != subject.username:
                # the audit trail names the user as the users table does, never as claimed
                raise ValidationError.single("username", "must be the user's own username")
            username = subject.username
        with context.command():
            aggregate = Activity(
                user_id=str(activity.user_id) if activity.user_id else None,
                username=username, action=activity.action,
                resource_type=activity.resource_type, resource_id=activity.resource_id,
                resource_name=activity.resource_name, ip_address=activity.ip_address,
                user_agent=activity.user_agent, details=activity.metadata)
            self._save(aggregate)
        return self._must(self.get_user_activity(aggregate.id))

    def get_recent_activities(self, limit: int = 100) -> list[m.UserActivity]:
        self._activities()
        return self._recent(limit)

    def _recent(self, limit: int) -> list[m.UserActivity]:
        """The newest activities in scope (the facade bounds a caller's ``limit``)."""
        tenant = self.tenant_id
        if tenant is not None:
            return self._all(m.UserActivity, RECENT_OF_ORG, (tenant, limit))
        return self._all(m.UserActivity, RECENT, (limit,))

    def get_user_activities_by_action(self, user_id: UUID | str,
                                      action: str) -> list[m.UserActivity]:
        self._activities()
        rows = self._all(m.UserActivity, OF_USER_ACTION,
                         (i.parse_id(user_id, "user_id"), action, action))
        return [r for r in rows if self._visible_row(r.organization_id, r.user_id)]
