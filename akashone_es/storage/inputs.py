"""Validated inputs of the storage API (the counterparts of AkashOne's insert schemas)."""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar
from uuid import UUID

import pydantic
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from akashone_es.errors import ValidationError
from akashone_es.gst import gstin_error

BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
PERMISSION_KEY = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

AccountType = Literal["super_admin", "reseller", "customer", "team_member"]
UserStatus = Literal["active", "suspended", "invited"]
TeamStatus = Literal["invited", "active", "suspended"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: say so here rather than fail in the database
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def check_gstin(value: str | None) -> str | None:
    """A field validator: upper-case and check a GSTIN (None passes)."""
    if value is None:
        return None
    value = value.upper()
    problem = gstin_error(value)
    if problem:
        raise ValueError(f"not a valid GSTIN: {problem}")
    return value


class InsertUser(Input):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    email: EmailStr
    #: a clear password (at least 8 characters) or an existing bcrypt hash, kept as it is
    password: str = Field(min_length=8, max_length=200)
    gst_number: str | None = None
    account_type: AccountType = "customer"
    organization_id: UUID | None = None
    status: UserStatus = "active"

    _gstin = field_validator("gst_number")(check_gstin)


class UpdateUser(Input):
    username: str | None = Field(default=None, min_length=1, max_length=64, pattern=USERNAME)
    email: EmailStr | None = None
    password: str | None = Field(default=None, min_length=8, max_length=200)
    gst_number: str | None = None
    email_verified: bool | None = None
    email_verification_code: str | None = None
    email_verification_expiry: pydantic.AwareDatetime | None = None
    two_factor_secret: str | None = None
    two_factor_enabled: bool | None = None
    account_type: AccountType | None = None
    organization_id: UUID | None = None
    default_discount_percentage: int | None = Field(default=None, ge=0, le=100)
    status: UserStatus | None = None
    last_login: pydantic.AwareDatetime | None = None

    _gstin = field_validator("gst_number")(check_gstin)


class InsertOrganization(Input):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["platform", "reseller", "customer"] = "customer"
    parent_id: UUID | None = None


class InsertRole(Input):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    organization_id: UUID | None = None


class UpdateRole(Input):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = None


class InsertPermission(Input):
    key: str = Field(min_length=3, max_length=100, pattern=PERMISSION_KEY)
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    category: str = Field(min_length=1, max_length=50)


class InsertTeamMember(Input):
    email: EmailStr
    organization_id: UUID
    invited_by: UUID
    status: TeamStatus = "invited"


class UpdateTeamMember(Input):
    email: EmailStr | None = None
    status: TeamStatus | None = None


class AcceptInvitation(Input):
    token: str = Field(min_length=16)
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    password: str = Field(min_length=8, max_length=200)
    gst_number: str | None = None

    _gstin = field_validator("gst_number")(check_gstin)


class InsertUserActivity(Input):
    user_id: UUID | None = None
    username: str | None = None
    action: str = Field(min_length=1, max_length=100)
    resource_type: str | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    metadata: dict[str, Any] | None = None


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model``; a failure names each field and rule."""
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError([_error(err) for err in exc.errors()]) from None


#: a model-level check says which field it is about: "<field>: <rule>"
_FIELD_RULE = re.compile(r"^(?:Value error, )?([a-z_][a-z0-9_]*): (.+)$", re.DOTALL)


def _error(err: Any) -> dict[str, str]:
    field = ".".join(str(part) for part in err["loc"])
    rule = str(err["msg"])
    if not field:
        named = _FIELD_RULE.match(rule)
        if named:
            field, rule = named.group(1), named.group(2)
    return {"field": field or "input", "rule": rule}


def parse_id(value: Any, field: str) -> UUID:
    """A UUID from a UUID or string; a bad one is a ValidationError naming ``field``."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationError.single(field, "must be a UUID") from None


def is_bcrypt_hash(value: str) -> bool:
    return bool(BCRYPT_HASH.match(value))
