"""Validated inputs of the storage API (the counterparts of AkashOne's insert schemas)."""

from __future__ import annotations

import re
import types
import typing
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, Union
from uuid import UUID

import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
)

from akashone_es.domain.confusables import mixed_script
from akashone_es.errors import ValidationError
from akashone_es.gst import gstin_error
from akashone_es.storage import limits as lim
from akashone_es.storage.limits import JsonObject, Moment

#: cost 04-31: bcrypt refuses any other, so a hash outside it could never be verified
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
PERMISSION_KEY = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"

AccountType = Literal["super_admin", "reseller", "customer", "team_member"]
UserStatus = Literal["active", "suspended", "invited"]
TeamStatus = Literal["invited", "active", "suspended"]


def _email_length(value: Any) -> Any:
    # EmailStr alone takes 2048 characters; an address has at most 254 (RFC 5321)
    if isinstance(value, str) and len(value) > lim.EMAIL_MAX:
        raise ValueError(f"an email address has at most {lim.EMAIL_MAX} characters")
    return value


#: an address ``email_validator`` accepts and leaves as it is: ASCII dot-atom local part, a
#: lower-case domain of LDH labels under an alphabetic top-level label (tested against it,
#: ``tests/unit/test_email_fast_path.py``)
_PLAIN_EMAIL = re.compile(
    r"[A-Za-z0-9_+-]{1,64}(?:\.[A-Za-z0-9_+-]{1,64})*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
#: email_validator's special-use domains (RFC 6761), refused with every name under them
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")


def plain_email(value: str) -> bool:
    """Whether ``value`` is an address that ``email_validator`` would accept unchanged, by a
    test that costs a tenth of its (a registration spends more time validating the address
    than on anything else of its own)."""
    if len(value) > lim.EMAIL_MAX or not _PLAIN_EMAIL.fullmatch(value):
        return False
    local, _, domain = value.partition("@")
    if len(local) > 64 or "--" in domain:  # "xn--": an IDNA label, left to the library
        return False
    return not any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE)


class _EmailStr(EmailStr):
    """pydantic's ``EmailStr`` (``email_validator``), with a fast path for plain addresses."""

    @classmethod
    def _validate(cls, input_value: str, /) -> str:
        if plain_email(input_value):
            return input_value
        return str(super()._validate(input_value))  # type: ignore[misc]  # str when type-checked


Email = Annotated[_EmailStr, BeforeValidator(_email_length)]


def _numbers(annotation: Any) -> bool:
    """Whether a field of ``annotation`` takes a number but not true or false."""
    found: set[Any] = set()
    todo = [annotation]
    while todo:
        item = todo.pop()
        args = typing.get_args(item)
        if typing.get_origin(item) is Annotated:
            todo.append(args[0])
        elif args and typing.get_origin(item) in (Union, types.UnionType):
            todo.extend(args)
        else:
            found.add(item)
    return bool(found & {int, float, Decimal}) and bool not in found


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_flag_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads true as 1: a JSON true where a count or an amount belongs
        # is a mistake, not a one
        if isinstance(value, bool) and info.field_name is not None and _numbers(
                cls.model_fields[info.field_name].annotation):
            raise ValueError("must be a number, not true or false")
        return value

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL nor UTF-8 a lone surrogate: say so here rather than
        # fail in the database (or, in an event, in every projection that applies it)
        texts = value if isinstance(value, list | tuple) else (value,)  # a list of names
        for text in texts:
            if isinstance(text, str):
                problem = lim.text_problem(text)
                if problem:
                    raise ValueError(problem)
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


#: bcrypt reads only the first 72 bytes of a password (and the library refuses more)
BCRYPT_MAX_BYTES = 72


def check_password(value: str | None) -> str | None:
    """A field validator: a password bcrypt can hash whole (explicit null refused)."""
    if value is None:
        raise ValueError("must not be null; omit the field to keep the current password")
    if len(value.encode("utf-8", "surrogatepass")) > BCRYPT_MAX_BYTES:
        raise ValueError(f"at most {BCRYPT_MAX_BYTES} bytes in UTF-8 (bcrypt reads no further)")
    return value


def check_email(value: str | None) -> str | None:
    """A field validator: an address whose local part and domain labels are each written in
    one script (``alice`` with a Cyrillic a, U+0430, would pass for ``alice``)."""
    if value is None:
        raise ValueError("must not be null; omit the field to keep the current email")
    local, _, domain = value.rpartition("@")
    for part, what in [(local, "local part"), *((label, "domain label") for label in
                                                 domain.split("."))]:
        problem = mixed_script(part)
        if problem:
            raise ValueError(f"{what} {part!r} {problem}: use one script")
    return value


def check_username(value: str | None) -> str | None:
    """A field validator: explicit null refused (the pattern keeps usernames to ASCII, so
    they cannot mix scripts; uniqueness ignores case)."""
    if value is None:
        raise ValueError("must not be null; omit the field to keep the current username")
    return value


class InsertUser(Input):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    email: Email
    #: a clear password (at least 8 characters) or an existing bcrypt hash, kept as it is
    password: str = Field(min_length=8, max_length=200)
    gst_number: str | None = Field(default=None, max_length=lim.GSTIN_MAX)
    account_type: AccountType = "customer"
    organization_id: UUID | None = None
    status: UserStatus = "active"

    _gstin = field_validator("gst_number")(check_gstin)
    _username = field_validator("username")(check_username)
    _email = field_validator("email")(check_email)
    _password = field_validator("password")(check_password)


