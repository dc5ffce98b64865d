"""Read models: one pydantic model per table row, fields named as the table's columns."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Organization(Row):
    id: UUID
    name: str
    kind: str
    parent_id: UUID | None
    created_at: datetime
    updated_at: datetime


class User(Row):
    id: UUID
    username: str
    email: str
    password: str
    gst_number: str | None
    email_verified: bool
    email_verification_code: str | None
    email_verification_expiry: datetime | None
    two_factor_secret: str | None
    two_factor_enabled: bool
    account_type: str
    organization_id: UUID | None
    default_discount_percentage: int
    status: str
    created_at: datetime
    last_login: datetime | None
    updated_at: datetime


class Role(Row):
    id: UUID
    name: str
    description: str | None
    is_system: bool
    organization_id: UUID | None
    created_at: datetime
    updated_at: datetime


class Permission(Row):
    id: UUID
    key: str
    name: str
    description: str | None
    category: str
    created_at: datetime


class RolePermission(Row):
    id: UUID
    role_id: UUID
    permission_id: UUID
    created_at: datetime


class UserRole(Row):
    id: UUID
    user_id: UUID
    role_id: UUID
    granted_by: UUID | None
    created_at: datetime


class TeamMember(Row):
    id: UUID
    email: str
    user_id: UUID | None
    organization_id: UUID
    status: str
    invited_by: UUID
    invitation_token: str | None
    invited_at: datetime
    joined_at: datetime | None


class UserActivity(Row):
    id: UUID
    position: int
    user_id: UUID | None
    username: str
    organization_id: UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    resource_name: str | None
    ip_address: str | None
    user_agent: str | None
    metadata: dict[str, Any] | None
    created_at: datetime
