"""Team members and invitations on the storage facade (IStorage group team members, 6)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from akashone_es import context
from akashone_es.domain import identity as domain
from akashone_es.domain.confusables import identity_key
from akashone_es.errors import NotFoundError, ValidationError
from akashone_es.storage import inputs as i
from akashone_es.storage.users import UsersStorage
from projections import models as m


def Q(text: str) -> sql.SQL:  # noqa: N802 - reads like a literal
    return sql.SQL(text)


USER_BY_ID = Q("SELECT * FROM users WHERE id = %s")
MEMBERS_OF_ORG = Q("SELECT * FROM team_members WHERE organization_id = %s"
                   " ORDER BY invited_at, id")
MEMBER_BY_ID = Q("SELECT * FROM team_members WHERE id = %s")
MEMBER_BY_EMAIL = Q("SELECT * FROM team_members WHERE email_key = %s"
                    " AND organization_id = %s")
MEMBER_BY_TOKEN = Q("SELECT * FROM team_members WHERE invitation_token = %s")


def _token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


class TeamStorage(UsersStorage):
    """Invitations into an organization, accepted by a new team-member user."""

    # -- team members (6) -----------------------------------------------------------------
    def get_team_members(self, organization_id: UUID | str) -> list[m.TeamMember]:
        org = i.parse_id(organization_id, "organization_id")
        if not self._visible(org):
            return []
        return self._all(m.TeamMember, MEMBERS_OF_ORG, (org,))

    def get_team_member(self, member_id: UUID | str) -> m.TeamMember | None:
        member = self._one(m.TeamMember, MEMBER_BY_ID, (i.parse_id(member_id, "member_id"),))
        return member if member and self._visible(member.organization_id) else None

    def get_team_member_by_email(self, email: str,
                                 organization_id: UUID | str) -> m.TeamMember | None:
        org = i.parse_id(organization_id, "organization_id")
        if not self._visible(org):
            return None
        return self._one(m.TeamMember, MEMBER_BY_EMAIL, (identity_key(email), org))

    def create_team_member(self, data: i.InsertTeamMember | dict[str, Any]) -> m.TeamMember:
        """Invite an email into an organization.

        The returned model carries the clear invitation token, once; the table and the log
        keep only its SHA-256, so a leaked log grants no access.
        """
        invite = i.parse(i.InsertTeamMember, data)
        self._require_organization(invite.organization_id, "organization_id")
        inviter = self._require_user(invite.invited_by, "invited_by")
        if inviter.organization_id != invite.organization_id and \
                inviter.account_type != "super_admin":
            # the platform naming another tenant's user would show that user's id there
            raise ValidationError.single("invited_by", "must be a user of the invitation's "
                                         "organization (or a super admin)")
        token = secrets.token_urlsafe(24)
        with context.command():
            aggregate = domain.TeamMember(
                email=str(invite.email), organization_id=str(invite.organization_id),
                invited_by=str(invite.invited_by), token_hash=_token_hash(token),
                status=invite.status)
            row = self._save_returning(m.TeamMember, ("team_members", aggregate.id), aggregate)
        member = row or self._must(self.get_team_member(aggregate.id))
        return member.model_copy(update={"invitation_token": token})

    def update_team_member(self, member_id: UUID | str,
                           changes: i.UpdateTeamMember | dict[str, Any]) -> m.TeamMember | None:
        update = i.parse(i.UpdateTeamMember, changes)
        current = self.get_team_member(member_id)
        if current is None:
            return None
        values = update.model_dump(mode="json", exclude_unset=True)
        if values:
            with context.command():
                aggregate = self._load(domain.TeamMember, current.id, "team_member")
                aggregate.update(values)
                row = self._save_returning(m.TeamMember, ("team_members", current.id),
                                           aggregate)
                return row or self.get_team_member(current.id)
        return current

    def delete_team_member(self, member_id: UUID | str) -> bool:
        current = self.get_team_member(member_id)
        if current is None:
            return False
        with context.command():
            aggregate = self._load(domain.TeamMember, current.id, "team_member")
            aggregate.remove()
            self._save(aggregate)
        return True

    def accept_invitation(self, data: i.AcceptInvitation | dict[str, Any]) -> m.User:
        """Turn an invitation into a team-member user, both in one transaction."""
        accept = i.parse(i.AcceptInvitation, data)
        member = self._one(m.TeamMember, MEMBER_BY_TOKEN, (_token_hash(accept.token),))
        # a tenant context accepts only its own organization's invitations: another
        # tenant's token (leaked, say) must not add a user to that tenant
        if member is None or not self._visible(member.organization_id):
            raise NotFoundError("invitation", "(token)", "token")
        with context.command():
            invitation = self._load(domain.TeamMember, member.id, "team_member")
            user = domain.User(
                username=accept.username, email=member.email,
                password_hash=self._password_hash(accept.password),
                gst_number=accept.gst_number, account_type="team_member",
                organization_id=str(member.organization_id), status="active")
            invitation.accept(user.id, datetime.now(UTC))
            row = self._save_returning(m.User, ("users", user.id), user, invitation)
        return row or self._must(self._one(m.User, USER_BY_ID, (user.id,)))