class UpdateUser(Input):
    username: str | None = Field(default=None, min_length=1, max_length=64, pattern=USERNAME)
    email: Email | None = None
    password: str | None = Field(default=None, min_length=8, max_length=200)
    gst_number: str | None = Field(default=None, max_length=lim.GSTIN_MAX)
    email_verified: bool | None = None
    email_verification_code: str | None = Field(default=None, max_length=lim.SECRET_MAX)
    email_verification_expiry: Moment | None = None
    two_factor_secret: str | None = Field(default=None, max_length=lim.SECRET_MAX)
    two_factor_enabled: bool | None = None
    account_type: AccountType | None = None
    organization_id: UUID | None = None
    default_discount_percentage: int | None = Field(default=None, ge=0, le=100)
    status: UserStatus | None = None
    last_login: Moment | None = None

    _gstin = field_validator("gst_number")(check_gstin)
    _username = field_validator("username")(check_username)
    _email = field_validator("email")(check_email)
    _password = field_validator("password")(check_password)


class InsertOrganization(Input):
    name: str = Field(min_length=1, max_length=lim.NAME_MAX)
    kind: Literal["platform", "reseller", "customer"] = "customer"
    parent_id: UUID | None = None


class InsertRole(Input):
    name: str = Field(min_length=1, max_length=100)  # roles.name varchar(100)
    description: str | None = Field(default=None, max_length=lim.DESCRIPTION_MAX)
    organization_id: UUID | None = None


class UpdateRole(Input):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=lim.DESCRIPTION_MAX)


class InsertPermission(Input):
    key: str = Field(min_length=3, max_length=100, pattern=PERMISSION_KEY)
    name: str = Field(min_length=1, max_length=255)  # permissions.name varchar(255)
    description: str | None = Field(default=None, max_length=lim.DESCRIPTION_MAX)
    category: str = Field(min_length=1, max_length=50)


class InsertTeamMember(Input):
    email: Email
    organization_id: UUID
    invited_by: UUID
    status: TeamStatus = "invited"

    _email = field_validator("email")(check_email)


class UpdateTeamMember(Input):
    email: Email | None = None
    status: TeamStatus | None = None

    _email = field_validator("email")(check_email)


class AcceptInvitation(Input):
    token: str = Field(min_length=16, max_length=lim.SECRET_MAX)
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME)
    password: str = Field(min_length=8, max_length=200)
    gst_number: str | None = Field(default=None, max_length=lim.GSTIN_MAX)

    _gstin = field_validator("gst_number")(check_gstin)
    _username = field_validator("username")(check_username)
    _password = field_validator("password")(check_password)


class InsertUserActivity(Input):
    user_id: UUID | None = None
    username: str | None = Field(default=None, max_length=lim.NAME_MAX)
    action: str = Field(min_length=1, max_length=100)
    resource_type: str | None = Field(default=None, max_length=lim.CODE_MAX)
    resource_id: str | None = Field(default=None, max_length=lim.ID_MAX)
    resource_name: str | None = Field(default=None, max_length=lim.NAME_MAX)
    ip_address: str | None = Field(default=None, max_length=lim.IP_ADDRESS_MAX)
    user_agent: str | None = Field(default=None, max_length=lim.USER_AGENT_MAX)
    metadata: JsonObject | None = None


M = TypeVar("M", bound=BaseModel)


#: the validation context of a record brought in from AkashOne: a rule about the moment of
#: creation (a certificate not yet expired) does not hold for a record made long ago
HISTORY = {"history": True}


def parse(model: type[M], data: Any, context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` as ``model``; a failure names each field and rule."""
    if isinstance(data, model):
        return data
    if isinstance(data, BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise ValidationError([_error(err) for err in exc.errors()]) from None


#: a model-level check says which field it is about: "<field>: <rule>"
_FIELD_RULE = re.compile(r"^(?:Value error, )?([a-z_][a-z0-9_]*): (.+)$", re.DOTALL)


def _error(err: Any) -> dict[str, str]:
    field = ".".join(str(part) for part in err["loc"])
    rule = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_value":  # a rule broken inside a JSON field: name the inner path
        inner = err["ctx"]["path"]
        return {"field": f"{field}.{inner}" if inner else field, "rule": err["ctx"]["rule"]}
    if not field:
        named = _FIELD_RULE.match(rule)
        if named:
            field, rule = named.group(1), named.group(2)
    return {"field": field or "input", "rule": rule}


def parse_id(value: Any, field: str) -> UUID:
    """A UUID from a UUID or string; a bad one is a ValidationError naming ``field``."""
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or len(value) > ID_TEXT_MAX:  # (never str() of anything)
        raise ValidationError.single(field, "must be a UUID")
    try:
        return UUID(value)
    except ValueError:
        raise ValidationError.single(field, "must be a UUID") from None


#: a UUID's text with room for braces, a urn: prefix and spaces
ID_TEXT_MAX = 64


def is_bcrypt_hash(value: str) -> bool:
    return bool(BCRYPT_HASH.match(value))
